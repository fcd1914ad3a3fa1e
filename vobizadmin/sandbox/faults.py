"""The sandbox's fault queue: scripted failures for the next matching API requests.

A fault can replace the answer (a status, a Retry-After, a body, a dropped connection) or only
delay the real one. ``server.py`` takes one use of the first matching fault before routing an
API request; control routes are never faulted. Thread-safe; plain Python.
"""

from __future__ import annotations

import threading
from typing import Any

from vobizadmin.sandbox.errors import invalid
from vobizadmin.sandbox.records import is_bool

MAX_FAULT_DELAY = 600.0
FAULT_KEYS = {"method", "path", "status", "times", "delay", "retry_after", "body", "drop"}


class FaultQueue:
    """Queued faults in the order they were added; the first matching one fires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[dict[str, Any]] = []
        self._counter = 0

    def add(self, spec: Any) -> dict[str, Any]:
        """Queue a fault for the next matching API requests; returns it. Raises ApiError(400)."""
        if not isinstance(spec, dict):
            raise invalid({"body": "Expected a JSON object."})
        errors = {k: "Unknown key." for k in spec if k not in FAULT_KEYS}
        method = spec.get("method")
        if method is not None and not isinstance(method, str):
            errors["method"] = "Must be an HTTP method name."
        path = spec.get("path")
        if path is not None and not isinstance(path, str):
            errors["path"] = "Must be a string."
        status = spec.get("status")
        if status is not None and (
            not isinstance(status, int) or is_bool(status) or not 100 <= status <= 599
        ):
            errors["status"] = "Must be an HTTP status code."
        times = spec.get("times", 1)
        if not isinstance(times, int) or is_bool(times) or times < 1:
            errors["times"] = "Must be a positive integer."
        delay = spec.get("delay", 0.0)
        if (
            not isinstance(delay, int | float)
            or is_bool(delay)
            or not 0 <= delay <= MAX_FAULT_DELAY
        ):
            errors["delay"] = f"Must be between 0 and {MAX_FAULT_DELAY:g} seconds."
        retry_after = spec.get("retry_after")
        if retry_after is not None and (
            not isinstance(retry_after, int | float | str) or is_bool(retry_after)
        ):
            errors["retry_after"] = "Must be a number of seconds or an HTTP date."
        drop = spec.get("drop", False)
        if not is_bool(drop):
            errors["drop"] = "Must be a boolean."
        if errors:
            raise invalid(errors)
        replaces = (
            status is not None or spec.get("body") is not None or drop or (retry_after is not None)
        )
        if status is None and replaces:
            # A Retry-After on its own only makes sense on a rate-limit answer.
            status = 429 if retry_after is not None and spec.get("body") is None else 500
        with self._lock:
            self._counter += 1
            fault = {
                "id": self._counter,
                "method": method.upper() if method else None,
                "path": path,
                "status": status,
                "times": times,
                "remaining": times,
                "delay": float(delay),
                "retry_after": retry_after,
                "body": spec.get("body"),
                "drop": drop,
                "replaces": replaces,
            }
            self._faults.append(fault)
            return dict(fault)

    def take(self, method: str, target: str) -> dict[str, Any] | None:
        """Consume one use of the first queued fault matching this request, if any."""
        with self._lock:
            for fault in self._faults:
                if fault["method"] and fault["method"] != method:
                    continue
                if fault["path"] and fault["path"] not in target:
                    continue
                fault["remaining"] -= 1
                if fault["remaining"] <= 0:
                    self._faults.remove(fault)
                return dict(fault)
            return None

    def pending(self) -> list[dict[str, Any]]:
        """The pending faults (copies), oldest first."""
        with self._lock:
            return [dict(f) for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
