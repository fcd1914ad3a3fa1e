"""Spreadsheets: export the list's filter as CSV; import a sheet to update endpoints or to
create them (previewed as a draft job, run as a job); the view-once setup links.

An upload is read and checked against the cache only; nothing reaches Vobiz before Run.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import bulk, jobs, links, roles, selectors, services, spreadsheets
from ..csvfiles import csv_lines
from ..models import AuditEvent, CredentialLink, Job, JobItem
from ..scopes import request_scope
from ..vobiz import PERMISSION_LABELS
from .bulk import _filters
from .common import page_number, pager

IMPORT_TEMPLATE = "endpoints/import.html"
PREVIEW_TEMPLATE = "endpoints/import_preview.html"
LINK_TEMPLATE = "endpoints/setup_link.html"
PREVIEW_PAGE = 50
FIELD_LABELS = {"alias": "Alias", "application": "Application", **PERMISSION_LABELS}


# --- export -------------------------------------------------------------------------------


@require_GET
@permission_required(roles.VIEW, raise_exception=True)
def export_csv(request):
    """Every endpoint matching the list's filter (not just the page), within the scope,
    streamed as it is read."""
    filters = _filters(request, request.GET)
    scope = request_scope(request)
    count = selectors.endpoint_matching(filters=filters, scope=scope).count
    account = "".join(c for c in settings.VOBIZ_AUTH_ID if c.isalnum() or c in "_-") or "vobiz"
    name = f"endpoints-{account}-{datetime.now(UTC):%Y-%m-%d}.csv"
    services._audit(user=request.user, action="export", outcome=AuditEvent.Outcome.DONE,
                    message=f"Exported {count:,} endpoint(s) as CSV"
                            + (f" (filter: {_describe(filters)})" if _describe(filters)
                               else "") + ".")
    rows = spreadsheets.export_rows(filters=filters, scope=scope)
    response = StreamingHttpResponse(csv_lines(spreadsheets.EXPORT_COLUMNS, rows),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    patch_cache_control(response, private=True, no_store=True)
    return response


def _describe(filters: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in filters.items()
                     if v and k in selectors.NARROWING_KEYS)


# --- imports ------------------------------------------------------------------------------


KINDS = {
    "update": {"permission": roles.EDIT, "required": "endpoint_id",
               "known": spreadsheets.EXPORT_COLUMNS, "title": "Update endpoints from a CSV"},
    "create": {"permission": roles.CREATE, "required": "username",
               "known": spreadsheets.CREATE_COLUMNS, "title": "Create endpoints from a CSV"},
}


def _import(request, kind: str):
    spec = KINDS[kind]
    if not request.user.has_perm(spec["permission"]):
        raise PermissionDenied("Your role may not run this import.")
    context = {"kind": kind, "title": spec["title"], "columns": spec["known"],
               "required": spec["required"], "max_rows": spreadsheets.MAX_ROWS}
    if request.method == "GET":
        return render(request, IMPORT_TEMPLATE, context)
    upload = request.FILES.get("file")
    if upload is None:
        return render(request, IMPORT_TEMPLATE, {**context, "error": "Choose a CSV file."},
                      status=422)
    scope = request_scope(request)
    try:
        sheet = spreadsheets.read_sheet(upload, known=spec["known"],
                                        required=spec["required"])
    except spreadsheets.SpreadsheetRefused as exc:
        return render(request, IMPORT_TEMPLATE, {**context, "error": str(exc)}, status=422)
    if kind == "update":
        plan = spreadsheets.plan_update(sheet, scope=scope, user=request.user)
        job = jobs.import_draft_update(user=request.user, scope=scope, plan=plan)
    else:
        plan = spreadsheets.plan_create(sheet, scope=scope)
        job = jobs.import_draft_create(user=request.user, scope=scope, plan=plan)
    return redirect("endpoints:import_preview", job_id=job.pk)


@never_cache
@require_http_methods(["GET", "POST"])
@permission_required(roles.VIEW, raise_exception=True)
def import_update(request):
    """Upload a sheet in the export's format (any subset of its columns with endpoint_id)."""
    return _import(request, "update")


@never_cache
@require_http_methods(["GET", "POST"])
@permission_required(roles.VIEW, raise_exception=True)
def import_create(request):
    """Upload a sheet of new endpoints (onboarding)."""
    return _import(request, "create")


def _draft_or_404(request, job_id: int) -> Job:
    job = Job.objects.filter(pk=job_id, created_by=request.user,
                             action__in=[Job.Action.IMPORT_UPDATE, Job.Action.IMPORT_CREATE]
                             ).first()
    if job is None:
        raise Http404("No such import.")
    return job


def _change_lines(item: JobItem) -> list[tuple[str, str, str]]:
    def shown(value):
        if value is None:
            return "Not reported"
        if isinstance(value, bool):
            return "On" if value else "Off"
        return value if value != "" else "None"

    before = {**item.before, "application": item.before.get("app_id")}
    return [(FIELD_LABELS.get(name, name), shown(before.get(name)), shown(value))
            for name, value in item.changes.items()]


@never_cache
@require_GET
@permission_required(roles.VIEW, raise_exception=True)
def import_preview(request, job_id: int):
    """The dry run of an import: totals, rows in error (row, column, message), ignored
    columns, then what each row will change or create, paged; Run names the count."""
    job = _draft_or_404(request, job_id)
    if job.status != Job.Status.DRAFT:
        return redirect("endpoints:job", job_id=job.pk)
    page = page_number(request.GET.get("page"))
    last = max(1, math.ceil(job.total / PREVIEW_PAGE))
    page = min(page, last)
    items = list(JobItem.objects.filter(job=job).order_by("position")
                 [(page - 1) * PREVIEW_PAGE:page * PREVIEW_PAGE])
    create = job.action == Job.Action.IMPORT_CREATE
    rows = [{"item": item, "changes": [] if create else _change_lines(item),
             "fields": _create_fields(item) if create else []} for item in items]
    return render(request, PREVIEW_TEMPLATE, {
        "job": job, "create": create, "rows": rows, "pager": pager(page, last),
        "problems": job.params.get("problems", []),
        "problem_count": job.params.get("problem_count", 0),
        "ignored": job.params.get("ignored", []), "unchanged": job.params.get("unchanged", 0),
        "row_count": job.params.get("rows", 0),
        "link_hours": getattr(settings, "CREDENTIAL_LINK_HOURS", 72),
        "may_run": request.user.has_perm(bulk.ACTION_PERMISSION[job.action]),
    })


def _create_fields(item: JobItem) -> list[str]:
    data = item.changes
    out = [f"alias {data['alias']}" if data.get("alias") else "no alias"]
    out.append(f"application {data['application']}" if data.get("application")
               else "default application")
    out.append(f"sub-account {data['sub_account']}" if data.get("sub_account")
               else "main account")
    on = [PERMISSION_LABELS[name].lower() for name in PERMISSION_LABELS if data.get(name)]
    out.append("allows " + ", ".join(on) if on else "allows nothing")
    out.append("password from the file" if item.secret else "password generated")
    return out


@require_POST
@permission_required(roles.VIEW, raise_exception=True)
def import_run(request, job_id: int):
    """Run a previewed import, once."""
    job = _draft_or_404(request, job_id)
    if not request.user.has_perm(bulk.ACTION_PERMISSION[job.action]):
        raise PermissionDenied("Your role may not run this import.")
    if not job.total:
        messages.info(request, "Nothing to run: no row changes or creates anything.")
        return redirect("endpoints:import_preview", job_id=job.pk)
    if jobs.job_start(job=job, user=request.user,
                      links_wanted=request.POST.get("links") == "on"):
        messages.success(request, f"Job {job.pk} queued: {job.summary}.")
    else:
        messages.info(request, "This import was already run.")
    return redirect("endpoints:job", job_id=job.pk)


# --- view-once setup links ----------------------------------------------------------------


def _link_page(request, context: dict, status: int = 200):
    response = render(request, LINK_TEMPLATE, context, status=status)
    patch_cache_control(response, no_store=True, no_cache=True, private=True, max_age=0)
    response["X-Robots-Tag"] = "noindex, nofollow"
    # The site's same-origin referrer policy already keeps the link's path from other sites
    # (no-referrer would make the browser send "Origin: null" with the form, failing CSRF).
    return response


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def setup_link(request, token: str):
    """The page a view-once link opens: a warning that it works once, then (POST) the SIP
    settings and the password, once. A used, expired, revoked or unknown link gets the same
    answer."""
    if request.method == "GET":
        link = links.link_waiting(token=token)
        if link is None:
            return _link_page(request, {"gone": True}, status=404)
        return _link_page(request, {"waiting": True, "username": link.endpoint_username,
                                    "expires_at": link.expires_at})
    shown = links.link_open(token=token)
    if shown is None:
        return _link_page(request, {"gone": True}, status=404)
    return _link_page(request, {"shown": shown})


@require_POST
@permission_required(roles.VIEW, raise_exception=True)
def link_revoke(request, endpoint_id: str, link_id: int):
    """Spend a link nobody opened yet (from the endpoint's page)."""
    if not (request.user.has_perm(roles.CREATE) or request.user.has_perm(roles.RESET_PASSWORD)):
        raise PermissionDenied("Your role may not revoke setup links.")
    if selectors.endpoint_get(endpoint_id=endpoint_id, scope=request_scope(request)) is None:
        raise Http404("No such endpoint.")
    link = CredentialLink.objects.filter(pk=link_id, endpoint_id=endpoint_id).first()
    if link is None:
        raise Http404("No such link.")
    if links.link_revoke(link=link, user=request.user):
        messages.success(request, "The setup link was revoked: it can no longer be opened.")
    else:
        messages.info(request, "That link was already used, expired or revoked.")
    return redirect(reverse("endpoints:detail", args=[endpoint_id]))
