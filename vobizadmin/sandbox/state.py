"""In-memory data and behaviour of the Vobiz API sandbox.

Everything here is plain Python: no HTTP, no Django. ``SandboxState`` owns the endpoints,
applications, runtime switches, queued faults and request counters behind a single lock;
``server.py`` turns HTTP requests into calls on it. API methods return JSON-ready values or raise
``ApiError``.

Determinism: the same seed gives the same ids, usernames, aliases, links and permissions.
Registration expiry times are the only seeded values relative to the clock at seed time (devices
must be "live" when the sandbox starts), so with a fixed fake clock two resets give identical data.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

SIP_DOMAIN = "registrar.vobiz.ai"
LEGACY_SIP_DOMAIN = "sip.vobiz.ai"
APP_SIP_DOMAIN = "app.vobiz.ai"

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_SEED_ENDPOINTS = 1_000_000
MAX_SEED_APPLICATIONS = 10_000
MAX_FAULT_DELAY = 600.0

# Share of seeded registrations whose device keeps refreshing; the rest lapse at their first expiry.
RENEW_PERCENT = 85

USERNAME_RE = re.compile(r"[A-Za-z0-9]+", re.ASCII)
ALIAS_RE = re.compile(r"[A-Za-z0-9_-]*", re.ASCII)
SUB_ACCOUNT_RE = re.compile(r"SA_[A-Za-z0-9]+", re.ASCII)
APP_ID_RE = re.compile(r"[0-9]+", re.ASCII)

CONFIG_CHOICES: dict[str, tuple[Any, ...]] = {
    "username_suffix": (True, False),
    "application_shape": ("uri", "object", "empty"),
    "honour_application_on_update": (True, False),
    "error_envelope": ("flat", "global"),
    "create_body": ("short", "message", "full"),
    "update_body": ("empty", "text", "message"),
}

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

UPDATABLE_PERMISSIONS = ("allow_voice", "allow_message", "allow_video")
PERMISSION_DEFAULTS = {
    "allow_voice": True,
    "allow_message": True,
    "allow_video": False,
    "allow_same_domain": True,
    "allow_other_domains": False,
    "allow_phones": True,
    "allow_apps": True,
}
REGISTRATION_KEYS = (
    "sip_registered",
    "sip_contact",
    "sip_expires",
    "sip_user_agent",
    "sip_registration",
)
REQUIRED = "This field is required."
TOO_SHORT = "Must be at least 8 characters."
ALIAS_RULE = "Only letters, digits, '-' and '_' are allowed."

# Seeded created_at values are spread over this fixed window so a seed always gives the same data.
CREATED_FROM = int(datetime(2023, 3, 1, tzinfo=UTC).timestamp())
CREATED_TO = int(datetime(2025, 9, 30, tzinfo=UTC).timestamp())


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "alice bob carol dave erin frank grace heidi ivan judy mallory nina oscar peggy quinn "
    "rupert sybil trent uma victor wendy xavier yara zane priya arjun mei kenji fatima omar "
    "lucia mateo sofia liam noah emma olivia ava mia ethan lucas chloe hana diego elena raj "
    "ananya kofi amara sven ingrid tomasz zofia aisha yusuf leila chen wei jin sara"
)
ROLE_WORDS = _words(
    "frontdesk reception sales support warehouse lobby confroom helpdesk zendeskagent kiosk "
    "callcenter nightshift dispatch billing ops"
)
DEPARTMENTS = _words(
    "Front Sales Support Billing Ops Warehouse Lobby Reception Dispatch Helpdesk NOC Finance "
    "HR Kitchen Clinic"
)
DEVICES = _words(
    "Desk Laptop Softphone Mobile Phone Headset iPad Yealink Zoiper Browser Home Office"
)
NATIVE_USER_AGENTS = (
    "Zoiper v5.6.4",
    "Zoiper v5.6.1",
    "Zoiper v5.6.6",
    "Linphone Desktop/5.2.4 (Windows 10) LinphoneSDK/5.3.38",
    "Linphone Desktop/5.1.2 (Ubuntu 22.04.3 LTS) LinphoneSDK/5.2.98",
    "Yealink SIP-T54W 96.86.0.70",
    "Yealink SIP-T46U 108.86.0.45",
    "Grandstream GXP2170 1.0.11.79",
    "Grandstream HT801 1.0.53.4",
    "MicroSIP/3.21.3",
    "MicroSIP/3.21.5",
    "Bria 6.5.5 build 120371",
)
BROWSER_USER_AGENTS = ("SIP.js/0.21.2", "SIP.js/0.20.1", "JsSIP 3.10.1", "JsSIP 3.9.0")
REGISTER_INTERVALS = (60, 120, 300, 600, 1800, 3600)
APP_NAMES = (
    "Support IVR",
    "Sales Queue",
    "After Hours Voicemail",
    "Front Desk Router",
    "Conference Bridge",
    "Helpdesk Escalation",
    "Outbound Dialer",
    "Call Recording",
    "Billing Hotline",
    "Warehouse Intercom",
    "Clinic Appointments",
    "NOC On-Call",
)
APP_HOSTS = (
    "ivr.example.com",
    "hooks.acme-support.example",
    "voice.example.net",
    "callflows.example.org",
)
PUBLIC_PREFIXES = ("198.51.100.", "203.0.113.", "192.0.2.")
PRIVATE_PREFIXES = ("192.168.1.", "192.168.0.", "192.168.10.", "10.0.0.", "10.0.3.", "172.16.4.")

# The vendor's own doc examples, which break the documented rules; seeded at these list positions.
LEGACY_RECORDS = {
    1: {
        "username": "john_doe",
        "alias": "John's Desktop Phone",
        "sip_host": LEGACY_SIP_DOMAIN,
        "registration": ("192.168.1.100:5060", "Zoiper v5.4.5", "203.0.113.42:5060"),
    },
    4: {"username": "jane_smith", "alias": "Jane's Mobile", "sip_host": LEGACY_SIP_DOMAIN},
    9: {"username": "acme_sip_user_01", "alias": "Acme Desktop Phone", "sip_host": SIP_DOMAIN},
    15: {
        "username": "sipuser_demo",
        "alias": "SIP Demo Phone",
        "sip_host": SIP_DOMAIN,
        "no_app": True,
    },
}

HOSTILE_ENDPOINTS = (
    {
        "username": "xss1<script>alert(1)</script>",
        "alias": "<script>alert(1)</script>",
        "user_agent": "<script>alert('ua')</script>",
        "contact": 'sip:"><img src=x onerror=alert(1)>@198.51.100.66:5060',
    },
    {
        "username": '"><img src=x onerror=alert(2)>',
        "alias": '"><img src=x onerror=alert(1)>',
        "user_agent": 'Zoiper v5.6.4"><img src=x onerror=alert(3)>',
        "contact": "javascript:alert(4)",
    },
    {
        "username": "tmpl{{7*7}}",
        "alias": "{{7*7}}{% debug %}",
        "user_agent": "${7*7}<svg/onload=alert(5)>",
        "contact": "sip:tmpl@203.0.113.9:5060;transport=udp' onmouseover='alert(6)",
    },
    {
        "username": "</td></tr><b>row</b>",
        "alias": "' onmouseover='alert(7)",
        "user_agent": "</script><script>alert(8)</script>",
        "contact": "<iframe src=javascript:alert(9)>",
    },
)
HOSTILE_APP_NAME = "<img src=x onerror=alert('app')>"


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


def iso(epoch: float) -> str:
    """Format epoch seconds as ISO 8601 UTC with a ``Z`` and no fraction."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def system_clock() -> datetime:
    return datetime.now(UTC)


def _password_digest(endpoint_id: str, password: str) -> str:
    # Only a digest is kept, so no code path can ever echo the password back.
    return hashlib.sha256(f"{endpoint_id}:{password}".encode()).hexdigest()


def _renews(seed: Any, endpoint_id: str) -> bool:
    # crc32 rather than hash(): str hashes are salted per process and would break determinism.
    return zlib.crc32(f"{seed}:{endpoint_id}".encode()) % 100 < RENEW_PERCENT


def _as_text(value: Any) -> str:
    """The string that filters see for a planted value of any JSON type."""
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _parse_app_ref(value: Any) -> str | None:
    """Return the numeric id an application reference names, or None when it names none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and APP_ID_RE.fullmatch(value):
        return value
    return None


def _app_id_of_any_shape(value: Any) -> str | None:
    """Best-effort app id from any documented ``application`` shape (used for planted rows)."""
    if isinstance(value, dict):
        return _parse_app_ref(value.get("app_id"))
    if isinstance(value, str) and "/" in value:
        return _parse_app_ref(value.rstrip("/").rsplit("/", 1)[-1])
    return _parse_app_ref(value)


class Registration:
    """One registered device. ``expires`` is epoch seconds; ``interval`` is its refresh period."""

    __slots__ = ("contact", "user_agent", "received", "path", "expires", "interval", "renews")

    def __init__(self, contact, user_agent, received, path, expires, interval, renews):
        self.contact = contact
        self.user_agent = user_agent
        self.received = received
        self.path = path
        self.expires = expires
        self.interval = interval
        self.renews = renews

    @property
    def websocket(self) -> bool:
        contact = self.contact.lower() if isinstance(self.contact, str) else ""
        return "transport=ws" in contact  # matches ws and wss


class Endpoint:
    """One stored endpoint. Timestamps are epoch seconds; ``raw`` holds a planted record."""

    __slots__ = (
        "endpoint_id",
        "username",
        "alias",
        "app_id",
        "sub_account",
        "created",
        "updated",
        "allow_voice",
        "allow_message",
        "allow_video",
        "allow_same_domain",
        "allow_other_domains",
        "allow_phones",
        "allow_apps",
        "password_digest",
        "registration",
        "sip_host",
        "raw",
        "omit",
    )

    def __init__(self, endpoint_id: str, username: str, alias: str, created: int, updated: int):
        self.endpoint_id = endpoint_id
        self.username = username
        self.alias = alias
        self.app_id: str | None = None
        self.sub_account: str | None = None
        self.created = created
        self.updated = updated
        self.allow_voice = True
        self.allow_message = True
        self.allow_video = False
        self.allow_same_domain = True
        self.allow_other_domains = False
        self.allow_phones = True
        self.allow_apps = True
        self.password_digest: str | None = None
        self.registration: Registration | None = None
        self.sip_host = SIP_DOMAIN
        self.raw: dict[str, Any] | None = None
        self.omit: tuple[str, ...] = ()

    def forget_raw(self, *keys: str) -> None:
        """Drop planted values that a real change has now superseded."""
        if self.raw:
            for key in keys:
                self.raw.pop(key, None)


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
        clock: Callable[[], datetime] | None = None,
        **config: Any,
    ):
        self.auth_id = auth_id
        self.lock = threading.RLock()
        self._clock = clock or system_clock
        self.config: dict[str, Any] = {
            "username_suffix": True,
            "application_shape": "uri",
            "honour_application_on_update": False,
            "error_envelope": "flat",
            "create_body": "short",
            "update_body": "empty",
        }
        self.set_config(config)
        self._faults: list[dict[str, Any]] = []
        self._fault_counter = 0
        self._stats: dict[str, int] = {}
        self._endpoint_uri = f"/v1/Account/{auth_id}/Endpoint/"
        self._app_uri = f"/v1/Account/{auth_id}/Application/"
        self.seeded_endpoints = endpoints
        self.seeded_applications = applications
        self.seed = seed
        self.hostile = hostile
        self.reset(endpoints=endpoints, applications=applications, seed=seed, hostile=hostile)

    # ----------------------------------------------------------------------------------- helpers

    def now(self) -> float:
        """Current time from the configured clock, as epoch seconds."""
        return self._clock().timestamp()

    def _order(self) -> list[str]:
        # Deletes only mark the index dirty; it is compacted on the next read so a delete stays O(1)
        # and an unfiltered page stays O(limit).
        if self._order_dirty:
            self._order_ids = [eid for eid in self._order_ids if eid in self._endpoints]
            self._order_dirty = False
        return self._order_ids

    def _new_endpoint_id(self, rng: random.Random) -> str:
        while True:
            eid = str(rng.randrange(10**14, 10**15))
            if eid not in self._endpoints:
                return eid

    def _new_app_id(self, rng: random.Random) -> str:
        while True:
            app_id = str(rng.randrange(10**16, 10**17))
            if app_id not in self._apps:
                return app_id

    def _add(self, ep: Endpoint) -> None:
        self._endpoints[ep.endpoint_id] = ep
        self._by_username[ep.username] = ep.endpoint_id
        self._order_ids.append(ep.endpoint_id)

    def _get(self, endpoint_id: str) -> Endpoint:
        ep = self._endpoints.get(endpoint_id)
        if ep is None:
            raise ApiError(404, {"error": "Endpoint not found", "endpoint_id": endpoint_id})
        return ep

    def _live_registration(self, ep: Endpoint, now: float) -> Registration | None:
        """The registration as of ``now``: renewed on its own grid, or lapsed and cleared."""
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
            app = self._apps.get(app_id) or {}
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

    def _render_app(self, app: dict[str, Any], *, detail: bool) -> dict[str, Any]:
        out = {"api_id": str(uuid.uuid4())} if detail else {}
        out.update(app)
        return out

    # --------------------------------------------------------------------------------- seeding

    def reset(
        self,
        *,
        endpoints: int | None = None,
        applications: int | None = None,
        seed: Any = None,
        hostile: bool | None = None,
    ) -> dict[str, Any]:
        """Replace all data with a deterministic seed; arguments left None keep their current value.

        Returns a summary. Raises ApiError(400) for out-of-range sizes.
        """
        with self.lock:
            endpoints = self.seeded_endpoints if endpoints is None else endpoints
            applications = self.seeded_applications if applications is None else applications
            seed = self.seed if seed is None else seed
            hostile = self.hostile if hostile is None else hostile
            errors = {}
            if not isinstance(endpoints, int) or _is_bool(endpoints):
                errors["endpoints"] = "Must be an integer."
            elif not 0 <= endpoints <= MAX_SEED_ENDPOINTS:
                errors["endpoints"] = f"Must be between 0 and {MAX_SEED_ENDPOINTS}."
            if not isinstance(applications, int) or _is_bool(applications):
                errors["applications"] = "Must be an integer."
            elif not 0 <= applications <= MAX_SEED_APPLICATIONS:
                errors["applications"] = f"Must be between 0 and {MAX_SEED_APPLICATIONS}."
            if not isinstance(seed, int | str) or _is_bool(seed):
                errors["seed"] = "Must be an integer or a string."
            if not _is_bool(hostile):
                errors["hostile"] = "Must be a boolean."
            if errors:
                raise invalid(errors)
            self.seeded_endpoints = endpoints
            self.seeded_applications = applications
            self.seed = seed
            self.hostile = hostile
            self._endpoints: dict[str, Endpoint] = {}
            self._by_username: dict[str, str] = {}
            self._order_ids: list[str] = []
            self._order_dirty = False
            self._apps: dict[str, dict[str, Any]] = {}
            self._plant_counter = 0
            self._rng = random.Random(f"vobiz-sandbox:{seed}")
            now = self.now()
            self._seed_applications(applications)
            if hostile:
                self._seed_hostile(now)
            self._seed_endpoints(endpoints, now)
            return self.summary()

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "endpoints": len(self._endpoints),
                "applications": len(self._apps),
                "seed": self.seed,
                "hostile": self.hostile,
            }

    def _seed_applications(self, count: int) -> None:
        rng = self._rng
        default_endpoint_index = 1 if count > 1 else 0
        span = CREATED_TO - CREATED_FROM
        for i in range(count):
            app_id = self._new_app_id(rng)
            base = APP_NAMES[i % len(APP_NAMES)]
            name = base if i < len(APP_NAMES) else f"{base} {i // len(APP_NAMES) + 1}"
            slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
            host = APP_HOSTS[i % len(APP_HOSTS)]
            created = CREATED_FROM + int(span * i / max(count, 1) * 0.2)
            self._apps[app_id] = self._application_dict(
                app_id=app_id,
                name=name,
                answer_url=f"https://{host}/{slug}/answer",
                answer_method="GET" if i % 5 == 3 else "POST",
                hangup_url=f"https://{host}/{slug}/hangup" if i % 3 != 2 else "",
                fallback_answer_url=f"https://backup.{host}/{slug}/answer" if i % 2 == 0 else "",
                message_url=f"https://{host}/{slug}/message" if i % 4 == 0 else "",
                default_endpoint_app=i == default_endpoint_index,
                default_app=i == 0,
                enabled=i % 7 != 6,
                created=created,
                updated=created + int(rng.random() * 86400 * 200),
            )

    def _application_dict(
        self,
        *,
        app_id,
        name,
        answer_url,
        answer_method,
        hangup_url,
        fallback_answer_url,
        message_url,
        default_endpoint_app,
        default_app,
        enabled,
        created,
        updated,
        sub_account=None,
    ) -> dict[str, Any]:
        return {
            "app_id": app_id,
            "app_name": name,
            "answer_url": answer_url,
            "answer_method": answer_method,
            "hangup_url": hangup_url,
            "hangup_method": "POST",
            "fallback_answer_url": fallback_answer_url,
            "fallback_method": "POST",
            "message_url": message_url,
            "message_method": "POST",
            "default_endpoint_app": default_endpoint_app,
            "default_app": default_app,
            "enabled": enabled,
            "application_type": "XML",
            "sip_uri": f"sip:{app_id}@{APP_SIP_DOMAIN}",
            "sub_account": sub_account,
            "resource_uri": f"{self._app_uri}{app_id}/",
            "created_at": iso(created),
            "updated_at": iso(updated),
        }

    def _seed_hostile(self, now: float) -> None:
        rng = random.Random(f"vobiz-sandbox-hostile:{self.seed}")
        app_id = self._new_app_id(rng)
        created = CREATED_FROM - 86400 * 30
        self._apps[app_id] = self._application_dict(
            app_id=app_id,
            name=HOSTILE_APP_NAME,
            answer_url="javascript:alert('answer_url')",
            answer_method="POST",
            hangup_url='https://evil.example/"><script>alert(1)</script>',
            fallback_answer_url="",
            message_url="",
            default_endpoint_app=False,
            default_app=False,
            enabled=True,
            created=created,
            updated=created,
        )
        for n, spec in enumerate(HOSTILE_ENDPOINTS):
            eid = self._new_endpoint_id(rng)
            ep = Endpoint(eid, spec["username"], spec["alias"], created + n, created + n)
            ep.app_id = app_id
            ep.registration = Registration(
                contact=spec["contact"],
                user_agent=spec["user_agent"],
                received='203.0.113.66:5060"><script>alert(10)</script>',
                path=None,
                expires=int(now) + 1800,
                interval=1800,
                renews=True,
            )
            self._add(ep)

    def _seed_endpoints(self, count: int, now: float) -> None:
        rng = self._rng
        rand = rng.random
        choice = rng.choice
        app_ids = list(self._apps)
        if self.hostile:
            app_ids = app_ids[:-1]  # the hostile app is only linked from the hostile endpoints
        n_apps = len(app_ids)
        n_subs = 2 + int(rand() * 2)
        subs = [
            "SA_" + "".join(choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(10))
            for _ in range(n_subs)
        ]
        span = CREATED_TO - CREATED_FROM
        step = span / max(count, 1)
        by_username = self._by_username
        for i in range(count):
            legacy = LEGACY_RECORDS.get(i)
            name = choice(FIRST_NAMES)
            if legacy:
                username = legacy["username"]
            else:
                while True:
                    username = self._seed_username(rng, name)
                    if username not in by_username:
                        break
            eid = self._new_endpoint_id(rng)
            created = CREATED_FROM + int((i + rand()) * step)
            updated = created + int(rand() ** 2 * (CREATED_TO - created))
            alias = legacy["alias"] if legacy else self._seed_alias(rng, name)
            ep = Endpoint(eid, username, alias, created, updated)
            if legacy:
                ep.sip_host = legacy["sip_host"]
            if n_apps and rand() < 0.8 and not (legacy and legacy.get("no_app")):
                # Squared draw: a few apps carry most endpoints, as in a real account.
                ep.app_id = app_ids[int(rand() ** 2 * n_apps)]
            if rand() < 0.3:
                ep.sub_account = subs[int(rand() * n_subs)]
            if rand() < 0.15:
                ep.allow_video = True
            if rand() < 0.1:
                ep.allow_other_domains = True
            if rand() < 0.05:
                ep.allow_message = False
            if rand() < 0.05:
                ep.allow_phones = False
            if legacy and "registration" in legacy:
                contact, agent, received = legacy["registration"]
                ep.registration = Registration(
                    contact, agent, received, None, int(now) + 1500, 1800, _renews(self.seed, eid)
                )
            elif rand() < 0.4:
                ep.registration = self._seed_registration(rng, username, now, eid)
            self._add(ep)

    @staticmethod
    def _long_suffix(rng: random.Random) -> str:
        length = 19 + int(rng.random() * 4)
        return str(rng.randrange(10 ** (length - 1), 10**length))

    def _seed_username(self, rng: random.Random, name: str) -> str:
        r = rng.random()
        if r < 0.55:
            return f"{name}{rng.randrange(1, 100000)}"
        if r < 0.75:
            return f"{rng.choice(ROLE_WORDS)}{rng.randrange(1, 1000)}"
        # Created since the API started rewriting usernames.
        return f"{name if r < 0.85 else rng.choice(ROLE_WORDS)}{self._long_suffix(rng)}"

    @staticmethod
    def _seed_alias(rng: random.Random, name: str) -> str:
        r = rng.random()
        person = name.capitalize()
        if r < 0.35:
            return f"{person}-{rng.choice(DEVICES)}"
        if r < 0.6:
            return f"{rng.choice(DEPARTMENTS)}-Desk_{rng.randrange(1, 40)}"
        if r < 0.8:
            return f"{person}_{rng.choice(DEVICES)}_{rng.randrange(1, 10)}"
        if r < 0.99:
            return f"{rng.choice(DEPARTMENTS)}-{rng.choice(DEVICES)}"
        return f"{person}'s {rng.choice(DEVICES)}"  # legacy data breaking the alias rule

    def _seed_registration(
        self, rng: random.Random, username: str, now: float, eid: str
    ) -> Registration:
        rand = rng.random
        interval = rng.choice(REGISTER_INTERVALS)
        expires = int(now) + 60 + int(rand() * (min(interval, 3600) - 60))
        public = f"{rng.choice(PUBLIC_PREFIXES)}{rng.randrange(2, 255)}"
        if rand() < 0.12:
            token = format(rng.getrandbits(32), "08x")
            host = format(rng.getrandbits(48), "012x")
            return Registration(
                contact=f"sip:{token}@{host}.invalid;transport=ws",
                user_agent=rng.choice(BROWSER_USER_AGENTS),
                received=f"{public}:{rng.randrange(49152, 65535)}",
                path="<sip:edge1.vobiz.ai:7443;transport=wss;lr;ob>",
                expires=expires,
                interval=interval,
                renews=_renews(self.seed, eid),
            )
        r = rand()
        transport = "udp" if r < 0.6 else ("tcp" if r < 0.8 else "tls")
        port = 5061 if transport == "tls" else 5060
        private = f"{rng.choice(PRIVATE_PREFIXES)}{rng.randrange(2, 255)}"
        style = rand()
        if style < 0.45:
            contact = f"sip:{username}@{public}:{rng.randrange(1024, 65535)};transport={transport}"
        elif style < 0.8:
            contact = f"sip:{username}@{private}:{port}"
        else:
            contact = f"{private}:{port}"
        return Registration(
            contact=contact,
            user_agent=rng.choice(NATIVE_USER_AGENTS),
            received=f"{public}:{rng.randrange(1024, 65535)}",
            path=None,
            expires=expires,
            interval=interval,
            renews=_renews(self.seed, eid),
        )

    # ------------------------------------------------------------------------- API: endpoints

    @staticmethod
    def _int_param(
        query: dict[str, str],
        name: str,
        default: int,
        low: int,
        high: int | None,
        errors: dict[str, str],
    ) -> int:
        raw = query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            errors[name] = "Must be an integer."
            return default
        if value < low or (high is not None and value > high):
            errors[name] = (
                f"Must be between {low} and {high}." if high is not None else f"Must be >= {low}."
            )
        return value

    def _paging(self, query: dict[str, str], errors: dict[str, str]) -> tuple[int, int]:
        limit = self._int_param(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, errors)
        offset = self._int_param(query, "offset", 0, 0, None, errors)
        return limit, offset

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

    def _endpoint_predicates(self, filters: list[tuple[str, str]], errors: dict[str, str]):
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
                    errors[name] = "Must be an integer."
                preds.append(lambda ep, v=value: ep.app_id == v)
            elif name == "application_id__isnull":
                flag = value.lower()
                if flag in ("true", "1"):
                    preds.append(lambda ep: ep.app_id is None)
                elif flag in ("false", "0"):
                    preds.append(lambda ep: ep.app_id is not None)
                else:
                    errors[name] = "Must be true or false."
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
        errors: dict[str, str] = {}
        limit, offset = self._paging(params, errors)
        preds = self._endpoint_predicates(filters, errors)
        if errors:
            raise invalid(errors)
        with self.lock:
            order = self._order()
            if preds:
                eps = self._endpoints
                matched = [eid for eid in order if all(p(eps[eid]) for p in preds)]
            else:
                matched = order
            total = len(matched)
            page = matched[offset : offset + limit]
            now = self.now()
            objects = [self._render(self._endpoints[eid], now, detail=False) for eid in page]
            return {
                "api_id": str(uuid.uuid4()),
                "meta": self._meta(self._endpoint_uri, filters, limit, offset, total),
                "objects": objects,
            }

    def get_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        """The single-object form (with ``api_id`` and ``sip_registration``). Raises 404."""
        with self.lock:
            return self._render(self._get(endpoint_id), self.now(), detail=True)

    def _validate_permissions(self, body: dict[str, Any], names, errors: dict[str, str]) -> None:
        for name in names:
            if name in body and not _is_bool(body[name]):
                errors[name] = "Must be a boolean."

    def _validate_app_ref(self, body: dict[str, Any], name: str, errors: dict[str, str]) -> Any:
        """Return the app id ``body[name]`` names, None to detach/default, or record an error."""
        value = body.get(name)
        if value is None or value == "":
            return None
        app_id = _parse_app_ref(value)
        if app_id is None:
            errors[name] = "Must be a numeric application id."
        elif app_id not in self._apps:
            errors[name] = f"Application {app_id} not found."
        return app_id

    def create_endpoint(self, body: Any) -> dict[str, Any]:
        """Create an endpoint and return the success body of the configured ``create_body`` shape.

        Raises ApiError(400) with every failing field, or ApiError(409) when the typed username
        equals a stored one. With ``username_suffix`` on, the stored username gets a long numeric
        suffix, as the live API does.
        """
        if not isinstance(body, dict):
            raise invalid({"body": "Expected a JSON object."})
        with self.lock:
            errors: dict[str, str] = {}
            username = body.get("username")
            if username is None or username == "":
                errors["username"] = REQUIRED
            elif not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
                errors["username"] = "Only letters (a-z, A-Z) and digits (0-9) are allowed."
            password = body.get("password")
            if password is None or password == "":
                errors["password"] = REQUIRED
            elif not isinstance(password, str) or len(password) < 8:
                errors["password"] = TOO_SHORT
            alias = body.get("alias")
            if alias is not None and (not isinstance(alias, str) or not ALIAS_RE.fullmatch(alias)):
                errors["alias"] = ALIAS_RULE
            app_id = self._validate_app_ref(body, "application", errors)
            self._validate_permissions(body, PERMISSION_DEFAULTS, errors)
            sub_account = body.get("sub_account")
            if (
                sub_account is not None
                and sub_account != ""
                and (not isinstance(sub_account, str) or not SUB_ACCOUNT_RE.fullmatch(sub_account))
            ):
                errors["sub_account"] = "Must be a sub-account auth id (SA_...)."
            if errors:
                raise invalid(errors)
            if username in self._by_username:
                raise ApiError(409, {"error": "username already exists", "username": username})

            stored = username
            if self.config["username_suffix"]:
                while stored in self._by_username or stored == username:
                    stored = f"{username}{self._long_suffix(self._rng)}"
            if app_id is None:
                app_id = self._default_endpoint_app_id()
            now = int(self.now())
            eid = self._new_endpoint_id(self._rng)
            ep = Endpoint(eid, stored, username if alias is None else alias, now, now)
            ep.app_id = app_id
            ep.sub_account = sub_account or None
            for name in PERMISSION_DEFAULTS:
                if name in body:
                    setattr(ep, name, body[name])
            ep.password_digest = _password_digest(eid, password)
            self._add(ep)

            shape = self.config["create_body"]
            if shape == "full":
                return self._render(ep, now, detail=True)
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
        for app_id, app in self._apps.items():
            if app["default_endpoint_app"]:
                return app_id
        return None

    def update_endpoint(self, endpoint_id: str, body: Any) -> Any:
        """Apply a partial update; return the configured ``update_body`` value (None = no body).

        Editable: password (drops registrations), alias, allow_voice/message/video, ``app_id``
        ("" or null detaches) and, only with ``honour_application_on_update``, ``application``.
        Locked and unknown fields are ignored. Raises ApiError(404) or ApiError(400).
        """
        with self.lock:
            ep = self._get(endpoint_id)
            if not isinstance(body, dict):
                raise invalid({"body": "Expected a JSON object."})
            errors: dict[str, str] = {}
            password = body.get("password")
            if "password" in body and (not isinstance(password, str) or len(password) < 8):
                errors["password"] = TOO_SHORT
            alias = body.get("alias")
            if "alias" in body and (not isinstance(alias, str) or not ALIAS_RE.fullmatch(alias)):
                errors["alias"] = ALIAS_RULE
            self._validate_permissions(body, UPDATABLE_PERMISSIONS, errors)
            link_key = None
            if "app_id" in body:
                link_key = "app_id"
            elif "application" in body and self.config["honour_application_on_update"]:
                link_key = "application"
            new_app_id = self._validate_app_ref(body, link_key, errors) if link_key else None
            if errors:
                raise invalid(errors)

            if "password" in body:
                ep.password_digest = _password_digest(ep.endpoint_id, password)
                ep.registration = None  # devices must re-register with the new credential
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
            ep = self._get(endpoint_id)
            del self._endpoints[endpoint_id]
            if self._by_username.get(ep.username) == endpoint_id:
                del self._by_username[ep.username]
            self._order_dirty = True

    # ---------------------------------------------------------------------- API: applications

    def list_applications(self, query: list[tuple[str, str]]) -> dict[str, Any]:
        """One page of applications in creation order. Raises ApiError(400) for bad paging."""
        errors: dict[str, str] = {}
        limit, offset = self._paging(dict(query), errors)
        if errors:
            raise invalid(errors)
        with self.lock:
            apps = list(self._apps.values())
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
            app = self._apps.get(app_id)
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
            if choices is None:
                errors[key] = f"Unknown setting; known: {', '.join(CONFIG_CHOICES)}."
            elif (isinstance(choices[0], bool) and not _is_bool(value)) or value not in choices:
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
        """
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise invalid({"body": "Expected a JSON object."})
        with self.lock:
            ep = self._get(endpoint_id)
            errors = {}
            expires_in = body.get("expires_in", 600)
            if not isinstance(expires_in, int | float) or _is_bool(expires_in) or expires_in <= 0:
                errors["expires_in"] = "Must be a positive number of seconds."
            renew = body.get("renew", _renews(self.seed, endpoint_id))
            if not _is_bool(renew):
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
            ep.forget_raw(*REGISTRATION_KEYS)
            return self._render(ep, now, detail=True)

    def unregister(self, endpoint_id: str) -> dict[str, Any]:
        """Drop an endpoint's registration; returns the endpoint. 404 if unknown."""
        with self.lock:
            ep = self._get(endpoint_id)
            ep.registration = None
            ep.forget_raw(*REGISTRATION_KEYS)
            return self._render(ep, self.now(), detail=True)

    def mutate(self, body: Any) -> dict[str, Any]:
        """Change ``fraction`` of the endpoints (alias, updated_at, registration toggled).

        Deterministic for a given ``seed``. Returns the changed ids. Raises ApiError(400).
        """
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise invalid({"body": "Expected a JSON object."})
        fraction = body.get("fraction", 0.01)
        if not isinstance(fraction, int | float) or _is_bool(fraction) or not 0 <= fraction <= 1:
            raise invalid({"fraction": "Must be a number between 0 and 1."})
        with self.lock:
            rng = self._rng
            if "seed" in body:
                rng = random.Random(f"vobiz-sandbox-mutate:{body['seed']}")
            order = self._order()
            count = min(len(order), max(1, round(fraction * len(order)))) if fraction else 0
            chosen = rng.sample(order, count)
            now = self.now()
            for eid in chosen:
                ep = self._endpoints[eid]
                name = re.sub(r"[^a-z]", "", ep.username.lower()) or "device"
                ep.alias = self._seed_alias(rng, name)
                ep.updated = int(now)
                if self._live_registration(ep, now) is None:
                    ep.registration = self._seed_registration(rng, ep.username, now, eid)
                else:
                    ep.registration = None
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
            eid = str(given_id) if given_id is not None else self._new_endpoint_id(self._rng)
            self._plant_counter += 1
            username = raw.get("username", f"planted{self._plant_counter}")
            alias = raw.get("alias", "")
            now = int(self.now())
            ep = Endpoint(eid, _as_text(username), _as_text(alias), now, now)
            if "application" in raw:
                ep.app_id = _app_id_of_any_shape(raw["application"])
            sub = raw.get("sub_account")
            ep.sub_account = sub if isinstance(sub, str) else None
            for name in PERMISSION_DEFAULTS:
                if _is_bool(raw.get(name)):
                    setattr(ep, name, raw[name])
            if isinstance(password, str):
                ep.password_digest = _password_digest(eid, password)
            ep.raw = raw
            ep.omit = tuple(omit)
            old = self._endpoints.get(eid)
            if old is not None:
                if self._by_username.get(old.username) == eid:
                    del self._by_username[old.username]
                self._endpoints[eid] = ep
                self._by_username[ep.username] = eid
            else:
                self._add(ep)
            return self._render(ep, now, detail=True)

    # ------------------------------------------------------------------------ faults, stats

    def add_fault(self, spec: Any) -> dict[str, Any]:
        """Queue a fault for the next matching API requests; returns it. Raises ApiError(400)."""
        if not isinstance(spec, dict):
            raise invalid({"body": "Expected a JSON object."})
        known = {"method", "path", "status", "times", "delay", "retry_after", "body", "drop"}
        errors = {k: "Unknown key." for k in spec if k not in known}
        method = spec.get("method")
        if method is not None and not isinstance(method, str):
            errors["method"] = "Must be an HTTP method name."
        path = spec.get("path")
        if path is not None and not isinstance(path, str):
            errors["path"] = "Must be a string."
        status = spec.get("status")
        if status is not None and (
            not isinstance(status, int) or _is_bool(status) or not 100 <= status <= 599
        ):
            errors["status"] = "Must be an HTTP status code."
        times = spec.get("times", 1)
        if not isinstance(times, int) or _is_bool(times) or times < 1:
            errors["times"] = "Must be a positive integer."
        delay = spec.get("delay", 0.0)
        if (
            not isinstance(delay, int | float)
            or _is_bool(delay)
            or not 0 <= delay <= MAX_FAULT_DELAY
        ):
            errors["delay"] = f"Must be between 0 and {MAX_FAULT_DELAY:g} seconds."
        retry_after = spec.get("retry_after")
        if retry_after is not None and (
            not isinstance(retry_after, int | float | str) or _is_bool(retry_after)
        ):
            errors["retry_after"] = "Must be a number of seconds or an HTTP date."
        drop = spec.get("drop", False)
        if not _is_bool(drop):
            errors["drop"] = "Must be a boolean."
        if errors:
            raise invalid(errors)
        replaces = (
            status is not None or spec.get("body") is not None or drop or (retry_after is not None)
        )
        if status is None and replaces:
            # A Retry-After on its own only makes sense on a rate-limit answer.
            status = 429 if retry_after is not None and spec.get("body") is None else 500
        with self.lock:
            self._fault_counter += 1
            fault = {
                "id": self._fault_counter,
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

    def take_fault(self, method: str, target: str) -> dict[str, Any] | None:
        """Consume one use of the first queued fault matching this request, if any."""
        with self.lock:
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

    def list_faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(f) for f in self._faults]

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def count_request(self, key: str) -> None:
        with self.lock:
            self._stats[key] = self._stats.get(key, 0) + 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": dict(self._stats), "total": sum(self._stats.values())}

    def clear_stats(self) -> None:
        with self.lock:
            self._stats.clear()
