"""The endpoint list (served from the cache), the sync button and its progress, the inline
alias edit, and the audit log.

Browsing never calls Vobiz: the list, its filters, sorting and paging read the local cache.
Every view answers a whole page, or for an htmx request (not boosted, not a history restore)
just the fragment that changed plus out-of-band updates of the counts, the aria-live status
line and the sync badge.
"""

from __future__ import annotations

import math

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from .. import bulk, roles, selectors, services
from ..filters import DEFAULT_PAGE_SIZE, PAGE_SIZES, AuditFilterForm, EndpointFilterForm
from ..forms import AliasForm
from ..htmx import wants_fragment
from ..models import SyncState
from ..scopes import MAIN_ACCOUNT, request_scope
from ..sync import sync_enqueue, sync_is_pending, worker_missing
from ..vobiz import VobizError, VobizNotFound
from . import bulk as bulk_views
from .common import form_add_vobiz_error, page_number, pager, safe_next

LIST_TEMPLATE = "endpoints/list.html"
AUDIT_TEMPLATE = "endpoints/audit.html"
AUDIT_PAGE_SIZE = 50
# The list's columns: (sort key, header).
LIST_HEADERS = [
    ("username", "Username"),
    ("alias", "Alias"),
    ("status", "Registration"),
    ("last_seen", "Last seen"),
    ("contact", "Contact / user agent"),
    ("expires", "Expires"),
    ("application", "Application"),
    ("sub_account", "Sub-account"),
    ("updated", "Updated"),
]
SORT_LABELS = dict(LIST_HEADERS)


# --- the list -----------------------------------------------------------------------------


def _page_size(request, form: EndpointFilterForm) -> int:
    """The page size asked for in the URL (and then remembered for the user), else the one
    the user chose before, else the default."""
    chosen = form.page_size()
    stored = selectors.user_page_size_get(user=request.user)
    if chosen in PAGE_SIZES:
        if chosen != stored:
            services.user_page_size_set(user=request.user, page_size=chosen)
        return chosen
    return stored if stored in PAGE_SIZES else DEFAULT_PAGE_SIZE


def _sort(value: str) -> str:
    value = (value or "").strip()
    if value.lstrip("-") in selectors.ENDPOINT_SORTS and value.count("-") <= 1:
        return value
    return selectors.DEFAULT_ENDPOINT_SORT


def _headers(sort: str) -> list[dict]:
    key, descending = sort.lstrip("-"), sort.startswith("-")
    headers = []
    for column, label in LIST_HEADERS:
        current = column == key
        headers.append({
            "key": column,
            "label": label,
            "current": current,
            "aria_sort": ("descending" if descending else "ascending") if current else "",
            "next": f"-{column}" if current and not descending else column,
        })
    return headers


def _list_context(request) -> dict:
    sync = selectors.sync_status_get()
    scope = request_scope(request)
    names = selectors.sub_account_names()
    form = EndpointFilterForm(
        request.GET,
        applications=selectors.application_list(version=sync.data_version),
        sub_accounts=selectors.sub_account_list(scope=scope, version=sync.data_version),
        main_account=scope.allows(MAIN_ACCOUNT),
        sub_account_names=names,
    )
    filters = form.cleaned_filters()
    size = _page_size(request, form)
    sort = _sort(request.GET.get("sort", ""))
    counts = selectors.endpoint_counts(filters=filters, scope=scope, version=sync.data_version)
    total = counts["matching"]
    last_page = max(1, math.ceil(total / size))
    page = min(page_number(request.GET.get("page")), last_page)
    offset = (page - 1) * size
    rows, total = selectors.endpoint_list(filters=filters, scope=scope, sort=sort, offset=offset,
                                          limit=size, version=sync.data_version)
    applications = selectors.application_list(version=sync.data_version)
    return {
        **bulk_views.selection_context(request, filters=filters, rows=rows, total=total,
                                       applications=applications),
        "form": form,
        "filters": filters,
        "filters_active": form.active(),
        "filters_active_count": sum(1 for k in selectors.NARROWING_KEYS if filters.get(k)),
        "per_page": size,
        "sort": sort,
        "sort_given": "sort" in request.GET and sort == request.GET.get("sort"),
        "sort_label": SORT_LABELS[sort.lstrip("-")],
        "sort_descending": sort.startswith("-"),
        "headers": _headers(sort),
        "endpoints": rows,
        "total": total,
        "first_index": offset + 1 if rows else 0,
        "last_index": offset + len(rows),
        "pager": pager(page, last_page),
        "counts": counts,
        "list_url": request.get_full_path(),
        "list_query": urlencode({k: v for k, v in filters.items()
                                 if v and k in selectors.FILTER_KEYS}),
        "list_path": reverse("endpoints:list"),
        "sync": sync,
        "sync_polling": sync_is_pending(sync),
        "sync_no_worker": sync.status == SyncState.Status.QUEUED
        and worker_missing(sync.queued_at),
        "scope": scope,
        "sub_account_names": names,
    }


@require_GET
@vary_on_headers("HX-Request")
@permission_required(roles.VIEW, raise_exception=True)
def endpoint_list(request):
    """The endpoint list. Fragments: ``results`` (the table, with the counts, status line and
    sync badge out of band) or, when the request targets ``#list-body``, the filter bar too."""
    context = _list_context(request)
    if wants_fragment(request):
        fragment = ("list_body_response" if request.htmx.target == "list-body"
                    else "results_response")
        return render(request, f"{LIST_TEMPLATE}#{fragment}", context)
    return render(request, LIST_TEMPLATE, context)


# --- sync ---------------------------------------------------------------------------------


def _sync_context(sync: SyncState, *, polling: bool, done: bool = False) -> dict:
    pages_total = math.ceil(sync.total_remote / 100) if sync.total_remote else 0
    return {
        "sync": sync,
        "sync_polling": polling,
        "sync_done": done,
        "sync_pages_total": max(pages_total, sync.pages_fetched),
        "sync_no_worker": sync.status == SyncState.Status.QUEUED
        and worker_missing(sync.queued_at),
    }


@require_POST
@permission_required(roles.SYNC, raise_exception=True)
def sync_start(request):
    """Queue a sync for a worker. htmx: answer the progress panel, which polls
    ``sync_status``; otherwise redirect back (PRG) with a message."""
    if sync_is_pending(selectors.sync_status_get()):
        messages.warning(request, "A sync is already running.")
    elif sync_enqueue(triggered_by=request.user.get_username()):
        messages.info(request, "Sync with Vobiz queued. The list updates when it finishes.")
    else:
        messages.warning(request, "A sync is already running.")
    if not wants_fragment(request):
        return redirect(safe_next(request, reverse("endpoints:list")))
    sync = selectors.sync_status_get()
    return render(request, f"{LIST_TEMPLATE}#sync_response",
                  _sync_context(sync, polling=True))


def _report_sync_outcome(request, sync: SyncState) -> None:
    """Say how the sync ended (once: the poll stops afterwards)."""
    if sync.status == SyncState.Status.OK:
        messages.success(
            request,
            f"Sync finished: {sync.total_remote:,} endpoint{'s' if sync.total_remote != 1 else ''}"
            f" at Vobiz; {sync.created:,} new, {sync.updated:,} changed, {sync.deleted:,} removed.",
        )
    elif sync.status == SyncState.Status.FAILED:
        messages.error(request, f"Sync failed: {sync.last_error} The list shows the last data "
                                "we have.")


@require_GET
@vary_on_headers("HX-Request")
@permission_required(roles.VIEW, raise_exception=True)
def sync_status(request):
    """The progress panel, polled every second while a sync is queued or runs (saying so
    plainly when no worker has picked it up). When it has finished the panel stops polling,
    says how it went, and triggers ``endpoints-changed`` so the table reloads; the badge and
    the stale-data notice are refreshed out of band."""
    if not wants_fragment(request):
        return redirect("endpoints:list")
    sync = selectors.sync_status_get()
    polling = sync_is_pending(sync)
    if not polling:
        _report_sync_outcome(request, sync)
    response = render(request, f"{LIST_TEMPLATE}#sync_response",
                      _sync_context(sync, polling=polling, done=not polling))
    if not polling:
        response["HX-Trigger"] = "endpoints-changed"
    return response


# --- one row and the inline alias edit ----------------------------------------------------


def _stored_selection(request):
    """The user's selection, for a row's checkbox when one row is rendered alone."""
    return bulk.Selection.from_data(request.session.get(bulk_views.SESSION_KEY))


def _cached_or_404(request, endpoint_id: str):
    """The cached endpoint, if the user's scope may see it; else 404 (outside the scope is
    the same as not there)."""
    endpoint = selectors.endpoint_get(endpoint_id=endpoint_id, scope=request_scope(request))
    if endpoint is None:
        raise Http404("No such endpoint in the list.")
    return endpoint


@require_GET
@vary_on_headers("HX-Request")
@permission_required(roles.VIEW, raise_exception=True)
def endpoint_list_row(request, endpoint_id):
    """One row of the list, as it is in the cache (Cancel of the inline edit)."""
    if not wants_fragment(request):
        return redirect("endpoints:list")
    return render(request, f"{LIST_TEMPLATE}#row_restored",
                  {"endpoint": _cached_or_404(request, endpoint_id),
                   "sub_account_names": selectors.sub_account_names(),
                   "selection": _stored_selection(request)})


def _row_form(request, endpoint, form: AliasForm, *, status: int = 200, seen: str | None = None):
    context = {
        "endpoint": endpoint,
        "alias_form": form,
        "seen_alias": endpoint.alias if seen is None else seen,
        "next": request.htmx.current_url_abs_path if request.htmx else "",
        "sub_account_names": selectors.sub_account_names(),
        "selection": _stored_selection(request),
    }
    return render(request, f"{LIST_TEMPLATE}#row_form", context, status=status)


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
@permission_required(roles.EDIT, raise_exception=True)
def endpoint_alias_edit(request, endpoint_id):
    """Inline alias edit. GET: the row as a form. POST: validate, write through Vobiz, answer
    the updated row (200) or the form with the error and the typed value (422)."""
    endpoint = _cached_or_404(request, endpoint_id)
    fragment = wants_fragment(request)
    if request.method == "GET":
        if not fragment:
            return redirect("endpoints:edit", endpoint_id=endpoint_id)
        return _row_form(request, endpoint, AliasForm(initial={"alias": endpoint.alias}))

    form = AliasForm(request.POST)
    seen = request.POST.get("seen_alias", endpoint.alias)
    back = safe_next(request, reverse("endpoints:list"))
    if request.POST.get("alias", "").strip() == seen:
        # Untouched: never re-send (a legacy alias may break today's rules), just close.
        messages.info(request, f"Alias of {endpoint.username} unchanged.")
        if not fragment:
            return redirect(back)
        return render(request, f"{LIST_TEMPLATE}#row_saved",
                      {"endpoint": endpoint, "sub_account_names": selectors.sub_account_names(),
                       "selection": _stored_selection(request)})
    if not form.is_valid():
        if not fragment:
            messages.error(request, f"Alias of {endpoint.username} not saved: "
                           + " ".join(form.errors.get("alias", form.errors.get("__all__", []))))
            return redirect(back)
        return _row_form(request, endpoint, form, status=422, seen=seen)

    alias = form.cleaned_data["alias"]
    try:
        endpoint = services.endpoint_update(
            user=request.user,
            endpoint_id=endpoint_id,
            changes={"alias": alias},
            seen={"alias": form.cleaned_data["seen_alias"]},
            scope=request_scope(request),
        )
    except services.EditConflict as exc:
        was, now = exc.changes.get("alias", (seen, ""))
        form.add_error("alias", (
            f"Someone changed this alias at Vobiz while you were editing it: it was "
            f"“{was}” and is now “{now}”. Nothing was saved. Save again to replace it "
            f"with yours."
        ))
        seen = now
    except VobizNotFound as exc:
        form.add_error(None, exc.message)
    except VobizError as exc:
        form_add_vobiz_error(form, exc, failed_prefix="Not saved: ", uncertain=(
            f"{exc.message} The endpoint was re-read from Vobiz: check its alias before "
            "saving again."))
    else:
        messages.success(request, f"Alias of {endpoint.username} saved.")
        if not fragment:
            return redirect(back)
        return render(request, f"{LIST_TEMPLATE}#row_saved",
                      {"endpoint": endpoint, "sub_account_names": selectors.sub_account_names(),
                       "selection": _stored_selection(request)})

    if not fragment:
        for error in form.errors.get("alias", []) + form.non_field_errors():
            messages.error(request, f"Alias of {endpoint.username} not saved: {error}")
        return redirect(back)
    scope = request_scope(request)
    fresh = selectors.endpoint_get(endpoint_id=endpoint_id, scope=scope) or endpoint
    return _row_form(request, fresh, form, status=422, seen=seen)


# --- audit log ----------------------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request")
@permission_required(roles.VIEW_AUDIT, raise_exception=True)
def audit_list(request):
    """Who did what to which endpoint, newest first, filterable and paged."""
    form = AuditFilterForm(request.GET, actions=selectors.audit_action_list())
    filters = form.cleaned_filters()
    page = page_number(request.GET.get("page"))
    offset = (page - 1) * AUDIT_PAGE_SIZE
    scope = request_scope(request)
    events, total = selectors.audit_list(filters=filters, scope=scope, offset=offset,
                                         limit=AUDIT_PAGE_SIZE)
    last_page = max(1, math.ceil(total / AUDIT_PAGE_SIZE))
    if page > last_page:  # a stale or made-up page number: show the last page instead
        page = last_page
        offset = (page - 1) * AUDIT_PAGE_SIZE
        events, total = selectors.audit_list(filters=filters, scope=scope, offset=offset,
                                             limit=AUDIT_PAGE_SIZE)
    context = {
        "form": form,
        "filters_active": form.active(),
        "events": events,
        "total": total,
        "first_index": offset + 1 if events else 0,
        "last_index": offset + len(events),
        "pager": pager(page, last_page),
    }
    if wants_fragment(request):
        return render(request, f"{AUDIT_TEMPLATE}#results_response", context)
    return render(request, AUDIT_TEMPLATE, context)
