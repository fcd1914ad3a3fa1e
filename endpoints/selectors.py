"""Reads from the local cache. Nothing here talks to Vobiz."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, F, Q
from django.db.models.functions import Upper
from django.utils import timezone

from .models import Application, AuditEvent, Endpoint, SyncState


def sync_status_get() -> SyncState:
    """The endpoints sync record (unsaved default if no sync ever ran)."""
    return SyncState.objects.filter(name="endpoints").first() or SyncState(name="endpoints")


def endpoint_get_cached(*, endpoint_id: str) -> Endpoint | None:
    return Endpoint.objects.filter(endpoint_id=endpoint_id).first()


def application_choices() -> list[Application]:
    return list(Application.objects.only("app_id", "name").order_by("name", "app_id"))


# --- the endpoint list, its counts, and the audit log ---------------------------------------
# Everything below reads the cache only; a page of the list costs one aggregate query (counts
# and the filtered total together) plus one SELECT of the visible rows, whatever the page size.

EXPIRING_WINDOW = timedelta(minutes=5)

# Columns the list shows; anything else stays deferred.
LIST_COLUMNS = (
    "id",
    "endpoint_id",
    "username",
    "alias",
    "sub_account",
    "app_id",
    "app_name",
    "sip_registered",
    "sip_contact",
    "sip_user_agent",
    "sip_expires",
    "updated_at",
)

# sort key in the URL -> columns (then ``id`` for a deterministic order). Usernames and
# aliases sort case-insensitively, on the Upper() expression indexes the model declares.
ENDPOINT_SORTS = {
    "username": (Upper("username"),),
    "alias": (Upper("alias"),),
    "status": ("sip_registered", "sip_expires"),
    "contact": ("sip_contact",),
    "expires": ("sip_expires",),
    "application": ("app_name",),
    "sub_account": ("sub_account",),
    "updated": ("updated_at",),
}
DEFAULT_ENDPOINT_SORT = "username"

MATCH_LOOKUPS = {"contains": "icontains", "exact": "iexact", "startswith": "istartswith"}
ALIAS_MATCH_LOOKUPS = {"contains": "icontains", "exact": "iexact"}

STATUS_REGISTERED = "registered"
STATUS_NOT_REGISTERED = "not_registered"
STATUS_EXPIRING = "expiring"
APP_NONE = "none"
SUB_MAIN = "main"


def _registered_q(now) -> Q:
    """Registered now: Vobiz said so at the last sync and the registration has not lapsed."""
    return Q(sip_registered=True) & (Q(sip_expires__isnull=True) | Q(sip_expires__gt=now))


def _expiring_q(now) -> Q:
    return Q(sip_registered=True, sip_expires__gt=now, sip_expires__lte=now + EXPIRING_WINDOW)


def endpoint_filter_q(filters: dict, *, now=None) -> Q:
    """The WHERE clause for the list's filters.

    Keys (all optional, unknown values ignored): ``q`` (username or alias), ``match``
    (contains / exact / startswith, for the username part of ``q``), ``alias_match``
    (contains / exact), ``app`` ("none" or an app id), ``sub`` ("main" or an SA_ id),
    ``status`` (registered / not_registered / expiring).
    """
    now = now or timezone.now()
    where = Q()
    q = (filters.get("q") or "").strip()
    if q:
        user_lookup = MATCH_LOOKUPS.get(filters.get("match") or "contains", "icontains")
        alias_lookup = ALIAS_MATCH_LOOKUPS.get(filters.get("alias_match") or "contains",
                                               "icontains")
        where &= Q(**{f"username__{user_lookup}": q}) | Q(**{f"alias__{alias_lookup}": q})
    app = filters.get("app") or ""
    if app == APP_NONE:
        where &= Q(app_id="")
    elif app:
        where &= Q(app_id=app)
    sub = filters.get("sub") or ""
    if sub == SUB_MAIN:
        where &= Q(sub_account="")
    elif sub:
        where &= Q(sub_account=sub)
    status = filters.get("status") or ""
    if status == STATUS_REGISTERED:
        where &= _registered_q(now)
    elif status == STATUS_EXPIRING:
        where &= _expiring_q(now)
    elif status == STATUS_NOT_REGISTERED:
        where &= ~_registered_q(now)
    return where


def endpoint_ordering(sort: str) -> list:
    """ORDER BY for an allowlisted ``sort`` key (``-`` prefix for descending); unknown keys
    fall back to username. Always ends with ``id`` so paging never repeats or skips rows."""
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    columns = ENDPOINT_SORTS.get(key)
    if columns is None:
        columns, descending = ENDPOINT_SORTS[DEFAULT_ENDPOINT_SORT], False
    order = []
    for column in columns:
        expression = F(column) if isinstance(column, str) else column
        # NULLs (no expiry, never updated) sort last both ways, on SQLite and PostgreSQL alike.
        order.append(expression.desc(nulls_last=True) if descending
                     else expression.asc(nulls_last=True))
    order.append(F("id").desc() if descending else F("id").asc())
    return order


def endpoint_list(
    *, filters: dict, sort: str, offset: int, limit: int, total: int | None = None
) -> tuple[list[Endpoint], int]:
    """One page of cached endpoints and the number matching ``filters``.

    Rows carry only LIST_COLUMNS (touching another field costs a query per row). Pass
    ``total`` when it is already known (``endpoint_counts(filters=...)["matching"]``) to skip
    the COUNT. An offset past the end gives an empty page, never an error.
    """
    qs = Endpoint.objects.filter(endpoint_filter_q(filters))
    if total is None:
        total = qs.count()
    offset, limit = max(0, int(offset)), max(0, int(limit))
    if not total or offset >= total or not limit:
        return [], total
    rows = list(qs.only(*LIST_COLUMNS).order_by(*endpoint_ordering(sort))[offset:offset + limit])
    return rows, total


def endpoint_counts(*, filters: dict | None = None) -> dict[str, int]:
    """The account at a glance, in one aggregate query: total, registered, not_registered,
    expiring (within five minutes), no_application; plus ``matching`` (the number of rows
    ``filters`` selects) when filters are given."""
    now = timezone.now()
    aggregates = {
        "total": Count("id"),
        "registered": Count("id", filter=_registered_q(now)),
        "expiring": Count("id", filter=_expiring_q(now)),
        "no_application": Count("id", filter=Q(app_id="")),
    }
    if filters is not None:
        where = endpoint_filter_q(filters, now=now)
        aggregates["matching"] = Count("id", filter=where) if where else Count("id")
    counts = Endpoint.objects.aggregate(**aggregates)
    counts["not_registered"] = counts["total"] - counts["registered"]
    return counts


def sub_account_choices() -> list[str]:
    """The sub-account ids (SA_...) present in the cache, sorted; the main account is ""."""
    return list(
        Endpoint.objects.exclude(sub_account="")
        .order_by("sub_account")
        .values_list("sub_account", flat=True)
        .distinct()
    )


AUDIT_ACTIONS = (
    "create",
    "update",
    "password_reset",
    "attach_application",
    "detach_application",
    "delete",
)


def audit_action_choices() -> list[str]:
    """Known actions plus any other the log holds (one query on an indexed column)."""
    seen = set(AuditEvent.objects.order_by().values_list("action", flat=True).distinct())
    return [*AUDIT_ACTIONS, *sorted(seen - set(AUDIT_ACTIONS))]


def audit_filter_q(filters: dict) -> Q:
    """``user`` (username contains), ``action`` (exact), ``outcome`` (exact), ``endpoint``
    (endpoint username or id contains)."""
    where = Q()
    user = (filters.get("user") or "").strip()
    if user:
        where &= Q(username__icontains=user)
    if filters.get("action"):
        where &= Q(action=filters["action"])
    if filters.get("outcome"):
        where &= Q(outcome=filters["outcome"])
    endpoint = (filters.get("endpoint") or "").strip()
    if endpoint:
        where &= Q(endpoint_username__icontains=endpoint) | Q(endpoint_id__icontains=endpoint)
    return where


AUDIT_COLUMNS = ("id", "at", "username", "action", "endpoint_id", "endpoint_username",
                 "changes", "outcome", "message")


def audit_list(*, filters: dict, offset: int, limit: int) -> tuple[list[AuditEvent], int]:
    """A page of audit events, newest first, and how many match ``filters``."""
    qs = AuditEvent.objects.filter(audit_filter_q(filters))
    total = qs.count()
    offset, limit = max(0, int(offset)), max(0, int(limit))
    if not total or offset >= total or not limit:
        return [], total
    return list(qs.only(*AUDIT_COLUMNS).order_by("-at", "-id")[offset:offset + limit]), total


def audit_for_endpoint(endpoint_id: str, limit: int = 50) -> list[AuditEvent]:
    """The latest ``limit`` audit events about one endpoint, newest first."""
    return list(
        AuditEvent.objects.filter(endpoint_id=endpoint_id)
        .only(*AUDIT_COLUMNS)
        .order_by("-at", "-id")[:limit]
    )
