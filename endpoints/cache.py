"""The local cache of Vobiz data: how a Vobiz record becomes a cache row, and how rows are
written (one at a time after a live read, or in bulk by a sync).

Every write that changes the endpoint cache bumps ``SyncState.data_version`` through
``cache_version_bump``: the list's cached counts and choices are kept per version
(``selectors``), so a change shows everywhere at once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from contextlib import contextmanager

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from . import history
from .models import Application, Endpoint, SyncState
from .vobiz import PERMISSIONS, RemoteApplication, RemoteEndpoint

# The sync-state row that carries the cache version (and the endpoints sync's lock).
SYNC_NAME = "endpoints"
UPSERT_BATCH = 500
ENDPOINT_COLUMNS = [
    "username",
    "alias",
    "sip_uri",
    "sub_account",
    "app_id",
    "app_name",
    "sip_registered",
    "sip_contact",
    "sip_user_agent",
    "sip_expires",
    *PERMISSIONS,
    "created_at",
    "updated_at",
    "raw",
    "fingerprint",
    "registration_key",
    "synced_at",
]


# --- cache rows ---------------------------------------------------------------------------


_canonical_json = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":")).encode


def _raw_json(remote: RemoteEndpoint) -> str:
    """The payload as canonical JSON (sorted keys, no spaces): what the fingerprint hashes
    and what a sync stores. orjson does it in a tenth of the time json takes, which was a
    sixth of a sync's CPU; the standard library takes what orjson refuses (integers beyond
    64 bits, lone surrogates: a payload may hold anything)."""
    try:
        return orjson.dumps(remote.raw, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return _canonical_json(remote.raw)


def _datetime_adapter(ops) -> Callable:
    """The backend's datetime adapter, or on SQLite (with USE_TZ) the same conversion
    without Django's per-call checks: a sync adapts ~250,000 timestamps per 100,000
    endpoints. Values are aware (the client makes them so); a naive one takes Django's path."""
    if connection.vendor != "sqlite" or not settings.USE_TZ:
        return ops.adapt_datetimefield_value
    zone = connection.timezone

    def adapt(value):
        if value is None or value.tzinfo is None:
            return ops.adapt_datetimefield_value(value)
        return value.astimezone(zone).replace(tzinfo=None).isoformat(" ")  # = str()

    return adapt


def _contact(contact: str) -> str:
    """The contact as stored: at most 1,000 characters and, because it is indexed for
    sorting, at most 2,000 bytes (a PostgreSQL b-tree entry must fit in ~2,700)."""
    contact = contact[:1000]
    while len(contact) > 500 and len(contact.encode()) > 2000:
        contact = contact[: len(contact) - 100]
    return contact


def _hash(raw_json: str) -> str:
    return hashlib.blake2b(raw_json.encode(), digest_size=16).hexdigest()


def _fingerprint(remote: RemoteEndpoint) -> str:
    return _hash(_raw_json(remote))


def _endpoint_row(remote: RemoteEndpoint, *, app_names: dict[str, str], now) -> Endpoint:
    reg = remote.registration
    app_name = remote.app_name or app_names.get(remote.app_id, "")
    return Endpoint(
        endpoint_id=remote.endpoint_id,
        username=remote.username[:255],
        alias=remote.alias[:255],
        sip_uri=remote.sip_uri[:512],
        sub_account=remote.sub_account[:64],
        app_id=remote.app_id,
        app_name=app_name[:255],
        sip_registered=remote.is_registered,
        sip_contact=_contact(reg.contact) if reg else "",
        sip_user_agent=(reg.user_agent if reg else "")[:512],
        sip_expires=reg.expires if reg else None,
        created_at=remote.created_at,
        updated_at=remote.updated_at,
        raw=remote.raw,
        fingerprint=_fingerprint(remote),
        registration_key=history.registration_key(remote),
        synced_at=now,
        **remote.permissions,
    )


def application_names() -> dict[str, str]:
    return dict(Application.objects.values_list("app_id", "name"))


def cache_version_bump() -> None:
    """Record that the endpoint cache changed: the list's cached counts and choices, kept
    per SyncState.data_version, are recomputed on the next request in every process.
    Inside ``coalesced_version_bumps`` (a bulk job) the bump waits for its next flush."""
    global _bump_pending
    with _bump_lock:
        if _coalescing:
            _bump_pending = True
            return
    _bump()


def _bump() -> None:
    if not SyncState.objects.filter(name=SYNC_NAME).update(data_version=F("data_version") + 1):
        SyncState.objects.get_or_create(name=SYNC_NAME, defaults={"data_version": 1})


_bump_lock = threading.Lock()
_coalescing = 0
_bump_pending = False


@contextmanager
def coalesced_version_bumps():
    """While a bulk job writes endpoint after endpoint, bump the cache version only when
    the job flushes (it does every few seconds, and at the end) instead of after each
    endpoint: every bump makes every list request count the cache again. Yields ``flush``."""
    global _coalescing

    def flush() -> None:
        global _bump_pending
        with _bump_lock:
            pending, _bump_pending = _bump_pending, False
        if pending:
            _bump()

    with _bump_lock:
        _coalescing += 1
    try:
        yield flush
    finally:
        with _bump_lock:
            _coalescing -= 1
        flush()


def endpoint_cache_drop(endpoint_id: str) -> None:
    """Drop an endpoint Vobiz no longer has from the cache."""
    with transaction.atomic():
        history.registration_removed([endpoint_id])
        deleted, _ = Endpoint.objects.filter(endpoint_id=endpoint_id).delete()
    if deleted:
        cache_version_bump()


def endpoint_cache_put(remote: RemoteEndpoint) -> Endpoint:
    """Upsert one endpoint from a live read and return the cache row (a change of its
    registration goes into its history)."""
    app_name = remote.app_name
    if not app_name and remote.app_id:
        app_name = (
            Application.objects.filter(app_id=remote.app_id).values_list("name", flat=True).first()
            or ""
        )
    row = _endpoint_row(remote, app_names={remote.app_id: app_name}, now=timezone.now())
    before = (Endpoint.objects.filter(endpoint_id=remote.endpoint_id)
              .values_list("fingerprint", "registration_key").first())
    moved = before is None or before[1] != row.registration_key  # registration changed
    with transaction.atomic():
        old = history.registration_olds([remote.endpoint_id]).get(remote.endpoint_id) \
            if moved and before is not None else None
        Endpoint.objects.bulk_create(
            [row], update_conflicts=True, unique_fields=["endpoint_id"],
            update_fields=ENDPOINT_COLUMNS,
        )
        if moved:
            history.registration_live_observe(old, remote)
    before = before[0] if before else None
    # Opening an endpoint page re-reads it; only a real change invalidates the list's counts.
    if before != row.fingerprint:
        cache_version_bump()
    return Endpoint.objects.get(endpoint_id=remote.endpoint_id)


def application_row(remote: RemoteApplication, now) -> Application:
    return Application(
        app_id=remote.app_id,
        name=remote.name[:255],
        default_endpoint_app=remote.default_endpoint_app,
        raw=remote.raw,
        synced_at=now,
    )


# --- bulk writes (sync) -------------------------------------------------------------------


class EndpointWriter:
    """Upserts a sync's new and changed endpoints, a write batch at a time.

    The hot path skips model instances and ``bulk_create``: building 100,000 model objects
    and compiling their values field by field cost more than the database writes themselves
    (and Django caps SQLite statements at 999 parameters, 35 rows). Values are adapted with
    the backend's own adapters; the canonical JSON the fingerprint hashes is stored as is,
    so each payload is serialised once. The rows are exactly what ``_endpoint_row`` +
    ``bulk_create(update_conflicts=True)`` would write.

    SQLite: one prepared ``INSERT ... ON CONFLICT (endpoint_id) DO UPDATE`` run for every
    row. PostgreSQL: the rows are COPYed into a session-private temporary table and upserted
    from it in one statement, about twice as fast as even a pipelined prepared INSERT (Django's
    own cursors bind parameters client-side, which is slower still).
    """

    columns = ("endpoint_id", *ENDPOINT_COLUMNS)
    staging = "vobiz_sync_endpoints"

    def __init__(self, *, app_names: dict[str, str], now):
        # What the cache holds now, read once: endpoint id -> fingerprint. One query instead
        # of one per batch (a 5,000-id IN list costs PostgreSQL ~100 ms to plan and run);
        # ~20 MB at 100,000 endpoints. Also what the final sweep compares against.
        # Each value is the fingerprint followed by the registration key (one string: half
        # the memory of a pair), so a registration change is seen without reading the row.
        self.known = {eid: fingerprint + key for eid, fingerprint, key in
                      Endpoint.objects.values_list("endpoint_id", "fingerprint",
                                                   "registration_key")
                      .iterator(chunk_size=10000)}
        self.now_at = now
        # Before history began (the first complete sync), nothing is recorded.
        self.record_history = history.history_recording()
        self.history_events = 0
        ops = connection.ops
        quote = ops.quote_name
        self.app_names = app_names
        self.adapt_datetime = _datetime_adapter(ops)
        self.now = self.adapt_datetime(now)
        self.postgres = connection.vendor == "postgresql"
        table = quote(Endpoint._meta.db_table)
        names = [quote(Endpoint._meta.get_field(name).column) for name in self.columns]
        column_list = ", ".join(names)
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in names[1:])
        synced_at = quote(Endpoint._meta.get_field("synced_at").column)
        # A row written after the sync started (a live read, a write from the dashboard) is
        # newer than the page this batch came from: leave it.
        upsert = (f"ON CONFLICT ({names[0]}) DO UPDATE SET {updates} "
                  f"WHERE {table}.{synced_at} <= EXCLUDED.{synced_at}")
        # Only quoted model metadata is interpolated into this SQL; every value is a parameter
        # (SQLite) or COPY data (PostgreSQL).
        if self.postgres:
            staging = quote(self.staging)
            self.prepare_sql = [
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "  # noqa: S608
                f"SELECT {column_list} FROM {table} WITH NO DATA",
                f"TRUNCATE {staging}",  # in case an outer transaction kept the last batch
            ]
            self.copy_sql = f"COPY {staging} ({column_list}) FROM STDIN"
            self.sql = (f"INSERT INTO {table} ({column_list}) "  # noqa: S608
                        f"SELECT {column_list} FROM {staging} {upsert}")
        else:
            slots = ", ".join(["%s"] * len(names))
            self.sql = f"INSERT INTO {table} ({column_list}) VALUES ({slots}) {upsert}"  # noqa: S608

    def values(self, remote: RemoteEndpoint, raw_json: str, fingerprint: str) -> tuple:
        reg = remote.registration
        adapt = self.adapt_datetime
        perms = remote.permissions
        app_name = remote.app_name or self.app_names.get(remote.app_id, "")
        return (
            remote.endpoint_id,
            remote.username[:255],
            remote.alias[:255],
            remote.sip_uri[:512],
            remote.sub_account[:64],
            remote.app_id,
            app_name[:255],
            remote.is_registered,
            _contact(reg.contact) if reg else "",
            (reg.user_agent if reg else "")[:512],
            adapt(reg.expires) if reg and reg.expires else None,
            *[perms[p] for p in PERMISSIONS],
            adapt(remote.created_at) if remote.created_at else None,
            adapt(remote.updated_at) if remote.updated_at else None,
            raw_json,
            fingerprint,
            history.registration_key(remote),
            self.now,
        )

    def write(self, batch: list[RemoteEndpoint]) -> tuple[int, int, int]:
        """Upsert the new and changed endpoints of ``batch`` (one transaction); returns how
        many were (created, updated, unchanged)."""
        known = self.known
        rows = []
        created = updated = unchanged = 0
        # Registration changes: endpoints new to the cache, and those whose key moved.
        appeared: list[RemoteEndpoint] = []
        moved: list[RemoteEndpoint] = []
        record = self.record_history
        for remote in batch:
            raw_json = _raw_json(remote)
            fingerprint = _hash(raw_json)
            old = known.get(remote.endpoint_id)
            if old is None:
                created += 1
            elif old[:32] != fingerprint:
                updated += 1
            else:
                unchanged += 1
                continue
            row = self.values(remote, raw_json, fingerprint)
            rows.append(row)
            if record:
                if old is None:
                    appeared.append(remote)
                elif old[32:] != row[-2]:
                    moved.append(remote)
        if not rows:
            return created, updated, unchanged
        with transaction.atomic():
            olds = history.registration_olds(r.endpoint_id for r in moved) if moved else {}
            if self.postgres:
                self._copy_and_upsert(rows)
            else:
                with connection.cursor() as cursor:
                    cursor.executemany(self.sql, rows)
            if appeared or moved:
                self._record_history(appeared, moved, olds)
        cache_version_bump()  # after the commit: never hold the sync-state row during a write
        return created, updated, unchanged

    def _record_history(self, appeared, moved, olds) -> None:
        now = self.now_at
        observations = []
        for remote in appeared:
            observation = history.registration_observe(None, remote, now=now)
            if observation is not None:
                observations.append(observation)
        for remote in moved:
            old = olds.get(remote.endpoint_id)
            # A row written after this sync started (a live read) is newer than this page,
            # and the upsert left it: so does its history.
            if old is None or (old.synced_at and old.synced_at > now):
                continue
            observation = history.registration_observe(old, remote, now=now)
            if observation is not None:
                observations.append(observation)
        self.history_events += history.history_record(observations)

    def _copy_and_upsert(self, rows: list[tuple]) -> None:
        import psycopg

        connection.ensure_connection()
        # A plain psycopg cursor on Django's connection: same session and transaction.
        with psycopg.Cursor(connection.connection) as cursor:
            for statement in self.prepare_sql:
                cursor.execute(statement)
            with cursor.copy(self.copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(self.sql)

