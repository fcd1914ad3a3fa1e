"""Errors the Vobiz API sandbox answers with, in both documented envelopes.

``ApiError`` carries a status and the flat JSON payload the resource pages document
(``{"error": ..., ...}``); ``invalid`` builds the documented 400 for field errors from a
``FieldErrors``, which also remembers each failure's code and the value that was sent, for the
newer global envelope (``global_error``). Plain Python: no HTTP, no Django.
"""

from __future__ import annotations

from typing import Any

VALIDATION_MESSAGE = "invalid request parameters"

# String codes of the global envelope, by HTTP status.
GLOBAL_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    402: "PAYMENT_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


class FieldErrors(dict[str, str]):
    """Field name -> message (the flat envelope's ``details``), in the order found.

    ``add`` also records a machine code per field; the value each field was sent with is looked
    up in ``sent`` (the request body or the query parameters) when the error is rendered.
    Plain ``errors[name] = message`` assignments still work and get the code ``"invalid"``.
    """

    def __init__(self, sent: Any = None):
        super().__init__()
        self.sent = sent if isinstance(sent, dict) else {}
        self.codes: dict[str, str] = {}

    def add(self, field: str, message: str, code: str = "invalid") -> None:
        self[field] = message
        self.codes[field] = code

    def entries(self) -> list[dict[str, Any]]:
        """The global envelope's ``details.errors``: field, message, code and the value sent."""
        return [
            {
                "field": field,
                "message": message,
                "code": self.codes.get(field, "invalid"),
                "value": self.sent.get(field),
            }
            for field, message in self.items()
        ]


class ApiError(Exception):
    """A failure the sandbox answers with ``status``, the flat JSON ``payload`` and ``headers``.

    ``field_errors`` is set for validation failures: the global envelope's list of entries.
    """

    def __init__(
        self,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        field_errors: list[dict[str, Any]] | None = None,
    ):
        super().__init__(f"{status}: {payload.get('error')}")
        self.status = status
        self.payload = payload
        self.headers = headers or {}
        self.field_errors = field_errors


def invalid(details: dict[str, str]) -> ApiError:
    """The documented 400 for field errors: every failing field at once.

    ``details`` is field -> message; a ``FieldErrors`` also gives each field's code and value.
    """
    if not isinstance(details, FieldErrors):
        plain = FieldErrors()
        plain.update(details)
        details = plain
    return ApiError(
        400,
        {"error": VALIDATION_MESSAGE, "details": dict(details)},
        field_errors=details.entries(),
    )


def global_error(
    status: int,
    payload: dict[str, Any],
    *,
    field_errors: list[dict[str, Any]] | None,
    timestamp: str,
    request_id: str,
) -> tuple[int, dict[str, Any]]:
    """The (status, body) of an API error in the newer global envelope.

    Validation failures answer 422 ``VALIDATION_ERROR`` with ``details.errors`` = a list of
    ``{field, message, code, value}`` (``value`` echoes what was sent, whatever it was); every
    other error keeps its status, gets the string code for it, and keeps the flat payload's
    other keys (e.g. ``endpoint_id``) as ``details``.
    """
    if field_errors is not None:
        status = 422
        details: Any = {"errors": field_errors}
    else:
        details = payload.get("details")
        if details is None:
            details = {k: v for k, v in payload.items() if k != "error"}
    return status, {
        "status": "error",
        "error": {
            "code": GLOBAL_CODES.get(status, f"HTTP_{status}"),
            "message": payload.get("error"),
            "details": details,
        },
        "timestamp": timestamp,
        "requestId": request_id,
    }
