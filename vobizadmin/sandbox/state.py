"""The API state of the Vobiz API sandbox: what the Endpoint and Application routes do.

``SandboxState`` owns one account's data (a ``records.Store``), the runtime switches (config),
the fault queue and the request counters behind a single lock, and implements every API call
(list, retrieve, create, update, delete; applications) and every control action (config,
reset, registrations, mutate, plant, stats). It renders records into the documented JSON
shapes. Plain Python: no HTTP, no Django; ``server.py`` turns HTTP requests into calls on it.
API methods return JSON-ready values or raise ``ApiError``.

Demo data comes from ``demo.py``; faults live in ``faults.py``; with the ``churn`` switch on,
the registrations of seeded endpoints come from ``churn.py`` (devices that come and go).
"""

from __future__ import annotations

import random
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from vobizadmin.sandbox import churn
from vobizadmin.sandbox.demo import (
    MAX_SEED_APPLICATIONS,
    MAX_SEED_ENDPOINTS,
    long_suffix,
    random_alias,
    random_registration,
    renews,
    seed_account,
)
from vobizadmin.sandbox.errors import ApiError, FieldErrors, invalid
from vobizadmin.sandbox.faults import FaultQueue
from vobizadmin.sandbox.records import (
    APP_ID_RE,
    PERMISSION_DEFAULTS,
    REGISTRATION_KEYS,
    UPDATABLE_PERMISSIONS,
    Endpoint,
    Registration,
    Store,
    app_id_of_any_shape,
    as_text,
    is_bool,
    iso,
    parse_app_ref,
    password_digest,
)

MAX_LIMIT = 100
DEFAULT_LIMIT = 20

USERNAME_RE = re.compile(r"[A-Za-z0-9]+", re.ASCII)
ALIAS_RE = re.compile(r"[A-Za-z0-9_-]*", re.ASCII)
SUB_ACCOUNT_RE = re.compile(r"SA_[A-Za-z0-9]+", re.ASCII)

# Runtime switches (POST /_sandbox/config): the allowed values, or the allowed integer range.
CONFIG_CHOICES: dict[str, tuple[Any, ...]] = {
    "username_suffix": (True, False),
    "application_shape": ("uri", "object", "empty"),
    "honour_application_on_update": (True, False),
    "error_envelope": ("flat", "global"),
    "create_body": ("short", "message", "full"),
    "update_body": ("empty", "text", "message"),
    "object_shape": ("full", "minimal"),
    "strict_types": (False, True),
    "churn": (False, True),
}
MAX_SUB_ACCOUNTS = 500
CONFIG_RANGES: dict[str, tuple[int, int]] = {
    "max_limit": (1, MAX_LIMIT),
}
# GET /_sandbox/registrations: its query parameters, and the longest timeline it computes.
REGISTRATIONS_PARAMS = ("endpoint_id", "profile", "limit", "from", "to")
MAX_TIMELINE_SECONDS = 31 * 86400
# Create fields the API may answer 201 to and silently not keep (``ignore_on_create``).
IGNORABLE_ON_CREATE = ("application", *PERMISSION_DEFAULTS)
DEFAULT_CONFIG: dict[str, Any] = {
    "username_suffix": True,
    "application_shape": "uri",
    "honour_application_on_update": False,
    "error_envelope": "flat",
    "create_body": "short",
    "update_body": "empty",
    "object_shape": "full",
    "strict_types": False,
    "max_limit": MAX_LIMIT,
    "ignore_on_create": [],
    "churn": False,
}

# The endpoint object as the docs' newest examples show it (retrieve and list), keys in order.
MINIMAL_KEYS = (
    "alias",
    "application",
    "endpoint_id",
    "resource_uri",
    "sip_registered",
    "sip_uri",
    "sub_account",
    "username",
)

LIST_FILTERS = (
    "username__contains",
    "username__exact",
    "username__startswith",
    "alias__contains",
    "alias__exact",
    "application_id__exact",
    "application_id__isnull",
    "sub_account",
)

REQUIRED = "This field is required."
TOO_SHORT = "Must be at least 8 characters."
USERNAME_RULE = "Only letters (a-z, A-Z) and digits (0-9) are allowed."
ALIAS_RULE = "Only letters, digits, '-' and '_' are allowed."
SUB_ACCOUNT_RULE = "Must be a sub-account auth id (SA_...)."


def system_clock() -> datetime:
    return datetime.now(UTC)


def _not_an_object(body: Any) -> ApiError:
    """The 400 for a request body that is valid JSON but not an object (or no body at all)."""
    errors = FieldErrors({"body": body})
    errors.add("body", "Expected a JSON object.", "invalid_type")
    return invalid(errors)


class SandboxState:
    """All sandbox data and behaviour behind one lock.

    Public methods are thread-safe. API methods raise ``ApiError`` for anything the real API would
    refuse; control methods raise ``ApiError`` (always rendered flat) for bad control input.
    """

    def __init__(
        self,
        *,
        auth_id: str,
        endpoints: int = 50,
        applications: int = 5,
        seed: Any = 1,
        hostile: bool = False,
        sub_accounts: int = 0,
        clock: Callable[[], datetime] | None = None,
        **config: Any,
    ):
        self.auth_id = auth_id
        self.lock = threading.RLock()
        self._clock = clock or system_clock
        self.config: dict[str, Any] = dict(DEFAULT_CONFIG)
        self.set_config(config)
        self.faults = FaultQueue()
        self._stats: dict[str, int] = {}
        self._writes: dict[str, int] = {}
        self._endpoint_uri = f"/v1/Account/{auth_id}/Endpoint/"
        self._app_uri = f"/v1/Account/{auth_id}/Application/"
        self.seeded_endpoints = endpoints
        self.seeded_applications = applications
        self.seed = seed
        self.hostile = hostile
        self.sub_accounts = sub_accounts
        # Counts resets, so a request delayed across one can tell its data is gone.
        self.generation = 0
        self.reset(endpoints=endpoints, applications=applications, seed=seed, hostile=hostile,
                   sub_accounts=sub_accounts)

    # ----------------------------------------------------------------------------------- helpers

    def now(self) -> float:
        """Current time from the configured clock, as epoch seconds."""
        return self._clock().timestamp()

    def _get(self, endpoint_id: str) -> Endpoint:
        ep = self._store.endpoints.get(endpoint_id)
        if ep is None:
            raise ApiError(404, {"error": "Endpoint not found", "endpoint_id": endpoint_id})
        return ep

    def _churns(self, ep: Endpoint) -> bool:
        """Whether device churn drives this endpoint's registration right now."""
        return ep.seeded and not ep.pinned and self.config["churn"]

    def _churn_device(self, ep: Endpoint) -> Any:
        dev = ep.churn_device
        if dev is None:
            # Built once per endpoint (a reset makes new endpoints): a render then costs only
            # the device's own arithmetic.
            dev = ep.churn_device = churn.device(self.seed, ep.endpoint_id, ep.username)
        return dev

    def _live_registration(self, ep: Endpoint, now: float) -> Registration | None:
        """The registration as of ``now``: churn's (switch on, seeded, not pinned), or the stored
        one renewed on its own grid, or lapsed and cleared."""
        if self._churns(ep):
            return self._churn_device(ep).at(now)
        reg = ep.registration
        if reg is None or now < reg.expires:
            return reg
        if reg.renews:
            # Whole intervals on a fixed grid: the answer is the same however often it is read.
            reg.expires += ((now - reg.expires) // reg.interval + 1) * reg.interval
            return reg
        ep.registration = None
        return None

    # ------------------------------------------------------------------------------- rendering

    def _render_application_link(self, app_id: str | None) -> Any:
        shape = self.config["application_shape"]
        if app_id is None:
            return "" if shape == "empty" else None
        if shape == "object":
            app = self._store.apps.get(app_id) or {}
            return {
                "app_id": app_id,
                "app_name": app.get("app_name"),
                "answer_url": app.get("answer_url"),
                "answer_method": app.get("answer_method"),
            }
        return f"{self._app_uri}{app_id}/"

    def _render(self, ep: Endpoint, now: float, *, detail: bool) -> dict[str, Any]:
        reg = self._live_registration(ep, now)
        out: dict[str, Any] = {}
        if detail:
            out["api_id"] = str(uuid.uuid4())
        out["endpoint_id"] = ep.endpoint_id
        out["username"] = ep.username
        out["alias"] = ep.alias
        out["sip_uri"] = f"sip:{ep.username}@{ep.sip_host}"
        # Live reports: browser (WebSocket) registrations never flip the flag, yet fill the contact.
        out["sip_registered"] = "true" if reg is not None and not reg.websocket else "false"
        if reg is not None:
            expires = iso(reg.expires)
            out["sip_contact"] = reg.contact
            out["sip_expires"] = expires
            out["sip_user_agent"] = reg.user_agent
            if detail:
                out["sip_registration"] = {
                    "contact": reg.contact,
                    "expires": expires,
                    "user_agent": reg.user_agent,
                    "received": reg.received,
                    "path": reg.path,
                }
        else:
            out["sip_contact"] = None
            out["sip_expires"] = None
            out["sip_user_agent"] = None
        out["application"] = self._render_application_link(ep.app_id)
        out["allow_voice"] = ep.allow_voice
        out["allow_message"] = ep.allow_message
        out["allow_video"] = ep.allow_video
        out["allow_same_domain"] = ep.allow_same_domain
        out["allow_other_domains"] = ep.allow_other_domains
        out["allow_phones"] = ep.allow_phones
        out["allow_apps"] = ep.allow_apps
        out["sub_account"] = ep.sub_account
        out["resource_uri"] = f"{self._endpoint_uri}{ep.endpoint_id}/"
        out["created_at"] = iso(ep.created)
        out["updated_at"] = iso(ep.updated)
        if ep.raw:
            out.update(ep.raw)
        for key in ep.omit:
            out.pop(key, None)
        return out

    def _serve(self, ep: Endpoint, now: float, *, detail: bool) -> dict[str, Any]:
        """The endpoint as the API serves it, in the configured ``object_shape``.

        "minimal" is the docs' eight-key object: no ``api_id``, permissions, timestamps or
        registration details (a planted record's values for those eight keys still win).
        """
        out = self._render(ep, now, detail=detail)
        if self.config["object_shape"] == "minimal":
            return {key: out[key] for key in MINIMAL_KEYS if key in out}
        return out

    def _render_app(self, app: dict[str, Any], *, detail: bool) -> dict[str, Any]:
        out = {"api_id": str(uuid.uuid4())} if detail else {}
        out.update(app)
        return out

    # ------------------------------------------------------------------------ data: reset, summary

    def reset(
        self,
        *,
        endpoints: int | None = None,
        applications: int | None = None,
        seed: Any = None,
        hostile: bool | None = None,
        sub_accounts: int | None = None,
    ) -> dict[str, Any]:
        """Replace all data with a deterministic seed; arguments left None keep their current value
        (``sub_accounts``: how many sub-accounts share ~30% of the endpoints; 0 = two or three).

        A request waiting in a delay fault when this happens is dropped unanswered when it wakes.
        Returns a summary. Raises ApiError(400) for out-of-range sizes.
        """
        with self.lock:
            endpoints = self.seeded_endpoints if endpoints is None else endpoints
            applications = self.seeded_applications if applications is None else applications
            seed = self.seed if seed is None else seed
            hostile = self.hostile if hostile is None else hostile
            sub_accounts = self.sub_accounts if sub_accounts is None else sub_accounts
            errors = {}
            if not isinstance(sub_accounts, int) or is_bool(sub_accounts) or not (
                    0 <= sub_accounts <= MAX_SUB_ACCOUNTS):
                errors["sub_accounts"] = f"Must be an integer from 0 to {MAX_SUB_ACCOUNTS}."
            if not isinstance(endpoints, int) or is_bool(endpoints):
                errors["endpoints"] = "Must be an integer."
            elif not 0 <= endpoints <= MAX_SEED_ENDPOINTS:
                errors["endpoints"] = f"Must be between 0 and {MAX_SEED_ENDPOINTS}."
            if not isinstance(applications, int) or is_bool(applications):
                errors["applications"] = "Must be an integer."
            elif not 0 <= applications <= MAX_SEED_APPLICATIONS:
                errors["applications"] = f"Must be between 0 and {MAX_SEED_APPLICATIONS}."
            if not isinstance(seed, int | str) or is_bool(seed):
                errors["seed"] = "Must be an integer or a string."
            if not is_bool(hostile):
                errors["hostile"] = "Must be a boolean."
            if errors:
                raise invalid(errors)
            self.seeded_endpoints = endpoints
            self.seeded_applications = applications
            self.seed = seed
            self.hostile = hostile
            self.sub_accounts = sub_accounts
            self._store = Store()
            self.generation += 1
            self._plant_counter = 0
            self._rng = random.Random(f"vobiz-sandbox:{seed}")
            seed_account(
                self._store,
                self._rng,
                endpoints=endpoints,
                applications=applications,
                seed=seed,
                hostile=hostile,
                now=self.now(),
                app_uri=self._app_uri,
                sub_accounts=sub_accounts,
            )
            return self.summary()

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "endpoints": len(self._store.endpoints),
                "applications": len(self._store.apps),
                "seed": self.seed,
                "hostile": self.hostile,
            }

    # ------------------------------------------------------------------------- API: endpoints

    @staticmethod
    def _int_param(
        query: dict[str, str],
        name: str,
        default: int,
        low: int,
        high: int | None,
        errors: FieldErrors,
    ) -> int:
        raw = query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            errors.add(name, "Must be an integer.", "invalid_type")
            return default
        if value < low or (high is not None and value > high):
            errors.add(
                name,
                f"Must be between {low} and {high}." if high is not None else f"Must be >= {low}.",
                "out_of_range",
            )
        return value

    def _paging(self, query: dict[str, str], errors: FieldErrors) -> tuple[int, int]:
        """(limit, offset) of a list request. A limit of 1-100 is accepted; pages are then
        capped at the configured ``max_limit``, and the capped value is the effective limit."""
        limit = self._int_param(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, errors)
        offset = self._int_param(query, "offset", 0, 0, None, errors)
        return min(limit, self.config["max_limit"]), offset

    @staticmethod
    def _meta(
        base: str, filters: list[tuple[str, str]], limit: int, offset: int, total: int
    ) -> dict[str, Any]:
        def link(new_offset: int) -> str:
            return f"{base}?{urlencode([*filters, ('limit', limit), ('offset', new_offset)])}"

        return {
            "limit": limit,
            "offset": offset,
            "total_count": total,
            "next": link(offset + limit) if offset + limit < total else None,
            "previous": link(max(offset - limit, 0)) if offset > 0 else None,
        }

    def _endpoint_predicates(self, filters: list[tuple[str, str]], errors: FieldErrors):
        preds = []
        for name, value in filters:
            if name == "username__contains":
                preds.append(lambda ep, v=value: v in ep.username)
            elif name == "username__exact":
                preds.append(lambda ep, v=value: ep.username == v)
            elif name == "username__startswith":
                preds.append(lambda ep, v=value: ep.username.startswith(v))
            elif name == "alias__contains":
                preds.append(lambda ep, v=value: v in ep.alias)
            elif name == "alias__exact":
                preds.append(lambda ep, v=value: ep.alias == v)
            elif name == "application_id__exact":
                if not APP_ID_RE.fullmatch(value):
                    errors.add(name, "Must be an integer.", "invalid_type")
                preds.append(lambda ep, v=value: ep.app_id == v)
            elif name == "application_id__isnull":
                flag = value.lower()
                if flag in ("true", "1"):
                    preds.append(lambda ep: ep.app_id is None)
                elif flag in ("false", "0"):
                    preds.append(lambda ep: ep.app_id is not None)
                else:
                    errors.add(name, "Must be true or false.", "invalid_choice")
            elif name == "sub_account":
                preds.append(lambda ep, v=value: ep.sub_account == v)
        return preds

    def list_endpoints(self, query: list[tuple[str, str]]) -> dict[str, Any]:
        """One page of endpoints in creation order, with ``meta`` links that keep the filters.

        ``query`` is the parsed query string in request order. Raises ApiError(400) for a limit
        outside 1-100, a negative or non-integer offset, or a malformed filter value.
        """
        params = dict(query)
        filters = [(k, v) for k, v in query if k in LIST_FILTERS]
        errors = FieldErrors(params)
        limit, offset = self._paging(params, errors)
        preds = self._endpoint_predicates(filters, errors)
        if errors:
            raise invalid(errors)
        with self.lock:
            order = self._store.order()
            if preds:
                eps = self._store.endpoints
                matched = [eid for eid in order if all(p(eps[eid]) for p in preds)]
            else:
                matched = order
            total = len(matched)
            page = matched[offset : offset + limit]
            now = self.now()
            objects = [self._serve(self._store.endpoints[eid], now, detail=False) for eid in page]
            return {
                "api_id": str(uuid.uuid4()),
                "meta": self._meta(self._endpoint_uri, filters, limit, offset, total),
                "objects": objects,
            }

    def get_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        """The single-object form (in the full shape, with ``api_id`` and
        ``sip_registration``). Raises 404."""
        with self.lock:
            return self._serve(self._get(endpoint_id), self.now(), detail=True)

    def _validate_permissions(self, body: dict[str, Any], names, errors: FieldErrors) -> None:
        for name in names:
            if name in body and not is_bool(body[name]):
                errors.add(name, "Must be a boolean.", "invalid_type")

    def _wrong_app_ref_type(self, body: dict[str, Any], name: str, errors: FieldErrors) -> bool:
        """With ``strict_types`` on, record an error unless ``body[name]`` is a JSON integer
        (or null/"" for none); return whether it recorded one."""
        value = body.get(name)
        if not self.config["strict_types"] or value is None or value == "":
            return False
        if isinstance(value, int) and not is_bool(value):
            return False
        errors.add(name, "Must be an integer (the numeric application id).", "invalid_type")
        return True

    def _validate_app_ref(self, body: dict[str, Any], name: str, errors: FieldErrors) -> Any:
        """Return the app id ``body[name]`` names, None to detach/default, or record an error.

        A JSON integer or a string of digits is accepted; with ``strict_types`` on, only an
        integer (null and "" still mean none).
        """
        value = body.get(name)
        if value is None or value == "" or self._wrong_app_ref_type(body, name, errors):
            return None
        app_id = parse_app_ref(value)
        if app_id is None:
            errors.add(name, "Must be a numeric application id.", "invalid")
        elif app_id not in self._store.apps:
            errors.add(name, f"Application {app_id} not found.", "not_found")
        return app_id

    def create_endpoint(self, body: Any) -> dict[str, Any]:
        """Create an endpoint and return the success body of the configured ``create_body`` shape.

        Raises ApiError(400) with every failing field, or ApiError(409) when the typed username
        equals a stored one. With ``username_suffix`` on, the stored username gets a long numeric
        suffix, as the live API does. A missing alias stays empty (the docs give no default).
        """
        if not isinstance(body, dict):
            raise _not_an_object(body)
        with self.lock:
            errors = FieldErrors(body)
            username = body.get("username")
            if username is None or username == "":
                errors.add("username", REQUIRED, "required")
            elif not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
                errors.add("username", USERNAME_RULE, "invalid_format")
            password = body.get("password")
            if password is None or password == "":
                errors.add("password", REQUIRED, "required")
            elif not isinstance(password, str) or len(password) < 8:
                errors.add("password", TOO_SHORT, "too_short")
            alias = body.get("alias")
            if alias is not None and (not isinstance(alias, str) or not ALIAS_RE.fullmatch(alias)):
                errors.add("alias", ALIAS_RULE, "invalid_format")
            app_id = self._validate_app_ref(body, "application", errors)
            self._validate_permissions(body, PERMISSION_DEFAULTS, errors)
            sub_account = body.get("sub_account")
            if (
                sub_account is not None
                and sub_account != ""
                and (not isinstance(sub_account, str) or not SUB_ACCOUNT_RE.fullmatch(sub_account))
            ):
                errors.add("sub_account", SUB_ACCOUNT_RULE, "invalid_format")
            if errors:
                raise invalid(errors)
            if username in self._store.by_username:
                raise ApiError(409, {"error": "username already exists", "username": username})

            # What a create answers 201 to but does not keep (a silent drop).
            ignored = set(self.config["ignore_on_create"])
            if "application" in ignored:
                app_id = None
            stored = username
            if self.config["username_suffix"]:
                while stored in self._store.by_username or stored == username:
                    stored = f"{username}{long_suffix(self._rng)}"
            if app_id is None:
                app_id = self._default_endpoint_app_id()
            now = int(self.now())
            eid = self._store.new_endpoint_id(self._rng)
            ep = Endpoint(eid, stored, alias or "", now, now)
            ep.app_id = app_id
            ep.sub_account = sub_account or None
            for name in PERMISSION_DEFAULTS:
                if name in body and name not in ignored:
                    setattr(ep, name, body[name])
            ep.password_digest = password_digest(eid, password)
            self._store.add(ep)

            shape = self.config["create_body"]
            if shape == "full":
                return self._serve(ep, now, detail=True)
            if shape == "message":
                return {
                    "api_id": str(uuid.uuid4()),
                    "message": "created",
                    "endpoint_id": eid,
                    "sip_uri": f"sip:{ep.username}@{ep.sip_host}",
                    "resource_uri": f"{self._endpoint_uri}{eid}/",
                }
            return {"alias": ep.alias, "endpoint_id": eid, "username": ep.username}

    def _default_endpoint_app_id(self) -> str | None:
        for app_id, app in self._store.apps.items():
            if app["default_endpoint_app"]:
                return app_id
        return None

    def update_endpoint(self, endpoint_id: str, body: Any) -> Any:
        """Apply a partial update; return the configured ``update_body`` value (None = no body).

        Editable: password (drops registrations), alias, allow_voice/message/video, ``app_id``
        ("" or null detaches) and, only with ``honour_application_on_update``, ``application``.
        Locked and unknown fields are ignored, except that with ``strict_types`` on an ignored
        ``application`` must still be an integer. Raises ApiError(404) or ApiError(400).
        """
        with self.lock:
            ep = self._get(endpoint_id)
            if not isinstance(body, dict):
                raise _not_an_object(body)
            errors = FieldErrors(body)
            password = body.get("password")
            if "password" in body and (not isinstance(password, str) or len(password) < 8):
                errors.add("password", TOO_SHORT, "too_short")
            alias = body.get("alias")
            if "alias" in body and (not isinstance(alias, str) or not ALIAS_RE.fullmatch(alias)):
                errors.add("alias", ALIAS_RULE, "invalid_format")
            self._validate_permissions(body, UPDATABLE_PERMISSIONS, errors)
            link_key = None
            if "app_id" in body:
                link_key = "app_id"
            elif "application" in body and self.config["honour_application_on_update"]:
                link_key = "application"
            new_app_id = self._validate_app_ref(body, link_key, errors) if link_key else None
            if link_key != "application":
                self._wrong_app_ref_type(body, "application", errors)
            if errors:
                raise invalid(errors)

            if "password" in body:
                ep.password_digest = password_digest(ep.endpoint_id, password)
                ep.registration = None  # devices must re-register with the new credential
                ep.pinned = True
                ep.forget_raw(*REGISTRATION_KEYS)
            if "alias" in body:
                ep.alias = alias
                ep.forget_raw("alias")
            for name in UPDATABLE_PERMISSIONS:
                if name in body:
                    setattr(ep, name, body[name])
                    ep.forget_raw(name)
            if link_key:
                ep.app_id = new_app_id
                ep.forget_raw("application")
            ep.updated = int(self.now())
            ep.forget_raw("updated_at")

            shape = self.config["update_body"]
            if shape == "text":
                return "changed"
            if shape == "message":
                return {"message": "changed"}
            return None

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint (its devices disconnect with it). Raises ApiError(404)."""
        with self.lock:
            self._store.remove(self._get(endpoint_id))

    # ---------------------------------------------------------------------- API: applications

    def list_applications(self, query: list[tuple[str, str]]) -> dict[str, Any]:
        """One page of applications in creation order. Raises ApiError(400) for bad paging."""
        params = dict(query)
        errors = FieldErrors(params)
        limit, offset = self._paging(params, errors)
        if errors:
            raise invalid(errors)
        with self.lock:
            apps = list(self._store.apps.values())
            return {
                "api_id": str(uuid.uuid4()),
                "meta": self._meta(self._app_uri, [], limit, offset, len(apps)),
                "objects": [
                    self._render_app(a, detail=False) for a in apps[offset : offset + limit]
                ],
            }

    def get_application(self, app_id: str) -> dict[str, Any]:
        """The single application (with ``api_id``). Raises ApiError(404)."""
        with self.lock:
            app = self._store.apps.get(app_id)
            if app is None:
                raise ApiError(404, {"error": "Application not found", "app_id": app_id})
            return self._render_app(app, detail=True)

    # ---------------------------------------------------------------------------- control

    def get_config(self) -> dict[str, Any]:
        with self.lock:
            return dict(self.config)

    def set_config(self, changes: Any) -> dict[str, Any]:
        """Switch variant behaviours at runtime; returns the whole config. Raises ApiError(400)."""
        if not isinstance(changes, dict):
            raise invalid({"body": "Expected a JSON object."})
        errors = {}
        for key, value in changes.items():
            choices = CONFIG_CHOICES.get(key)
            bounds = CONFIG_RANGES.get(key)
            if bounds is not None:
                low, high = bounds
                if not isinstance(value, int) or is_bool(value) or not low <= value <= high:
                    errors[key] = f"Must be an integer from {low} to {high}."
            elif key == "ignore_on_create":
                if not isinstance(value, list) or any(v not in IGNORABLE_ON_CREATE
                                                      for v in value):
                    errors[key] = f"Must be a list drawn from {list(IGNORABLE_ON_CREATE)}."
            elif choices is None:
                errors[key] = f"Unknown setting; known: {', '.join(DEFAULT_CONFIG)}."
            elif (isinstance(choices[0], bool) and not is_bool(value)) or value not in choices:
                errors[key] = f"Must be one of {list(choices)}."
        if errors:
            raise invalid(errors)
        with self.lock:
            self.config.update(changes)
            return dict(self.config)

    def register(self, endpoint_id: str, body: Any) -> dict[str, Any]:
        """Register a device on an endpoint (replacing any); returns the endpoint. 404 if unknown.

        Body keys (all optional): contact, user_agent, received, path, expires_in (seconds, also the
        refresh interval), renew (bool; default decided by a hash of seed and endpoint id).
        The endpoint is pinned: device churn no longer drives it.
        """
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise invalid({"body": "Expected a JSON object."})
        with self.lock:
            ep = self._get(endpoint_id)
            errors = {}
            expires_in = body.get("expires_in", 600)
            if not isinstance(expires_in, int | float) or is_bool(expires_in) or expires_in <= 0:
                errors["expires_in"] = "Must be a positive number of seconds."
            renew = body.get("renew", renews(self.seed, endpoint_id))
            if not is_bool(renew):
                errors["renew"] = "Must be a boolean."
            if errors:
                raise invalid(errors)
            now = self.now()
            ep.registration = Registration(
                contact=body.get("contact", f"sip:{ep.username}@198.51.100.10:5060;transport=udp"),
                user_agent=body.get("user_agent", "Zoiper v5.6.4"),
                received=body.get("received", "198.51.100.10:5060"),
                path=body.get("path"),
                expires=now + expires_in,
                interval=expires_in,
                renews=renew,
            )
            ep.pinned = True  # device churn leaves a hand-set registration alone
            ep.forget_raw(*REGISTRATION_KEYS)
            return self._render(ep, now, detail=True)

    def unregister(self, endpoint_id: str) -> dict[str, Any]:
        """Drop an endpoint's registration and pin it (device churn leaves it alone);
        returns the endpoint. 404 if unknown."""
        with self.lock:
            ep = self._get(endpoint_id)
            ep.registration = None
            ep.pinned = True
            ep.forget_raw(*REGISTRATION_KEYS)
            return self._render(ep, self.now(), detail=True)

    def registrations(self, query: list[tuple[str, str]]) -> dict[str, Any]:
        """Each endpoint's churn profile and current registration, and with ``from``/``to`` its
        churn timeline: what tests compare a registration history against.

        Query: ``endpoint_id`` (repeatable; 404 for an unknown one), ``profile`` (repeatable:
        only seeded endpoints of those profiles), ``limit`` (1-1000, default 100; without
        ``endpoint_id``), ``from`` and ``to`` (epoch seconds, together, at most 31 days apart).
        Raises ApiError(400) for bad parameters and ApiError(404) for an unknown endpoint.
        """
        params = dict(query)
        ids = [v for k, v in query if k == "endpoint_id"]
        profiles = [v for k, v in query if k == "profile"]
        errors: dict[str, str] = {}
        for key in params:
            if key not in REGISTRATIONS_PARAMS:
                errors[key] = f"Unknown parameter; known: {', '.join(REGISTRATIONS_PARAMS)}."
        if any(p not in churn.PROFILES for p in profiles):
            errors["profile"] = f"Must be one of {list(churn.PROFILES)}."
        limit = self._control_int(params, "limit", 100, 1, 1000, errors)
        start = self._control_int(params, "from", None, 0, None, errors)
        end = self._control_int(params, "to", None, 0, None, errors)
        span = start is not None and end is not None
        if ("from" in params) != ("to" in params):
            errors["to" if "from" in params else "from"] = "Give both from and to."
        elif span and not 0 <= end - start <= MAX_TIMELINE_SECONDS:
            errors["to"] = f"Must be from `from` to {MAX_TIMELINE_SECONDS} seconds after it."
        if errors:
            raise invalid(errors)
        with self.lock:
            now = self.now()
            if ids:
                eps = [self._get(eid) for eid in ids]
                truncated = False
            else:
                eps, truncated = [], False
                for eid in self._store.order():
                    ep = self._store.endpoints[eid]
                    if profiles and self._profile(ep) not in profiles:
                        continue
                    if len(eps) == limit:
                        truncated = True
                        break
                    eps.append(ep)
            if ids and profiles:
                eps = [ep for ep in eps if self._profile(ep) in profiles]
            return {
                "churn": self.config["churn"],
                "seed": self.seed,
                "now": int(now),
                "truncated": truncated,
                "objects": [
                    self._registration_report(ep, now, start, end if span else None)
                    for ep in eps
                ],
            }

    def _profile(self, ep: Endpoint) -> str | None:
        """The churn profile of a seeded endpoint (None for one churn never drives)."""
        if not ep.seeded:
            return None
        dev = ep.churn_device
        return dev.profile if dev is not None else churn.profile_of(self.seed, ep.endpoint_id)

    def _registration_report(
        self, ep: Endpoint, now: float, start: int | None, end: int | None
    ) -> dict[str, Any]:
        reg = self._live_registration(ep, now)
        out: dict[str, Any] = {
            "endpoint_id": ep.endpoint_id,
            "username": ep.username,
            "profile": self._profile(ep),
            "pinned": ep.pinned,
            "driven": self._churns(ep),
            "registration": None,
        }
        if reg is not None:
            out["registration"] = {
                "contact": reg.contact,
                "user_agent": reg.user_agent,
                "received": reg.received,
                "path": reg.path,
                "expires": iso(reg.expires),
                "sip_registered": "false" if reg.websocket else "true",
            }
        if end is not None:
            # Churn's own account of the span, whether or not it drives the endpoint now.
            spans = self._churn_device(ep).spans(start, end) if ep.seeded else None
            out["timeline"] = None if spans is None else [
                {
                    "from": span.start,
                    "to": span.end,
                    "contact": span.contact,
                    "user_agent": span.user_agent,
                    "received": span.received,
                }
                for span in spans
            ]
        return out

    @staticmethod
    def _control_int(
        params: dict[str, str],
        name: str,
        default: Any,
        low: int,
        high: int | None,
        errors: dict[str, str],
    ) -> Any:
        """A control route's integer query parameter (``default`` when absent)."""
        raw = params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            errors[name] = "Must be an integer."
            return default
        if value < low or (high is not None and value > high):
            errors[name] = f"Must be from {low} to {high}." if high else f"Must be >= {low}."
            return default
        return value

    def mutate(self, body: Any) -> dict[str, Any]:
        """Change ``fraction`` of the endpoints (alias, updated_at, registration toggled; the
        changed endpoints are pinned, so device churn no longer drives them).

        Deterministic for a given ``seed``. Returns the changed ids. Raises ApiError(400).
        """
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise invalid({"body": "Expected a JSON object."})
        fraction = body.get("fraction", 0.01)
        if not isinstance(fraction, int | float) or is_bool(fraction) or not 0 <= fraction <= 1:
            raise invalid({"fraction": "Must be a number between 0 and 1."})
        with self.lock:
            rng = self._rng
            if "seed" in body:
                rng = random.Random(f"vobiz-sandbox-mutate:{body['seed']}")
            order = self._store.order()
            count = min(len(order), max(1, round(fraction * len(order)))) if fraction else 0
            chosen = rng.sample(order, count)
            now = self.now()
            for eid in chosen:
                ep = self._store.endpoints[eid]
                name = re.sub(r"[^a-z]", "", ep.username.lower()) or "device"
                ep.alias = random_alias(rng, name)
                ep.updated = int(now)
                if self._live_registration(ep, now) is None:
                    ep.registration = random_registration(
                        rng, ep.username, now, eid, self.seed
                    )
                else:
                    ep.registration = None
                ep.pinned = True
                ep.forget_raw("alias", "updated_at", *REGISTRATION_KEYS)
            return {"changed": len(chosen), "endpoint_ids": chosen}

    def plant(self, raw: Any) -> dict[str, Any]:
        """Store an arbitrary record, bypassing validation; returns it as GET would.

        Keys given are served verbatim (except ``password``, which is never echoed); missing keys
        get normal values. ``_omit`` lists keys to leave out of responses. An existing
        ``endpoint_id`` is replaced in place.
        """
        if not isinstance(raw, dict):
            raise invalid({"body": "Expected a JSON object."})
        raw = dict(raw)
        omit = raw.pop("_omit", [])
        if not isinstance(omit, list) or not all(isinstance(k, str) for k in omit):
            raise invalid({"_omit": "Must be a list of key names."})
        password = raw.pop("password", None)
        with self.lock:
            given_id = raw.get("endpoint_id")
            eid = str(given_id) if given_id is not None else self._store.new_endpoint_id(self._rng)
            self._plant_counter += 1
            username = raw.get("username", f"planted{self._plant_counter}")
            alias = raw.get("alias", "")
            now = int(self.now())
            ep = Endpoint(eid, as_text(username), as_text(alias), now, now)
            if "application" in raw:
                ep.app_id = app_id_of_any_shape(raw["application"])
            sub = raw.get("sub_account")
            ep.sub_account = sub if isinstance(sub, str) else None
            for name in PERMISSION_DEFAULTS:
                if is_bool(raw.get(name)):
                    setattr(ep, name, raw[name])
            if isinstance(password, str):
                ep.password_digest = password_digest(eid, password)
            ep.raw = raw
            ep.omit = tuple(omit)
            if eid in self._store.endpoints:
                self._store.replace(ep)
            else:
                self._store.add(ep)
            return self._render(ep, now, detail=True)

    # ------------------------------------------------------------------------------- stats

    def count_request(self, key: str) -> None:
        with self.lock:
            self._stats[key] = self._stats.get(key, 0) + 1

    def count_write(self, method: str, endpoint_id: str) -> None:
        """Writes per endpoint ("POST 147322537258167": n): how a test proves that each
        endpoint was written at most once."""
        key = f"{method} {endpoint_id}"
        with self.lock:
            self._writes[key] = self._writes.get(key, 0) + 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": dict(self._stats), "total": sum(self._stats.values()),
                    "writes_by_endpoint": dict(self._writes)}

    def clear_stats(self) -> None:
        with self.lock:
            self._stats.clear()
            self._writes.clear()
