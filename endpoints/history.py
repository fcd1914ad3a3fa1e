"""Registration history: what syncs and live reads observe, kept as changes.

Vobiz answers only "registered now, or not". Each sync and each live read compares what it
sees with the cached row, and a *change* (came online, went offline, another device, another
address, another contact; not a renewal's new expiry) becomes a ``RegistrationEvent``, the
endpoint's ``online_since`` / ``last_seen_at`` / ``last_drop_at`` columns move with it, and
the hour's ``RegistrationTally`` counts it for the overview. An unchanged registration writes
nothing, so a sync in which 1% of registrations changed writes 1% of rows.

A sync knows which rows changed registration without reading them: ``Endpoint.registration_key``
(a hash of registered / contact / device) is read with the fingerprints it already reads, and
only the rows whose key differs are read in full (``registration_olds``).

History begins with the first complete sync after it was installed (``SyncState.history_since``):
that sync takes what it sees as the starting point and records no change.

Times are as observed: a change is seen at the sync (every VOBIZ_SYNC_INTERVAL, a minute by
default) or live read that finds it, except a drop, dated when the old registration ran out if
that was earlier (a registration cannot outlive its expiry).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import Endpoint, RegistrationEvent, RegistrationTally, Schedule, SyncState
from .vobiz import RemoteEndpoint

Kind = RegistrationEvent.Kind
SYNC_NAME = "endpoints"
# Changes counted as a drop (the chart's "went offline"), and as coming online.
DROPS = (Kind.OFFLINE, Kind.DELETED)
# How many drops within an hour make an endpoint "flapping".
FLAP_DROPS = 3
FLAP_WINDOW = timedelta(hours=1)
# A different device or address within this window is reported on the endpoint page.
CREDENTIAL_WARNING_WINDOW = timedelta(days=7)
PRUNE_BATCH = 5000
OFFLINE_KEY = hashlib.blake2b(b"offline", digest_size=8).hexdigest()


def retention() -> timedelta:
    return timedelta(days=getattr(settings, "REGISTRATION_HISTORY_DAYS", 90))


# --- what counts as a change ----------------------------------------------------------------


def registration_key(remote: RemoteEndpoint) -> str:
    """A short hash of what a change is: registered or not, and if so its contact and device.
    The expiry is left out: a renewal is not a change."""
    reg = remote.registration
    if not remote.is_registered or reg is None:
        return OFFLINE_KEY
    text = f"1\x1f{reg.contact}\x1f{reg.user_agent}"
    return hashlib.blake2b(text.encode(errors="surrogatepass"), digest_size=8).hexdigest()


def contact_host(contact: str) -> str:
    """The host a SIP contact names, lower-cased: ``sip:alice@203.0.113.5:5060;transport=udp``,
    ``<sips:alice@[2001:db8::1]:5061>`` and ``203.0.113.5:5060`` give the address alone."""
    text = (contact or "").strip().strip("<>").strip()
    lowered = text.lower()
    for scheme in ("sips:", "sip:"):
        if lowered.startswith(scheme):
            text = text[len(scheme):]
            break
    text = text.split(";", 1)[0].split(">", 1)[0].split("?", 1)[0]
    text = text.rsplit("@", 1)[-1]
    if text.startswith("["):
        return text[1:].split("]", 1)[0].lower()
    if text.count(":") > 1:  # a bare IPv6 address
        return text.lower()
    return text.split(":", 1)[0].lower()


@dataclass(frozen=True)
class OldRegistration:
    """What the cache held for an endpoint before this observation."""

    endpoint_id: str
    registered: bool
    contact: str
    user_agent: str
    expires: datetime | None
    online_since: datetime | None
    last_seen_at: datetime | None
    last_drop_at: datetime | None
    synced_at: datetime | None


OLD_COLUMNS = ("endpoint_id", "sip_registered", "sip_contact", "sip_user_agent", "sip_expires",
               "online_since", "last_seen_at", "last_drop_at", "synced_at")


def registration_olds(endpoint_ids: Iterable[str]) -> dict[str, OldRegistration]:
    """The cached registrations of ``endpoint_ids`` (those the cache has)."""
    ids = list(endpoint_ids)
    olds = {}
    for start in range(0, len(ids), 500):
        for row in (Endpoint.objects.filter(endpoint_id__in=ids[start:start + 500])
                    .values_list(*OLD_COLUMNS)):
            olds[row[0]] = OldRegistration(*row)
    return olds


@dataclass
class Observation:
    """What one observation of one endpoint changes: events to record, and the endpoint's
    history columns (None: they stay as they are)."""

    endpoint_id: str
    events: list[RegistrationEvent]
    columns: tuple | None = None  # (online_since, last_seen_at, last_drop_at)


def _event(remote: RemoteEndpoint, kind: int, at: datetime) -> RegistrationEvent:
    reg = remote.registration if kind not in DROPS else None
    return RegistrationEvent(
        endpoint_id=remote.endpoint_id,
        sub_account=remote.sub_account[:64],
        at=at,
        kind=kind,
        contact=(reg.contact if reg else "")[:1000],
        user_agent=(reg.user_agent if reg else "")[:512],
        received=(reg.received if reg else "")[:255],
    )


def registration_observe(old: OldRegistration | None, remote: RemoteEndpoint, *,
                         now: datetime) -> Observation | None:
    """What seeing ``remote`` at ``now`` changes, given what the cache held (None: the
    endpoint is new to the cache). None when nothing changed."""
    registered = remote.is_registered and remote.registration is not None
    if old is None:
        if not registered:
            return None
        return Observation(remote.endpoint_id, [_event(remote, Kind.ONLINE, now)],
                           (now, None, None))
    if old.registered and not registered:
        # It went offline at the latest when its registration ran out.
        at = min(now, old.expires) if old.expires else now
        if old.online_since and at < old.online_since:
            at = old.online_since
        return Observation(remote.endpoint_id, [_event(remote, Kind.OFFLINE, at)],
                           (None, at, at))
    if not registered:
        return None
    if not old.registered:
        return Observation(remote.endpoint_id, [_event(remote, Kind.ONLINE, now)],
                           (now, None, old.last_drop_at))
    reg = remote.registration
    if reg.user_agent != old.user_agent:
        kind = Kind.DEVICE
    elif contact_host(reg.contact) != contact_host(old.contact):
        kind = Kind.ADDRESS
    elif reg.contact[:1000] != old.contact:
        kind = Kind.CONTACT
    else:
        return None
    return Observation(remote.endpoint_id, [_event(remote, kind, now)])


def history_since() -> datetime | None:
    """When history began (None: not yet: the next complete sync is its starting point)."""
    return (SyncState.objects.filter(name=SYNC_NAME)
            .values_list("history_since", flat=True).first())


def history_recording() -> bool:
    """Whether observations are recorded now: history is on (REGISTRATION_HISTORY) and has
    begun."""
    return getattr(settings, "REGISTRATION_HISTORY", True) and history_since() is not None


def history_begin(at: datetime) -> None:
    """Mark the start of history (a complete sync's start), once."""
    if not getattr(settings, "REGISTRATION_HISTORY", True):
        return
    SyncState.objects.filter(name=SYNC_NAME, history_since__isnull=True).update(history_since=at)


# --- writing --------------------------------------------------------------------------------


def history_record(observations: Iterable[Observation]) -> int:
    """Write ``observations``: their events, the endpoints' history columns and the hourly
    tallies, in the caller's transaction (or one of their own). Returns how many events."""
    events: list[RegistrationEvent] = []
    columns = []
    for observation in observations:
        events.extend(observation.events)
        if observation.columns is not None:
            columns.append(observation.columns + (observation.endpoint_id,))
    if not events and not columns:
        return 0
    tallies: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for event in events:
        hour = _utc_hour(event.at)
        if event.kind == Kind.ONLINE:
            tallies[hour, event.sub_account][0] += 1
        elif event.kind in DROPS:
            tallies[hour, event.sub_account][1] += 1
    ops = connection.ops
    adapt = ops.adapt_datetimefield_value
    quote = ops.quote_name
    with transaction.atomic():
        if events:
            RegistrationEvent.objects.bulk_create(events, batch_size=500)
        if columns:
            table = quote(Endpoint._meta.db_table)
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"UPDATE {table} SET {quote('online_since')} = %s, "  # noqa: S608
                    f"{quote('last_seen_at')} = %s, {quote('last_drop_at')} = %s "
                    f"WHERE {quote('endpoint_id')} = %s",
                    [(adapt(a), adapt(b), adapt(c), eid) for a, b, c, eid in columns])
        if tallies:
            table = quote(RegistrationTally._meta.db_table)
            online, offline = quote("came_online"), quote("went_offline")
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {table} ({quote('hour')}, {quote('sub_account')}, "  # noqa: S608
                    f"{online}, {offline}) VALUES (%s, %s, %s, %s) "
                    f"ON CONFLICT ({quote('hour')}, {quote('sub_account')}) DO UPDATE SET "
                    f"{online} = {table}.{online} + EXCLUDED.{online}, "
                    f"{offline} = {table}.{offline} + EXCLUDED.{offline}",
                    [(adapt(hour), sub, up, down) for (hour, sub), (up, down) in tallies.items()])
    return len(events)


def _utc_hour(moment: datetime) -> datetime:
    moment = moment.astimezone(timezone.get_fixed_timezone(0)) if moment.tzinfo else moment
    return moment.replace(minute=0, second=0, microsecond=0)


def registration_live_observe(old: OldRegistration | None, remote: RemoteEndpoint) -> None:
    """Record what a live read of one endpoint observed (nothing before history began)."""
    if not history_recording():
        return
    observation = registration_observe(old, remote, now=timezone.now())
    if observation is not None:
        history_record([observation])


def registration_removed(endpoint_ids: Iterable[str], *, now: datetime | None = None) -> None:
    """Before endpoints leave the cache (deleted at Vobiz): those registered drop out of the
    account's registered count, so the chart's history adds up."""
    if not history_recording():
        return
    now = now or timezone.now()
    ids = list(endpoint_ids)
    observations = []
    for start in range(0, len(ids), 500):
        rows = (Endpoint.objects.filter(endpoint_id__in=ids[start:start + 500],
                                        sip_registered=True)
                .values_list("endpoint_id", "sub_account"))
        for endpoint_id, sub_account in rows:
            observations.append(Observation(endpoint_id, [RegistrationEvent(
                endpoint_id=endpoint_id, sub_account=sub_account, at=now, kind=Kind.DELETED)]))
    history_record(observations)


PRUNE_SCHEDULE = "history-prune"
PRUNE_EVERY = timedelta(hours=1)


def history_prune_enqueue_if_due(*, now: datetime | None = None) -> bool:
    """Queue the prune task when the last was queued more than PRUNE_EVERY ago (the periodic
    tick asks every few seconds; one conditional UPDATE decides, across workers)."""
    from .tasks import prune_history

    now = now or timezone.now()
    Schedule.objects.get_or_create(name=PRUNE_SCHEDULE, defaults={"token": "", "next_run_at": now})
    due = (Schedule.objects.filter(name=PRUNE_SCHEDULE, next_run_at__lte=now)
           .update(last_run_at=now, next_run_at=now + PRUNE_EVERY))
    if due:
        prune_history.enqueue()
    return bool(due)


def history_prune(*, now: datetime | None = None) -> int:
    """Delete history older than the retention window (REGISTRATION_HISTORY_DAYS), a batch
    at a time so that no transaction holds the table long. Returns how many changes."""
    cutoff = (now or timezone.now()) - retention()
    deleted = 0
    while True:
        ids = list(RegistrationEvent.objects.filter(at__lt=cutoff).order_by()
                   .values_list("id", flat=True)[:PRUNE_BATCH])
        if not ids:
            break
        RegistrationEvent.objects.filter(id__in=ids).delete()
        deleted += len(ids)
    RegistrationTally.objects.filter(hour__lt=_utc_hour(cutoff)).delete()
    return deleted


# --- reading: one endpoint's timeline -------------------------------------------------------

TIMELINE_EVENTS = 500


@dataclass
class Period:
    """One registration, unbroken, of one device at one contact."""

    start: datetime | None  # None: before history began (or before the events shown)
    end: datetime | None  # None: still registered
    user_agent: str
    contact: str
    received: str
    began_as: str  # what started it: "online", or the change (another device, address...)
    ended_by: str = ""  # "offline", "deleted", or the change that replaced it


@dataclass
class Timeline:
    periods: list[Period]  # newest first
    drops_hour: int
    drops_day: int
    flapping: tuple[datetime, datetime, int] | None  # the worst hour in the last 24 h
    # Another device or address, newest first: (the change, the registration it replaced).
    credential_changes: list[tuple[RegistrationEvent, Period | None]]
    since: datetime | None  # when history began
    truncated: bool  # older changes exist than those shown


_STARTS = {Kind.ONLINE: "online", Kind.DEVICE: "device", Kind.ADDRESS: "address",
           Kind.CONTACT: "contact"}


def registration_timeline(endpoint: Endpoint, *, now: datetime | None = None) -> Timeline:
    """The endpoint's registrations as periods (newest first), its drops, whether it flaps
    (FLAP_DROPS drops within an hour, in the last 24 hours) and the devices or addresses that
    registered with its credentials in CREDENTIAL_WARNING_WINDOW. One query; ``endpoint``
    comes from a scoped read, so the caller has already checked that it may be seen."""
    now = now or timezone.now()
    rows = list(RegistrationEvent.objects.filter(endpoint_id=endpoint.endpoint_id)
                .order_by("-at", "-id")[:TIMELINE_EVENTS + 1])
    truncated = len(rows) > TIMELINE_EVENTS
    events = list(reversed(rows[:TIMELINE_EVENTS]))
    periods: list[Period] = []
    changes: list[tuple[RegistrationEvent, Period | None]] = []
    current: Period | None = None
    for event in events:
        if event.kind in (Kind.DEVICE, Kind.ADDRESS):
            changes.append((event, current))
        if event.kind in DROPS:
            if current is None:  # registered since before the changes shown
                current = Period(None, None, "", "", "", "online")
                periods.append(current)
            current.end = event.at
            current.ended_by = "deleted" if event.kind == Kind.DELETED else "offline"
            current = None
            continue
        if current is not None:
            current.end = event.at
            current.ended_by = _STARTS[event.kind]
        elif event.kind != Kind.ONLINE:  # a change while registered since before the window
            periods.append(Period(None, event.at, "", "", "", "online", _STARTS[event.kind]))
        current = Period(event.at, None, event.user_agent, event.contact, event.received,
                         _STARTS[event.kind])
        periods.append(current)
    if not events and endpoint.sip_registered:
        periods.append(Period(endpoint.online_since, None, endpoint.sip_user_agent,
                              endpoint.sip_contact, "", "online"))
    drops = [e.at for e in events if e.kind in DROPS and e.at > now - timedelta(days=1)]
    flapping = None
    for index in range(len(drops) - FLAP_DROPS + 1):
        window = [at for at in drops[index:] if at - drops[index] <= FLAP_WINDOW]
        if len(window) >= FLAP_DROPS and (flapping is None or len(window) > flapping[2]):
            flapping = (window[0], window[-1], len(window))
    recent = [(e, before) for e, before in reversed(changes)
              if e.at > now - CREDENTIAL_WARNING_WINDOW]
    return Timeline(
        periods=list(reversed(periods)),
        drops_hour=sum(1 for at in drops if at > now - FLAP_WINDOW),
        drops_day=len(drops),
        flapping=flapping,
        credential_changes=recent,
        since=history_since(),
        truncated=truncated,
    )
