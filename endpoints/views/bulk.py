"""Bulk work: the selection on the list, the preview (a dry run from the cache), Run, and
the job pages (progress, results, cancel, retry, resume, the one-time password file).

The selection lives in the session, tied to the filter it was made under: picked rows
survive paging and sorting within that filter, "Select all N matching" keeps the filter
itself. Every read is within the user's scope; a job is shown to the person who ran it and to
people who see all endpoints.
"""

from __future__ import annotations

import math
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from .. import bulk, jobs, roles, selectors
from ..filters import EndpointFilterForm
from ..htmx import wants_fragment
from ..models import Job, JobItem
from ..scopes import MAIN_ACCOUNT, request_scope, sub_account_label
from ..sync import worker_missing
from ..vobiz import EDITABLE_PERMISSIONS, PERMISSION_LABELS
from .common import page_number, pager, safe_next

SESSION_KEY = "endpoint_selection"
LIST_TEMPLATE = "endpoints/list.html"
PREVIEW_TEMPLATE = "endpoints/bulk_preview.html"
JOB_TEMPLATE = "endpoints/job.html"
JOBS_TEMPLATE = "endpoints/jobs.html"
JOB_ITEMS_PAGE = 50
JOBS_PAGE = 30


# --- the selection ------------------------------------------------------------------------


def _filters(request, data) -> dict:
    """The list's filter values from ``data`` (validated as the list validates them)."""
    scope = request_scope(request)
    form = EndpointFilterForm(
        data, applications=selectors.application_list(version=None),
        sub_accounts=selectors.sub_account_list(scope=scope),
        main_account=scope.allows(MAIN_ACCOUNT))
    return {k: v for k, v in form.cleaned_filters().items() if k in bulk.FILTER_KEYS}


def session_selection(request, filters: dict) -> bulk.Selection:
    """The user's selection if it was made under ``filters``, else an empty one for them."""
    stored = bulk.Selection.from_data(request.session.get(SESSION_KEY))
    if stored.key == bulk.filters_key(filters):
        return stored
    return bulk.Selection(filters={k: filters.get(k) or "" for k in bulk.FILTER_KEYS})


def _save(request, selection: bulk.Selection) -> None:
    request.session[SESSION_KEY] = selection.as_data()


def selection_context(request, *, filters: dict, rows, total: int,
                      applications=None) -> dict:
    """What the list's selection bar shows (the list view and the selection view)."""
    scope = request_scope(request)
    selection = session_selection(request, filters)
    page_ids = [row.endpoint_id for row in rows]
    return {
        "selection": selection,
        "selected_count": bulk.selection_count(selection=selection, scope=scope),
        "page_ids": page_ids,
        "page_all_selected": bool(page_ids) and (
            selection.all_matching or all(i in selection.ids for i in page_ids)),
        "total": total,
        "bulk_actions": bulk.actions_for(request.user),
        "bulk_applications": applications if applications is not None
        else selectors.application_list(),
        "bulk_permissions": [(name, PERMISSION_LABELS[name]) for name in EDITABLE_PERMISSIONS],
    }


@require_POST
@permission_required(roles.VIEW, raise_exception=True)
def selection_update(request):
    """Change the selection: ``op`` page (this page's boxes as ticked), page_all, all
    (every endpoint matching the filter) or clear. htmx: the selection bar; otherwise back
    to the list (it works without JavaScript)."""
    filters = _filters(request, request.POST)
    scope = request_scope(request)
    selection = session_selection(request, filters)
    op = request.POST.get("op", "page")
    page_ids = {i for i in request.POST.getlist("page_ids") if i}
    if op == "clear":
        selection = bulk.Selection(filters=selection.filters)
    elif op == "all":
        selection = bulk.Selection(filters=selection.filters, all_matching=True)
    elif op in ("page", "page_all"):
        ticked = page_ids if op == "page_all" else set(request.POST.getlist("ids")) & page_ids
        # Only endpoints this user may see (a forged id is dropped, never stored).
        visible = set(selectors.endpoints_in_scope(scope).filter(
            endpoint_id__in=sorted(page_ids)).values_list("endpoint_id", flat=True))
        if selection.all_matching and ticked != visible:
            selection = bulk.Selection(filters=selection.filters)  # unticking leaves "all"
        ids = (set(selection.ids) - visible) | (ticked & visible)
        if len(ids) > bulk.MAX_PICKED:
            messages.warning(request, f"At most {bulk.MAX_PICKED:,} endpoints can be picked one "
                                      "by one: use “Select all matching” for more.")
        elif not selection.all_matching:
            selection = bulk.Selection(filters=selection.filters, ids=frozenset(ids))
    _save(request, selection)
    back = safe_next(request, reverse("endpoints:list"))
    if not wants_fragment(request):
        return redirect(back)
    rows = list(selectors.endpoints_in_scope(scope).filter(endpoint_id__in=sorted(page_ids))
                .only("endpoint_id"))
    order = {i: n for n, i in enumerate(request.POST.getlist("page_ids"))}
    rows.sort(key=lambda r: order.get(r.endpoint_id, 0))
    total = selectors.endpoint_matching(filters=filters, scope=scope).count
    context = {**selection_context(request, filters=filters, rows=rows, total=total),
               "list_url": back}
    response = render(request, f"{LIST_TEMPLATE}#selection_bar", context)
    response["HX-Trigger"] = "selection-changed"
    return response


# --- preview and run ----------------------------------------------------------------------


def _action(request, data) -> tuple[str, dict]:
    """The requested action and its parameters; 403 when the role may not run it."""
    action = str(data.get("action") or "")
    if action not in bulk.BULK_ACTIONS:
        raise Http404("No such bulk action.")
    if not request.user.has_perm(bulk.ACTION_PERMISSION[action]):
        raise PermissionDenied("Your role may not run this bulk action.")
    return action, bulk.action_params(action, data)


def _preview_page(request, *, action: str, params: dict, data, status: int = 200,
                  notice: str = ""):
    scope = request_scope(request)
    stored = bulk.Selection.from_data(request.session.get(SESSION_KEY))
    page = page_number(data.get("page"))
    result = bulk.preview(selection=stored, scope=scope, action=action, params=params,
                          offset=(page - 1) * bulk.PREVIEW_PAGE)
    names = selectors.sub_account_names()
    for row in result.rows:
        row["sub_label"] = sub_account_label(row["endpoint"].sub_account, names)
    last = max(1, math.ceil(result.total / bulk.PREVIEW_PAGE))
    fingerprint = bulk.preview_fingerprint(selection=stored, action=action, params=params,
                                           will_change=result.will_change)
    query = {k: v for k, v in data.items() if k in ("action", "app_id", *EDITABLE_PERMISSIONS)}
    return render(request, PREVIEW_TEMPLATE, {
        "action": action, "action_label": Job.Action(action).label,
        "summary": bulk.action_summary(action, params), "params": params, "query": query,
        "preview": result, "pager": pager(min(page, last), last),
        "first_index": result.offset + 1 if result.rows else 0,
        "last_index": result.offset + len(result.rows),
        "fingerprint": fingerprint, "notice": notice, "selection": stored,
    }, status=status)


@require_GET
@permission_required(roles.VIEW, raise_exception=True)
def bulk_preview(request):
    """The dry run: what the action would do to every selected endpoint, from the cache."""
    try:
        action, params = _action(request, request.GET)
    except bulk.ActionError as exc:
        messages.error(request, f"Preview not possible: {exc.message}")
        return redirect("endpoints:list")
    if bulk.Selection.from_data(request.session.get(SESSION_KEY)).empty:
        messages.warning(request, "Select some endpoints first.")
        return redirect("endpoints:list")
    return _preview_page(request, action=action, params=params, data=request.GET)


@require_POST
@permission_required(roles.VIEW, raise_exception=True)
def bulk_run(request):
    """Make the job the preview showed and queue it; then its page. When the selection
    changed since the preview, the preview is shown again instead."""
    try:
        action, params = _action(request, request.POST)
    except bulk.ActionError as exc:
        messages.error(request, f"Not run: {exc.message}")
        return redirect("endpoints:list")
    stored = bulk.Selection.from_data(request.session.get(SESSION_KEY))
    if stored.empty:
        messages.warning(request, "Nothing is selected any more.")
        return redirect("endpoints:list")
    try:
        job = jobs.job_create(user=request.user, scope=request_scope(request), selection=stored,
                              action=action, params=params,
                              fingerprint=request.POST.get("fingerprint", ""))
    except jobs.SelectionChanged:
        return _preview_page(request, action=action, params=params, data=request.POST,
                             status=409, notice="The selection changed since this preview "
                             "(endpoints came, went or changed). Here it is again: check it, "
                             "then run.")
    request.session.pop(SESSION_KEY, None)
    messages.success(request, f"Job {job.pk} queued: {job.summary} on "
                              f"{job.total:,} endpoint{'s' if job.total != 1 else ''}.")
    return redirect("endpoints:job", job_id=job.pk)


# --- jobs ---------------------------------------------------------------------------------


def _visible_jobs(request):
    """The jobs the user may see: their own, or every job when they see all endpoints;
    never an import still being previewed (that is its author's draft)."""
    jobs_ = Job.objects.exclude(status=Job.Status.DRAFT)
    if request_scope(request).everything:
        return jobs_
    return jobs_.filter(created_by=request.user)


def _job_or_404(request, job_id: int) -> Job:
    job = _visible_jobs(request).select_related("created_by").filter(pk=job_id).first()
    if job is None:
        raise Http404("No such job.")
    return job


def _may_act(request, job: Job) -> None:
    if not request.user.has_perm(bulk.ACTION_PERMISSION[job.action]):
        raise PermissionDenied("Your role may not run this kind of job.")


def _job_view(view):
    @wraps(view)
    def wrapped(request, job_id, *args, **kwargs):
        return view(request, _job_or_404(request, job_id), *args, **kwargs)

    return permission_required(roles.VIEW, raise_exception=True)(wrapped)


def _progress(job: Job, counts: dict) -> dict:
    settled, total = counts["settled"], job.total or 0
    rate = left = None
    if job.started_at and settled:
        end = job.finished_at or timezone.now()
        seconds = max((end - job.started_at).total_seconds(), 0.001)
        rate = settled / seconds
        if job.status in (Job.Status.RUNNING, Job.Status.QUEUED) and rate > 0:
            left = (total - settled) / rate
    return {"settled": settled, "total": total, "rate": rate, "left": left,
            "percent": int(100 * settled / total) if total else 100}


def _left_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    return f"about {round(seconds / 60)} minute{'s' if round(seconds / 60) != 1 else ''} left"


OUTCOME_FILTERS = [("", "All"), *[(s.value, s.label) for s in JobItem.State]]


@require_GET
@vary_on_headers("HX-Request")
@_job_view
def job_detail(request, job: Job):
    """Progress, counts by outcome and the per-endpoint results; htmx polls the fragment."""
    counts = jobs.job_counts(job)
    outcome = request.GET.get("outcome", "")
    if outcome not in JobItem.State.values:
        outcome = ""
    items = JobItem.objects.filter(job=job)
    if outcome:
        items = items.filter(state=outcome)
    shown = counts[outcome] if outcome else job.total
    last = max(1, math.ceil(shown / JOB_ITEMS_PAGE))
    page = min(page_number(request.GET.get("page")), last)
    rows = list(items.order_by("position")[(page - 1) * JOB_ITEMS_PAGE:page * JOB_ITEMS_PAGE])
    progress = _progress(job, counts)
    active = job.status in (Job.Status.QUEUED, Job.Status.RUNNING, Job.Status.CANCELLING)
    context = {
        "job": job, "counts": counts, "progress": progress,
        "left_text": _left_text(progress["left"]), "items": rows, "outcome": outcome,
        "outcomes": OUTCOME_FILTERS, "pager": pager(page, last), "active": active,
        "no_worker": job.status == Job.Status.QUEUED and worker_missing(job.queued_at),
        "can_act": request.user.has_perm(bulk.ACTION_PERMISSION[job.action]),
        "credentials": job.action in (Job.Action.RESET_PASSWORD, Job.Action.IMPORT_CREATE)
        and job.created_by_id == request.user.pk,
        "credentials_open": job.credentials_until is not None
        and job.credentials_until > timezone.now() and job.credentials_downloaded_at is None,
    }
    if wants_fragment(request):
        return render(request, f"{JOB_TEMPLATE}#job_body", context)
    return render(request, JOB_TEMPLATE, context)


@require_GET
@permission_required(roles.VIEW, raise_exception=True)
def job_list(request):
    """Who ran what, when, with what outcome."""
    qs = _visible_jobs(request)
    total = qs.count()
    last = max(1, math.ceil(total / JOBS_PAGE))
    page = min(page_number(request.GET.get("page")), last)
    rows = list(qs.order_by("-created_at", "-id")[(page - 1) * JOBS_PAGE:page * JOBS_PAGE])
    counts: dict[int, dict[str, int]] = {job.pk: {} for job in rows}
    for row in (JobItem.objects.filter(job__in=rows).values("job_id", "state")
                .annotate(n=Count("id")).order_by()):
        counts[row["job_id"]][row["state"]] = row["n"]
    return render(request, JOBS_TEMPLATE, {
        "jobs": [{"job": job, "counts": counts[job.pk]} for job in rows],
        "pager": pager(page, last), "total": total})


def _after(request, job: Job, text: str, level=messages.success):
    level(request, text)
    return redirect("endpoints:job", job_id=job.pk)


@require_POST
@_job_view
def job_cancel(request, job: Job):
    _may_act(request, job)
    if jobs.job_cancel(job=job):
        return _after(request, job, "Cancelling: the endpoints in flight finish, nothing more "
                                    "is started.")
    return _after(request, job, "This job is not running.", messages.info)


@require_POST
@_job_view
def job_retry(request, job: Job):
    _may_act(request, job)
    count = jobs.job_retry_failed(job=job)
    if count:
        return _after(request, job, f"Queued the {count:,} failed endpoint"
                                    f"{'s' if count != 1 else ''} again.")
    return _after(request, job, "Nothing to retry now (no failed endpoints, or the job is "
                                "still running).", messages.info)


@require_POST
@_job_view
def job_resume(request, job: Job):
    _may_act(request, job)
    if jobs.job_resume(job=job):
        return _after(request, job, "Resumed.")
    return _after(request, job, "This job is not paused.", messages.info)


@never_cache
@require_POST
@_job_view
def job_credentials(request, job: Job):
    """The bulk reset's new passwords, as a CSV, once (then they are gone)."""
    try:
        text = jobs.credentials_take(job=job, user=request.user,
                                     link_base=request.build_absolute_uri("/setup/"))
    except jobs.CredentialsRefused as exc:
        return _after(request, job, str(exc), messages.error)
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="job-{job.pk}-passwords.csv"'
    response["Cache-Control"] = "no-store, private"
    return response
