"""Reads from the local cache. Nothing here talks to Vobiz.

Every read of endpoints (and of the audit log) takes the reader's ``scope``
(``endpoints.scopes``) and goes through ``endpoints_in_scope``: a view cannot ask for an
endpoint without saying whose eyes it is for."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db.models import F, Func, Q
from django.db.models.functions import Upper
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNull,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone

from . import models
from .models import (
    Application,
    AuditEvent,
    Endpoint,
    StaffScope,
    SubAccount,
    SyncState,
    UserPreference,
)
from .scopes import EVERYTHING, MAIN_ACCOUNT, Scope

SUB_ACCOUNT_NAMES_KEY = "sub-account-names"


def sync_status_get() -> SyncState:
    """The endpoints sync record (unsaved default if no sync ever ran)."""
    return SyncState.objects.filter(name="endpoints").first() or SyncState(name="endpoints")


def scope_get(*, user) -> Scope:
    """What ``user`` may see: everything for a superuser or a user without a scope, else
    their sub-accounts. Read afresh on every request, so a change applies at once."""
    if getattr(user, "is_superuser", False) or not getattr(user, "pk", None):
        return EVERYTHING
    row = StaffScope.objects.filter(user=user).values_list("all_endpoints", "sub_accounts").first()
    if row is None or row[0]:
        return EVERYTHING
    subs = row[1] if isinstance(row[1], list) else []
    return Scope(frozenset(str(s) for s in subs))


def endpoints_in_scope(scope: Scope, *, seek: bool = True):
    """The cached endpoints ``scope`` may see: the one place every endpoint read starts.

    ``seek=False`` keeps SQLite from seeking the sub-account index for a scope that holds
    most of the account (see _NoSeek): it then walks the sort's index and stops after a page
    instead of sorting every endpoint of the scope."""
    if scope.everything or not scope.sub_accounts:
        return Endpoint.objects.filter(scope.q())
    return Endpoint.objects.filter(In(_column("sub_account", seek), sorted(scope.sub_accounts)))


def endpoint_get(*, endpoint_id: str, scope: Scope) -> Endpoint | None:
    """The cached endpoint, or None when the cache does not have it or it is outside
    ``scope`` (the two are the same to the reader)."""
    return endpoints_in_scope(scope).filter(endpoint_id=endpoint_id).first()


def sub_account_names() -> dict[str, str]:
    """Local display names of sub-accounts, id -> name (cached until a name changes)."""
    names = cache.get(SUB_ACCOUNT_NAMES_KEY)
    if names is None:
        names = dict(SubAccount.objects.values_list("sub_account", "name"))
        cache.set(SUB_ACCOUNT_NAMES_KEY, names, CHOICES_SECONDS)
    return names


def user_page_size_get(*, user) -> int | None:
    """The list page size ``user`` chose before, or None."""
    return UserPreference.objects.filter(user=user).values_list("page_size", flat=True).first()


def application_default_id_get() -> str:
    """The account's default endpoint application (what Vobiz uses when a create names
    none), or "" when none is set."""
    return (Application.objects.filter(default_endpoint_app=True)
            .values_list("app_id", flat=True).first() or "")


def application_list(*, version: int | None = None) -> list[Application]:
    """The synced applications (app_id and name), by name; cached per cache version when
    ``version`` is given (a sync that changes them bumps it)."""
    if version is None:
        return list(Application.objects.only("app_id", "name").order_by("name", "app_id"))
    key = _count_key(version, "applications")
    choices = cache.get(key)
    if choices is None:
        choices = application_list()
        cache.set(key, choices, CHOICES_SECONDS)
    return choices


# --- the endpoint list, its counts, and the audit log ---------------------------------------
# Everything below reads the cache only. A page of the list is one SELECT of the visible rows
# (an index walk that stops after them, from whichever end of the order is nearer) plus the
# counts, which are cached per cache version (SyncState.data_version, bumped by every write)
# for COUNTS_SECONDS: registrations run out as time passes, so even unchanged data recounts.

EXPIRING_WINDOW = models.EXPIRING_WINDOW
COUNTS_SECONDS = 10
CHOICES_SECONDS = 3600
# A filter selecting at most this many rows has their ids cached with its count.
SMALL_RESULT = 2000

# Columns the list shows; anything else stays deferred.
ENDPOINT_LIST_FIELDS = (
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
    "online_since",
    "last_seen_at",
)

NULLS_LAST = "last"
# sort key in the URL -> ORDER BY terms, each (expression, where NULLs go), then ``id`` for a
# deterministic order. Each sort has an index whose order is exactly these terms (see
# Endpoint.Meta.indexes), so a page is an index walk that stops after the rows shown.
# Usernames and aliases sort case-insensitively. Empty expiry and update times sort last both
# ways; the status sort puts "no expiry" (a registration that never runs out) after every
# expiry ascending and before them descending, so that its descending order is the exact
# mirror of the ascending one and one index serves both on SQLite too.
ENDPOINT_SORTS = {
    "username": ((Upper("username"), None),),
    "alias": ((Upper("alias"), None),),
    "status": ((F("sip_registered"), None), (IsNull(F("sip_expires"), True), None),
               (F("sip_expires"), None)),
    # Ascending: never seen, then the longest unseen, ..., the latest seen, then those online
    # now (registered; their last_seen_at is NULL). Index ep_last_seen.
    "last_seen": ((F("sip_registered"), None), (IsNull(F("last_seen_at"), False), None),
                  (F("last_seen_at"), None)),
    "contact": ((F("sip_contact"), None),),
    "expires": ((F("sip_expires"), NULLS_LAST),),
    "application": ((F("app_name"), None),),
    "sub_account": ((F("sub_account"), None),),
    "updated": ((F("updated_at"), NULLS_LAST),),
}
DEFAULT_ENDPOINT_SORT = "username"

MATCH_LOOKUPS = {"contains": "icontains", "exact": "iexact", "startswith": "istartswith"}
ALIAS_MATCH_LOOKUPS = {"contains": "icontains", "exact": "iexact"}

# The list's filters (the keys a selection, an export or a job keeps) and those that narrow
# the list ("match" and "alias_match" only say how "q" matches).
FILTER_KEYS = ("q", "match", "alias_match", "app", "sub", "status", "seen", "dropped")
NARROWING_KEYS = ("q", "app", "sub", "status", "seen", "dropped")

STATUS_REGISTERED = "registered"
STATUS_NOT_REGISTERED = "not_registered"
STATUS_EXPIRING = "expiring"
# "Not seen for": offline and not seen registered for this long (never seen included), or
# never seen registered since history began.
NOT_SEEN = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
            "30d": timedelta(days=30)}
NEVER_SEEN = "never"
# "Dropped": went offline within this long (whether or not it is back).
DROPPED = {"1h": timedelta(hours=1)}
APP_NONE = "none"
SUB_MAIN = "main"


class _NoSeek(Func):
    """A column as it is, written ``+column`` on SQLite: its documented way to keep the
    planner from seeking an index for that term. SQLite has no statistics for ranges, so for
    a filter that selects thousands of rows it would seek the filter's index and sort them
    all (the expiring filter: 15,000 rows, ~100 ms) instead of walking the sort's index and
    stopping after one page (~2 ms). PostgreSQL plans this from its statistics."""

    template = "%(expressions)s"

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, template="+%(expressions)s", **extra)


def _column(name: str, seek: bool):
    return F(name) if seek else _NoSeek(F(name), output_field=Endpoint._meta.get_field(name))


def _registered_q(now, seek: bool = True) -> Q:
    """Registered now: Vobiz said so at the last sync and the registration has not lapsed."""
    expires = _column("sip_expires", seek)
    return Q(sip_registered=True) & (Q(IsNull(expires, True)) | Q(GreaterThan(expires, now)))


def _expiring_q(now, seek: bool = True) -> Q:
    expires = _column("sip_expires", seek)
    return Q(sip_registered=True) & Q(GreaterThan(expires, now)) & Q(
        LessThanOrEqual(expires, now + EXPIRING_WINDOW))


def endpoint_filter_q(filters: dict, *, now=None, seek: bool = True) -> Q:
    """The WHERE clause for the list's filters.

    Keys (all optional, unknown values ignored): ``q`` (username or alias), ``match``
    (contains / exact / startswith, for the username part of ``q``), ``alias_match``
    (contains / exact), ``app`` ("none" or an app id), ``sub`` ("main" or an SA_ id),
    ``status`` (registered / not_registered / expiring), ``seen`` (not seen registered for
    1h / 24h / 7d / 30d, or never), ``dropped`` (went offline within 1h). ``seek=False``
    keeps SQLite from using an index for the application, sub-account and registration
    terms (see _NoSeek).
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
    if app:
        where &= Q(Exact(_column("app_id", seek), "" if app == APP_NONE else app))
    sub = filters.get("sub") or ""
    if sub:
        where &= Q(Exact(_column("sub_account", seek), "" if sub == SUB_MAIN else sub))
    status = filters.get("status") or ""
    if status == STATUS_REGISTERED:
        where &= _registered_q(now, seek)
    elif status == STATUS_EXPIRING:
        where &= _expiring_q(now, seek)
    elif status == STATUS_NOT_REGISTERED:
        where &= ~_registered_q(now, seek)
    seen = filters.get("seen") or ""
    if seen == NEVER_SEEN or seen in NOT_SEEN:
        last_seen = _column("last_seen_at", seek)
        unseen = Q(IsNull(last_seen, True))
        if seen != NEVER_SEEN:
            unseen |= Q(LessThan(last_seen, now - NOT_SEEN[seen]))
        where &= Q(Exact(_column("sip_registered", seek), False)) & unseen
    dropped = filters.get("dropped") or ""
    if dropped in DROPPED:
        where &= Q(GreaterThanOrEqual(_column("last_drop_at", seek), now - DROPPED[dropped]))
    return where


def _canonical_sort(sort: str) -> str:
    """An allowlisted sort key, ``-`` prefixed for descending; anything else is username."""
    descending, key = sort.startswith("-"), sort.lstrip("-")
    if key not in ENDPOINT_SORTS:
        return DEFAULT_ENDPOINT_SORT
    return f"-{key}" if descending else key


def _order_terms(sort: str) -> list[tuple]:
    """(expression, descending, nulls) for ``sort`` (see _canonical_sort), then ``id``."""
    sort = _canonical_sort(sort)
    descending = sort.startswith("-")
    return [*((expression, descending, nulls) for expression, nulls in
              ENDPOINT_SORTS[sort.lstrip("-")]), (F("id"), descending, None)]


def _order_by(terms: list[tuple], *, mirrored: bool = False) -> list:
    """ORDER BY expressions for ``terms``; ``mirrored`` gives the exact reverse order (each
    direction flipped, and NULLs at the other end), for reading a page from the end."""
    order = []
    for expression, descending, nulls in terms:
        if mirrored:
            descending = not descending
        nulls_last = nulls == NULLS_LAST
        if mirrored and nulls:
            nulls_last = not nulls_last
        # Never NULLS FIRST/LAST on a NOT NULL column: PostgreSQL then sorts instead of
        # walking the index backwards.
        options = {"nulls_last": True} if nulls and nulls_last else (
            {"nulls_first": True} if nulls else {})
        order.append(expression.desc(**options) if descending else expression.asc(**options))
    return order


def endpoint_ordering(sort: str) -> list:
    """ORDER BY for an allowlisted ``sort`` key (``-`` prefix for descending); unknown keys
    fall back to username. Always ends with ``id`` so paging never repeats or skips rows."""
    return _order_by(_order_terms(sort))


@dataclass(frozen=True)
class Matching:
    """How many cached endpoints a filter selects and, when they are few, which (their ids):
    a rare search then costs one scan per cache window instead of one per page view."""

    count: int
    ids: tuple[int, ...] | None = None
    key: str = ""  # where it is cached (the ids' sort orders are cached beside it)


def _count_key(version: int, *parts) -> str:
    return ":".join(["endpoint-list", str(version), *map(str, parts)])


def _window_key(version: int, now, scope: Scope) -> str:
    return _count_key(version, scope.key, int(now.timestamp()) // COUNTS_SECONDS)


def _glance_counts(now, scope: Scope) -> dict[str, int]:
    """The account (the part ``scope`` sees) at a glance, counted from the indexes alone
    (one range each)."""
    endpoints = endpoints_in_scope(scope)
    # IN (true), not a bare boolean: SQLite only seeks ep_reg_expires on an equality.
    registered = endpoints.filter(sip_registered__in=[True])
    counts = {
        "total": endpoints.count(),
        "registered": registered.filter(sip_expires__isnull=True).count()
        + registered.filter(sip_expires__gt=now).count(),
        "expiring": registered.filter(sip_expires__gt=now,
                                      sip_expires__lte=now + EXPIRING_WINDOW).count(),
        "no_application": endpoints.filter(app_id="").count(),
        "dropped_hour": endpoints.filter(last_drop_at__gte=now - DROPPED["1h"]).count(),
    }
    counts["not_registered"] = counts["total"] - counts["registered"]
    return counts


def _glance(version: int, now, scope: Scope) -> dict[str, int]:
    key = _window_key(version, now, scope)
    glance = cache.get(key)
    if glance is None:
        glance = _glance_counts(now, scope)
        cache.set(key, glance, COUNTS_SECONDS * 2)
    return glance


def _version(version: int | None) -> int:
    return sync_status_get().data_version if version is None else version


def endpoint_matching(*, filters: dict, scope: Scope, version: int | None = None) -> Matching:
    """What ``filters`` selects within ``scope``, cached for ``version``
    (SyncState.data_version, read when not given), the scope and the current COUNTS_SECONDS
    window. Filters that are one of the glance numbers
    cost nothing more; any other is counted once per window, keeping the ids when there are
    at most SMALL_RESULT."""
    now = timezone.now()
    version = _version(version)
    active = {k: filters.get(k) for k in NARROWING_KEYS if filters.get(k)}
    if not str(active.get("q", "")).strip():
        active.pop("q", None)
    glance = _glance(version, now, scope)
    # A scope of a few sub-accounts holds few endpoints: keep their ids, so that every page
    # and sort is a primary-key read of the page instead of a sort of the whole scope.
    narrow = not scope.everything and glance["total"] <= SMALL_RESULT
    if not active and not narrow:
        return Matching(glance["total"])
    if not narrow and list(active) == ["status"] and active["status"] in (
            STATUS_REGISTERED, STATUS_NOT_REGISTERED, STATUS_EXPIRING):
        return Matching(glance[active["status"]])
    if not narrow and active == {"app": APP_NONE}:
        return Matching(glance["no_application"])
    where = {k: filters.get(k) for k in FILTER_KEYS}
    digest = hashlib.sha256(json.dumps(where, sort_keys=True, default=str).encode()).hexdigest()
    key = f"{_window_key(version, now, scope)}:matching:{digest[:32]}"
    matching = cache.get(key)
    if matching is None:
        # A search reads every row anyway: let SQLite scan the table in order rather than
        # seek a registration index and fetch rows one by one (~4x slower).
        seek = "q" not in active
        qs = endpoints_in_scope(scope, seek=narrow).filter(
            endpoint_filter_q(filters, now=now, seek=seek)).order_by()
        # A search with few hits has to read every row on SQLite (no index finds "contains"),
        # so the ids come along; with many, reading stops early and a COUNT follows.
        ids = tuple(qs.values_list("id", flat=True)[:SMALL_RESULT + 1])
        matching = (Matching(len(ids), ids, key) if len(ids) <= SMALL_RESULT
                    else Matching(qs.count(), None, key))
        cache.set(key, matching, COUNTS_SECONDS * 2)
    return matching


def _ordered_ids(ids: tuple[int, ...], sort: str, *, scope: Scope, key: str) -> list[int]:
    """``ids`` in the order of ``sort``, cached under ``key``: one PRIMARY KEY read of the
    few matching rows, sorted by the database (its collation, not Python's)."""
    ordered = cache.get(key)
    if ordered is None:
        ordered = list(endpoints_in_scope(scope).filter(id__in=ids)
                       .order_by(*endpoint_ordering(sort))
                       .values_list("id", flat=True))
        cache.set(key, ordered, COUNTS_SECONDS * 2)
    return ordered


def endpoint_list(
    *, filters: dict, scope: Scope, sort: str, offset: int, limit: int,
    total: int | None = None, version: int | None = None,
) -> tuple[list[Endpoint], int]:
    """One page of the cached endpoints in ``scope`` and the number matching ``filters``.

    Rows carry only ENDPOINT_LIST_FIELDS (touching another field costs a query per row). The total
    comes from ``endpoint_matching`` (cached), unless it is given. When few rows match, the
    page is read by primary key from their ids in sort order (cached); otherwise it is an
    index walk in the sort order that stops after the page, from the end in the mirrored
    order for a page in the back half (so the last page costs what the first does). An
    offset past the end gives an empty page, never an error.
    """
    offset, limit = max(0, int(offset)), max(0, int(limit))
    matching = None
    if total is None:
        matching = endpoint_matching(filters=filters, scope=scope, version=version)
        total = matching.count
    if not total or offset >= total or not limit:
        return [], total
    if matching and matching.ids is not None:
        sort = _canonical_sort(sort)
        ordered = _ordered_ids(matching.ids, sort, scope=scope,
                               key=f"{matching.key}:order:{sort}")
        page_ids = ordered[offset:offset + limit]
        found = endpoints_in_scope(scope).only(*ENDPOINT_LIST_FIELDS).in_bulk(page_ids)
        return [found[i] for i in page_ids if i in found], total
    # Many matches: walk the sort's index and stop after the page (a filter's own index
    # would make SQLite read and sort every match).
    seek = total < SMALL_RESULT
    qs = (endpoints_in_scope(scope, seek=seek).filter(endpoint_filter_q(filters, seek=seek))
          .only(*ENDPOINT_LIST_FIELDS))
    terms = _order_terms(sort)
    size = min(limit, total - offset)
    if offset + size / 2 > total / 2:
        from_end = total - offset - size
        rows = list(qs.order_by(*_order_by(terms, mirrored=True))[from_end:from_end + size])
        rows.reverse()
    else:
        rows = list(qs.order_by(*_order_by(terms))[offset:offset + limit])
    return rows, total


def endpoint_counts(*, scope: Scope, filters: dict | None = None,
                    version: int | None = None) -> dict[str, int]:
    """The account as ``scope`` sees it, at a glance: total, registered, not_registered,
    expiring (within five minutes), no_application; plus ``matching`` (the rows ``filters``
    selects) when filters are given.

    Cached per scope for ``version`` (SyncState.data_version; read when not given) and the
    current COUNTS_SECONDS window: the first request of a window counts, the others reuse it.
    """
    version = _version(version)
    counts = dict(_glance(version, timezone.now(), scope))
    if filters is not None:
        counts["matching"] = endpoint_matching(filters=filters, scope=scope,
                                               version=version).count
    return counts


def sub_account_list(*, scope: Scope, version: int | None = None) -> list[str]:
    """The sub-account ids (SA_...) in the cache that ``scope`` may see, sorted (the main
    account, "", is not listed: ``scope.allows("")`` says whether it may be seen). Cached per
    cache version."""
    key = _count_key(_version(version), "sub-accounts")
    present = cache.get(key)
    if present is None:
        present = list(
            Endpoint.objects.exclude(sub_account="")
            .order_by("sub_account")
            .values_list("sub_account", flat=True)
            .distinct()
        )
        cache.set(key, present, CHOICES_SECONDS)
    return [sub for sub in present if scope.allows(sub)]


def sub_account_choices_for_create(*, scope: Scope) -> list[str]:
    """Where ``scope`` may create an endpoint: "" (the main account) when allowed, then the
    sub-accounts in the cache, or for a scoped user every sub-account of the scope."""
    allowed = ([MAIN_ACCOUNT] if scope.allows(MAIN_ACCOUNT) else [])
    if scope.everything:
        return allowed + sub_account_list(scope=scope)
    return allowed + [sub for sub in scope.ordered() if sub != MAIN_ACCOUNT]


AUDIT_ACTIONS = (
    "create",
    "update",
    "password_reset",
    "attach_application",
    "detach_application",
    "delete",
    "scope_change",
    "sub_account_name",
)


def audit_action_list() -> list[str]:
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


def audit_in_scope(scope: Scope):
    """The audit events ``scope`` may see: those about its endpoints. Events whose endpoint's
    sub-account is unknown (NULL), and events about staff, only an unscoped reader sees."""
    return AuditEvent.objects.filter(scope.q())


def audit_list(*, filters: dict, scope: Scope, offset: int, limit: int,
               ) -> tuple[list[AuditEvent], int]:
    """A page of the audit events ``scope`` may see, newest first, and how many match
    ``filters``."""
    qs = audit_in_scope(scope).filter(audit_filter_q(filters))
    total = qs.count()
    offset, limit = max(0, int(offset)), max(0, int(limit))
    if not total or offset >= total or not limit:
        return [], total
    return list(qs.only(*AUDIT_COLUMNS).order_by("-at", "-id")[offset:offset + limit]), total


def audit_list_for_endpoint(*, endpoint_id: str, scope: Scope, limit: int = 50,
                            ) -> list[AuditEvent]:
    """The latest ``limit`` audit events about one endpoint, newest first."""
    return list(
        audit_in_scope(scope).filter(endpoint_id=endpoint_id)
        .only(*AUDIT_COLUMNS)
        .order_by("-at", "-id")[:limit]
    )
