"""Demo data for the Vobiz API sandbox: a deterministic, realistic-looking account.

``seed_account`` fills a ``Store`` with applications, endpoints (usernames, aliases, links,
permissions, sub-accounts, live registrations), the vendor's own rule-breaking doc examples at
fixed list positions and, on request, endpoints and an application holding HTML/JS payloads.
The helpers that invent one username, alias or registration are also used by the API state
(``mutate`` and the username suffix on create).

Determinism: the same seed gives the same ids, usernames, aliases, links and permissions.
Registration expiry times are the only seeded values relative to the clock at seed time (devices
must be "live" when the sandbox starts), so with a fixed fake clock two resets give identical data.
"""

from __future__ import annotations

import random
import re
import zlib
from datetime import UTC, datetime
from typing import Any

from vobizadmin.sandbox.records import (
    APP_SIP_DOMAIN,
    LEGACY_SIP_DOMAIN,
    SIP_DOMAIN,
    Endpoint,
    Registration,
    Store,
    iso,
)

MAX_SEED_ENDPOINTS = 1_000_000
MAX_SEED_APPLICATIONS = 10_000

# Share of seeded registrations whose device keeps refreshing; the rest lapse at their first expiry.
RENEW_PERCENT = 85

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


def renews(seed: Any, endpoint_id: str) -> bool:
    """Whether a seeded device on this endpoint keeps refreshing its registration."""
    # crc32 rather than hash(): str hashes are salted per process and would break determinism.
    return zlib.crc32(f"{seed}:{endpoint_id}".encode()) % 100 < RENEW_PERCENT


def long_suffix(rng: random.Random) -> str:
    """The 19-22 digit suffix the live API appends to a new endpoint's username."""
    length = 19 + int(rng.random() * 4)
    return str(rng.randrange(10 ** (length - 1), 10**length))


def random_username(rng: random.Random, name: str) -> str:
    r = rng.random()
    if r < 0.55:
        return f"{name}{rng.randrange(1, 100000)}"
    if r < 0.75:
        return f"{rng.choice(ROLE_WORDS)}{rng.randrange(1, 1000)}"
    # Created since the API started rewriting usernames.
    return f"{name if r < 0.85 else rng.choice(ROLE_WORDS)}{long_suffix(rng)}"


def random_alias(rng: random.Random, name: str) -> str:
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


def random_registration(
    rng: random.Random, username: str, now: float, eid: str, seed: Any
) -> Registration:
    """A live device on the endpoint: a native SIP phone, or now and then a browser."""
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
            renews=renews(seed, eid),
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
        renews=renews(seed, eid),
    )


def application_dict(
    *,
    app_uri: str,
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
    """An application in its API shape; ``app_uri`` is the account's Application/ URI."""
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
        "resource_uri": f"{app_uri}{app_id}/",
        "created_at": iso(created),
        "updated_at": iso(updated),
    }


def seed_account(
    store: Store,
    rng: random.Random,
    *,
    endpoints: int,
    applications: int,
    seed: Any,
    hostile: bool,
    now: float,
    app_uri: str,
    sub_accounts: int | None = None,
) -> None:
    """Fill an empty ``store``: applications first, then the hostile records, then endpoints.

    About 30% of the endpoints belong to sub-accounts: ``sub_accounts`` of them when given,
    else two or three.

    ``rng`` must be the state's generator freshly seeded from ``seed``; it is left advanced, and
    the state keeps drawing from it (new ids, username suffixes), so the order of draws here is
    part of the determinism promise.
    """
    _seed_applications(store, rng, applications, app_uri)
    if hostile:
        _seed_hostile(store, seed, now, app_uri)
    _seed_endpoints(store, rng, endpoints, now, seed=seed, hostile=hostile,
                    sub_accounts=sub_accounts)


def _seed_applications(store: Store, rng: random.Random, count: int, app_uri: str) -> None:
    default_endpoint_index = 1 if count > 1 else 0
    span = CREATED_TO - CREATED_FROM
    for i in range(count):
        app_id = store.new_app_id(rng)
        base = APP_NAMES[i % len(APP_NAMES)]
        name = base if i < len(APP_NAMES) else f"{base} {i // len(APP_NAMES) + 1}"
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        host = APP_HOSTS[i % len(APP_HOSTS)]
        created = CREATED_FROM + int(span * i / max(count, 1) * 0.2)
        store.apps[app_id] = application_dict(
            app_uri=app_uri,
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


def _seed_hostile(store: Store, seed: Any, now: float, app_uri: str) -> None:
    rng = random.Random(f"vobiz-sandbox-hostile:{seed}")
    app_id = store.new_app_id(rng)
    created = CREATED_FROM - 86400 * 30
    store.apps[app_id] = application_dict(
        app_uri=app_uri,
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
        eid = store.new_endpoint_id(rng)
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
        store.add(ep)


def _seed_endpoints(
    store: Store, rng: random.Random, count: int, now: float, *, seed: Any, hostile: bool,
    sub_accounts: int | None = None,
) -> None:
    rand = rng.random
    choice = rng.choice
    app_ids = list(store.apps)
    if hostile:
        app_ids = app_ids[:-1]  # the hostile app is only linked from the hostile endpoints
    n_apps = len(app_ids)
    n_subs = 2 + int(rand() * 2)  # drawn either way: the same seed gives the same data
    if sub_accounts:
        n_subs = sub_accounts
    subs = [
        "SA_" + "".join(choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(10))
        for _ in range(n_subs)
    ]
    span = CREATED_TO - CREATED_FROM
    step = span / max(count, 1)
    by_username = store.by_username
    for i in range(count):
        legacy = LEGACY_RECORDS.get(i)
        name = choice(FIRST_NAMES)
        if legacy:
            username = legacy["username"]
        else:
            while True:
                username = random_username(rng, name)
                if username not in by_username:
                    break
        eid = store.new_endpoint_id(rng)
        created = CREATED_FROM + int((i + rand()) * step)
        updated = created + int(rand() ** 2 * (CREATED_TO - created))
        alias = legacy["alias"] if legacy else random_alias(rng, name)
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
                contact, agent, received, None, int(now) + 1500, 1800, renews(seed, eid)
            )
        elif rand() < 0.4:
            ep.registration = random_registration(rng, username, now, eid, seed)
        ep.seeded = True  # device churn may drive it (the hostile records keep their payloads)
        store.add(ep)
