"""Reads for the Overview page: registered endpoints over time, the most flapping endpoints,
and the devices in use. Nothing here talks to Vobiz, and nothing walks history rows in
Python: every number is aggregated by the database.

The chart is drawn from ``RegistrationTally`` (per UTC hour and sub-account: came online,
went offline; at most 720 hours x sub-accounts for 30 days). Only the count registered *now*
is known directly (the cache); the count at the start of an hour is back-calculated from it:
registered now minus the net change (came online - went offline) of that hour and every later
one. Nothing is drawn before history began (``SyncState.history_since``): before then no
change was recorded, so no earlier count can be worked out.

Every read takes the reader's ``scope`` (``endpoints.scopes``): tallies and events carry the
sub-account of their endpoint and are filtered the way the endpoint cache is.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db.models import CharField, Count, F, Sum
from django.utils import timezone

from . import history
from .models import RegistrationEvent, RegistrationTally
from .scopes import Scope
from .selectors import COUNTS_SECONDS, _NoSeek, _version, _window_key, endpoints_in_scope

Kind = RegistrationEvent.Kind
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Period:
    key: str  # as in the URL: ?period=24h
    label: str  # "24 hours"
    span: timedelta
    step: timedelta  # one point per step (a multiple of an hour, aligned to UTC midnight)

    @property
    def hourly(self) -> bool:
        return self.step == HOUR


PERIODS = {
    "24h": Period("24h", "24 hours", timedelta(hours=24), HOUR),
    "7d": Period("7d", "7 days", timedelta(days=7), HOUR),
    "30d": Period("30d", "30 days", timedelta(days=30), timedelta(hours=4)),
}
DEFAULT_PERIOD = "24h"

FLAPPING_WINDOW = timedelta(hours=24)
FLAPPING_LIMIT = 10
USER_AGENT_LIMIT = 15


@dataclass(frozen=True)
class ChartPoint:
    """The number registered at ``at`` and the drops (went offline, or deleted while
    registered) from ``at`` to the next point; ``drops`` is None for the last point, "now",
    which starts no bucket."""

    at: datetime
    registered: int
    drops: int | None
    is_now: bool = False


@dataclass(frozen=True)
class RegistrationChart:
    period: Period
    since: datetime | None  # when history began; None: not yet (``points`` is empty)
    now: datetime
    registered_now: int
    points: list[ChartPoint]

    @property
    def clipped(self) -> bool:
        """History began within the period: the chart starts then, not at the period's
        start."""
        return self.since is not None and self.since > self.now - self.period.span

    def as_json(self) -> dict:
        return {
            "period": self.period.key,
            "label": self.period.label,
            "since": self.since.isoformat() if self.since else None,
            "now": int(self.now.timestamp()),
            "registered_now": self.registered_now,
            "points": [{"t": int(p.at.timestamp()), "registered": p.registered,
                        "drops": p.drops} for p in self.points],
        }


def period_get(value: str | None) -> Period | None:
    """The period ``value`` names (``24h`` / ``7d`` / ``30d``), None for anything else."""
    return PERIODS.get((value or "").strip())


def _floor(moment: datetime, step: timedelta) -> datetime:
    """``moment`` rounded down to a multiple of ``step`` since the epoch (UTC midnight)."""
    seconds = int(step.total_seconds())
    stamp = int(moment.timestamp()) // seconds * seconds
    return datetime.fromtimestamp(stamp, tz=UTC)


def registered_count(*, scope: Scope) -> int:
    """How many cached endpoints in ``scope`` Vobiz reported registered at the last sync or
    live read: what history counts (a lapsed registration is counted until a sync sees it
    gone, exactly when its drop is recorded)."""
    # IN (true), not a bare boolean: SQLite only seeks ep_reg_expires on an equality.
    return endpoints_in_scope(scope).filter(sip_registered__in=[True]).count()


def registration_chart_get(*, scope: Scope, period: str | Period,
                           now: datetime | None = None) -> RegistrationChart:
    """Registered endpoints in ``scope`` over ``period`` (a PERIODS key or Period), one point
    per step from the period's start (or when history began, if later) and a last one at
    ``now``. Three queries whatever the amount of history: when history began, the count
    registered now, and the tallies summed per hour by the database. Raises KeyError for an
    unknown period."""
    spec = period if isinstance(period, Period) else PERIODS[period]
    now = now or timezone.now()
    since = history.history_since()
    registered_now = registered_count(scope=scope)
    if since is None:
        return RegistrationChart(spec, None, now, registered_now, [])

    start = _floor(now - spec.span, spec.step)
    first = max(start, min(since, now))
    hourly = list(
        RegistrationTally.objects.filter(scope.q(), hour__gte=_floor(first, HOUR))
        .values("hour")
        .annotate(up=Sum("came_online"), down=Sum("went_offline"))
        .order_by("hour")
        .values_list("hour", "up", "down")
    )
    hours = [row[0] for row in hourly]
    # later_net[i]: the net change of hour i and every later one; drops_before[i]: the drops
    # of the hours before hour i.
    later_net = [0] * (len(hourly) + 1)
    for i in range(len(hourly) - 1, -1, -1):
        later_net[i] = later_net[i + 1] + hourly[i][1] - hourly[i][2]
    drops_before = [0]
    for _, _, down in hourly:
        drops_before.append(drops_before[-1] + down)

    def index(moment: datetime) -> int:  # the first hour at or after ``moment``'s hour
        return bisect.bisect_left(hours, _floor(moment, HOUR))

    times = [] if since <= start or since >= now else [since]
    moment = start
    while moment < now:
        if moment >= since and moment not in times:
            times.append(moment)
        moment += spec.step
    points = []
    bucket_end = index(_floor(now, HOUR) + HOUR)
    for n, at in enumerate(times):
        until = index(times[n + 1]) if n + 1 < len(times) else bucket_end
        points.append(ChartPoint(at, registered_now - later_net[index(at)],
                                 drops_before[until] - drops_before[index(at)]))
    points.append(ChartPoint(now, registered_now, None, is_now=True))
    return RegistrationChart(spec, since, now, registered_now, points)


# --- most flapping ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Flapper:
    endpoint_id: str
    username: str  # "" when the cache no longer has the endpoint
    drops: int
    flapping: bool  # history.FLAP_DROPS or more drops within history.FLAP_WINDOW


def flapping_list(*, scope: Scope, now: datetime | None = None, version: int | None = None,
                  limit: int = FLAPPING_LIMIT) -> list[Flapper]:
    """The ``limit`` endpoints in ``scope`` that went offline most often in the 24 hours
    before ``now``, most drops first. Three queries at most: the drops per endpoint (one
    GROUP BY over 24 hours of the ``reg_event_kind`` index), the usernames from the cache,
    and the drop times of those with enough drops to be flapping. When ``version`` is given
    (SyncState.data_version) the list is cached for it, the scope and the COUNTS_SECONDS
    window, like the list's counts: a day of drops is read once per window, not per view."""
    now = now or timezone.now()
    if version is not None:
        key = f"{_window_key(version, now, scope)}:flapping:{limit}"
        found = cache.get(key)
        if found is None:
            found = flapping_list(scope=scope, now=now, limit=limit)
            cache.set(key, found, COUNTS_SECONDS * 2)
        return found
    since = now - FLAPPING_WINDOW
    # Grouped by +endpoint_id on SQLite (_NoSeek): grouping by the bare column lets its
    # planner walk the whole (endpoint_id, at) index to skip the sort, every day of history
    # instead of one day of (kind, at, endpoint_id) (~6x slower at 100,000 endpoints).
    endpoint = _NoSeek(F("endpoint_id"), output_field=CharField())
    top = list(
        RegistrationEvent.objects.filter(scope.q(), kind=Kind.OFFLINE, at__gte=since,
                                         at__lte=now)
        .values(endpoint=endpoint)
        .annotate(drops=Count("*"))
        .order_by("-drops", "endpoint")
        .values_list("endpoint", "drops")[:limit]
    )
    if not top:
        return []
    ids = [endpoint_id for endpoint_id, _ in top]
    usernames = dict(endpoints_in_scope(scope).filter(endpoint_id__in=ids)
                     .values_list("endpoint_id", "username"))
    flapping = _flapping(
        [endpoint_id for endpoint_id, drops in top if drops >= history.FLAP_DROPS],
        since=since, now=now)
    return [Flapper(endpoint_id, usernames.get(endpoint_id, ""), drops,
                    endpoint_id in flapping) for endpoint_id, drops in top]


def _flapping(endpoint_ids: list[str], *, since: datetime, now: datetime) -> set[str]:
    """Which of ``endpoint_ids`` went offline FLAP_DROPS times within any FLAP_WINDOW between
    ``since`` and ``now``. Reads at most the top few endpoints' drops of one day."""
    if not endpoint_ids:
        return set()
    times: dict[str, list[datetime]] = defaultdict(list)
    for endpoint_id, at in (RegistrationEvent.objects
                            .filter(kind=Kind.OFFLINE, at__gte=since, at__lte=now,
                                    endpoint_id__in=endpoint_ids)
                            .order_by("endpoint_id", "at").values_list("endpoint_id", "at")):
        times[endpoint_id].append(at)
    span = history.FLAP_DROPS - 1
    return {endpoint_id for endpoint_id, ats in times.items()
            if any(ats[i + span] - ats[i] <= history.FLAP_WINDOW
                   for i in range(len(ats) - span))}


# --- devices --------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserAgentCount:
    user_agent: str  # "" when the device sent none
    count: int
    other: bool = False  # the sum of every user agent past the top ones


def user_agent_counts(*, scope: Scope, version: int | None = None,
                      limit: int = USER_AGENT_LIMIT) -> list[UserAgentCount]:
    """Registered endpoints in ``scope`` by user agent: the ``limit`` most common, most first,
    then one "other" row for the rest (when there is a rest). One GROUP BY, cached per
    ``version`` (SyncState.data_version; read when not given), scope and COUNTS_SECONDS
    window, like the list's counts."""
    key = f"{_window_key(_version(version), timezone.now(), scope)}:user-agents:{limit}"
    counts = cache.get(key)
    if counts is None:
        rows = (endpoints_in_scope(scope).filter(sip_registered__in=[True])
                .values("sip_user_agent").annotate(n=Count("*"))
                .order_by("-n", "sip_user_agent").values_list("sip_user_agent", "n"))
        rows = list(rows)
        counts = [UserAgentCount(agent, n) for agent, n in rows[:limit]]
        rest = sum(n for _, n in rows[limit:])
        if rest:
            counts.append(UserAgentCount("", rest, other=True))
        cache.set(key, counts, COUNTS_SECONDS * 2)
    return counts
