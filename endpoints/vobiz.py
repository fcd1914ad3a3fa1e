"""HTTP client for the Vobiz Endpoint and Application API.

One ``requests.Session`` per process with auth headers and our User-Agent, a (connect, read)
timeout on every call, bounded retries of safe methods only, one family of typed errors, and
tolerant parsing into frozen dataclasses. docs/vobiz-api.md describes the API's quirks this
module absorbs. Nothing here logs a request body, the token or a password.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from django.conf import settings
from django.utils.dateparse import parse_datetime
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

logger = logging.getLogger(__name__)

USER_AGENT = "vobizadmin/0.1 (+https://github.com/; support dashboard)"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Methods retried on a 429/502/503/504 or a failed connection: a repeated GET or DELETE
# ends the same way as one.
RETRIED_METHODS = frozenset({"GET", "DELETE"})
PAGE_LIMIT = 100  # the API's maximum
PERMISSIONS = (
    "allow_voice",
    "allow_message",
    "allow_video",
    "allow_same_domain",
    "allow_other_domains",
    "allow_phones",
    "allow_apps",
)
PERMISSION_DEFAULTS = {
    "allow_voice": True,
    "allow_message": True,
    "allow_video": False,
    "allow_same_domain": True,
    "allow_other_domains": False,
    "allow_phones": True,
    "allow_apps": True,
}
# How the dashboard names them.
PERMISSION_LABELS = {
    "allow_voice": "Voice calls",
    "allow_message": "Messaging",
    "allow_video": "Video calls",
    "allow_same_domain": "Calls to the same domain",
    "allow_other_domains": "Calls to other domains",
    "allow_phones": "Calls to phone numbers",
    "allow_apps": "Calls to apps",
}
EDITABLE_PERMISSIONS = ("allow_voice", "allow_message", "allow_video")
LOCKED_PERMISSIONS = tuple(p for p in PERMISSIONS if p not in EDITABLE_PERMISSIONS)


# --- errors -------------------------------------------------------------------------------


class VobizError(Exception):
    """Base of every error the client raises; ``message`` is fit to show a support agent.

    ``uncertain`` is true when a write was sent but its outcome is unknown (no answer, or an
    answer we could not read): it may or may not have taken effect, and the endpoint must be
    re-read before anyone retries.
    """

    def __init__(self, message: str, *, status: int | None = None, uncertain: bool = False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.uncertain = uncertain


class VobizUnavailable(VobizError):
    """Vobiz could not be reached, timed out, rate-limited us or failed (5xx)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        uncertain: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message, status=status, uncertain=uncertain)
        self.retry_after = retry_after


class VobizAuthError(VobizError):
    """Vobiz rejected our credentials (401) or refused the action (403)."""


class VobizNotFound(VobizError):
    """The endpoint or application does not exist (any more)."""


class VobizRequestError(VobizError):
    """Vobiz refused the request as invalid (400/402/409/422); ``field_errors`` maps our
    form field names to the API's messages."""

    def __init__(self, message: str, *, status: int | None = None, field_errors=None):
        super().__init__(message, status=status)
        self.field_errors: dict[str, str] = dict(field_errors or {})


class VobizBadResponse(VobizError):
    """A 2xx answer we could not read (malformed JSON, missing fields, wrong shape)."""


# --- data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    contact: str
    expires: datetime | None
    user_agent: str
    received: str = ""
    path: str = ""


@dataclass(frozen=True)
class RemoteEndpoint:
    endpoint_id: str
    username: str
    alias: str
    sip_uri: str
    sip_registered: bool
    registration: Registration | None
    app_id: str
    app_name: str
    sub_account: str
    resource_uri: str
    created_at: datetime | None
    updated_at: datetime | None
    # None for a permission the record did not carry: unknown, never its documented default.
    permissions: dict[str, bool | None]
    raw: dict = field(repr=False, compare=False, hash=False)

    @property
    def is_registered(self) -> bool:
        """Registered as Vobiz says, or (browser registrations, which Vobiz reports as
        "false") a contact whose expiry is still ahead."""
        if self.sip_registered:
            return True
        reg = self.registration
        return bool(reg and reg.contact and reg.expires and reg.expires > datetime.now(UTC))


@dataclass(frozen=True)
class RemoteApplication:
    app_id: str
    name: str
    answer_url: str
    answer_method: str
    sub_account: str
    default_endpoint_app: bool
    raw: dict = field(repr=False, compare=False, hash=False)


@dataclass(frozen=True)
class Page:
    objects: list
    total_count: int
    limit: int
    offset: int
    has_next: bool
    # Records the API sent that we could not read: (raw record, reason). Reported, not fatal.
    skipped: list = field(default_factory=list)


@dataclass(frozen=True)
class CreateResult:
    endpoint_id: str
    username: str  # as the create answer gave it, "" when that body carries none
    raw: dict = field(repr=False)


# --- parsing ------------------------------------------------------------------------------


class ParseError(ValueError):
    pass


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise ParseError(f"expected text, got {type(value).__name__}")


def app_id_value(app_id: str) -> int | str:
    """An application id as the API types it: the create doc says ``application`` is an
    integer, so an all-digit id is sent as a JSON number (anything else as it is)."""
    return int(app_id) if app_id.isascii() and app_id.isdigit() else app_id


def _id(value: Any, name: str) -> str:
    if isinstance(value, bool) or value is None:
        raise ParseError(f"{name} missing")
    text = _text(value).strip()
    # An id goes into our URLs and Vobiz's: no "/", NUL or dot segment (urls.EndpointIdConverter).
    if not text or len(text) > 32 or "/" in text or "\x00" in text or text in (".", ".."):
        raise ParseError(f"{name} invalid")
    return text


def _bool(value: Any, default: bool | None) -> bool | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0"}:
        return value.strip().lower() in {"true", "1"}
    if isinstance(value, int):
        return bool(value)
    raise ParseError(f"expected a boolean, got {value!r}"[:80])


def _datetime(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ParseError("expected an ISO 8601 timestamp")
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise ParseError(f"bad timestamp {value!r}"[:80])
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _app_ref(value: Any) -> tuple[str, str]:
    """(app_id, app_name) from any of the documented ``application`` shapes:
    null, "", a resource URI, a bare id, or an object with ``app_id``/``app_name``."""
    if value in (None, ""):
        return "", ""
    if isinstance(value, dict):
        app_id = value.get("app_id")
        return (_id(app_id, "application.app_id") if app_id not in (None, "") else "",
                _text(value.get("app_name") or value.get("name")))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), ""
    if isinstance(value, str):
        last = [part for part in value.strip().split("/") if part]
        if last and last[-1].isdigit():
            return last[-1], ""
        raise ParseError(f"unreadable application reference {value!r}"[:80])
    raise ParseError(f"unreadable application of type {type(value).__name__}")


def _without_secrets(data: dict) -> dict:
    """The record as we keep it: a ``password`` key (write-only at Vobiz, but a record that
    carried one anyway) is dropped before anything stores or logs the record."""
    if not any(isinstance(key, str) and key.lower() == "password" for key in data):
        return data
    return {k: v for k, v in data.items() if not (isinstance(k, str) and k.lower() == "password")}


def parse_endpoint(data: Any) -> RemoteEndpoint:
    """Read one Endpoint object; raises ParseError when it lacks what we cannot do without."""
    if not isinstance(data, dict):
        raise ParseError("endpoint record is not an object")
    endpoint_id = _id(data.get("endpoint_id"), "endpoint_id")
    username = _text(data.get("username"))
    if not username:
        raise ParseError("username missing")
    app_id, app_name = _app_ref(data.get("application"))
    reg_obj = data.get("sip_registration")
    registration = None
    if isinstance(reg_obj, dict) and reg_obj.get("contact"):
        registration = Registration(
            contact=_text(reg_obj.get("contact")),
            expires=_datetime(reg_obj.get("expires")),
            user_agent=_text(reg_obj.get("user_agent")),
            received=_text(reg_obj.get("received")),
            path=_text(reg_obj.get("path")),
        )
    elif data.get("sip_contact"):
        registration = Registration(
            contact=_text(data.get("sip_contact")),
            expires=_datetime(data.get("sip_expires")),
            user_agent=_text(data.get("sip_user_agent")),
        )
    return RemoteEndpoint(
        endpoint_id=endpoint_id,
        username=username,
        alias=_text(data.get("alias")),
        sip_uri=_text(data.get("sip_uri")),
        sip_registered=_bool(data.get("sip_registered"), False),
        registration=registration,
        app_id=app_id,
        app_name=app_name,
        sub_account=_text(data.get("sub_account")),
        resource_uri=_text(data.get("resource_uri")),
        created_at=_datetime(data.get("created_at")),
        updated_at=_datetime(data.get("updated_at")),
        permissions={p: _bool(data.get(p), None) for p in PERMISSIONS},
        raw=_without_secrets(data),
    )


def parse_application(data: Any) -> RemoteApplication:
    if not isinstance(data, dict):
        raise ParseError("application record is not an object")
    return RemoteApplication(
        app_id=_id(data.get("app_id"), "app_id"),
        name=_text(data.get("app_name") or data.get("name")),
        answer_url=_text(data.get("answer_url")),
        answer_method=_text(data.get("answer_method")),
        sub_account=_text(data.get("sub_account")),
        default_endpoint_app=_bool(data.get("default_endpoint_app"), False),
        raw=data,
    )


def _parse_page(body: Any, parse) -> Page:
    if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
        raise VobizBadResponse("Vobiz sent a list we could not read (no 'objects').")
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    objects, skipped = [], []
    for record in body["objects"]:
        try:
            objects.append(parse(record))
        except ParseError as exc:
            skipped.append((record, str(exc)))
    try:
        limit = int(meta.get("limit") or len(body["objects"]) or PAGE_LIMIT)
        offset = int(meta.get("offset") or 0)
        total = int(meta.get("total_count", offset + len(body["objects"])))
    except (TypeError, ValueError) as exc:
        raise VobizBadResponse("Vobiz sent paging data we could not read.") from exc
    # Without meta.next, the page's own size says whether more follow: an API that serves
    # fewer objects than the limit it echoes must not end the walk early.
    received = len(body["objects"])
    has_next = bool(meta.get("next")) if "next" in meta else offset + received < total
    return Page(objects, total, limit, offset, has_next, skipped)


def _error_parts(body: Any) -> tuple[str, dict[str, str]]:
    """(message, field errors) from either documented error body: the flat
    ``{"error", "details"|"message"}`` or the global ``{"status": "error", "error": {...}}``,
    whose ``details.errors`` is a list of ``{field, message, code, value}``. Only messages are
    kept: ``value`` echoes what was sent (a password, say) and is never shown."""
    if not isinstance(body, dict):
        return (body if isinstance(body, str) else ""), {}
    err = body.get("error")
    details: Any = body.get("details")
    if isinstance(err, dict):  # global envelope
        message = _safe_text(err.get("message"))
        details = err.get("details", details)
    else:
        message = _safe_text(err or body.get("message"))
        if body.get("message") and err:
            message = f"{message}: {_safe_text(body.get('message'))}"
    fields: dict[str, list[str]] = {}

    def add(name: Any, text: Any) -> None:
        text = _message_text(text)
        if text:
            fields.setdefault(_field_name(str(name or "")), []).append(text)

    if isinstance(details, dict):
        listed = details.get("errors")
        if isinstance(listed, list):
            for item in listed:
                if isinstance(item, dict):
                    add(item.get("field"), item.get("message") or item.get("code"))
                else:
                    add("", item)
        for key, value in details.items():
            if key != "errors" or not isinstance(listed, list):
                add(key, value)
    elif isinstance(details, list):
        for item in details:
            if isinstance(item, dict):
                add(item.get("field"), item.get("message") or item.get("code"))
    elif isinstance(details, str) and details:
        message = f"{message}: {details}" if message else details
    general = fields.pop("", [])
    if general:
        message = "; ".join([message, *general] if message else general)
    return message, {name: "; ".join(texts) for name, texts in fields.items()}


def _message_text(value: Any) -> str:
    """A message from an error detail: text as it is, a list joined, an object's
    ``message`` (never its other keys, such as the ``value`` that was sent)."""
    if isinstance(value, list):
        return "; ".join(t for t in (_message_text(v) for v in value) if t)
    if isinstance(value, dict):
        return _message_text(value.get("message"))
    return _safe_text(value)


def _without_nul(value: Any) -> Any:
    """``value`` with NUL characters removed from every string and key: PostgreSQL text and
    jsonb cannot hold them, and no Vobiz value means anything by one."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _response_json(response: requests.Response) -> Any:
    """The decoded body (raises ValueError), NUL-free. JSON can only spell NUL as an escape,
    so the bytes tell cheaply whether there is any to remove."""
    data = response.json()
    return _without_nul(data) if b"\\u0000" in response.content else data


def _safe_text(value: Any) -> str:
    if value is None:
        return ""
    return (value if isinstance(value, str) else str(value))[:500]


def _field_name(api_name: str) -> str:
    """Our form uses ``application`` for what the update API calls ``app_id``."""
    return "application" if api_name in {"app_id", "application_id"} else api_name


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _walk(fetch) -> Iterator[Page]:
    """Pages from ``fetch(offset)`` until the API says there is no next one."""
    offset = 0
    while True:
        page = fetch(offset)
        yield page
        received = len(page.objects) + len(page.skipped)
        if not page.has_next or received == 0:
            return
        offset += received


# --- transport ----------------------------------------------------------------------------


def retry_pause(seconds: float) -> None:
    """How a client without its own ``sleep`` waits before a retry. The test suite swaps it
    for one that records the wait, so retries are counted without being waited for."""
    time.sleep(seconds)


class TimeoutHTTPAdapter(HTTPAdapter):
    """Fills in our (connect, read) timeout when a caller forgets one."""

    def __init__(self, *args, timeout: tuple[float, float], **kwargs):
        self.timeout = timeout
        super().__init__(*args, **kwargs)

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


class VobizClient:
    """A thin, typed view of the Vobiz API. Thread-safe for concurrent GETs (sync)."""

    def __init__(
        self,
        *,
        base_url: str,
        auth_id: str,
        auth_token: str,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        max_retries: int = 3,
        max_retry_wait: float = 10.0,
        pool_size: int = 10,
        sleep: Callable[[float], None] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.auth_id = auth_id
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep
        self.session = requests.Session()
        # The environment (proxies, CA bundle) is read once, here: with trust_env on,
        # requests looks for proxy variables and a .netrc file again on every call, a
        # tenth of a sync's CPU time. Auth is our headers, never .netrc.
        self.session.proxies = requests.utils.get_environ_proxies(self.base_url)
        self.session.verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                               or os.environ.get("CURL_CA_BUNDLE") or True)
        self.session.trust_env = False
        self.session.headers.update(
            {
                "X-Auth-ID": auth_id,
                "X-Auth-Token": auth_token,
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            }
        )
        # No urllib3-level retries: retry policy is ours (safe methods only, Retry-After).
        adapter = TimeoutHTTPAdapter(
            timeout=self.timeout, pool_connections=2, pool_maxsize=pool_size, max_retries=0
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self):  # never the token
        return f"<VobizClient {self.base_url} {self.auth_id}>"

    # -- plumbing

    def _url(self, resource: str, *parts: str) -> str:
        # Each id is quoted whole, so it names one resource: "?", "#", "/" cannot reach
        # another URL, and a dot segment (which HTTP clients resolve) cannot exist at all.
        quoted = [quote(str(part), safe="") for part in parts]
        if any(part in ("", ".", "..") for part in quoted):
            raise VobizNotFound(f"This {resource.lower()} does not exist at Vobiz.")
        path = "/".join([f"Account/{self.auth_id}", resource, *quoted])
        return f"{self.base_url}/{path}/"

    @sensitive_variables()  # ``json`` may hold a SIP password; so may every frame below
    def request(self, method: str, url: str, *, params=None, json=None) -> requests.Response:
        """Send one call, retrying safe methods on 429/502/503/504 and connection failures
        within a bound; raises a VobizError subclass for anything but a 2xx."""
        attempt, waited = 0, 0.0
        retried = method in RETRIED_METHODS
        log_path = url[len(self.base_url):] + (f"?{urlencode(params)}" if params else "")
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                # Never follow a redirect: requests would resend X-Auth-ID/X-Auth-Token (it
                # strips only Authorization) to whatever host the Location names, and a
                # 307/308 would resend a body that may hold a SIP password.
                response = self.session.request(
                    method, url, params=params, json=json, timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                error = self._transport_error(exc, method)
                logger.warning("vobiz %s %s failed: %s", method, log_path, error.message)
                if retried and attempt <= self.max_retries:
                    pause = self._backoff(attempt)
                    if waited + pause <= self.max_retry_wait:
                        waited += pause
                        (self._sleep or retry_pause)(pause)
                        continue
                raise error from exc
            elapsed_ms = (time.monotonic() - started) * 1000
            logger.info(
                "vobiz %s %s -> %s in %.0f ms", method, log_path, response.status_code, elapsed_ms
            )
            if 200 <= response.status_code < 300:
                return response
            if 300 <= response.status_code < 400:
                raise self._redirect_error(response)
            if retried and response.status_code in RETRY_STATUSES and attempt <= self.max_retries:
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                pause = retry_after if retry_after is not None else self._backoff(attempt)
                if waited + pause <= self.max_retry_wait:
                    waited += pause
                    (self._sleep or retry_pause)(pause)
                    continue
            raise self._status_error(response)

    def _backoff(self, attempt: int) -> float:
        return min(2.0, 0.2 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)  # noqa: S311

    def _transport_error(self, exc: requests.RequestException, method: str) -> VobizUnavailable:
        # A write that got no answer may have been carried out (a DELETE too, even though
        # it is safe to retry).
        sent = method != "GET"
        if isinstance(exc, requests.ConnectTimeout):
            return VobizUnavailable("Vobiz did not accept the connection in time.")
        if isinstance(exc, requests.ReadTimeout):
            return VobizUnavailable(
                "Vobiz did not answer in time." + (" The change may or may not have been made."
                                                   if sent else ""),
                uncertain=sent,
            )
        if isinstance(exc, requests.ConnectionError):
            inner = exc.args[0] if exc.args else None
            reason = getattr(inner, "reason", None)
            if isinstance(reason, NewConnectionError) or isinstance(inner, NewConnectionError):
                return VobizUnavailable("Could not connect to Vobiz.")
            return VobizUnavailable(
                "Vobiz closed the connection without answering."
                + (" The change may or may not have been made." if sent else ""),
                uncertain=sent,
            )
        return VobizUnavailable("Could not talk to Vobiz.", uncertain=sent)

    @staticmethod
    def _redirect_error(response: requests.Response) -> VobizBadResponse:
        where = urlsplit(response.headers.get("Location") or "")
        target = f" to {where.scheme}://{where.netloc}" if where.scheme and where.netloc else ""
        return VobizBadResponse(
            f"Vobiz answered with a redirect (HTTP {response.status_code}){target}, which the "
            "dashboard does not follow: nothing was sent there. An administrator must check "
            "VOBIZ_API_URL.",
            status=response.status_code,
        )

    def _status_error(self, response: requests.Response) -> VobizError:
        status = response.status_code
        try:
            body = _response_json(response)
        except ValueError:
            body = None
        message, fields = _error_parts(body)
        if status == 401:
            return VobizAuthError(
                "Vobiz rejected the dashboard's API credentials (HTTP 401). "
                "An administrator must check VOBIZ_AUTH_ID and VOBIZ_AUTH_TOKEN.",
                status=status,
            )
        if status == 403:
            return VobizAuthError(
                "Vobiz refused this action for the dashboard's account (HTTP 403).", status=status
            )
        if status == 404:
            thing = "application" if "/Application/" in (response.url or "") else "endpoint"
            return VobizNotFound(
                f"This {thing} no longer exists at Vobiz"
                + (f" (Vobiz says: {message})." if message else "."),
                status=status,
            )
        if status == 429:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            hint = f" Try again in {int(retry_after + 0.999)} s." if retry_after else ""
            return VobizUnavailable(
                "Vobiz is rate-limiting requests." + hint, status=status, retry_after=retry_after
            )
        if status >= 500:
            return VobizUnavailable(f"Vobiz is having problems (HTTP {status}).", status=status)
        if status == 409 and "username" not in fields:
            fields["username"] = message or "This username already exists."
        return VobizRequestError(
            message or f"Vobiz refused the request (HTTP {status}).",
            status=status,
            field_errors=fields,
        )

    @staticmethod
    def _json(response: requests.Response, *, allow_empty: bool = False) -> Any:
        if not response.content.strip():
            if allow_empty:
                return None
            raise VobizBadResponse("Vobiz sent an empty answer where data was expected.")
        try:
            return _response_json(response)
        except ValueError as exc:
            if allow_empty:
                return None
            raise VobizBadResponse("Vobiz sent an answer we could not read.") from exc

    # -- endpoints

    def list_endpoints(self, *, limit: int = PAGE_LIMIT, offset: int = 0, **filters) -> Page:
        params = {"limit": min(limit, PAGE_LIMIT), "offset": offset}
        params.update({k: v for k, v in filters.items() if v not in (None, "")})
        response = self.request("GET", self._url("Endpoint"), params=params)
        return _parse_page(self._json(response), parse_endpoint)

    def get_endpoint(self, endpoint_id: str) -> RemoteEndpoint:
        response = self.request("GET", self._url("Endpoint", str(endpoint_id)))
        try:
            return parse_endpoint(self._json(response))
        except ParseError as exc:
            raise VobizBadResponse(f"Vobiz sent an endpoint we could not read ({exc}).") from exc

    @sensitive_variables()
    def create_endpoint(self, fields: dict) -> CreateResult:
        """POST a new endpoint. Never retried: the API rewrites usernames, so a retry would
        silently make a second endpoint."""
        response = self.request("POST", self._url("Endpoint"), json=fields)
        try:
            body = self._json(response)
        except VobizBadResponse:
            body = None
        if not isinstance(body, dict) or body.get("endpoint_id") in (None, ""):
            raise VobizBadResponse(
                "Vobiz answered the create with something we could not read (no endpoint id): "
                "the endpoint may or may not exist. Check the list before trying again.",
                status=response.status_code,
                uncertain=True,
            )
        try:
            endpoint_id = _id(body.get("endpoint_id"), "endpoint_id")
            username = _text(body.get("username"))
        except ParseError as exc:
            raise VobizBadResponse(
                f"Vobiz sent a create answer we could not read ({exc})."
            ) from exc
        return CreateResult(endpoint_id=endpoint_id, username=username, raw=body)

    @sensitive_variables()
    def update_endpoint(self, endpoint_id: str, fields: dict) -> None:
        """POST a partial update; any 2xx with any body counts as accepted."""
        self.request("POST", self._url("Endpoint", str(endpoint_id)), json=fields)

    def delete_endpoint(self, endpoint_id: str) -> None:
        self.request("DELETE", self._url("Endpoint", str(endpoint_id)))

    # -- applications

    def list_applications(self, *, limit: int = PAGE_LIMIT, offset: int = 0) -> Page:
        params = {"limit": min(limit, PAGE_LIMIT), "offset": offset}
        response = self.request("GET", self._url("Application"), params=params)
        return _parse_page(self._json(response), parse_application)

    def iter_applications(self) -> Iterator[Page]:
        """Walk every application page in order."""
        return _walk(lambda offset: self.list_applications(offset=offset))


_clients_lock = threading.Lock()
_clients: dict[tuple, VobizClient] = {}


def get_client() -> VobizClient:
    """The process's client for the configured account (one Session per settings set)."""
    key = (
        settings.VOBIZ_API_URL,
        settings.VOBIZ_AUTH_ID,
        settings.VOBIZ_AUTH_TOKEN,
        settings.VOBIZ_CONNECT_TIMEOUT,
        settings.VOBIZ_READ_TIMEOUT,
        settings.VOBIZ_MAX_RETRIES,
        settings.VOBIZ_MAX_RETRY_WAIT,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = VobizClient(
                base_url=settings.VOBIZ_API_URL,
                auth_id=settings.VOBIZ_AUTH_ID,
                auth_token=settings.VOBIZ_AUTH_TOKEN,
                connect_timeout=settings.VOBIZ_CONNECT_TIMEOUT,
                read_timeout=settings.VOBIZ_READ_TIMEOUT,
                max_retries=settings.VOBIZ_MAX_RETRIES,
                max_retry_wait=settings.VOBIZ_MAX_RETRY_WAIT,
                pool_size=max(10, settings.VOBIZ_SYNC_CONCURRENCY * 2),
            )
            _clients.clear()  # settings changed (tests): drop the old session
            _clients[key] = client
        return client
