"""The Overview page: registered endpoints over time (back-calculated from the hourly tallies),
the most flapping endpoints, devices by user agent, within the reader's scope.

The chart's series is checked against registered counts observed while history was driven
through the sandbox (register, unregister, sync), and against an oracle that sums the
recorded events themselves (not the tallies the code reads)."""

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from endpoints import history, overview, sync
from endpoints.cache import cache_version_bump
from endpoints.history import Observation
from endpoints.models import (
    Endpoint,
    RegistrationEvent,
    StaffScope,
    SyncState,
)
from endpoints.scopes import EVERYTHING, Scope

Kind = RegistrationEvent.Kind
pytestmark = pytest.mark.django_db
PAGE = "/overview/"
DATA = "/overview/registrations.json"
_ids = count(200000000000001)


def _now():
    return timezone.now()


def _sync():
    return sync.endpoint_sync_all(triggered_by="tests")


def _registered(sub_accounts=None) -> int:
    qs = Endpoint.objects.filter(sip_registered=True)
    if sub_accounts is not None:
        qs = qs.filter(sub_account__in=sub_accounts)
    return qs.count()


def _series(chart) -> dict:
    return {p.at: p.registered for p in chart.points}


# --- built directly: endpoints in the cache, history through history_record ------------------


def make(username, *, sub="", registered=False, ua=""):
    return Endpoint.objects.create(endpoint_id=str(next(_ids)), username=username,
                                   sub_account=sub, sip_registered=registered,
                                   sip_user_agent=ua, synced_at=_now())


def began(at):
    SyncState.objects.update_or_create(name="endpoints", defaults={"history_since": at})


def record(endpoint, at, kind=Kind.OFFLINE):
    """One change of ``endpoint``, written the way syncs write them (events + tallies)."""
    history.history_record([Observation(endpoint.endpoint_id, [RegistrationEvent(
        endpoint_id=endpoint.endpoint_id, sub_account=endpoint.sub_account, at=at, kind=kind)])])


def oracle(at, *, registered_now, sub_accounts=None) -> int:
    """Registered at ``at``: now, minus what the events after ``at`` changed."""
    events = RegistrationEvent.objects.filter(at__gte=at)
    if sub_accounts is not None:
        events = events.filter(sub_account__in=sub_accounts)
    net = sum(1 if kind == Kind.ONLINE else -1 if kind in history.DROPS else 0
              for kind in events.values_list("kind", flat=True))
    return registered_now - net


def drops_between(start, until) -> int:
    """Drops from ``start`` until the point ``until`` (its time included when it is now)."""
    end = until.at + timedelta(microseconds=1) if until.is_now else until.at
    return RegistrationEvent.objects.filter(at__gte=start, at__lt=end,
                                            kind__in=history.DROPS).count()


# --- the chart, driven through the sandbox ---------------------------------------------------


def test_the_chart_back_calculates_the_registered_count_hour_by_hour(sandbox, clock, client,
                                                                     support_user):
    ids = [o["endpoint_id"] for o in sandbox.api("GET", "Endpoint/?limit=100").json()["objects"]]
    # Registrations good for a day: a drop is dated at the sync that sees it (not at an
    # expiry the cache knew of), so the count the cache holds on the hour is the true one.
    for eid in ids[:24]:
        sandbox.register(eid, user_agent="Yealink T54W", expires_in=86400, renew=True)
    for eid in ids[24:]:
        sandbox.unregister(eid)
    _sync()  # 09:00: history begins
    since = history.history_since()
    assert since == _now()
    seen = {_now(): _registered()}
    assert seen[since] == 24
    # Each hour, at :20 two go offline and at :40 one comes back.
    for hour in range(5):
        clock.shift(20 * 60)
        sandbox.unregister(ids[2 * hour])
        sandbox.unregister(ids[2 * hour + 1])
        _sync()
        clock.shift(20 * 60)
        sandbox.register(ids[2 * hour], user_agent="Zoiper 5", expires_in=86400, renew=True)
        _sync()
        clock.shift(20 * 60)
        seen[_now()] = _registered()
    clock.shift(30 * 60)  # 14:30
    sandbox.unregister(ids[0])
    _sync()
    assert RegistrationEvent.objects.filter(kind=Kind.OFFLINE).count() == 11
    assert list(seen.values()) == [24, 23, 22, 21, 20, 19]

    chart = overview.registration_chart_get(scope=EVERYTHING, period="24h")
    series = _series(chart)
    assert [p.at for p in chart.points] == [*sorted(seen), _now()]  # nothing before 09:00
    for at, registered in seen.items():
        assert series[at] == registered, at
    assert chart.points[-1].is_now and chart.points[-1].registered == _registered()
    for point, nxt in zip(chart.points, chart.points[1:], strict=False):
        assert point.drops == drops_between(point.at, nxt)
    assert chart.points[-1].drops is None

    client.force_login(support_user)
    data = client.get(DATA, {"period": "24h"}).json()
    assert data["period"] == "24h"
    assert data["since"] == since.isoformat()
    assert data["registered_now"] == _registered()
    assert data["points"] == [{"t": int(p.at.timestamp()), "registered": p.registered,
                               "drops": p.drops} for p in chart.points]


# --- the chart, built directly ---------------------------------------------------------------


@pytest.fixture
def month(clock):
    """40 days of changes to 30 endpoints (some of them drops), history begun 40 days ago;
    12 endpoints registered now."""
    now = _now()
    began(now - timedelta(days=40))
    endpoints = [make(f"user{i:02d}", sub="SA_A" if i % 3 else "SA_B", registered=i < 12)
                 for i in range(30)]
    for n in range(400):
        at = now - timedelta(minutes=97 * n + 7)
        endpoint = endpoints[(n * 7) % 30]
        record(endpoint, at, kind=(Kind.ONLINE, Kind.OFFLINE, Kind.DEVICE, Kind.DELETED)[n % 4])
    return endpoints


def test_thirty_days_are_points_every_four_hours(month):
    now = _now()
    chart = overview.registration_chart_get(scope=EVERYTHING, period="30d", now=now)
    boundaries = [p.at for p in chart.points[:-1]]
    assert all(int(at.timestamp()) % (4 * 3600) == 0 for at in boundaries)
    assert all(b - a == timedelta(hours=4) for a, b in zip(boundaries, boundaries[1:],
                                                            strict=False))
    assert now - timedelta(days=30, hours=4) < boundaries[0] <= now - timedelta(days=30)
    assert boundaries[-1] <= now < boundaries[-1] + timedelta(hours=4)
    assert chart.points[-1].at == now and chart.points[-1].is_now
    registered_now = _registered()
    assert chart.points[-1].registered == registered_now == 12
    for point, nxt in zip(chart.points, chart.points[1:], strict=False):
        assert point.registered == oracle(point.at, registered_now=registered_now)
        assert point.drops == drops_between(point.at, nxt)
    assert sum(p.drops for p in chart.points[:-1]) == drops_between(boundaries[0],
                                                                     chart.points[-1])

    hourly = overview.registration_chart_get(scope=EVERYTHING, period="7d", now=now)
    times = [p.at for p in hourly.points]
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [
        timedelta(hours=1)] * (len(times) - 1)
    assert len(times) == 7 * 24 + 1  # the 168 hours from a week ago, and now (09:00)


def test_nothing_is_drawn_before_history_began(clock, client, support_user):
    now = _now()
    since = now - timedelta(hours=5, minutes=25)  # 03:35, between two hours
    began(since)
    endpoint = make("jane", registered=True)
    record(endpoint, since + timedelta(minutes=10), Kind.OFFLINE)
    record(endpoint, since + timedelta(hours=2), Kind.ONLINE)
    chart = overview.registration_chart_get(scope=EVERYTHING, period="24h")
    assert chart.clipped
    times = [p.at for p in chart.points]
    assert times[0] == since
    # Hours 04:00 to 08:00, then now (09:00).
    assert times[1:-1] == [datetime(2026, 12, 3, h, tzinfo=UTC) for h in range(4, 9)]
    assert times[-1] == now
    assert [p.registered for p in chart.points] == [1, 0, 0, 1, 1, 1, 1]
    assert chart.points[0].drops == 1

    client.force_login(support_user)
    html = client.get(PAGE).content.decode()
    assert "History began" in html and "nothing is drawn before then" in html
    assert f'datetime="{since.isoformat()}"' in html


def test_before_history_begins_the_page_says_so_plainly(clock, client, support_user):
    make("jane", registered=True)
    client.force_login(support_user)
    data = client.get(DATA).json()
    assert data["since"] is None and data["points"] == []
    assert data["registered_now"] == 1
    response = client.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "No registration history yet" in html
    assert "data-overview-chart" not in html and "<canvas" not in html
    assert "No endpoint went offline in the last 24 hours" in html


@pytest.mark.parametrize("period", ["1y", "", "24H", "<b>x</b>", "7d%00"])
def test_an_unknown_period_falls_back_to_24_hours_with_a_message(clock, client, support_user,
                                                                 period):
    began(_now() - timedelta(days=2))
    client.force_login(support_user)
    response = client.get(PAGE, {"period": period})
    assert response.status_code == 200
    html = response.content.decode()
    assert "showing the last 24 hours" in html
    assert "Registered endpoints, last 24 hours" in html
    assert "<b>x</b>" not in html
    data = client.get(DATA, {"period": period})
    assert data.status_code == 200
    assert data.json()["period"] == "24h"
    assert "showing the last 24 hours" in data.json()["message"]


@pytest.mark.parametrize(("period", "heading", "points"), [
    ("24h", "last 24 hours", 24), ("7d", "last 7 days", 168), ("30d", "last 30 days", 181)])
def test_each_period_renders_its_table_server_side(clock, client, support_user, period,
                                                   heading, points):
    began(_now() - timedelta(days=60))
    client.force_login(support_user)
    response = client.get(PAGE, {"period": period})
    html = response.content.decode()
    assert f"Registered endpoints, {heading}" in html
    assert "Show the numbers as a table" in html
    assert '<caption id="registrations-caption">' in html
    assert html.count('<th scope="row"><time') == points + 1  # and now
    assert f'data-source="{DATA}?period={period}"' in html
    assert f'href="?period={period}" aria-current="page"' in html
    assert "no-store" in response["Cache-Control"]
    assert "overview.css" in html and "js/overview.js" in html
    assert "uPlot.iife.min.js" in html


def test_login_is_required_and_responses_are_not_stored(clock, client, support_user):
    for url in (PAGE, DATA):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    client.force_login(support_user)
    response = client.get(DATA)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert {"private", "no-store"} <= {p.strip() for p in response["Cache-Control"].split(",")}


def test_the_header_links_to_the_overview_and_only_it_loads_its_assets(client, support_user):
    client.force_login(support_user)
    html = client.get(reverse("endpoints:list")).content.decode()
    assert f'<a href="{PAGE}">Overview</a>' in html
    assert "overview.css" not in html and "overview.js" not in html and "uPlot" not in html
    html = client.get(PAGE).content.decode()
    assert f'<a href="{PAGE}" aria-current="page">Overview</a>' in html


def test_the_json_costs_the_same_queries_however_much_history(clock, client, support_user,
                                                             django_assert_max_num_queries):
    now = _now()
    began(now - timedelta(days=31))
    endpoints = [make(f"u{i}", sub=f"SA_{i % 5}", registered=i % 2 == 0) for i in range(20)]
    StaffScope.objects.create(user=support_user, all_endpoints=False,
                              sub_accounts=["SA_1", "SA_2"])
    client.force_login(support_user)
    record(endpoints[0], now - timedelta(hours=1))
    with CaptureQueriesContext(connection) as few:
        assert client.get(DATA, {"period": "30d"}).status_code == 200
    for n in range(600):  # 30 days of changes, in every hour and sub-account
        record(endpoints[n % 20], now - timedelta(minutes=71 * n + 3),
               Kind.ONLINE if n % 2 else Kind.OFFLINE)
    with django_assert_max_num_queries(len(few.captured_queries)):
        data = client.get(DATA, {"period": "30d"}).json()
    assert len(data["points"]) == 182


# --- scope -----------------------------------------------------------------------------------


def test_a_scoped_user_sees_only_their_sub_accounts(clock, client, support_user):
    now = _now()
    began(now - timedelta(days=2))
    mine = [make(f"mine{i}", sub="SA_MINE", registered=i < 2, ua="Yealink T54W")
            for i in range(3)]
    main = make("mainphone", sub="", registered=True, ua="Cisco SPA")
    theirs = [make(f"theirs{i}", sub="SA_THEIRS", registered=True, ua="Grandstream Secret")
              for i in range(5)]
    for endpoint in [*theirs, main]:
        for minutes in (10, 20, 30, 40):
            record(endpoint, now - timedelta(minutes=minutes))
    record(mine[0], now - timedelta(minutes=90))
    record(mine[0], now - timedelta(minutes=80), Kind.ONLINE)
    record(theirs[0], now - timedelta(hours=3), Kind.ONLINE)
    StaffScope.objects.create(user=support_user, all_endpoints=False, sub_accounts=["SA_MINE"])
    client.force_login(support_user)

    data = client.get(DATA).json()
    assert data["registered_now"] == 2
    for point in data["points"]:
        at = datetime.fromtimestamp(point["t"], tz=UTC)
        assert point["registered"] == oracle(at, registered_now=2, sub_accounts=["SA_MINE"])
    assert sum(p["drops"] or 0 for p in data["points"]) == 1

    html = client.get(PAGE).content.decode()
    assert ">mine0</a>" in html
    assert "theirs" not in html and "mainphone" not in html
    assert "Grandstream Secret" not in html and "Cisco SPA" not in html
    assert "Yealink T54W" in html

    everyone = overview.registration_chart_get(scope=EVERYTHING, period="24h")
    assert everyone.registered_now == 8
    assert [f.username for f in overview.flapping_list(scope=Scope(frozenset({""})))] == [
        "mainphone"]
    assert overview.flapping_list(scope=Scope(frozenset())) == []
    assert overview.registration_chart_get(scope=Scope(frozenset()), period="24h"
                                           ).registered_now == 0


# --- most flapping ---------------------------------------------------------------------------


def test_most_flapping_lists_the_top_ten_by_drops_and_marks_the_flapping(clock, client,
                                                                         support_user):
    now = _now()
    began(now - timedelta(days=3))
    phones = [make(f"phone{i:02d}", registered=True) for i in range(13)]
    for i, phone in enumerate(phones[:12]):
        for n in range(i + 1):  # phoneNN drops NN+1 times, three hours apart: not flapping
            record(phone, now - timedelta(hours=3 * n, minutes=5))
    burst = phones[12]  # three drops within 50 minutes, 5 hours ago: flapping
    for minutes in (0, 20, 50):
        record(burst, now - timedelta(hours=5, minutes=minutes))
    for phone in phones[:3]:  # neither old drops nor other changes count
        record(phone, now - timedelta(hours=25))
        record(phone, now - timedelta(minutes=1), Kind.ONLINE)
        record(phone, now - timedelta(minutes=1), Kind.DEVICE)
    record(make("ghost"), now - timedelta(minutes=2), Kind.DELETED)

    found = overview.flapping_list(scope=EVERYTHING)
    # phone11 had 12 drops three hours apart: only those within 24 hours count (8).
    assert [(f.username, f.drops) for f in found] == [
        ("phone07", 8), ("phone08", 8), ("phone09", 8), ("phone10", 8), ("phone11", 8),
        ("phone06", 7), ("phone05", 6), ("phone04", 5), ("phone03", 4), ("phone02", 3)]
    assert not any(f.flapping for f in found)
    burst_record = RegistrationEvent.objects.filter(endpoint_id=burst.endpoint_id)
    assert burst_record.count() == 3

    # Fewer endpoints drop: the burst shows, marked, and so does a deleted one's id.
    RegistrationEvent.objects.exclude(endpoint_id=burst.endpoint_id).delete()
    gone = "999000111"
    history.history_record([Observation(gone, [RegistrationEvent(
        endpoint_id=gone, sub_account="", at=now - timedelta(minutes=3), kind=Kind.OFFLINE)])])
    found = overview.flapping_list(scope=EVERYTHING)
    assert [(f.username, f.drops, f.flapping) for f in found] == [
        ("phone12", 3, True), ("", 1, False)]
    client.force_login(support_user)
    html = client.get(PAGE).content.decode()
    link = reverse("endpoints:detail", args=[burst.endpoint_id])
    assert f'<a class="mono" href="{link}">phone12</a>' in html
    assert "↯</span> Flapping" in html
    assert f'<span class="mono">{gone}</span>' in html and "no longer in the list" in html


def test_no_drops_is_said_plainly(clock, client, support_user):
    began(_now() - timedelta(days=1))
    record(make("calm", registered=True), _now() - timedelta(hours=2), Kind.ONLINE)
    client.force_login(support_user)
    html = client.get(PAGE).content.decode()
    assert "No endpoint went offline in the last 24 hours." in html


def test_flapping_reads_one_day_of_the_kind_index(clock):
    """The top list is one GROUP BY over 24 hours of (kind, at, endpoint_id); SQLite, given
    statistics, would rather walk every day of the (endpoint_id, at) index to skip a sort."""
    now = _now()
    began(now - timedelta(days=3))
    phones = [make(f"p{i}") for i in range(8)]
    for n in range(400):
        record(phones[n % 8], now - timedelta(minutes=10 * n + 1),
               (Kind.OFFLINE, Kind.ONLINE)[n % 2])
    if connection.vendor == "sqlite":
        # The statistics of a day of flapping at 100,000 endpoints (make bench's database).
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
            for index, stat in (("reg_event_kind", "1440000 720000 250 1"),
                                ("reg_event_at", "1440000 500"),
                                ("reg_event_endpoint", "1440000 288 2 1")):
                cursor.execute("UPDATE sqlite_stat1 SET stat = %s WHERE idx = %s", [stat, index])
            cursor.execute("ANALYZE sqlite_schema")  # reload them
    try:
        with CaptureQueriesContext(connection) as queries:
            found = overview.flapping_list(scope=EVERYTHING)
    finally:
        if connection.vendor == "sqlite":  # no statistics leak into the next test's plans
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM sqlite_stat1")
                cursor.execute("ANALYZE sqlite_schema")
    assert len(found) == 4 and all(f.drops == 18 for f in found)
    grouped = queries.captured_queries[0]["sql"]
    assert "GROUP BY" in grouped and "LIMIT 10" in grouped
    assert len(queries.captured_queries) == 3  # the drops, the usernames, the flapping check
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + grouped)
            plan = " ".join(str(row) for row in cursor.fetchall())
        assert "COVERING INDEX reg_event_kind" in plan, plan


# --- devices ---------------------------------------------------------------------------------


def test_devices_are_the_top_15_user_agents_then_other(clock, client, support_user):
    began(_now())
    for i in range(17):
        for _ in range(20 - i):  # "Phone 00" on 20 endpoints ... "Phone 16" on 4
            make("p", registered=True, ua=f"Phone {i:02d}")
    make("p", registered=True, ua="")
    make("p", registered=False, ua="Unregistered Phone")
    counts = overview.user_agent_counts(scope=EVERYTHING)
    assert [(c.user_agent, c.count, c.other) for c in counts[:2]] == [
        ("Phone 00", 20, False), ("Phone 01", 19, False)]
    assert len(counts) == 16
    assert counts[14].user_agent == "Phone 14"
    assert (counts[15].other, counts[15].count) == (True, 5 + 4 + 1)
    assert sum(c.count for c in counts) == _registered()

    client.force_login(support_user)
    html = client.get(PAGE).content.decode()
    assert "Other user agents" in html and "Unregistered Phone" not in html

    # Cached for the window and data version: a new registration shows after a write.
    make("p", registered=True, ua="Brand New")
    assert overview.user_agent_counts(scope=EVERYTHING) == counts
    cache_version_bump()
    assert sum(c.count for c in overview.user_agent_counts(scope=EVERYTHING)) == _registered()


def test_no_registered_device_is_said_plainly(clock, client, support_user):
    make("off")
    client.force_login(support_user)
    assert "No endpoint is registered now." in client.get(PAGE).content.decode()


def test_hostile_user_agents_and_usernames_are_escaped(clock, client, support_user):
    began(_now() - timedelta(days=1))
    hostile = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"
    phone = make(hostile, registered=True, ua=hostile)
    record(phone, _now() - timedelta(minutes=5))
    client.force_login(support_user)
    html = client.get(PAGE).content.decode()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2  # device, and flapping
