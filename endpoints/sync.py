"""The sync: every application and endpoint from Vobiz into the local cache.

Pages are fetched concurrently and written in batches by ``cache.EndpointWriter``; rows missing
at Vobiz are deleted only after a complete walk that adds up. The ``SyncState`` row records
what the last sync did and is also its lock, so only one sync runs at a time across processes.
``sync_enqueue`` hands one to a worker (the task framework's); ``sync_run`` is what the
worker runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import history, vobiz
from .cache import (
    SYNC_NAME,
    UPSERT_BATCH,
    EndpointWriter,
    application_names,
    application_row,
    cache_version_bump,
)
from .models import Application, Endpoint, SyncState
from .vobiz import PAGE_LIMIT, RemoteApplication, RemoteEndpoint, VobizError

logger = logging.getLogger(__name__)

# A running sync that has not reported progress for this long is presumed dead (killed worker).
SYNC_STALE_AFTER = timedelta(minutes=10)
# Rows per write transaction in a sync. SQLite rewrites every index page a transaction
# touches, so bigger batches write far less (100,000 raw rows here: ~15 s in batches of 100,
# ~5 s in batches of 5,000); its write lock is then held ~0.2 s at a time, which the web
# process's busy timeout rides out. PostgreSQL does not care much either way.
SYNC_WRITE_BATCH = 5000


class SyncAlreadyRunning(Exception):
    """Another sync holds the lock."""


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
    history_events: int = 0  # registration changes recorded


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
    old_names = application_names()
    Application.objects.bulk_create(
        [application_row(r, now) for r in remotes],
        update_conflicts=True,
        unique_fields=["app_id"],
        update_fields=["name", "default_endpoint_app", "raw", "synced_at"],
        batch_size=UPSERT_BATCH,
    )
    Application.objects.filter(synced_at__lt=now).delete()
    for remote in remotes:  # keep the denormalised name on endpoints in step with renames
        if remote.app_id in old_names and old_names[remote.app_id] != remote.name:
            Endpoint.objects.filter(app_id=remote.app_id).update(app_name=remote.name[:255])
    if application_names() != old_names:  # the list's application filter choices are cached
        cache_version_bump()
    return len(remotes)


def _write(writer: EndpointWriter, batch: list[RemoteEndpoint], result: SyncResult) -> None:
    created, updated, unchanged = writer.write(batch)
    result.created += created
    result.updated += updated
    result.unchanged += unchanged


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
        chunk = Endpoint.objects.filter(endpoint_id__in=gone[start:start + UPSERT_BATCH],
                                        synced_at__lt=now)
        with transaction.atomic():
            history.registration_removed(chunk.values_list("endpoint_id", flat=True))
            count, _ = chunk.delete()
        deleted += count
    if deleted:
        cache_version_bump()
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
        writer = EndpointWriter(app_names=application_names(), now=now)
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
                _write(writer, batch, result)
                batch.clear()
            if progress:
                progress(result.pages, len(seen), total)
            if result.pages % 10 == 0:
                sync_status_touch(pages=result.pages, total=total)

        handle(first)
        # Step by what the first page held, not by the limit asked for: an API that caps
        # pages below PAGE_LIMIT would otherwise have every page after the first skip rows.
        step = len(first.objects) + len(first.skipped) or PAGE_LIMIT
        offsets = list(range(step, total, step)) if first.has_next else []
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sync") as pool:
            # A bounded window keeps memory flat, yet holds a write batch's worth of pages:
            # while this thread waits for the database to take a batch, the fetchers keep
            # fetching and parsing the next one instead of idling (~40% off a 100,000 sync).
            window = concurrency * 2 + SYNC_WRITE_BATCH // step
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
            _write(writer, batch, result)
            batch.clear()

        # The list may have shifted under offset paging while we walked (creates/deletes at
        # Vobiz). Sweep only when what we saw adds up; otherwise the next sync will.
        if len(seen) + len(result.skipped) >= total and not result.skipped:
            result.deleted = _sweep(known=writer.known, seen=seen, now=now)
        else:
            result.deletions_postponed = True
        result.history_events = writer.history_events
        # The first complete walk is where registration history begins.
        history.history_begin(now)
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
        deleted=result.deleted,
        skipped=len(result.skipped),
        last_error=(
            f"{len(result.skipped)} record(s) from Vobiz could not be read and were skipped."
            if result.skipped
            else ""
        ),
    )
    return result




# --- in the background --------------------------------------------------------------------


def sync_is_running(sync: SyncState) -> bool:
    """A sync holds the lock and has reported progress recently (a dead one does not count)."""
    if sync.status != SyncState.Status.RUNNING:
        return False
    heartbeat = sync.heartbeat_at or sync.started_at
    return bool(heartbeat and heartbeat > timezone.now() - SYNC_STALE_AFTER)


def sync_is_pending(sync: SyncState) -> bool:
    """Queued for a worker, or running: the dashboard follows its progress."""
    return sync.status == SyncState.Status.QUEUED or sync_is_running(sync)


def worker_missing(queued_at) -> bool:
    """Whether work queued at ``queued_at`` has waited so long that no worker is running."""
    wait = timedelta(seconds=getattr(settings, "WORKER_MISSING_SECONDS", 30))
    return bool(queued_at and queued_at < timezone.now() - wait)


def sync_enqueue(*, triggered_by: str) -> bool:
    """Queue a sync for a worker (the task framework's). False when one is running already.
    The sync-state row says "queued" at once, so the dashboard can follow it from now."""
    from .tasks import run_sync

    SyncState.objects.get_or_create(name=SYNC_NAME)
    now = timezone.now()
    running = Q(status=SyncState.Status.RUNNING, heartbeat_at__gte=now - SYNC_STALE_AFTER)
    queued = (SyncState.objects.filter(name=SYNC_NAME).exclude(running)
              .exclude(status=SyncState.Status.QUEUED)
              .update(status=SyncState.Status.QUEUED, queued_at=now,
                      triggered_by=triggered_by[:150]))
    if not queued and not SyncState.objects.filter(name=SYNC_NAME,
                                                   status=SyncState.Status.QUEUED).exists():
        return False
    run_sync.enqueue(triggered_by[:150])
    return True


def sync_enqueue_if_due() -> bool:
    """Queue the periodic sync when the last one ended more than VOBIZ_SYNC_INTERVAL ago
    and none is queued or running."""
    state = SyncState.objects.filter(name=SYNC_NAME).first()
    interval = timedelta(seconds=getattr(settings, "VOBIZ_SYNC_INTERVAL", 60))
    if state is not None and (sync_is_pending(state) or (
            state.finished_at and state.finished_at > timezone.now() - interval)):
        return False
    return sync_enqueue(triggered_by="periodic")


def sync_run(*, triggered_by: str) -> None:
    """The sync as a worker runs it: progress written at most twice a second for the
    dashboard, and any failure recorded on the sync state (never raised to the worker)."""
    last_touch = [0.0]

    def progress(pages: int, seen: int, total: int) -> None:
        now = time.monotonic()
        if now - last_touch[0] >= 0.5:
            last_touch[0] = now
            sync_status_touch(pages=pages, total=total)

    try:
        endpoint_sync_all(triggered_by=triggered_by, progress=progress)
    except SyncAlreadyRunning:
        logger.info("sync requested by %s: another sync is already running", triggered_by)
    except VobizError as exc:  # recorded on the sync state; the list keeps the cache
        logger.warning("sync requested by %s failed: %s", triggered_by, exc.message)
