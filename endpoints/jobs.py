"""Bulk jobs, the write side: made from a preview, run by a worker, crash-safe.

A job's endpoints are JobItem rows, each written before and after its Vobiz call; the worker
that runs a job holds it by a token and a heartbeat (like the sync lock), so when a worker
dies (even ``kill -9``) the periodic watchdog hands the job to another, which carries on from
the rows: an item found in progress is re-read and checked before anything is sent again, so
every endpoint is written at most once. Before each write the endpoint is re-read live and
skipped if it changed at Vobiz since the preview; every write goes through the same audited,
verified services as a single edit, each audit entry linked to the job.

Kind to Vobiz: ``concurrency`` endpoints at a time; a 429 pauses the whole job for its
Retry-After; JOB_FAILURE_LIMIT failures in a row pause the job ("Vobiz appears to be down")
until someone resumes it.
"""

from __future__ import annotations

import json
import logging
import secrets as tokens
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from . import bulk, display, links, services, spreadsheets, vobiz
from .cache import coalesced_version_bumps, endpoint_cache_drop, endpoint_cache_put
from .csvfiles import csv_text
from .models import AuditEvent, Job, JobItem
from .scopes import EVERYTHING, Scope
from .secrets import generate_password, seal, unseal
from .vobiz import (
    EDITABLE_PERMISSIONS,
    RemoteEndpoint,
    VobizAuthError,
    VobizError,
    VobizNotFound,
    VobizUnavailable,
)

logger = logging.getLogger(__name__)

CHANGED_ELSEWHERE = "Changed elsewhere since the preview"
DELETED_ELSEWHERE = "Deleted at Vobiz since the preview"
CANCELLED = "Cancelled before it was reached"
DOWN_REASON = ("Vobiz appears to be down: {n} endpoints in a row failed. Resume when Vobiz "
               "is back; nothing more is sent until then.")
RATE_REASON = "Vobiz asked us to slow down (HTTP 429): waiting {s} s before going on."
UNCERTAIN_RESET = ("The worker stopped during this reset: the new password may or may not be "
                   "active. Reset this endpoint again to be sure.")
# While a job runs, the list's counts catch up with it this often (not after each endpoint).
VERSION_FLUSH_SECONDS = 3.0
# The fields a preview is compared on: what the dashboard shows and edits, not the
# registration, which changes all day.
COMPARED = ("alias", "app_id", *EDITABLE_PERMISSIONS)


def _setting(name: str, default):
    return getattr(settings, name, default)


def stale_after() -> timedelta:
    """A runner silent for this long is presumed dead (its loop beats every few seconds,
    whatever Vobiz does)."""
    return timedelta(seconds=_setting("JOB_STALE_SECONDS", 60))


# --- making a job -------------------------------------------------------------------------


class SelectionChanged(Exception):
    """The selection no longer matches what the preview showed; show the preview again."""


def _snapshot(row: dict) -> dict:
    return {name: row[name] for name in COMPARED}


def job_create(*, user, scope: Scope, selection: bulk.Selection, action: str, params: dict,
               fingerprint: str) -> Job:
    """Make a job from what the preview showed and queue it.

    ``fingerprint`` is the preview's (bulk.preview_fingerprint): when the selection, the
    action or the number it touches changed since, SelectionChanged is raised and nothing is
    made. Endpoints the preview skipped are recorded as skipped, with the reason.
    """
    preview = bulk.preview(selection=selection, scope=scope, action=action, params=params,
                           limit=0)
    if bulk.preview_fingerprint(selection=selection, action=action, params=params,
                                will_change=preview.will_change) != fingerprint:
        raise SelectionChanged()
    qs = bulk.selection_queryset(selection=selection, scope=scope)
    skip_q = bulk._skip_q(action, params)
    skipped_ids = set(qs.filter(skip_q).values_list("endpoint_id", flat=True)) \
        if skip_q is not None else set()
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.create(
            action=action, params=params, summary=bulk.action_summary(action, params)[:300],
            created_by=user, created_by_username=user.get_username(),
            scope=None if scope.everything else sorted(scope.sub_accounts),
            status=Job.Status.QUEUED, queued_at=now,
            concurrency=max(1, int(_setting("JOB_CONCURRENCY", 4))))
        rows = qs.order_by(*bulk.selectors.endpoint_ordering("username")).values(
            "endpoint_id", "username", "sub_account", *COMPARED)
        items = []
        for position, row in enumerate(rows.iterator(chunk_size=2000)):
            skipped = row["endpoint_id"] in skipped_ids
            items.append(JobItem(
                job=job, position=position, endpoint_id=row["endpoint_id"],
                endpoint_username=row["username"][:255], sub_account=row["sub_account"],
                before=_snapshot(row),
                state=JobItem.State.SKIPPED if skipped else JobItem.State.PENDING,
                message=bulk.SKIP_REASONS.get(action, "") if skipped else "",
                finished_at=now if skipped else None))
        JobItem.objects.bulk_create(items, batch_size=1000)
        job.total = len(items)
        job.save(update_fields=["total"])
    # Queued once its rows are committed (the view runs in autocommit mode), so a worker of
    # any backend finds them.
    job_enqueue(job_id=job.pk)
    return job


def _draft(*, user, scope: Scope, action: str, summary: str, params: dict) -> Job:
    return Job.objects.create(
        action=action, params=params, summary=summary[:300], created_by=user,
        created_by_username=user.get_username(), status=Job.Status.DRAFT,
        scope=None if scope.everything else sorted(scope.sub_accounts),
        concurrency=max(1, int(_setting("JOB_CONCURRENCY", 4))))


def _problems(plan) -> dict:
    return {"problems": [[p.row, p.column, p.message] for p in plan.problems[:1000]],
            "problem_count": len(plan.problems), "ignored": plan.ignored, "rows": plan.rows}


def import_draft_update(*, user, scope: Scope, plan: spreadsheets.UpdatePlan) -> Job:
    """An update import, previewed: a draft job whose items are the rows that change. It
    runs only when someone presses Run (job_start)."""
    with transaction.atomic():
        job = _draft(user=user, scope=scope, action=Job.Action.IMPORT_UPDATE,
                     summary=f"Update {len(plan.changes):,} endpoints from a spreadsheet",
                     params={**_problems(plan), "unchanged": plan.unchanged})
        JobItem.objects.bulk_create([
            JobItem(job=job, position=n, row=line, endpoint_id=endpoint.endpoint_id,
                    endpoint_username=endpoint.username[:255],
                    sub_account=endpoint.sub_account,
                    before=_snapshot({name: getattr(endpoint, name) for name in COMPARED}),
                    changes=new)
            for n, (line, endpoint, new, _old) in enumerate(plan.changes)], batch_size=1000)
        job.total = len(plan.changes)
        job.save(update_fields=["total"])
    return job


def import_draft_create(*, user, scope: Scope, plan: spreadsheets.CreatePlan) -> Job:
    """An onboarding import, previewed: one draft item per valid row; a password given in
    the file is kept only encrypted, until it is handed over."""
    with transaction.atomic():
        job = _draft(user=user, scope=scope, action=Job.Action.IMPORT_CREATE,
                     summary=f"Create {len(plan.rows_to_create):,} endpoints from a "
                             "spreadsheet", params=_problems(plan))
        JobItem.objects.bulk_create([
            JobItem(job=job, position=n, row=line, endpoint_id=f"row:{line}",
                    endpoint_username=data["username"][:255],
                    sub_account=data.get("sub_account", ""), changes=data,
                    secret=seal_json({"password": password}) if password else "")
            for n, (line, data, password) in enumerate(plan.rows_to_create)],
            batch_size=1000)
        job.total = len(plan.rows_to_create)
        job.save(update_fields=["total"])
    return job


def job_start(*, job: Job, user, links_wanted: bool = False) -> bool:
    """Run a previewed import (only its author can). False when it is not a draft any more
    (a second click, a replayed form)."""
    params = dict(job.params)
    if job.action == Job.Action.IMPORT_CREATE:
        params["links"] = bool(links_wanted)
    if not Job.objects.filter(pk=job.pk, status=Job.Status.DRAFT, created_by=user).update(
            status=Job.Status.QUEUED, queued_at=timezone.now(), params=params):
        return False
    job_enqueue(job_id=job.pk)
    return True


def drafts_forget(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Drop import previews nobody ran (with any password a file held)."""
    count, _ = Job.objects.filter(status=Job.Status.DRAFT,
                                  created_at__lt=timezone.now() - older_than).delete()
    return count


def job_enqueue(*, job_id: int) -> None:
    """Hand the job to the task queue (any backend; the job's rows are the truth)."""
    from .tasks import run_job

    run_job.enqueue(job_id)


# --- running it ---------------------------------------------------------------------------


def _claim(job_id: int, token: str) -> bool:
    """Take the job: queued, or held by a runner that stopped beating. The conditional
    UPDATE is the lock (as for the sync): a second claimer finds the heartbeat fresh."""
    now = timezone.now()
    holders_gone = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=now - stale_after())
    claimable = Q(status=Job.Status.QUEUED) | (
        Q(status__in=[Job.Status.RUNNING, Job.Status.CANCELLING]) & holders_gone)
    with transaction.atomic():
        if not Job.objects.filter(pk=job_id).filter(claimable).update(runner=token,
                                                                     heartbeat_at=now):
            return False
        Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(status=Job.Status.RUNNING)
        Job.objects.filter(pk=job_id, started_at__isnull=True).update(started_at=now)
    return True


def _beat(job_id: int, token: str) -> bool:
    """Say the runner is alive; False when another runner has taken the job."""
    return bool(Job.objects.filter(pk=job_id, runner=token).update(heartbeat_at=timezone.now()))


def _job_scope(job: Job) -> Scope:
    return EVERYTHING if job.scope is None else Scope(frozenset(job.scope))


class _RateLimited(Exception):
    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds


@dataclass
class _Outcome:
    state: str
    message: str = ""
    counts_as_failure: bool = False  # towards "Vobiz appears to be down"


def _target_reached(job: Job, remote: RemoteEndpoint, item: JobItem | None = None) -> bool:
    """Whether the endpoint already is what the job would make it."""
    if job.action == Job.Action.IMPORT_UPDATE and item is not None:
        return all(services._remote_value(remote, name) == value
                   for name, value in item.changes.items())
    if job.action == Job.Action.SET_APPLICATION:
        return remote.app_id == job.params["app_id"]
    if job.action == Job.Action.DETACH_APPLICATION:
        return not remote.app_id
    if job.action == Job.Action.SET_PERMISSIONS:
        return all(remote.permissions.get(name) == value
                   for name, value in job.params["permissions"].items())
    return False


def _changed_since_preview(item: JobItem, remote: RemoteEndpoint) -> bool:
    now = {"alias": remote.alias, "app_id": remote.app_id, **{
        name: remote.permissions.get(name) for name in EDITABLE_PERMISSIONS}}
    return any(item.before.get(name) != now[name] for name in COMPARED if name in item.before)


def _write(job: Job, item: JobItem, remote: RemoteEndpoint, scope: Scope, client) -> _Outcome:
    """The one Vobiz write of this item, through the audited, verified services."""
    user = job.created_by
    common = {"user": user, "endpoint_id": item.endpoint_id, "scope": scope,
              "current": remote, "job": job, "client": client}
    if job.action == Job.Action.SET_APPLICATION:
        services.endpoint_application_set(app_id=job.params["app_id"], **common)
    elif job.action == Job.Action.DETACH_APPLICATION:
        services.endpoint_application_set(app_id="", **common)
    elif job.action == Job.Action.SET_PERMISSIONS:
        services.endpoint_update(changes=dict(job.params["permissions"]), **common)
    elif job.action == Job.Action.RESET_PASSWORD:
        password = generate_password()
        # Kept (encrypted) before it is sent: if the worker dies after sending, the person
        # who ran the job still gets the password that may now be active.
        JobItem.objects.filter(pk=item.pk).update(secret=seal(password))
        outcome = services.endpoint_password_reset(password=password, **common)
        devices = len(outcome.signed_out)
        return _Outcome(JobItem.State.DONE,
                        f"{devices} device(s) signed out." if devices else "")
    elif job.action == Job.Action.DELETE:
        services.endpoint_delete(**common)
    elif job.action == Job.Action.IMPORT_UPDATE:
        services.endpoint_update(changes=dict(item.changes), **common)
    return _Outcome(JobItem.State.DONE)


def _process(job: Job, item: JobItem, scope: Scope, client) -> _Outcome:
    """Re-read the endpoint live, decide, write once. Raises _RateLimited on a 429."""
    if job.action == Job.Action.IMPORT_CREATE:
        return _create(job, item, scope, client)
    try:
        try:
            remote = client.get_endpoint(item.endpoint_id)
        except VobizNotFound:
            endpoint_cache_drop(item.endpoint_id)
            if job.action == Job.Action.DELETE:
                return _Outcome(JobItem.State.DONE, "Already gone at Vobiz.")
            return _Outcome(JobItem.State.SKIPPED, DELETED_ELSEWHERE)
        if not scope.allows(remote.sub_account):
            return _Outcome(JobItem.State.SKIPPED, "Outside the scope of the person who ran "
                                                   "the job.")
        if item.in_doubt:
            # A runner died while this item was in progress: the write may have been sent.
            if job.action == Job.Action.RESET_PASSWORD:
                return _Outcome(JobItem.State.UNCERTAIN, UNCERTAIN_RESET)
            if _target_reached(job, remote, item):
                endpoint_cache_put(remote)
                services._audit(user=job.created_by, action=_audit_action(job),
                                endpoint_id=item.endpoint_id,
                                endpoint_username=remote.username,
                                sub_account=remote.sub_account, job=job,
                                outcome=AuditEvent.Outcome.DONE,
                                message="Done before the worker stopped; checked with Vobiz.")
                return _Outcome(JobItem.State.DONE,
                                "Done before the worker stopped; checked with Vobiz.")
            # Not written: go on and write it, once.
        elif _changed_since_preview(item, remote):
            endpoint_cache_put(remote)
            return _Outcome(JobItem.State.SKIPPED, CHANGED_ELSEWHERE)
        if _target_reached(job, remote, item):
            endpoint_cache_put(remote)
            return _Outcome(JobItem.State.SKIPPED, bulk.SKIP_REASONS.get(job.action,
                                                                         "Nothing to change"))
        return _write(job, item, remote, scope, client)
    except VobizError as exc:
        if isinstance(exc, VobizUnavailable) and exc.status == 429:
            raise _RateLimited(exc.retry_after or 5.0) from exc
        if exc.uncertain:
            return _Outcome(JobItem.State.UNCERTAIN, exc.message)
        down = isinstance(exc, VobizUnavailable | VobizAuthError)
        return _Outcome(JobItem.State.FAILED, exc.message, counts_as_failure=down)


def _audit_action(job: Job) -> str:
    return {Job.Action.SET_APPLICATION: "attach_application",
            Job.Action.DETACH_APPLICATION: "detach_application",
            Job.Action.SET_PERMISSIONS: "update",
            Job.Action.RESET_PASSWORD: "password_reset",
            Job.Action.DELETE: "delete",
            Job.Action.IMPORT_UPDATE: "update",
            Job.Action.IMPORT_CREATE: "create"}[job.action]


UNCERTAIN_CREATE = ("The worker stopped while creating this endpoint: it may or may not exist. "
                    "Look for {username} in the list before creating it again.")


def _create(job: Job, item: JobItem, scope: Scope, client) -> _Outcome:
    """One row of an onboarding spreadsheet: created once (a create is never re-sent: Vobiz
    rewrites usernames, so a second POST is a second endpoint), its password kept encrypted
    for the one-time hand-over, and a view-once link made when the job asked for them."""
    typed = item.changes.get("username", "")
    if item.in_doubt:
        return _Outcome(JobItem.State.UNCERTAIN, UNCERTAIN_CREATE.format(username=typed))
    sealed = _unseal_json(item.secret) if item.secret else {}
    password = sealed.get("password") or generate_password()
    # Kept before it is sent: the hand-over must work even if the worker dies right after.
    JobItem.objects.filter(pk=item.pk).update(secret=seal_json({"password": password}))
    try:
        outcome = services.endpoint_create(user=job.created_by, scope=scope, client=client,
                                           data={**item.changes, "password": password})
    except services.OutOfScope:
        return _Outcome(JobItem.State.FAILED, "The sub-account is outside the scope of the "
                                              "person who ran the job.")
    except VobizError as exc:
        if isinstance(exc, VobizUnavailable) and exc.status == 429:
            raise _RateLimited(exc.retry_after or 5.0) from exc
        if exc.uncertain:
            return _Outcome(JobItem.State.UNCERTAIN, UNCERTAIN_CREATE.format(username=typed))
        JobItem.objects.filter(pk=item.pk).update(secret="")
        fields = getattr(exc, "field_errors", {}) or {}
        detail = "; ".join(f"{k}: {v}" for k, v in fields.items())
        return _Outcome(JobItem.State.FAILED, f"{exc.message} {detail}".strip(),
                        counts_as_failure=isinstance(exc, VobizUnavailable | VobizAuthError))
    endpoint = outcome.endpoint
    hand_over = {"password": password}
    if job.params.get("links"):
        hand_over["link"] = links.link_create(endpoint=endpoint, password=password, job=job,
                                              user=job.created_by)
    JobItem.objects.filter(pk=item.pk).update(
        endpoint_id=endpoint.endpoint_id, endpoint_username=endpoint.username[:255],
        sub_account=endpoint.sub_account, secret=seal_json(hand_over))
    notes = [f"Stored as {endpoint.username}." if outcome.username_rewritten else "",
             ("Not kept by Vobiz: " + "; ".join(outcome.not_kept) + ".")
             if outcome.not_kept else "", outcome.unverified]
    return _Outcome(JobItem.State.DONE, " ".join(n for n in notes if n))


def seal_json(data: dict) -> str:
    return seal(json.dumps(data))


def _unseal_json(token: str) -> dict:
    text = unseal(token)
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def _next_item(job_id: int, skip: set[int]) -> JobItem | None:
    """The next waiting item, marked in progress (written before its Vobiz call)."""
    candidates = (JobItem.objects.filter(job_id=job_id, state=JobItem.State.PENDING)
                  .exclude(pk__in=skip).order_by("position")[:1])
    for item in candidates:
        taken = JobItem.objects.filter(pk=item.pk, state=JobItem.State.PENDING).update(
            state=JobItem.State.RUNNING, started_at=timezone.now(),
            attempts=F("attempts") + 1)
        if taken:
            item.refresh_from_db()
            return item
    return None


def _run_item(job: Job, item: JobItem, scope: Scope, client, pooled: bool = False,
              ) -> _Outcome | _RateLimited:
    try:
        return _process(job, item, scope, client)
    except _RateLimited as limited:
        return limited
    finally:
        if pooled:  # a pool thread's own database connection
            connection.close()


def _record(job: Job, item: JobItem, result) -> None:
    """Write the item's outcome (after its Vobiz call) and the job's failure streak."""
    if isinstance(result, _RateLimited):
        # Not done and not failed: Vobiz asked us to wait. The item waits with the job.
        JobItem.objects.filter(pk=item.pk).update(state=JobItem.State.PENDING)
        seconds = max(1.0, min(float(result.seconds), 300.0))
        Job.objects.filter(pk=job.pk).update(
            pause_until=timezone.now() + timedelta(seconds=seconds),
            pause_reason=RATE_REASON.format(s=int(seconds + 0.999)))
        return
    JobItem.objects.filter(pk=item.pk).update(
        state=result.state, message=result.message[:2000], finished_at=timezone.now(),
        in_doubt=False, **({"secret": ""} if result.state in (
            JobItem.State.FAILED, JobItem.State.SKIPPED) else {}))
    if result.counts_as_failure:
        Job.objects.filter(pk=job.pk).update(consecutive_failures=F("consecutive_failures") + 1)
        limit = int(_setting("JOB_FAILURE_LIMIT", 20))
        Job.objects.filter(pk=job.pk, consecutive_failures__gte=limit,
                           status=Job.Status.RUNNING).update(
            status=Job.Status.PAUSED, pause_reason=DOWN_REASON.format(n=limit))
    elif result.state == JobItem.State.DONE:
        Job.objects.filter(pk=job.pk).exclude(consecutive_failures=0).update(
            consecutive_failures=0)


def job_execute(*, job_id: int, client: vobiz.VobizClient | None = None) -> None:
    """Run the job until every item is settled, it is paused or cancelled, or another
    runner takes it. Safe to call twice or after a crash: it carries on from the rows."""
    token = tokens.token_hex(8)
    if not _claim(job_id, token):
        return
    client = client or vobiz.get_client()
    job = Job.objects.select_related("created_by").get(pk=job_id)
    scope = _job_scope(job)
    # Items a dead runner left in progress: re-read and checked before anything is sent.
    JobItem.objects.filter(job_id=job_id, state=JobItem.State.RUNNING).update(
        state=JobItem.State.PENDING, in_doubt=True)
    beat_every = max(0.5, stale_after().total_seconds() / 4)
    last_beat = last_flush = timezone.now()
    threads = max(1, job.concurrency)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"job{job_id}") \
        if threads > 1 else None
    in_flight: dict = {}
    with coalesced_version_bumps() as flush:
        try:
            while True:
                now = timezone.now()
                if (now - last_flush).total_seconds() >= VERSION_FLUSH_SECONDS:
                    last_flush = now
                    flush()  # the list's counts follow the job every few seconds
                if (now - last_beat).total_seconds() >= beat_every:
                    last_beat = now
                    if not _beat(job_id, token):
                        logger.warning("job %s: another runner took it over", job_id)
                        break
                state = Job.objects.filter(pk=job_id).values(
                    "status", "pause_until").first()
                dispatching = state["status"] == Job.Status.RUNNING and not (
                    state["pause_until"] and state["pause_until"] > now)
                while dispatching and len(in_flight) < threads:
                    item = _next_item(job_id, {i.pk for i in in_flight.values()})
                    if item is None:
                        break
                    if pool is None:  # one at a time, in this thread
                        _record(job, item, _run_item(job, item, scope, client))
                        break
                    in_flight[pool.submit(_run_item, job, item, scope, client, True)] = item
                if in_flight:
                    finished, _ = wait(list(in_flight), timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in finished:
                        _record(job, in_flight.pop(future), future.result())
                    continue
                if state["status"] != Job.Status.RUNNING:
                    break  # paused or cancelling: nothing in flight any more
                if state["pause_until"] and state["pause_until"] > now:
                    threading.Event().wait(min(0.5, (state["pause_until"] - now).total_seconds()))
                    continue
                if not JobItem.objects.filter(job_id=job_id,
                                              state=JobItem.State.PENDING).exists():
                    break
        finally:
            for future in list(in_flight):
                _record(job, in_flight.pop(future), future.result())
            if pool is not None:
                pool.shutdown(wait=True)
    _finish(job_id, token)


def _finish(job_id: int, token: str) -> None:
    """Settle the job once nothing is in flight: done, cancelled, or left paused."""
    now = timezone.now()
    job = Job.objects.filter(pk=job_id, runner=token).first()
    if job is None:
        return
    if job.status == Job.Status.CANCELLING:
        JobItem.objects.filter(job_id=job_id, state=JobItem.State.PENDING).update(
            state=JobItem.State.SKIPPED, message=CANCELLED, finished_at=now)
        Job.objects.filter(pk=job_id).update(status=Job.Status.CANCELLED, finished_at=now,
                                             runner="")
    elif job.status == Job.Status.RUNNING and not JobItem.objects.filter(
            job_id=job_id, state__in=[JobItem.State.PENDING, JobItem.State.RUNNING]).exists():
        extra = {}
        if job.action in (Job.Action.RESET_PASSWORD, Job.Action.IMPORT_CREATE) and \
                JobItem.objects.filter(job_id=job_id).exclude(secret="").exists():
            extra["credentials_until"] = now + timedelta(
                seconds=_setting("JOB_CREDENTIALS_SECONDS", 3600))
        Job.objects.filter(pk=job_id).update(status=Job.Status.DONE, finished_at=now,
                                             runner="", pause_until=None, pause_reason="",
                                             **extra)
    elif job.status == Job.Status.RUNNING:
        # Resumed while this runner was winding down: go on, in a new run.
        Job.objects.filter(pk=job_id, runner=token).update(
            status=Job.Status.QUEUED, queued_at=now, runner="", heartbeat_at=None)
        job_enqueue(job_id=job_id)
    else:
        Job.objects.filter(pk=job_id, runner=token).update(runner="")


# --- what people do to a job --------------------------------------------------------------


def job_cancel(*, job: Job) -> bool:
    """Stop after the endpoints in flight. A job no worker has started ends at once."""
    now = timezone.now()
    if Job.objects.filter(pk=job.pk, status__in=[Job.Status.QUEUED, Job.Status.PAUSED],
                          runner="").update(status=Job.Status.CANCELLED, finished_at=now):
        JobItem.objects.filter(job=job, state=JobItem.State.PENDING).update(
            state=JobItem.State.SKIPPED, message=CANCELLED, finished_at=now)
        return True
    return bool(Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
        status=Job.Status.CANCELLING))


def job_retry_failed(*, job: Job) -> int:
    """Queue the failed endpoints again (only those); returns how many. Only once no runner
    holds the job (finished, cancelled, or paused and wound down)."""
    settled = [Job.Status.DONE, Job.Status.PAUSED, Job.Status.CANCELLED]
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, status__in=settled, runner="").update(
                status=Job.Status.QUEUED, queued_at=timezone.now(), finished_at=None,
                pause_reason="", pause_until=None, consecutive_failures=0):
            return 0
        count = JobItem.objects.filter(job=job, state=JobItem.State.FAILED).update(
            state=JobItem.State.PENDING, message="", finished_at=None)
        if not count:  # nothing to retry: leave the job as it was
            transaction.set_rollback(True)
            return 0
    job_enqueue(job_id=job.pk)
    return count


def job_resume(*, job: Job) -> bool:
    """Go on with a paused job: its runner, if still winding down, carries on; otherwise it
    is queued again."""
    reset = {"pause_reason": "", "pause_until": None, "consecutive_failures": 0}
    if Job.objects.filter(pk=job.pk, status=Job.Status.PAUSED).exclude(runner="").update(
            status=Job.Status.RUNNING, **reset):
        return True
    if Job.objects.filter(pk=job.pk, status=Job.Status.PAUSED, runner="").update(
            status=Job.Status.QUEUED, queued_at=timezone.now(), **reset):
        job_enqueue(job_id=job.pk)
        return True
    return False


def job_watchdog() -> list[int]:
    """Hand jobs whose runner died to a new one; returns their ids."""
    dead = list(Job.objects.filter(
        status__in=[Job.Status.RUNNING, Job.Status.CANCELLING],
        heartbeat_at__lt=timezone.now() - stale_after()).values_list("pk", flat=True))
    for job_id in dead:
        logger.warning("job %s: its worker stopped beating; handing it to another", job_id)
        job_enqueue(job_id=job_id)
    return dead


# --- progress -----------------------------------------------------------------------------


def job_counts(job: Job) -> dict[str, int]:
    """Items by state (one grouped count on the (job, state) index)."""
    counts = dict.fromkeys(JobItem.State.values, 0)
    counts.update(JobItem.objects.filter(job=job).values_list("state").annotate(n=Count("id"))
                  .values_list("state", "n"))
    counts["settled"] = sum(counts[s] for s in (JobItem.State.DONE, JobItem.State.SKIPPED,
                                                JobItem.State.FAILED, JobItem.State.UNCERTAIN))
    return counts


# --- a bulk reset's passwords, handed over once -------------------------------------------


class CredentialsRefused(Exception):
    """Why the password file cannot be downloaded (plain words for the page)."""


CREDENTIALS_HEADER = ["username", "password", "sip_domain", "udp_tcp_port", "tls_port",
                      "endpoint_id", "note", "setup_link"]


def credentials_take(*, job: Job, user, link_base: str = "") -> str:
    """The bulk reset's new passwords as CSV text, once, for the person who ran the job,
    within the hand-over window; the passwords are wiped as they are handed over and the
    download is audited. Raises CredentialsRefused otherwise."""
    if job.action not in (Job.Action.RESET_PASSWORD, Job.Action.IMPORT_CREATE):
        raise CredentialsRefused("This job set no passwords.")
    if job.created_by_id != user.pk:
        raise CredentialsRefused("Only the person who ran the job can download its passwords.")
    now = timezone.now()
    claimed = Job.objects.filter(pk=job.pk, created_by=user, status=Job.Status.DONE,
                                 credentials_downloaded_at__isnull=True,
                                 credentials_until__gt=now).update(
        credentials_downloaded_at=now)
    if not claimed:
        credentials_expire()
        job.refresh_from_db()
        if job.credentials_downloaded_at:
            raise CredentialsRefused("The passwords were already downloaded once; they are not "
                                     "kept. Reset the endpoints again to get new ones.")
        raise CredentialsRefused("The passwords are no longer available: they are kept for "
                                 "one hour after the job, then wiped. Reset the endpoints "
                                 "again to get new ones.")
    domain = display.sip_domain()
    rows = []
    for item in JobItem.objects.filter(job=job).exclude(secret="").order_by("position"):
        sealed = _unseal_json(item.secret) if job.action == Job.Action.IMPORT_CREATE else {
            "password": unseal(item.secret)}
        password = sealed.get("password")
        if not password or item.state not in (JobItem.State.DONE, JobItem.State.UNCERTAIN):
            continue
        if job.action == Job.Action.IMPORT_CREATE and item.state != JobItem.State.DONE:
            continue  # no endpoint (as far as we know): no credentials to hand over
        note = "" if item.state == JobItem.State.DONE else \
            "uncertain: may not be active; reset again to be sure"
        link = f"{link_base}{sealed['link']}/" if sealed.get("link") and link_base else ""
        rows.append([item.endpoint_username, password, domain, display.SIP_PORTS["udp"],
                     display.SIP_PORTS["tls"], item.endpoint_id, note, link])
    JobItem.objects.filter(job=job).exclude(secret="").update(secret="")
    services._audit(user=user, action="credentials_download", outcome=AuditEvent.Outcome.DONE,
                    job=job, message=f"Downloaded the {len(rows)} new password(s) of job "
                                     f"{job.pk}; they are no longer kept.")
    return csv_text(CREDENTIALS_HEADER, rows)


def credentials_expire() -> int:
    """Wipe passwords whose hand-over window has passed; returns how many."""
    expired = Job.objects.filter(credentials_until__lte=timezone.now())
    return JobItem.objects.filter(job__in=expired).exclude(secret="").update(secret="")
