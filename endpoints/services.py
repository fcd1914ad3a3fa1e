"""Writes and sync: Vobiz first, then the local cache, then the audit log.

Every write service talks to Vobiz, re-reads the endpoint to learn what Vobiz actually stored,
updates the cache from that, and records an AuditEvent whatever the outcome. A failed write
changes nothing locally. No password reaches the database, a log line or an exception.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from . import vobiz
from .models import Application, AuditEvent, Endpoint, SyncState
from .vobiz import (
    EDITABLE_PERMISSIONS,
    PAGE_LIMIT,
    PERMISSIONS,
    RemoteApplication,
    RemoteEndpoint,
    VobizError,
    VobizNotFound,
)

logger = logging.getLogger(__name__)

SYNC_NAME = "endpoints"
# A running sync that has not reported progress for this long is presumed dead (killed worker).
SYNC_STALE_AFTER = timedelta(minutes=10)
UPSERT_BATCH = 500
# Rows per write transaction in a sync. SQLite rewrites every index page a transaction
# touches, so bigger batches write far less (100,000 raw rows here: ~15 s in batches of 100,
# ~5 s in batches of 5,000); its write lock is then held ~0.2 s at a time, which the web
# process's busy timeout rides out. PostgreSQL does not care much either way.
SYNC_WRITE_BATCH = 5000
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
    "synced_at",
]
EDITABLE_FIELDS = ("alias", *EDITABLE_PERMISSIONS)


class SyncAlreadyRunning(Exception):
    """Another sync holds the lock."""


class WriteNotApplied(VobizError):
    """Vobiz accepted a write, but re-reading the endpoint shows it did not take effect."""


class EditConflict(VobizError):
    """The endpoint changed at Vobiz after the user opened the form; ``changes`` lists
    field -> (value the user saw, value Vobiz has now) for the fields the user edited."""

    def __init__(self, message: str, *, changes: dict):
        super().__init__(message)
        self.changes = changes


# --- cache rows ---------------------------------------------------------------------------


# For what orjson refuses; one encoder for all (json.dumps with options makes one per call).
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
        synced_at=now,
        **remote.permissions,
    )


def _app_names() -> dict[str, str]:
    return dict(Application.objects.values_list("app_id", "name"))


def cache_changed() -> None:
    """Record that the endpoint cache changed: the list's cached counts and choices, kept
    per SyncState.data_version, are recomputed on the next request in every process."""
    if not SyncState.objects.filter(name=SYNC_NAME).update(data_version=F("data_version") + 1):
        SyncState.objects.get_or_create(name=SYNC_NAME, defaults={"data_version": 1})


def uncache_endpoint(endpoint_id: str) -> None:
    """Drop an endpoint Vobiz no longer has from the cache."""
    deleted, _ = Endpoint.objects.filter(endpoint_id=endpoint_id).delete()
    if deleted:
        cache_changed()


def cache_endpoint(remote: RemoteEndpoint) -> Endpoint:
    """Upsert one endpoint from a live read and return the cache row."""
    app_name = remote.app_name
    if not app_name and remote.app_id:
        app_name = (
            Application.objects.filter(app_id=remote.app_id).values_list("name", flat=True).first()
            or ""
        )
    row = _endpoint_row(remote, app_names={remote.app_id: app_name}, now=timezone.now())
    before = (Endpoint.objects.filter(endpoint_id=remote.endpoint_id)
              .values_list("fingerprint", flat=True).first())
    Endpoint.objects.bulk_create(
        [row], update_conflicts=True, unique_fields=["endpoint_id"], update_fields=ENDPOINT_COLUMNS
    )
    # Opening an endpoint page re-reads it; only a real change invalidates the list's counts.
    if before != row.fingerprint:
        cache_changed()
    return Endpoint.objects.get(endpoint_id=remote.endpoint_id)


def _application_row(remote: RemoteApplication, now) -> Application:
    return Application(
        app_id=remote.app_id,
        name=remote.name[:255],
        answer_url=remote.answer_url[:1000],
        sub_account=remote.sub_account[:64],
        default_endpoint_app=remote.default_endpoint_app,
        raw=remote.raw,
        synced_at=now,
    )


# --- sync ---------------------------------------------------------------------------------


@dataclass
class SyncResult:
    pages: int = 0
    total_remote: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list = field(default_factory=list)  # (endpoint id or "?", reason)
    applications: int = 0
    deletions_postponed: bool = False


def _claim_sync(triggered_by: str) -> SyncState:
    SyncState.objects.get_or_create(name=SYNC_NAME)
    now = timezone.now()
    # One conditional UPDATE is the lock: atomic on SQLite, and on PostgreSQL a concurrent
    # claimer blocks on the row, then re-checks the WHERE and finds it running.
    claimed = (
        SyncState.objects.filter(name=SYNC_NAME)
        .filter(~Q(status=SyncState.Status.RUNNING) | Q(heartbeat_at__lt=now - SYNC_STALE_AFTER))
        .update(
            status=SyncState.Status.RUNNING,
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            pages_fetched=0,
            triggered_by=triggered_by[:150],
        )
    )
    if not claimed:
        raise SyncAlreadyRunning("A sync is already running.")
    return SyncState.objects.get(name=SYNC_NAME)


def sync_status_touch(*, pages: int, total: int) -> None:
    SyncState.objects.filter(name=SYNC_NAME).update(
        heartbeat_at=timezone.now(), pages_fetched=pages, total_remote=total
    )


def application_sync_all(*, client: vobiz.VobizClient, now) -> int:
    """Fetch every application and upsert it; drop those gone remotely. Returns the count."""
    remotes: list[RemoteApplication] = []
    for page in client.iter_applications():
        remotes.extend(page.objects)
        for _record, reason in page.skipped:
            logger.warning("sync: skipped an application record: %s", reason)
    old_names = _app_names()
    Application.objects.bulk_create(
        [_application_row(r, now) for r in remotes],
        update_conflicts=True,
        unique_fields=["app_id"],
        update_fields=["name", "answer_url", "sub_account", "default_endpoint_app", "raw",
                       "synced_at"],
        batch_size=UPSERT_BATCH,
    )
    Application.objects.filter(synced_at__lt=now).delete()
    for remote in remotes:  # keep the denormalised name on endpoints in step with renames
        if remote.app_id in old_names and old_names[remote.app_id] != remote.name:
            Endpoint.objects.filter(app_id=remote.app_id).update(app_name=remote.name[:255])
    if _app_names() != old_names:  # the list's application filter choices are cached
        cache_changed()
    return len(remotes)


class _EndpointWriter:
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
        self.known = dict(Endpoint.objects.values_list("endpoint_id", "fingerprint")
                          .iterator(chunk_size=10000))
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
            self.now,
        )

    def write(self, batch: list[RemoteEndpoint], result: SyncResult) -> None:
        """Upsert the new and changed endpoints of ``batch`` (one transaction); count them."""
        known = self.known
        rows = []
        for remote in batch:
            raw_json = _raw_json(remote)
            fingerprint = _hash(raw_json)
            old = known.get(remote.endpoint_id)
            if old is None:
                result.created += 1
            elif old != fingerprint:
                result.updated += 1
            else:
                result.unchanged += 1
                continue
            rows.append(self.values(remote, raw_json, fingerprint))
        if not rows:
            return
        with transaction.atomic():
            if self.postgres:
                self._copy_and_upsert(rows)
            else:
                with connection.cursor() as cursor:
                    cursor.executemany(self.sql, rows)
        cache_changed()  # after the commit: never hold the sync-state row during a write

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


def _sweep(*, known: dict[str, str], seen: set[str], now) -> int:
    """After a complete walk, delete the rows Vobiz no longer has; returns how many.

    ``known`` is what the cache held when the sync started. Rows written since (a live read
    or a write from the dashboard) have ``synced_at >= now`` and are kept. Unchanged rows are
    not rewritten to mark them seen: on PostgreSQL that rewrote every row and index entry on
    each sync. After a successful sync every row left was confirmed at
    ``SyncState.last_success_at``.
    """
    gone = [eid for eid in known if eid not in seen]
    deleted = 0
    for start in range(0, len(gone), UPSERT_BATCH):
        count, _ = Endpoint.objects.filter(
            endpoint_id__in=gone[start:start + UPSERT_BATCH], synced_at__lt=now
        ).delete()
        deleted += count
    if deleted:
        cache_changed()
    return deleted


def _refresh_statistics(result: SyncResult) -> None:
    """After a sync that rewrote a large share of the endpoints (the first sync, above all),
    refresh PostgreSQL's planner statistics now instead of whenever autovacuum gets round to
    it: until then the list's plans are built on guesses about an empty table. SQLite keeps
    no statistics unless asked, and its plans for the list's indexes do not need them."""
    written = result.created + result.updated + result.deleted
    if connection.vendor == "postgresql" and written >= max(1000, result.total_remote // 10):
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Endpoint._meta.db_table)}")


def endpoint_sync_all(
    *,
    client: vobiz.VobizClient | None = None,
    triggered_by: str = "",
    concurrency: int | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> SyncResult:
    """Sync applications, then every endpoint, into the cache.

    Pages are fetched ``concurrency`` at a time and upserted as they arrive, in write
    batches of SYNC_WRITE_BATCH rows (only new and changed rows are written). Rows missing
    remotely are deleted only after a complete walk whose count matches Vobiz's total.
    Raises SyncAlreadyRunning if another sync holds the lock, and re-raises a VobizError
    after recording it; either way the cache stays whole.
    """
    client = client or vobiz.get_client()
    concurrency = max(1, concurrency or settings.VOBIZ_SYNC_CONCURRENCY)
    state = _claim_sync(triggered_by)
    now = state.started_at
    result = SyncResult()
    seen: set[str] = set()
    try:
        result.applications = application_sync_all(client=client, now=now)
        writer = _EndpointWriter(app_names=_app_names(), now=now)
        batch: list[RemoteEndpoint] = []
        first = client.list_endpoints(limit=PAGE_LIMIT, offset=0)
        total = result.total_remote = first.total_count

        def handle(page: vobiz.Page):
            result.pages += 1
            objs = [r for r in page.objects if r.endpoint_id not in seen]
            seen.update(r.endpoint_id for r in objs)
            for record, reason in page.skipped:
                rid = record.get("endpoint_id", "?") if isinstance(record, dict) else "?"
                result.skipped.append((str(rid)[:32], reason))
                logger.warning("sync: skipped endpoint record %s: %s", str(rid)[:32], reason)
            batch.extend(objs)
            if len(batch) >= SYNC_WRITE_BATCH:
                writer.write(batch, result)
                batch.clear()
            if progress:
                progress(result.pages, len(seen), total)
            if result.pages % 10 == 0:
                sync_status_touch(pages=result.pages, total=total)

        handle(first)
        offsets = list(range(PAGE_LIMIT, total, PAGE_LIMIT)) if first.has_next else []
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sync") as pool:
            # A bounded window keeps memory flat, yet holds a write batch's worth of pages:
            # while this thread waits for the database to take a batch, the fetchers keep
            # fetching and parsing the next one instead of idling (~40% off a 100,000 sync).
            window = concurrency * 2 + SYNC_WRITE_BATCH // PAGE_LIMIT
            pending = [pool.submit(client.list_endpoints, limit=PAGE_LIMIT, offset=o)
                       for o in offsets[:window]]
            next_index = len(pending)
            try:
                while pending:
                    page = pending.pop(0).result()
                    if next_index < len(offsets):
                        pending.append(pool.submit(client.list_endpoints, limit=PAGE_LIMIT,
                                                   offset=offsets[next_index]))
                        next_index += 1
                    handle(page)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        if batch:
            writer.write(batch, result)
            batch.clear()

        # The list may have shifted under offset paging while we walked (creates/deletes at
        # Vobiz). Sweep only when what we saw adds up; otherwise the next sync will.
        if len(seen) + len(result.skipped) >= total and not result.skipped:
            result.deleted = _sweep(known=writer.known, seen=seen, now=now)
        else:
            result.deletions_postponed = True
        _refresh_statistics(result)
    except BaseException as exc:
        message = exc.message if isinstance(exc, VobizError) else f"{type(exc).__name__}: {exc}"
        SyncState.objects.filter(name=SYNC_NAME).update(
            status=SyncState.Status.FAILED,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            pages_fetched=result.pages,
            last_error=message[:2000],
        )
        raise
    SyncState.objects.filter(name=SYNC_NAME).update(
        status=SyncState.Status.OK,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
        last_success_at=now,
        pages_fetched=result.pages,
        total_remote=result.total_remote,
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        deleted=result.deleted,
        skipped=len(result.skipped),
        applications=result.applications,
        last_error=(
            f"{len(result.skipped)} record(s) from Vobiz could not be read and were skipped."
            if result.skipped
            else ""
        ),
    )
    return result


# --- audit --------------------------------------------------------------------------------


def _audit(*, user, action: str, endpoint_id: str = "", endpoint_username: str = "",
           changes: dict | None = None, outcome: str, message: str = "") -> AuditEvent:
    return AuditEvent.objects.create(
        user=user if getattr(user, "is_authenticated", False) else None,
        username=getattr(user, "username", "") or "",
        action=action,
        endpoint_id=endpoint_id,
        endpoint_username=endpoint_username[:255],
        changes=changes or {},
        outcome=outcome,
        message=message[:2000],
    )


def _failure_outcome(exc: VobizError) -> str:
    if exc.uncertain:
        return AuditEvent.Outcome.UNCERTAIN
    return AuditEvent.Outcome.FAILED


def _reread_quietly(client, endpoint_id: str) -> Endpoint | None:
    """After an uncertain write, learn what Vobiz has now; best effort."""
    try:
        return cache_endpoint(client.get_endpoint(endpoint_id))
    except VobizNotFound:
        uncache_endpoint(endpoint_id)
    except VobizError:
        pass
    return None


# --- reads --------------------------------------------------------------------------------


def endpoint_fetch(*, endpoint_id: str, client: vobiz.VobizClient | None = None) -> Endpoint:
    """Read one endpoint live from Vobiz and refresh its cache row.

    Raises VobizNotFound (and drops the cache row) if Vobiz no longer has it, or another
    VobizError when Vobiz cannot answer (the cache row is left as it was).
    """
    client = client or vobiz.get_client()
    try:
        remote = client.get_endpoint(endpoint_id)
    except VobizNotFound:
        uncache_endpoint(endpoint_id)
        raise
    return cache_endpoint(remote)


# --- writes -------------------------------------------------------------------------------


@dataclass
class CreateOutcome:
    endpoint: Endpoint
    typed_username: str
    # Empty when the read-back confirmed what Vobiz stored; otherwise why it could not, and
    # the row holds only what the create answer said (the next sync completes it).
    unverified: str = ""

    @property
    def username_rewritten(self) -> bool:
        return self.endpoint.username != self.typed_username


def endpoint_create(*, user, data: dict, client: vobiz.VobizClient | None = None) -> CreateOutcome:
    """Create an endpoint at Vobiz (never retried), then GET it to learn the stored username.

    ``data`` holds username, password, alias, application (app id or ""), the seven
    permissions and optionally sub_account. Raises VobizError; on an uncertain create the
    audit says so and the caller must tell the user to check the list before retrying.
    """
    client = client or vobiz.get_client()
    typed = data["username"]
    body = {"username": typed, "password": data["password"]}
    if data.get("alias"):
        body["alias"] = data["alias"]
    if data.get("application"):
        body["application"] = data["application"]
    if data.get("sub_account"):
        body["sub_account"] = data["sub_account"]
    for perm in PERMISSIONS:
        if perm in data:
            body[perm] = bool(data[perm])
    summary = {k: [None, v] for k, v in body.items() if k != "password"}
    try:
        created = client.create_endpoint(body)
    except VobizError as exc:
        _audit(user=user, action="create", endpoint_username=typed, changes=summary,
               outcome=_failure_outcome(exc), message=exc.message)
        raise
    unverified = ""
    try:
        endpoint = cache_endpoint(client.get_endpoint(created.endpoint_id))
    except VobizError as exc:
        # The endpoint exists: the user must still get the password (it is shown only now),
        # so keep what the create answer told us instead of reporting a failure.
        endpoint = cache_endpoint(_remote_from_create(created, body))
        unverified = (f"Vobiz created the endpoint but could not be read back ({exc.message}); "
                      "the username shown is what the create answer said. Open the endpoint "
                      "page to confirm it before configuring a device.")
    summary["username"] = [None, endpoint.username]
    notes = [f"Vobiz stored the username as {endpoint.username} (typed {typed})."
             if endpoint.username != typed else "", unverified]
    _audit(user=user, action="create", endpoint_id=endpoint.endpoint_id,
           endpoint_username=endpoint.username, changes=summary, outcome=AuditEvent.Outcome.DONE,
           message=" ".join(n for n in notes if n))
    return CreateOutcome(endpoint=endpoint, typed_username=typed, unverified=unverified)


def _remote_from_create(created: vobiz.CreateResult, body: dict) -> RemoteEndpoint:
    """A stand-in for the read-back: the create answer's fields over what we sent."""
    sip_uri = str(created.raw.get("sip_uri") or "")
    username = created.username or (sip_uri[4:].split("@", 1)[0] if sip_uri.startswith("sip:")
                                    else "") or body["username"]
    record = {k: v for k, v in body.items() if k != "password"}
    record.update({"endpoint_id": created.endpoint_id, "username": username,
                   "sip_uri": sip_uri, "sip_registered": "false"})
    return vobiz.parse_endpoint(record)


def _current(client, endpoint_id: str) -> RemoteEndpoint:
    try:
        return client.get_endpoint(endpoint_id)
    except VobizNotFound:
        uncache_endpoint(endpoint_id)
        raise


def _remote_value(remote: RemoteEndpoint, name: str):
    if name == "alias":
        return remote.alias
    if name == "application":
        return remote.app_id
    return remote.permissions[name]


def endpoint_update(
    *,
    user,
    endpoint_id: str,
    changes: dict,
    seen: dict | None = None,
    action: str = "update",
    client: vobiz.VobizClient | None = None,
) -> Endpoint:
    """Apply the editable fields in ``changes`` (alias and the three editable permissions).

    ``seen`` holds the values the user's form started from; if Vobiz now has something else
    for a field the user edited, EditConflict is raised and nothing is sent. Fields the user
    did not change are never sent. Afterwards the endpoint is re-read and each sent field is
    verified (WriteNotApplied if one did not take).
    """
    client = client or vobiz.get_client()
    changes = {k: v for k, v in changes.items() if k in EDITABLE_FIELDS}
    cached = Endpoint.objects.filter(endpoint_id=endpoint_id).first()
    label = cached.username if cached else endpoint_id
    audit_changes = {k: [None, v] for k, v in changes.items()}
    try:
        current = _current(client, endpoint_id)
        label = current.username
        if seen:
            moved = {
                name: (seen[name], _remote_value(current, name))
                for name in changes
                if name in seen and seen[name] != _remote_value(current, name)
            }
            if moved:
                cache_endpoint(current)
                raise EditConflict(
                    "Someone changed this endpoint at Vobiz while you were editing it. "
                    "Nothing was saved; review the current values and try again.",
                    changes=moved,
                )
        to_send = {k: v for k, v in changes.items() if _remote_value(current, k) != v}
        audit_changes = {k: [_remote_value(current, k), v] for k, v in to_send.items()}
        if not to_send:
            endpoint = cache_endpoint(current)
            _audit(user=user, action=action, endpoint_id=endpoint_id, endpoint_username=label,
                   outcome=AuditEvent.Outcome.DONE, message="Nothing changed.")
            return endpoint
        client.update_endpoint(endpoint_id, to_send)
        after = client.get_endpoint(endpoint_id)
        endpoint = cache_endpoint(after)
        missed = [k for k, v in to_send.items() if _remote_value(after, k) != v]
        if missed:
            raise WriteNotApplied(
                "Vobiz accepted the change but the endpoint still shows the old "
                + ", ".join(missed) + "."
            )
    except VobizError as exc:
        if exc.uncertain:
            _reread_quietly(client, endpoint_id)
        _audit(user=user, action=action, endpoint_id=endpoint_id, endpoint_username=label,
               changes=audit_changes,
               outcome=_failure_outcome(exc), message=exc.message)
        raise
    _audit(user=user, action=action, endpoint_id=endpoint_id, endpoint_username=label,
           changes=audit_changes, outcome=AuditEvent.Outcome.DONE)
    return endpoint


@dataclass
class PasswordResetOutcome:
    endpoint: Endpoint
    signed_out: list  # Registration objects that were active before the reset


def endpoint_password_reset(
    *, user, endpoint_id: str, password: str, client: vobiz.VobizClient | None = None
) -> PasswordResetOutcome:
    """Set a new SIP password. Active registrations drop at Vobiz; the outcome lists them."""
    client = client or vobiz.get_client()
    cached = Endpoint.objects.filter(endpoint_id=endpoint_id).first()
    label = cached.username if cached else endpoint_id
    signed_out = []
    audit_changes = {"password": ["(hidden)", "(changed)"]}
    try:
        before = _current(client, endpoint_id)
        label = before.username
        if before.registration and before.is_registered:
            signed_out.append(before.registration)
        client.update_endpoint(endpoint_id, {"password": password})
        endpoint = cache_endpoint(client.get_endpoint(endpoint_id))
    except VobizError as exc:
        if exc.uncertain:
            _reread_quietly(client, endpoint_id)
        _audit(user=user, action="password_reset", endpoint_id=endpoint_id,
               endpoint_username=label, changes=audit_changes, outcome=_failure_outcome(exc),
               message=exc.message)
        raise
    _audit(user=user, action="password_reset", endpoint_id=endpoint_id, endpoint_username=label,
           changes=audit_changes, outcome=AuditEvent.Outcome.DONE,
           message=(f"{len(signed_out)} registered device(s) signed out." if signed_out else ""))
    return PasswordResetOutcome(endpoint=endpoint, signed_out=signed_out)


def endpoint_set_application(
    *, user, endpoint_id: str, app_id: str, client: vobiz.VobizClient | None = None
) -> Endpoint:
    """Attach (``app_id``) or detach (``""``) the call-routing application.

    Sends both ``app_id`` and ``application`` (the docs and the live API disagree on which
    one counts), re-reads the endpoint and raises WriteNotApplied if the link did not change.
    """
    client = client or vobiz.get_client()
    cached = Endpoint.objects.filter(endpoint_id=endpoint_id).first()
    label = cached.username if cached else endpoint_id
    action = "attach_application" if app_id else "detach_application"
    audit_changes = {"application": [cached.app_id if cached else None, app_id or None]}
    try:
        before = _current(client, endpoint_id)
        label = before.username
        audit_changes = {"application": [before.app_id or None, app_id or None]}
        if before.app_id == app_id:
            endpoint = cache_endpoint(before)
        else:
            payload = {"app_id": app_id, "application": app_id} if app_id else {
                "app_id": "", "application": None}
            client.update_endpoint(endpoint_id, payload)
            after = client.get_endpoint(endpoint_id)
            endpoint = cache_endpoint(after)
            if after.app_id != app_id:
                raise WriteNotApplied(
                    "Vobiz answered OK but did not change the application: the endpoint is "
                    + (f"still linked to {after.app_name or after.app_id}." if after.app_id
                       else "still without an application.")
                )
    except VobizError as exc:
        if exc.uncertain:
            _reread_quietly(client, endpoint_id)
        _audit(user=user, action=action, endpoint_id=endpoint_id, endpoint_username=label,
               changes=audit_changes, outcome=_failure_outcome(exc), message=exc.message)
        raise
    _audit(user=user, action=action, endpoint_id=endpoint_id, endpoint_username=label,
           changes=audit_changes, outcome=AuditEvent.Outcome.DONE)
    return endpoint


def endpoint_delete(*, user, endpoint_id: str, client: vobiz.VobizClient | None = None) -> None:
    """Delete at Vobiz, then from the cache. A 404 means it is already gone: success."""
    client = client or vobiz.get_client()
    cached = Endpoint.objects.filter(endpoint_id=endpoint_id).first()
    label = cached.username if cached else endpoint_id
    message = ""
    try:
        client.delete_endpoint(endpoint_id)
    except VobizNotFound:
        message = "Vobiz no longer had this endpoint; removed it from the list."
    except VobizError as exc:
        if exc.uncertain:
            _reread_quietly(client, endpoint_id)
        _audit(user=user, action="delete", endpoint_id=endpoint_id, endpoint_username=label,
               outcome=_failure_outcome(exc), message=exc.message)
        raise
    uncache_endpoint(endpoint_id)
    _audit(user=user, action="delete", endpoint_id=endpoint_id, endpoint_username=label,
           outcome=AuditEvent.Outcome.DONE, message=message)
