"""HTTP layer of the Vobiz API sandbox (standard library only).

``SandboxServer`` serves the API under ``/api/v1/Account/{auth_id}/...`` and control routes
under ``/_sandbox/`` from a ``ThreadingHTTPServer`` in a daemon thread. HTTP/1.1 keep-alive is
supported: every answer carries a Content-Length (a 204 has no body by definition).

Control routes change everything without credentials, so they answer only a loopback client
that names a loopback host (``Host`` header: no DNS rebinding) and, for anything with a body,
only ``Content-Type: application/json`` (no cross-site "simple request" from a browser page).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from vobizadmin.sandbox.errors import ApiError, FieldErrors, global_error, invalid
from vobizadmin.sandbox.records import iso
from vobizadmin.sandbox.state import SandboxState

DEFAULT_AUTH_ID = "MA_SANDBOX01"
DEFAULT_AUTH_TOKEN = "sandbox-token"  # noqa: S105 - public demo credential of a local fake

ACCOUNT_RE = re.compile(r"/api/v1/Account/([^/]+)/(.*)")
RESOURCE_RE = re.compile(r"(Endpoint|Application)/(?:([^/]+)/)?")
ALLOWED_METHODS = {
    ("Endpoint", False): ("GET", "POST"),
    ("Endpoint", True): ("GET", "POST", "DELETE"),
    ("Application", False): ("GET",),
    ("Application", True): ("GET",),
}
FAULT_MESSAGES = {
    400: "invalid request parameters",
    401: "invalid credentials",
    403: "forbidden",
    404: "not found",
    409: "conflict",
    429: "too many requests",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}
# A JSON document cut off mid-way, served with a JSON content type.
MALFORMED_BODY = b'{"api_id": "5f0c7a52", "meta": {"limit": 20, "offset": 0}, "objects": [{"endp'


LOOPBACK_NAMES = ("localhost",)
BODY_METHODS = ("POST", "PUT", "PATCH")


def is_loopback_host_header(value: str | None) -> bool:
    """True when a ``Host`` header names this machine's loopback: ``localhost``, a loopback IP
    address or ``[::1]``, with or without a port. Any other name (one an attacker's DNS could
    point at 127.0.0.1) is refused."""
    if not value:
        return False
    value = value.strip()
    if value.startswith("["):
        host, bracket, port = value[1:].partition("]")
        if not bracket or (port and not (port.startswith(":") and port[1:].isdigit())):
            return False
        return ":" in host and is_loopback(host)
    host, colon, port = value.partition(":")
    if colon and not port.isdigit():
        return False
    return host.lower() in LOOPBACK_NAMES or is_loopback(host)


def is_json_content_type(value: str | None) -> bool:
    """True for ``application/json`` (any parameters, any case)."""
    return bool(value) and value.split(";", 1)[0].strip().lower() == "application/json"


def is_loopback(host: str) -> bool:
    """True when ``host`` (a client address) is a loopback address, IPv4 or IPv6."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _json_body(raw: bytes) -> Any:
    """Parse a request body; an empty body is None. Raises ApiError(400) when it is not JSON."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        errors = FieldErrors({"body": raw.decode("utf-8", "replace")})
        errors.add("body", "Malformed JSON.", "malformed_json")
        raise invalid(errors) from None


def _require_method(method: str, allowed: tuple[str, ...]) -> None:
    """Raise the 405 (with its Allow header) unless ``method`` is one of ``allowed``."""
    if method not in allowed:
        raise ApiError(
            405, {"error": "method not allowed", "method": method}, {"Allow": ", ".join(allowed)}
        )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # A handler sleeping in a delay fault must not hold up stop().
    block_on_close = False

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer):
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._connections_lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def close_connections(self) -> None:
        # Idle keep-alive connections would otherwise keep their handler threads blocked in recv.
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # the client went away (often on purpose, after its own timeout)
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "VobizSandbox/1.0"
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    # Headers and body leave in separate writes; with Nagle on, the client's delayed ACK would
    # add ~40 ms to every keep-alive answer.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        if self.server.sandbox.verbose:
            sys.stderr.write(f"[sandbox] {self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    # ------------------------------------------------------------------------------ plumbing

    @property
    def state(self) -> SandboxState:
        return self.server.sandbox.state

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass  # trailers
                    return b"".join(chunks)
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise ValueError("the request body ended early")
                chunks.append(chunk)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) < length:
            # The client went away mid-request (a worker killed while sending): that is no
            # request at all, and must not be counted as a write or applied.
            raise ValueError("the request body ended early")
        return body

    def _send(
        self,
        status: int,
        body: bytes | None,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> None:
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if status != HTTPStatus.NO_CONTENT:
                if content_type is not None and body is not None:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), headers)

    def _send_api_error(
        self,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
        field_errors: list[dict[str, Any]] | None = None,
    ) -> None:
        """Answer an API error in the configured envelope: flat, or the newer global one
        (where validation failures become 422, see ``errors.global_error``)."""
        if self.state.get_config()["error_envelope"] == "global":
            status, payload = global_error(
                status,
                payload,
                field_errors=field_errors,
                timestamp=iso(self.state.now()),
                request_id=str(uuid.uuid4()),
            )
        self._send_json(status, payload, headers)

    def _dispatch(self, method: str) -> None:
        try:
            raw = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send_json(400, {"error": "unreadable request body"})
            return
        split = urlsplit(self.path)
        try:
            if split.path == "/_sandbox" or split.path.startswith("/_sandbox/"):
                self._control(method, split.path, split.query, raw)
            else:
                self._api(method, split.path, split.query, raw)
        except Exception:
            self.server.handle_error(self.request, self.client_address)
            self.close_connection = True
            self._send_json(500, {"error": "internal server error (sandbox bug)"})

    # ----------------------------------------------------------------------------------- API

    def _api(self, method: str, path: str, query: str, raw: bytes) -> None:
        account = ACCOUNT_RE.fullmatch(path)
        resource = RESOURCE_RE.fullmatch(account.group(2)) if account else None
        if resource:
            detail = resource.group(2) is not None
            kind = resource.group(1)
            self.state.count_request(f"{method} /{kind}/{'{id}/' if detail else ''}")
            if detail and method in ("POST", "DELETE"):
                self.state.count_write(method, unquote(resource.group(2)))
        else:
            self.state.count_request(f"{method} (unknown path)")

        fault = self.state.faults.take(method, self.path)
        if fault:
            if fault["delay"]:
                generation = self.state.generation
                time.sleep(fault["delay"])
                if self.state.generation != generation:
                    # The data was reset while this request waited (its client gave up long
                    # ago): answering now would change the new data, e.g. the next test's.
                    fault["drop"] = True
            if fault["drop"]:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault["replaces"]:
                self._send_fault(fault)
                return

        try:
            if account is None:
                raise ApiError(404, {"error": "not found", "path": path})
            self._authenticate(unquote(account.group(1)))
            if resource is None:
                raise ApiError(404, {"error": "not found", "path": path})
            _require_method(method, ALLOWED_METHODS[(kind, detail)])
            object_id = unquote(resource.group(2)) if detail else None
            self._api_route(method, kind, object_id, query, raw)
        except ApiError as exc:
            self._send_api_error(exc.status, exc.payload, exc.headers, exc.field_errors)

    def _authenticate(self, path_auth_id: str) -> None:
        sandbox = self.server.sandbox
        given_id = self.headers.get("X-Auth-ID")
        given_token = self.headers.get("X-Auth-Token")
        if given_id is None or given_token is None:
            raise ApiError(401, {"error": "invalid credentials"})
        ok = hmac.compare_digest(given_id.encode(), sandbox.auth_id.encode())
        ok &= hmac.compare_digest(given_token.encode(), sandbox.auth_token.encode())
        ok &= path_auth_id == given_id
        if not ok:
            raise ApiError(401, {"error": "invalid credentials"})

    def _api_route(
        self, method: str, kind: str, object_id: str | None, query: str, raw: bytes
    ) -> None:
        state = self.state
        params = parse_qsl(query, keep_blank_values=True)
        if kind == "Application":
            if object_id is None:
                self._send_json(200, state.list_applications(params))
            else:
                self._send_json(200, state.get_application(object_id))
        elif object_id is None and method == "GET":
            self._send_json(200, state.list_endpoints(params))
        elif object_id is None:
            self._send_json(201, state.create_endpoint(_json_body(raw)))
        elif method == "GET":
            self._send_json(200, state.get_endpoint(object_id))
        elif method == "POST":
            result = state.update_endpoint(object_id, _json_body(raw))
            if result is None:
                self._send(202, b"", content_type=None)
            else:
                self._send_json(202, result)
        else:
            state.delete_endpoint(object_id)
            self._send(204, None)

    def _send_fault(self, fault: dict[str, Any]) -> None:
        status = fault["status"]
        headers = {}
        if fault["retry_after"] is not None:
            headers["Retry-After"] = str(fault["retry_after"])
        body = fault["body"]
        if body == "malformed":
            self._send(status, MALFORMED_BODY, headers)
        elif body == "empty":
            self._send(status, b"", headers)
        elif body is not None:
            self._send_json(status, body, headers)
        elif status >= 400:
            message = FAULT_MESSAGES.get(status) or HTTPStatus(status).phrase.lower()
            self._send_api_error(status, {"error": message}, headers)
        else:
            self._send(status, b"", headers, content_type=None)

    # ------------------------------------------------------------------------------- control

    def _control(self, method: str, path: str, query: str, raw: bytes) -> None:
        if not is_loopback(self.client_address[0]):
            self._send_json(403, {"error": "control routes answer loopback clients only"})
            return
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or not is_loopback_host_header(hosts[0]):
            # A browser tricked by DNS rebinding connects from loopback but names its own host.
            self._send_json(
                403, {"error": "control routes answer requests for a loopback Host only"}
            )
            return
        if (method in BODY_METHODS or raw) and not is_json_content_type(
            self.headers.get("Content-Type")
        ):
            # A cross-site form or text/plain fetch is sent without a CORS preflight; JSON is not.
            self._send_json(
                415, {"error": "control routes take a Content-Type: application/json body"}
            )
            return
        state = self.state
        route = path.rstrip("/")
        try:
            if route == "/_sandbox/faults":
                _require_method(method, ("GET", "POST", "DELETE"))
                if method == "GET":
                    self._send_json(200, {"faults": state.faults.pending()})
                elif method == "POST":
                    self._send_json(201, state.faults.add(_json_body(raw)))
                else:
                    state.faults.clear()
                    self._send(204, None)
            elif route == "/_sandbox/registrations":
                _require_method(method, ("GET",))
                params = parse_qsl(query, keep_blank_values=True)
                self._send_json(200, state.registrations(params))
            elif route.startswith("/_sandbox/registrations/"):
                _require_method(method, ("POST", "DELETE"))
                endpoint_id = unquote(route.rsplit("/", 1)[1])
                if method == "POST":
                    self._send_json(200, state.register(endpoint_id, _json_body(raw)))
                else:
                    self._send_json(200, state.unregister(endpoint_id))
            elif route == "/_sandbox/reset":
                _require_method(method, ("POST",))
                body = _json_body(raw) or {}
                if not isinstance(body, dict):
                    raise invalid({"body": "Expected a JSON object."})
                self._send_json(
                    200,
                    state.reset(
                        endpoints=body.get("endpoints"),
                        applications=body.get("applications"),
                        seed=body.get("seed"),
                        hostile=body.get("hostile"),
                        sub_accounts=body.get("sub_accounts"),
                    ),
                )
            elif route == "/_sandbox/config":
                _require_method(method, ("GET", "POST"))
                if method == "GET":
                    self._send_json(200, state.get_config())
                else:
                    self._send_json(200, state.set_config(_json_body(raw)))
            elif route == "/_sandbox/mutate":
                _require_method(method, ("POST",))
                self._send_json(200, state.mutate(_json_body(raw)))
            elif route == "/_sandbox/stats":
                _require_method(method, ("GET", "DELETE"))
                if method == "GET":
                    self._send_json(200, state.stats())
                else:
                    state.clear_stats()
                    self._send(204, None)
            elif route == "/_sandbox/endpoints":
                _require_method(method, ("POST",))
                self._send_json(201, state.plant(_json_body(raw)))
            elif route == "/_sandbox":
                _require_method(method, ("GET",))
                sandbox = self.server.sandbox
                self._send_json(
                    200,
                    {
                        "api_url": sandbox.api_url,
                        "auth_id": sandbox.auth_id,
                        "data": state.summary(),
                        "config": state.get_config(),
                        "routes": [
                            "GET|POST|DELETE /_sandbox/faults",
                            "GET /_sandbox/registrations?endpoint_id=&profile=&from=&to=",
                            "POST|DELETE /_sandbox/registrations/{endpoint_id}",
                            "POST /_sandbox/reset",
                            "GET|POST /_sandbox/config",
                            "POST /_sandbox/mutate",
                            "GET|DELETE /_sandbox/stats",
                            "POST /_sandbox/endpoints",
                        ],
                    },
                )
            else:
                raise ApiError(404, {"error": "unknown control route", "path": path})
        except ApiError as exc:
            self._send_json(exc.status, exc.payload, exc.headers)


class SandboxServer:
    """A running (once ``start()`` is called) sandbox of the Vobiz API on ``host:port``.

    Binds in the constructor, so ``base_url`` is known (port 0 picks a free port). The keyword
    switches select the documented variants of the API; see ``SandboxState`` and the README.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auth_id: str = DEFAULT_AUTH_ID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        endpoints: int = 50,
        applications: int = 5,
        seed: Any = 1,
        username_suffix: bool = True,
        application_shape: str = "uri",
        honour_application_on_update: bool = False,
        error_envelope: str = "flat",
        create_body: str = "short",
        update_body: str = "empty",
        object_shape: str = "full",
        strict_types: bool = False,
        max_limit: int = 100,
        churn: bool = False,
        clock: Callable[[], datetime] | None = None,
        hostile: bool = False,
        sub_accounts: int = 0,
        verbose: bool = False,
    ):
        self.auth_id = auth_id
        self.auth_token = auth_token
        self.verbose = verbose
        self.state = SandboxState(
            auth_id=auth_id,
            endpoints=endpoints,
            applications=applications,
            seed=seed,
            hostile=hostile,
            sub_accounts=sub_accounts,
            clock=clock,
            username_suffix=username_suffix,
            application_shape=application_shape,
            honour_application_on_update=honour_application_on_update,
            error_envelope=error_envelope,
            create_body=create_body,
            update_body=update_body,
            object_shape=object_shape,
            strict_types=strict_types,
            max_limit=max_limit,
            churn=churn,
        )
        self._httpd = _HTTPServer((host, port), self)
        self._thread: threading.Thread | None = None
        self.host = host
        self.port = self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0"):  # noqa: S104 - naming the wildcard, not binding to it
            host = "127.0.0.1"
        elif host == "::":
            host = "[::1]"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        """What a client uses as VOBIZ_API_URL."""
        return f"{self.base_url}/api/v1"

    def start(self) -> SandboxServer:
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"vobiz-sandbox-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and any open connections. Safe to call twice."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        self._httpd.close_connections()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
