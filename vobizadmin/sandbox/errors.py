"""Errors the Vobiz API sandbox answers with.

``ApiError`` carries a status and the flat JSON payload the resource pages document
(``{"error": ..., ...}``); ``invalid`` builds the documented 400 for field errors. Plain Python:
no HTTP, no Django.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failure the sandbox answers with ``status``, the flat JSON ``payload`` and ``headers``."""

    def __init__(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(f"{status}: {payload.get('error')}")
        self.status = status
        self.payload = payload
        self.headers = headers or {}


def invalid(details: dict[str, str]) -> ApiError:
    """The documented 400 for field errors: every failing field at once."""
    return ApiError(400, {"error": "invalid request parameters", "details": details})
