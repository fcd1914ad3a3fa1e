"""Device churn for the Vobiz API sandbox: registrations that change with the clock.

Each seeded endpoint gets a behaviour profile from a stable hash of (seed, endpoint id):

========== ====== ==========================================================================
steady      60%   desk phone: always registered, same contact, renews every interval
office      15%   softphone: registered on weekdays only, from about 08:00 to 18:00 UTC (each
                  end moves by up to an hour: per endpoint, and again per day); offline at
                  night and at weekends; a new NAT port (``received``) each day
flapper      5%   registered, but drops for 1-3 minutes, 2-4 times an hour; each reconnect
                  comes from a new NAT port
roaming      5%   mobile: always registered, but moves between 2-3 networks (contact host and
                  ``received`` change, user agent stays) every 2-4 hours, give or take 45 min
never       15%   never registers
========== ====== ==========================================================================

Everything here is a pure function of (seed, endpoint id, username, epoch seconds): nothing is
stored per tick, so the answer is the same however often, and in whatever order, it is read.
Every boundary falls on a whole minute, so ``churn_timeline`` is exact to the second. While
registered, a device's expiry is the end of its current renewal interval on a grid that starts
when it (re)registered, so ``expires`` is always ahead of the clock.

Contacts, user agents and ``received`` addresses look like those ``demo.random_registration``
makes, from the same constants and in the same shares (about one device in eight is a browser
on WebSocket, which the API reports as ``sip_registered`` "false"). Each device is drawn from
one blake2b digest of (seed, endpoint id), and the state builds it once per endpoint.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any, NamedTuple

from vobizadmin.sandbox.demo import (
    BROWSER_USER_AGENTS,
    NATIVE_USER_AGENTS,
    PRIVATE_PREFIXES,
    PUBLIC_PREFIXES,
    REGISTER_INTERVALS,
)
from vobizadmin.sandbox.records import Registration

MINUTE = 60
HOUR = 3600
DAY = 86400

# Profile name -> percent of seeded endpoints (in this order along the 0-99 hash range).
PROFILE_SHARES: dict[str, int] = {
    "steady": 60,
    "office": 15,
    "flapper": 5,
    "roaming": 5,
    "never": 15,
}
PROFILES = tuple(PROFILE_SHARES)

OFFICE_START = 8 * HOUR
OFFICE_END = 18 * HOUR
OFFICE_JITTER_MINUTES = 30  # per endpoint, and again per day: up to an hour at each end
ROAMING_PERIODS = (2 * HOUR, 3 * HOUR, 4 * HOUR)
ROAMING_JITTER_MINUTES = 45
MEMO_SIZE = 4
BROWSER_PERCENT = 12  # as in demo.random_registration
WS_PATH = "<sip:edge1.vobiz.ai:7443;transport=wss;lr;ob>"


class Span(NamedTuple):
    """One stretch of ``[start, end)`` epoch seconds in which the device was registered with
    the same contact, user agent and ``received`` address."""

    start: int
    end: int
    contact: str
    user_agent: str
    received: str


def profile_of(seed: Any, endpoint_id: str) -> str:
    """The behaviour profile of a seeded endpoint (stable across processes: crc32, not hash())."""
    point = zlib.crc32(f"vobiz-churn:{seed}:{endpoint_id}".encode()) % 100
    for name, share in PROFILE_SHARES.items():
        if point < share:
            return name
        point -= share
    return PROFILES[-1]


def _mix(key: str, tag: str, n: int) -> int:
    """A 64-bit hash of (key, tag, n): the per-day, per-hour and per-move draws."""
    digest = hashlib.blake2b(f"{key}:{tag}:{n}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _bits(key: str) -> int:
    """256 bits from blake2b of ``key``: every draw a device makes when it is built (under 200;
    small enough a number that each draw's divmod stays cheap)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=32).digest(), "big")


def _phone(x: int, username: str) -> tuple[str, str, str, str | None, int, int]:
    """A device as ``demo.random_registration`` makes them (same constants and shares: about one
    in eight a browser on WebSocket), drawn from the bits of ``x`` rather than a
    ``random.Random``, which costs more to seed than the rest of a device costs to build.

    Returns (contact, user_agent, received, path, interval, the unused bits of ``x``).
    """
    x, pick = divmod(x, len(REGISTER_INTERVALS))
    interval = REGISTER_INTERVALS[pick]
    x, pick = divmod(x, len(PUBLIC_PREFIXES))
    x, host = divmod(x, 253)
    public = f"{PUBLIC_PREFIXES[pick]}{host + 2}"
    x, percent = divmod(x, 100)
    if percent < BROWSER_PERCENT:
        token = format(x & 0xFFFFFFFF, "08x")
        name = format(x >> 32 & 0xFFFFFFFFFFFF, "012x")
        x >>= 80
        x, pick = divmod(x, len(BROWSER_USER_AGENTS))
        x, port = divmod(x, 65535 - 49152)
        contact = f"sip:{token}@{name}.invalid;transport=ws"
        return (
            contact,
            BROWSER_USER_AGENTS[pick],
            f"{public}:{49152 + port}",
            WS_PATH,
            interval,
            x,
        )
    x, tenth = divmod(x, 10)
    transport = "udp" if tenth < 6 else ("tcp" if tenth < 8 else "tls")
    x, pick = divmod(x, len(PRIVATE_PREFIXES))
    x, host = divmod(x, 253)
    private = f"{PRIVATE_PREFIXES[pick]}{host + 2}"
    x, style = divmod(x, 20)
    x, port = divmod(x, 65535 - 1024)
    if style < 9:
        contact = f"sip:{username}@{public}:{port + 1024};transport={transport}"
    elif style < 16:
        contact = f"sip:{username}@{private}:{5061 if transport == 'tls' else 5060}"
    else:
        contact = f"{private}:{5061 if transport == 'tls' else 5060}"
    x, pick = divmod(x, len(NATIVE_USER_AGENTS))
    x, port = divmod(x, 65535 - 1024)
    return contact, NATIVE_USER_AGENTS[pick], f"{public}:{port + 1024}", None, interval, x


def _host(received: str) -> str:
    return received.rsplit(":", 1)[0]


def _port(base: int, n: int) -> int:
    """A NAT port for the ``n``-th connection: deterministic arithmetic, no hashing."""
    return 1024 + (base + n * 7919) % 64511


class _Device:
    """A device's behaviour. ``at(now)`` is its registration at an instant; ``spans(start,
    end)`` the stretches of ``[start, end)`` in which it was registered.

    ``memo`` keeps the last few per-day, per-hour or per-move draws: a pure cache (the draws
    depend only on the key and the number), so a list render need not hash again.
    """

    profile = ""
    __slots__ = ("key", "memo")

    def _memoized(self, n: int) -> Any:
        memo = self.memo
        return None if memo is None else memo.get(n)

    def _remember(self, n: int, value: Any) -> Any:
        memo = self.memo
        if memo is None or len(memo) >= MEMO_SIZE:
            memo = self.memo = {}
        memo[n] = value
        return value

    def at(self, now: float) -> Registration | None:
        raise NotImplementedError

    def spans(self, start: int, end: int) -> list[Span]:
        raise NotImplementedError


class _Never(_Device):
    profile = "never"
    __slots__ = ()

    def at(self, now: float) -> Registration | None:
        return None

    def spans(self, start: int, end: int) -> list[Span]:
        return []


NEVER = _Never()


class _Phone(_Device):
    """A device with one contact and user agent (see ``_phone``)."""

    __slots__ = (
        "contact",
        "user_agent",
        "received_host",
        "received",
        "path",
        "interval",
        "port_base",
        "rest",
    )

    def __init__(self, key: str, username: str, x: int):
        self.key = key
        self.memo = None
        (self.contact, self.user_agent, self.received, self.path, self.interval, x) = _phone(
            x, username
        )
        self.received_host = _host(self.received)
        self.port_base = x % 64511
        self.rest = x // 64511

    def _registration(self, since: int, t: int, received: str) -> Registration:
        """Registered since ``since``: it expires at the end of the current interval."""
        interval = self.interval
        expires = since + ((t - since) // interval + 1) * interval
        return Registration(
            self.contact, self.user_agent, received, self.path, expires, interval, True
        )

    def _span(self, since: int, until: int, start: int, end: int, received: str) -> Span | None:
        lo, hi = max(since, start), min(until, end)
        if lo >= hi:
            return None
        return Span(lo, hi, self.contact, self.user_agent, received)


class _Steady(_Phone):
    profile = "steady"
    __slots__ = ("phase",)

    def __init__(self, key: str, username: str, x: int):
        super().__init__(key, username, x)
        self.phase = self.rest % self.interval

    def at(self, now: float) -> Registration | None:
        return self._registration(self.phase, int(now), self.received)

    def spans(self, start: int, end: int) -> list[Span]:
        span = self._span(start, end, start, end, self.received)
        return [span] if span else []


class _Office(_Phone):
    profile = "office"
    __slots__ = ("shift_in", "shift_out")

    def __init__(self, key: str, username: str, x: int):
        super().__init__(key, username, x)
        jitter = 2 * OFFICE_JITTER_MINUTES + 1
        x, shift_in = divmod(self.rest, jitter)
        self.shift_in = (shift_in - OFFICE_JITTER_MINUTES) * MINUTE
        self.shift_out = (x % jitter - OFFICE_JITTER_MINUTES) * MINUTE

    def window(self, day: int) -> tuple[int, int, str] | None:
        """(from, to, received) of day number ``day`` (days since the epoch), None at weekends."""
        if (day + 3) % 7 >= 5:  # day 0, 1970-01-01, was a Thursday
            return None
        return self._memoized(day) or self._remember(day, self._window(day))

    def _window(self, day: int) -> tuple[int, int, str]:
        jitter = 2 * OFFICE_JITTER_MINUTES + 1
        x = _mix(self.key, "office", day)
        midnight = day * DAY
        start = midnight + OFFICE_START + self.shift_in
        end = midnight + OFFICE_END + self.shift_out
        start += (x % jitter - OFFICE_JITTER_MINUTES) * MINUTE
        end += (x // jitter % jitter - OFFICE_JITTER_MINUTES) * MINUTE
        return start, end, f"{self.received_host}:{_port(self.port_base, day)}"

    def at(self, now: float) -> Registration | None:
        t = int(now)
        window = self.window(t // DAY)
        if window is None or not window[0] <= t < window[1]:
            return None
        return self._registration(window[0], t, window[2])

    def spans(self, start: int, end: int) -> list[Span]:
        out = []
        for day in range(start // DAY, (end - 1) // DAY + 1):
            window = self.window(day)
            if window is not None:
                span = self._span(window[0], window[1], start, end, window[2])
                if span:
                    out.append(span)
        return out


class _Flapper(_Phone):
    profile = "flapper"
    __slots__ = ()

    def drops(self, hour: int) -> list[tuple[int, int]]:
        """The [from, to) drops of hour number ``hour``: 2-4 of them, 1-3 minutes each, one in
        each equal slot of the hour (so they never overlap and never cross the hour)."""
        return self._memoized(hour) or self._remember(hour, self._drops(hour))

    def _drops(self, hour: int) -> list[tuple[int, int]]:
        x = _mix(self.key, "flap", hour)
        count = 2 + x % 3
        x //= 3
        slot = 60 // count
        base = hour * HOUR
        out = []
        for i in range(count):
            minutes = 1 + x % 3
            x //= 3
            room = slot - minutes + 1
            first = i * slot + x % room
            x //= room
            out.append((base + first * MINUTE, base + (first + minutes) * MINUTE))
        return out

    def _received(self, since: int) -> str:
        return f"{self.received_host}:{_port(self.port_base, since // MINUTE)}"

    def at(self, now: float) -> Registration | None:
        t = int(now)
        hour = t // HOUR
        since = None
        for drop_from, drop_to in self.drops(hour):
            if drop_from <= t < drop_to:
                return None
            if drop_to <= t:
                since = drop_to
        if since is None:
            since = self.drops(hour - 1)[-1][1]  # every hour has drops
        return self._registration(since, t, self._received(since))

    def spans(self, start: int, end: int) -> list[Span]:
        out = []
        since = self.drops(start // HOUR - 1)[-1][1]
        for hour in range(start // HOUR, (end - 1) // HOUR + 1):
            for drop_from, drop_to in self.drops(hour):
                span = self._span(since, drop_from, start, end, self._received(since))
                if span:
                    out.append(span)
                since = drop_to
        span = self._span(since, end, start, end, self._received(since))
        if span:
            out.append(span)
        return out


class _Roaming(_Device):
    profile = "roaming"
    __slots__ = ("networks", "user_agent", "interval", "period", "offset", "step", "first")

    def __init__(self, key: str, username: str, x: int):
        self.key = key
        self.memo = None
        x, pick = divmod(x, len(NATIVE_USER_AGENTS))
        self.user_agent = NATIVE_USER_AGENTS[pick]
        x, pick = divmod(x, len(REGISTER_INTERVALS))
        self.interval = REGISTER_INTERVALS[pick]
        x, pick = divmod(x, 3)
        transport = ("udp", "tcp", "tls")[pick]
        x, more = divmod(x, 2)
        count = 2 + more
        networks: list[tuple[str, str]] = []
        publics: list[str] = []
        for _ in range(count):
            x, pick = divmod(x, len(PUBLIC_PREFIXES))
            x, host = divmod(x, 253)
            public = f"{PUBLIC_PREFIXES[pick]}{host + 2}"
            while public in publics:  # each network has its own address
                host = (host + 1) % 253
                public = f"{PUBLIC_PREFIXES[pick]}{host + 2}"
            publics.append(public)
            x, port = divmod(x, 65535 - 1024)
            x, nat = divmod(x, 65535 - 1024)
            x, aware = divmod(x, 2)
            if aware:  # the app learnt its public address (rport/STUN)
                contact = f"sip:{username}@{public}:{port + 1024};transport={transport}"
            else:
                x, pick = divmod(x, len(PRIVATE_PREFIXES))
                x, host = divmod(x, 253)
                private = f"{PRIVATE_PREFIXES[pick]}{host + 2}"
                contact = f"sip:{username}@{private}:{5061 if transport == 'tls' else 5060}"
            networks.append((contact, f"{public}:{nat + 1024}"))
        self.networks = tuple(networks)
        x, pick = divmod(x, len(ROAMING_PERIODS))
        self.period = ROAMING_PERIODS[pick]
        x, offset = divmod(x, self.period // MINUTE)
        self.offset = offset * MINUTE
        x, step = divmod(x, 2)
        self.step = 1 if count == 2 else 1 + step  # coprime with count: every move moves
        self.first = x % count

    def move(self, n: int) -> int:
        """When the device joins its ``n``-th network (epoch seconds, on a whole minute)."""
        moved = self._memoized(n)
        if moved is None:
            moved = self._remember(n, self._move(n))
        return moved

    def _move(self, n: int) -> int:
        jitter = _mix(self.key, "move", n) % (ROAMING_JITTER_MINUTES + 1)
        return self.offset + n * self.period + jitter * MINUTE

    def _network(self, n: int) -> tuple[str, str]:
        return self.networks[(self.first + n * self.step) % len(self.networks)]

    def _index(self, t: int) -> int:
        n = (t - self.offset) // self.period
        return n if t >= self.move(n) else n - 1

    def at(self, now: float) -> Registration | None:
        t = int(now)
        n = self._index(t)
        since = self.move(n)
        contact, received = self._network(n)
        interval = self.interval
        expires = since + ((t - since) // interval + 1) * interval
        return Registration(contact, self.user_agent, received, None, expires, interval, True)

    def spans(self, start: int, end: int) -> list[Span]:
        out = []
        n = self._index(start)
        since = start
        while since < end:
            until = min(self.move(n + 1), end)
            contact, received = self._network(n)
            out.append(Span(since, until, contact, self.user_agent, received))
            since = until
            n += 1
        return out


_KINDS = {"steady": _Steady, "office": _Office, "flapper": _Flapper, "roaming": _Roaming}


def device(seed: Any, endpoint_id: str, username: str) -> _Device:
    """The behaviour of a seeded endpoint's device: ``.profile``, ``.at(now)`` and
    ``.spans(start, end)``. Deterministic; cheap enough to build once per endpoint and keep."""
    profile = profile_of(seed, endpoint_id)
    if profile == "never":
        return NEVER
    key = f"{seed}:{endpoint_id}"
    x = _bits(f"vobiz-churn-device:{key}")
    return _KINDS[profile](key, username, x)


def registration_at(seed: Any, endpoint_id: str, username: str, now: float) -> Registration | None:
    """The endpoint's registration at epoch second ``now`` (None when no device is registered)."""
    return device(seed, endpoint_id, username).at(now)


def churn_timeline(seed: Any, endpoint_id: str, username: str, start: int, end: int) -> list[Span]:
    """The stretches of ``[start, end)`` (epoch seconds) in which the endpoint was registered,
    in order, one ``Span(start, end, contact, user_agent, received)`` per unchanged device.

    Adjacent spans (one's ``end`` is the next one's ``start``) mean the address changed
    without a gap; a gap means the device was offline. Spans are clipped to ``[start, end)``.
    """
    start, end = int(start), int(end)
    if end <= start:
        return []
    return device(seed, endpoint_id, username).spans(start, end)
