"""The list, count and audit selectors: each filter, each sort, the counts, and a constant
number of queries whatever the page size."""

from datetime import timedelta
from itertools import count

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from endpoints import selectors
from endpoints.cache import cache_version_bump
from endpoints.models import AuditEvent, Endpoint
from endpoints.scopes import EVERYTHING

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]

_ids = count(100000000000001)


def make(username, **fields):
    """A cache row with sensible defaults; ``expires_in`` (seconds) sets a registration."""
    expires_in = fields.pop("expires_in", None)
    if expires_in is not None:
        fields.setdefault("sip_registered", True)
        fields["sip_expires"] = timezone.now() + timedelta(seconds=expires_in)
    fields.setdefault("synced_at", timezone.now())
    return Endpoint.objects.create(endpoint_id=str(next(_ids)), username=username, **fields)


def names(filters=None, sort="username", offset=0, limit=100):
    rows, _ = selectors.endpoint_list(scope=EVERYTHING,
                                      filters=filters or {}, sort=sort, offset=offset,
                                      limit=limit)
    return [r.username for r in rows]


@pytest.fixture
def people():
    return {
        "jon": make("jon1001", alias="Jon-Desk", app_id="111", app_name="Sales Queue",
                    sub_account="SA_AAAA", expires_in=3600),
        "jonas": make("jonas2002", alias="reception", app_id="222", app_name="Support IVR",
                      expires_in=120),
        "ajon": make("ajon3003", alias="Lobby", sub_account="SA_BBBB"),
        "mary": make("mary4004", alias="jon-backup", app_id="111", app_name="Sales Queue",
                     sip_registered=True, sip_expires=None),
        "lapsed": make("zed5005", alias="", sip_registered=True,
                       sip_expires=timezone.now() - timedelta(minutes=2)),
    }


# --- search ---------------------------------------------------------------------------------


def test_search_contains_matches_username_or_alias_case_insensitively(people):
    assert names({"q": "JON"}) == ["ajon3003", "jon1001", "jonas2002", "mary4004"]


def test_search_exact_username_match(people):
    assert names({"q": "jon1001", "match": "exact"}) == ["jon1001"]
    assert names({"q": "JON1001", "match": "exact"}) == ["jon1001"]
    assert names({"q": "jon", "match": "exact", "alias_match": "exact"}) == []


def test_search_startswith_username_match(people):
    assert names({"q": "jon", "match": "startswith", "alias_match": "exact"}) == [
        "jon1001", "jonas2002"]


def test_alias_exact_match_applies_to_the_alias_part_of_the_search(people):
    assert names({"q": "lobby", "match": "exact", "alias_match": "exact"}) == ["ajon3003"]
    assert names({"q": "lob", "match": "exact", "alias_match": "exact"}) == []
    assert names({"q": "lob", "match": "exact", "alias_match": "contains"}) == ["ajon3003"]


def test_unknown_match_modes_fall_back_to_contains(people):
    assert names({"q": "jon", "match": "regex", "alias_match": "???"}) == names({"q": "jon"})


def test_blank_search_is_no_filter(people):
    assert len(names({"q": "   "})) == 5


# --- application, sub-account, status -------------------------------------------------------


def test_application_filter_by_id_and_none(people):
    assert names({"app": "111"}) == ["jon1001", "mary4004"]
    assert names({"app": "none"}) == ["ajon3003", "zed5005"]
    assert names({"app": "999"}) == []


def test_sub_account_filter_main_and_specific(people):
    assert names({"sub": "SA_AAAA"}) == ["jon1001"]
    assert names({"sub": "main"}) == ["jonas2002", "mary4004", "zed5005"]


def test_status_registered_includes_no_expiry_and_excludes_lapsed(people):
    assert names({"status": "registered"}) == ["jon1001", "jonas2002", "mary4004"]


def test_status_expiring_is_registered_with_less_than_five_minutes_left(people):
    assert names({"status": "expiring"}) == ["jonas2002"]


def test_status_not_registered_is_the_rest_including_lapsed(people):
    assert names({"status": "not_registered"}) == ["ajon3003", "zed5005"]


def test_filters_combine(people):
    assert names({"q": "jon", "app": "111", "status": "registered"}) == ["jon1001", "mary4004"]


# --- sorting and paging ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "sort, expected",
    [
        ("username", ["ajon3003", "jon1001", "jonas2002", "mary4004", "zed5005"]),
        ("-username", ["zed5005", "mary4004", "jonas2002", "jon1001", "ajon3003"]),
        ("alias", ["zed5005", "mary4004", "jon1001", "ajon3003", "jonas2002"]),
        ("application", ["ajon3003", "zed5005", "jon1001", "mary4004", "jonas2002"]),
        ("-application", ["jonas2002", "mary4004", "jon1001", "zed5005", "ajon3003"]),
        ("sub_account", ["jonas2002", "mary4004", "zed5005", "jon1001", "ajon3003"]),
    ],
)
def test_sort_by_column_with_id_as_tie_breaker(people, sort, expected):
    assert names(sort=sort) == expected


def test_sort_by_expiry_puts_unregistered_last_both_ways(people):
    assert names(sort="expires")[:3] == ["zed5005", "jonas2002", "jon1001"]
    assert names(sort="-expires")[:3] == ["jon1001", "jonas2002", "zed5005"]


def test_sort_by_status_is_unregistered_first_then_by_expiry_and_descending_mirrors_it(people):
    # A registration without expiry never runs out: last ascending, first descending.
    assert names(sort="status") == ["ajon3003", "zed5005", "jonas2002", "jon1001", "mary4004"]
    assert names(sort="-status") == ["mary4004", "jon1001", "jonas2002", "zed5005", "ajon3003"]


def test_unknown_sort_falls_back_to_username(people):
    assert names(sort="password") == names(sort="username")
    assert names(sort="--username; DROP TABLE") == names(sort="username")


def test_equal_sort_values_page_deterministically_by_id():
    for n in range(7):
        make(f"same{n}", alias="same")
    ids = [e.id for e in Endpoint.objects.order_by("id")]
    first, _ = selectors.endpoint_list(scope=EVERYTHING,
                                       filters={}, sort="alias", offset=0, limit=4)
    second, _ = selectors.endpoint_list(scope=EVERYTHING,
                                        filters={}, sort="alias", offset=4, limit=4)
    assert [e.id for e in first + second] == ids


def test_paging_returns_the_slice_and_the_full_total(people):
    rows, total = selectors.endpoint_list(scope=EVERYTHING,
                                          filters={}, sort="username", offset=2, limit=2)
    assert [r.username for r in rows] == ["jonas2002", "mary4004"]
    assert total == 5


def test_offset_past_the_end_is_an_empty_page_not_an_error(people):
    assert selectors.endpoint_list(scope=EVERYTHING,
                                   filters={}, sort="username", offset=10**15, limit=20) == ([], 5)


def test_list_rows_only_load_the_shown_columns(people):
    rows, _ = selectors.endpoint_list(scope=EVERYTHING,
                                      filters={}, sort="username", offset=0, limit=5)
    assert "raw" in rows[0].get_deferred_fields()
    with CaptureQueriesContext(connection) as ctx:
        shown = [(row.username, row.alias, row.sip_registered, row.sip_expires, row.sip_contact,
                  row.sip_user_agent, row.app_name, row.sub_account, row.updated_at,
                  row.endpoint_id) for row in rows]
    assert len(ctx.captured_queries) == 0
    assert len(shown) == 5


# --- last seen ------------------------------------------------------------------------------


@pytest.fixture
def sightings():
    now = timezone.now()
    return {
        "online": make("online1", expires_in=600, online_since=now - timedelta(hours=3)),
        "recent": make("recent2", last_seen_at=now - timedelta(minutes=20),
                       last_drop_at=now - timedelta(minutes=20)),
        "day": make("day3", last_seen_at=now - timedelta(hours=30),
                    last_drop_at=now - timedelta(hours=30)),
        "month": make("month4", last_seen_at=now - timedelta(days=40)),
        "never": make("never5"),
        # Back online, but it dropped 10 minutes ago.
        "bounced": make("bounced6", expires_in=600, online_since=now - timedelta(minutes=8),
                        last_drop_at=now - timedelta(minutes=10)),
    }


def test_last_seen_sorts_never_seen_first_then_oldest_and_online_last(sightings):
    assert names(sort="last_seen") == ["never5", "month4", "day3", "recent2", "online1",
                                       "bounced6"]
    assert names(sort="-last_seen") == ["bounced6", "online1", "recent2", "day3", "month4",
                                        "never5"]


@pytest.mark.parametrize(("seen", "expected"), [
    ("1h", ["day3", "month4", "never5"]),
    ("24h", ["day3", "month4", "never5"]),
    ("7d", ["month4", "never5"]),
    ("30d", ["month4", "never5"]),
    ("never", ["never5"]),
    ("bogus", ["bounced6", "day3", "month4", "never5", "online1", "recent2"]),
])
def test_not_seen_for(sightings, seen, expected):
    assert names({"seen": seen}) == expected


def test_dropped_in_the_last_hour_includes_those_back_online(sightings):
    assert names({"dropped": "1h"}) == ["bounced6", "recent2"]
    assert selectors.endpoint_counts(scope=EVERYTHING)["dropped_hour"] == 2
    # Few drops: their ids are kept, so a page is a primary-key read, never a walk of the
    # username index looking for them (100 ms at 100,000 endpoints on SQLite).
    matching = selectors.endpoint_matching(scope=EVERYTHING, filters={"dropped": "1h"})
    assert matching.ids is not None and len(matching.ids) == 2


# --- counts ---------------------------------------------------------------------------------


def test_counts_are_the_glance_numbers(people):
    assert selectors.endpoint_counts(scope=EVERYTHING) == {
        "total": 5, "registered": 3, "not_registered": 2, "expiring": 1, "no_application": 2,
        "dropped_hour": 0}


def test_counts_are_counted_once_per_cache_version_and_window(people, django_assert_num_queries):
    selectors.endpoint_counts(scope=EVERYTHING, filters={"q": "jon"}, version=0)
    with django_assert_num_queries(0):
        counts = selectors.endpoint_counts(scope=EVERYTHING, filters={"q": "jon"}, version=0)
    assert counts["matching"] == 4
    make("jon6006")
    # Same version: the cached numbers stand until the window ends...
    assert selectors.endpoint_counts(scope=EVERYTHING,
                                     filters={"q": "jon"}, version=0)["matching"] == 4
    # ...and a write, which bumps the version, is counted at once.
    cache_version_bump()
    counts = selectors.endpoint_counts(scope=EVERYTHING, filters={"q": "jon"})
    assert counts["matching"] == 5 and counts["total"] == 6


def test_counts_are_recounted_when_the_window_moves_on(people, clock):
    assert selectors.endpoint_counts(scope=EVERYTHING, version=0)["total"] == 5
    make("late7007")
    clock.shift(selectors.COUNTS_SECONDS)
    assert selectors.endpoint_counts(scope=EVERYTHING, version=0)["total"] == 6


@pytest.mark.parametrize("filters", [
    {}, {"q": "jon"}, {"q": "JON", "match": "startswith"}, {"q": "jon", "status": "registered"},
    {"status": "registered"}, {"status": "not_registered"}, {"status": "expiring"},
    {"app": "none"}, {"app": "111"}, {"sub": "main"}, {"sub": "SA_BBBB"},
    {"q": "zzz-nothing"}, {"seen": "1h"}, {"seen": "never"}, {"dropped": "1h"},
])
def test_matching_count_equals_the_rows_the_filter_selects(people, filters):
    expected = Endpoint.objects.filter(selectors.endpoint_filter_q(filters)).count()
    assert selectors.endpoint_counts(scope=EVERYTHING, filters=filters)["matching"] == expected
    rows, total = selectors.endpoint_list(scope=EVERYTHING,
                                          filters=filters, sort="username", offset=0, limit=100)
    assert total == expected == len(rows)


def test_a_known_total_skips_the_count(people, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows, total = selectors.endpoint_list(scope=EVERYTHING,
                                              filters={}, sort="username", offset=0, limit=2,
                                              total=5)
    assert total == 5 and len(rows) == 2


def test_list_query_count_does_not_depend_on_page_size():
    for n in range(150):
        make(f"user{n:03d}", alias=f"a{n}", expires_in=600 if n % 2 else None)

    def queries(filters, limit):
        cache.clear()
        with CaptureQueriesContext(connection) as ctx:
            rows, _ = selectors.endpoint_list(scope=EVERYTHING,
                                              filters=filters, sort="-updated", offset=0,
                                              limit=limit)
            assert len(rows) == limit
        return len(ctx.captured_queries)

    # Many matches (an index walk) and few (read by primary key from the cached ids).
    assert queries({"q": "user"}, 20) == queries({"q": "user"}, 100)
    assert queries({"q": "user0"}, 20) == queries({"q": "user0"}, 100)


@pytest.fixture
def crowd():
    """Rows with ties, empty values and NULLs in every sorted column, so that the order of
    each sort, and of its mirror, is fully exercised."""
    now = timezone.now()
    for n in range(47):
        registered = n % 3 != 0
        make(f"u{n % 9}x{n:02d}", alias=("" if n % 4 == 0 else f"Alias{n % 5}"),
             sip_registered=registered,
             sip_expires=(None if n % 5 == 0 else now + timedelta(seconds=(n % 7 - 2) * 100)),
             sip_contact=("" if n % 2 else f"sip:{n % 6}@h"),
             app_id=("" if n % 6 == 0 else str(n % 3)), app_name=("" if n % 6 == 0 else
                                                                  f"App{n % 3}"),
             sub_account=("" if n % 2 else f"SA_{n % 4}"),
             updated_at=(None if n % 8 == 0 else now - timedelta(days=n % 10)),
             last_seen_at=(None if registered or n % 4 == 0 else now - timedelta(hours=n % 5)),
             last_drop_at=(None if n % 4 == 0 else now - timedelta(minutes=(n % 7) * 15)))


@pytest.mark.parametrize("sort", [*selectors.ENDPOINT_SORTS,
                                  *(f"-{key}" for key in selectors.ENDPOINT_SORTS)])
@pytest.mark.parametrize("filters", [{}, {"q": "x1"}, {"status": "registered"},
                                     {"seen": "1h"}, {"dropped": "1h"}])
def test_every_page_matches_the_plain_ordered_query_front_and_back(crowd, sort, filters):
    expected = list(Endpoint.objects.filter(selectors.endpoint_filter_q(filters))
                    .order_by(*selectors.endpoint_ordering(sort)).values_list("id", flat=True))
    assert expected
    seen = []
    for offset in range(0, len(expected), 10):  # back-half pages are read from the end
        rows, total = selectors.endpoint_list(scope=EVERYTHING,
                                              filters=filters, sort=sort, offset=offset,
                                              limit=10)
        assert total == len(expected)
        seen.extend(row.id for row in rows)
    assert seen == expected


def test_few_matches_are_read_by_primary_key_in_sort_order(crowd, settings):
    filters = {"q": "u3x"}
    matching = selectors.endpoint_matching(scope=EVERYTHING, filters=filters)
    assert matching.ids is not None and len(matching.ids) == matching.count > 0
    with CaptureQueriesContext(connection) as ctx:
        rows, _ = selectors.endpoint_list(scope=EVERYTHING,
                                          filters=filters, sort="-expires", offset=0, limit=3)
    assert "LIKE" not in " ".join(q["sql"] for q in ctx.captured_queries).upper()
    assert [r.id for r in rows] == list(
        Endpoint.objects.filter(selectors.endpoint_filter_q(filters))
        .order_by(*selectors.endpoint_ordering("-expires")).values_list("id", flat=True)[:3])


def test_sub_account_choices_are_distinct_and_sorted(people):
    make("extra", sub_account="SA_AAAA")
    assert selectors.sub_account_list(scope=EVERYTHING) == ["SA_AAAA", "SA_BBBB"]


# --- audit ----------------------------------------------------------------------------------


@pytest.fixture
def events():
    made = []
    for n, (user, action, eid, name, outcome) in enumerate([
        ("sam", "update", "900000000000001", "jon1001", "done"),
        ("ada", "delete", "900000000000002", "mary4004", "failed"),
        ("sam", "password_reset", "900000000000001", "jon1001", "uncertain"),
        ("ada", "create", "", "newbie", "failed"),
    ]):
        made.append(AuditEvent.objects.create(username=user, action=action, endpoint_id=eid,
                                              endpoint_username=name, outcome=outcome,
                                              message=f"event {n}"))
    return made


def audit_messages(filters, offset=0, limit=50):
    rows, total = selectors.audit_list(scope=EVERYTHING,
                                       filters=filters, offset=offset, limit=limit)
    return [r.message for r in rows], total


def test_audit_list_is_newest_first(events):
    assert audit_messages({}) == (["event 3", "event 2", "event 1", "event 0"], 4)


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"user": "SA"}, ["event 2", "event 0"]),
        ({"action": "delete"}, ["event 1"]),
        ({"outcome": "failed"}, ["event 3", "event 1"]),
        ({"endpoint": "jon"}, ["event 2", "event 0"]),
        ({"endpoint": "0000000002"}, ["event 1"]),
        ({"user": "ada", "outcome": "failed", "endpoint": "newb"}, ["event 3"]),
    ],
)
def test_audit_filters(events, filters, expected):
    assert audit_messages(filters)[0] == expected


def test_audit_paging(events):
    assert audit_messages({}, offset=1, limit=2) == (["event 2", "event 1"], 4)
    assert audit_messages({}, offset=99, limit=2) == ([], 4)


def test_audit_for_endpoint_is_newest_first_and_limited(events):
    rows = selectors.audit_list_for_endpoint(scope=EVERYTHING, endpoint_id="900000000000001")
    assert [r.message for r in rows] == ["event 2", "event 0"]
    latest = selectors.audit_list_for_endpoint(scope=EVERYTHING, endpoint_id="900000000000001",
                                               limit=1)
    assert [r.message for r in latest] == ["event 2"]


def test_audit_action_choices_include_known_and_logged_actions(events):
    AuditEvent.objects.create(username="x", action="sync", outcome="done")
    choices = selectors.audit_action_list()
    assert choices[:len(selectors.AUDIT_ACTIONS)] == list(selectors.AUDIT_ACTIONS)
    assert "sync" in choices
