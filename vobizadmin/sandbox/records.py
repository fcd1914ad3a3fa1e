"""The sandbox's stored data: endpoint and registration records and the store that holds them.

``Store`` keeps one account's endpoints (by id, by username and in creation order) and its
applications (plain dicts, already in their API shape). It does no locking and no validation:
``SandboxState`` does both. Also here: the small value helpers every other module shares.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from typing import Any

SIP_DOMAIN = "registrar.vobiz.ai"
LEGACY_SIP_DOMAIN = "sip.vobiz.ai"
APP_SIP_DOMAIN = "app.vobiz.ai"

APP_ID_RE = re.compile(r"[0-9]+", re.ASCII)

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


def iso(epoch: float) -> str:
    """Format epoch seconds as ISO 8601 UTC with a ``Z`` and no fraction."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def password_digest(endpoint_id: str, password: str) -> str:
    # Only a digest is kept, so no response can echo a stored password back. (The global error
    # envelope echoes a refused request's own values, a bad password included, on purpose.)
    return hashlib.sha256(f"{endpoint_id}:{password}".encode()).hexdigest()


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def as_text(value: Any) -> str:
    """The string that filters see for a planted value of any JSON type."""
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value)


def parse_app_ref(value: Any) -> str | None:
    """Return the numeric id an application reference names, or None when it names none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and APP_ID_RE.fullmatch(value):
        return value
    return None


def app_id_of_any_shape(value: Any) -> str | None:
    """Best-effort app id from any documented ``application`` shape (used for planted rows)."""
    if isinstance(value, dict):
        return parse_app_ref(value.get("app_id"))
    if isinstance(value, str) and "/" in value:
        return parse_app_ref(value.rstrip("/").rsplit("/", 1)[-1])
    return parse_app_ref(value)


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
    """One stored endpoint. Timestamps are epoch seconds; ``raw`` holds a planted record;
    ``seeded``/``pinned`` decide whether device churn drives its registration."""

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
        "seeded",
        "pinned",
        "churn_device",
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
        # Device churn (churn.py) drives the registration of endpoints seeded at reset time,
        # unless a control route, a password change or ``mutate`` set it by hand (pinned).
        self.seeded = False
        self.pinned = False
        self.churn_device: Any = None  # the endpoint's churn.device(), built on first read

    def forget_raw(self, *keys: str) -> None:
        """Drop planted values that a real change has now superseded."""
        if self.raw:
            for key in keys:
                self.raw.pop(key, None)


class Store:
    """One account's endpoints and applications. Not thread-safe: callers hold a lock."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.by_username: dict[str, str] = {}
        self.apps: dict[str, dict[str, Any]] = {}
        self._order_ids: list[str] = []
        self._order_dirty = False

    def order(self) -> list[str]:
        """Endpoint ids in creation order (the list API's order)."""
        # Deletes only mark the index dirty; it is compacted on the next read so a delete stays O(1)
        # and an unfiltered page stays O(limit).
        if self._order_dirty:
            self._order_ids = [eid for eid in self._order_ids if eid in self.endpoints]
            self._order_dirty = False
        return self._order_ids

    def new_endpoint_id(self, rng: random.Random) -> str:
        """A 15-digit id no stored endpoint has."""
        while True:
            eid = str(rng.randrange(10**14, 10**15))
            if eid not in self.endpoints:
                return eid

    def new_app_id(self, rng: random.Random) -> str:
        """A 17-digit id no stored application has."""
        while True:
            app_id = str(rng.randrange(10**16, 10**17))
            if app_id not in self.apps:
                return app_id

    def add(self, ep: Endpoint) -> None:
        """Store a new endpoint at the end of the order."""
        self.endpoints[ep.endpoint_id] = ep
        self.by_username[ep.username] = ep.endpoint_id
        self._order_ids.append(ep.endpoint_id)

    def replace(self, ep: Endpoint) -> None:
        """Store ``ep`` in place of the endpoint with its id (keeping its place in the order)."""
        old = self.endpoints[ep.endpoint_id]
        if self.by_username.get(old.username) == ep.endpoint_id:
            del self.by_username[old.username]
        self.endpoints[ep.endpoint_id] = ep
        self.by_username[ep.username] = ep.endpoint_id

    def remove(self, ep: Endpoint) -> None:
        """Forget a stored endpoint."""
        del self.endpoints[ep.endpoint_id]
        if self.by_username.get(ep.username) == ep.endpoint_id:
            del self.by_username[ep.username]
        self._order_dirty = True
