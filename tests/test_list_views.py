"""The list, row, inline alias, sync and audit views: as whole pages and as htmx fragments.

Vobiz is the sandbox over real HTTP; the list must never call it while browsing."""

from itertools import count

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from endpoints import roles, services, sync
from endpoints.models import AuditEvent, Endpoint, SyncState, UserPreference

# Time stands still unless a test moves it (conftest's clock).
pytestmark = pytest.mark.usefixtures("clock")

HX = {"HTTP_HX_REQUEST": "true"}
LIST = "/"



@pytest.fixture
def support(client, support_user):
    client.force_login(support_user)
    return client


@pytest.fixture
def admin(client, admin_user_role):
    client.force_login(admin_user_role)
    return client


_ids = count(700000000000001)


def make_rows(n, **fields):
    now = timezone.now()
    Endpoint.objects.bulk_create([
        Endpoint(endpoint_id=str(next(_ids)), username=f"bulk{i:04d}", alias=f"desk-{i}",
                 synced_at=now, updated_at=now, **fields)
        for i in range(n)
    ])


def text(response):
    return response.content.decode()


def first_endpoint():
    return Endpoint.objects.order_by("username").first()


# --- the list page --------------------------------------------------------------------------


def test_list_is_a_full_page_with_labelled_filters_and_the_columns(support, synced):
    response = support.get(LIST)
    assert response.status_code == 200
    html = text(response)
    assert "<html" in html
    for label in ("Search", "Username match", "Alias match", "Application", "Sub-account",
                  "Registration", "Per page", "Auto-refresh"):
        assert f">{label}</label>" in html
    for header in ("Username", "Alias", "Registration", "Contact / user agent", "Expires",
                   "Application", "Sub-account", "Updated"):
        assert f">{header}<span class=\"sort-icon\"" in html
    assert 'method="get"' in html and "Apply filters" in html
    assert f"1–20</strong> of <strong>{Endpoint.objects.count()}</strong> endpoints" in html
    endpoint = first_endpoint()
    assert reverse("endpoints:detail", args=[endpoint.endpoint_id]) in html
    assert 'aria-sort="ascending"' in html


def test_list_fragment_is_the_table_with_out_of_band_counts_status_and_badge(support, synced):
    response = support.get(LIST, {"q": "a", "sort": "-alias"}, **HX)
    assert response.status_code == 200
    html = text(response)
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="results"')
    assert 'id="counts" class="glance" aria-label="Account at a glance" hx-swap-oob="true"' in html
    assert 'id="result-count" class="result-count" hx-swap-oob="true"' in html
    assert 'id="list-status" class="visually-hidden" role="status" hx-swap-oob="innerHTML"' in html
    assert 'id="sync-badge"' in html and 'hx-swap-oob="true"' in html
    assert 'aria-sort="descending"' in html
    assert response["Vary"] and "HX-Request" in response["Vary"]


def test_list_body_fragment_when_a_count_link_targets_the_filter_bar_too(support, synced):
    response = support.get(LIST, {"status": "registered"}, HTTP_HX_TARGET="list-body", **HX)
    html = text(response)
    assert html.lstrip().startswith('<div id="list-body"')
    assert '<option value="registered" selected>' in html


def test_history_restore_request_gets_the_full_page(support, synced):
    response = support.get(LIST, {"q": "a"}, HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HX)
    assert "<html" in text(response)


def test_boosted_request_gets_the_full_page(support, synced):
    response = support.get(LIST, HTTP_HX_BOOSTED="true", **HX)
    assert "<html" in text(response)


def test_browsing_never_calls_vobiz(support, synced, sandbox):
    sandbox.reset_stats()
    endpoint = first_endpoint()
    for params in ({}, {"q": "jo", "match": "startswith"}, {"status": "registered"},
                   {"sort": "-expires", "page": "2", "per_page": "20"}, {"app": "none"},
                   {"sub": "main", "alias_match": "exact", "q": "x"}):
        assert support.get(LIST, params).status_code == 200
        assert support.get(LIST, params, **HX).status_code == 200
    row = support.get(reverse("endpoints:row", args=[endpoint.endpoint_id]), **HX)
    assert row.status_code == 200
    assert sandbox.stats()["total"] == 0


@pytest.mark.parametrize(
    "params, present, absent",
    [
        ({"q": "jane_smith", "match": "exact"}, ["jane_smith"], ["john_doe"]),
        ({"q": "john", "match": "startswith", "alias_match": "exact"}, ["john_doe"],
         ["jane_smith"]),
        ({"q": "Jane's Mobile", "alias_match": "exact", "match": "exact"}, ["jane_smith"],
         ["john_doe"]),
    ],
)
def test_search_filters_the_rows(support, synced, params, present, absent):
    html = text(support.get(LIST, params, **HX))
    for name in present:
        assert f">{name}</a>" in html
    for name in absent:
        assert f">{name}</a>" not in html


def test_application_sub_account_and_status_filters(support, synced):
    with_app = Endpoint.objects.exclude(app_id="").first()
    html = text(support.get(LIST, {"app": with_app.app_id, "per_page": "100"}, **HX))
    expected = Endpoint.objects.filter(app_id=with_app.app_id).count()
    assert html.count('<tr id="ep-') == expected
    html = text(support.get(LIST, {"app": "none", "per_page": "100"}, **HX))
    assert html.count('<tr id="ep-') == Endpoint.objects.filter(app_id="").count()
    sub = Endpoint.objects.exclude(sub_account="").first().sub_account
    html = text(support.get(LIST, {"sub": sub, "per_page": "100"}, **HX))
    assert html.count('<tr id="ep-') == Endpoint.objects.filter(sub_account=sub).count()
    html = text(support.get(LIST, {"status": "not_registered", "per_page": "100"}, **HX))
    assert "Registered</span>" not in html and "Offline</span>" in html


def test_empty_state_says_what_to_do(support, synced):
    html = text(support.get(LIST, {"q": "nobody-like-this"}))
    assert "No endpoint matches “nobody-like-this”." in html
    assert "Clear filters</a>" in html


def test_empty_cache_tells_an_admin_to_refresh(admin, db):
    html = text(admin.get(LIST))
    assert "No endpoints in the list yet." in html and "Refresh from Vobiz" in html


def test_clear_filters_link_only_when_a_filter_is_set(support, synced):
    assert "Clear filters" not in text(support.get(LIST, {"sort": "alias", "per_page": "50"}))
    html = text(support.get(LIST, {"status": "registered", "sort": "alias"}))
    assert 'href="/?sort=alias"' in html and "Clear filters" in html


def test_counts_link_to_their_filter(support, synced):
    html = text(support.get(LIST))
    total = Endpoint.objects.count()
    assert f'<span class="glance-number">{total}</span>' in html
    for query in ("?status=registered", "?status=not_registered", "?status=expiring", "?app=none"):
        assert f'href="/{query}"' in html


def test_paging_and_position_in_words(support, db):
    make_rows(45)
    html = text(support.get(LIST, {"page": "3"}))
    assert "41–45</strong> of <strong>45</strong> endpoints" in html
    assert "Page 3 of 3" in html
    assert 'href="?page=2"' in html and 'hx-get="/?page=2"' in html


def test_page_size_is_remembered_for_the_user(support, support_user, db):
    make_rows(60)
    html = text(support.get(LIST, {"per_page": "50"}))
    assert html.count('<tr id="ep-') == 50
    assert UserPreference.objects.get(user=support_user).page_size == 50
    html = text(support.get(LIST))
    assert html.count('<tr id="ep-') == 50
    assert '<option value="50" selected>' in html


def test_query_count_is_the_same_for_20_and_100_rows(support, db):
    make_rows(150)

    def queries(per_page):
        support.get(LIST, {"per_page": per_page})  # remembers the size first
        with CaptureQueriesContext(connection) as ctx:
            response = support.get(LIST, {"per_page": per_page, "sort": "-updated"})
        assert text(response).count('<tr id="ep-') == per_page
        return len(ctx.captured_queries)

    assert queries(20) == queries(100)


def test_list_counts_once_then_serves_the_counts_from_the_cache(support, db):
    make_rows(30)

    def counting():
        with CaptureQueriesContext(connection) as ctx:
            html = text(support.get(LIST, {"q": "bulk"}, **HX))
        return [q for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()], html

    first, html = counting()
    assert first and "of <strong>30</strong>" in html
    again, html = counting()
    assert again == [] and "of <strong>30</strong>" in html


def test_a_write_through_the_dashboard_shows_in_the_counts_at_once(support, synced, sandbox):
    before = text(support.get(LIST, {"q": "Desk-Fresh"}))
    assert "<strong>0</strong> endpoints" in before
    endpoint = first_endpoint()
    support.post(reverse("endpoints:alias", args=[endpoint.endpoint_id]),
                 {"alias": "Desk-Fresh", "seen_alias": endpoint.alias}, **HX)
    after = text(support.get(LIST, {"q": "Desk-Fresh"}))
    assert "of <strong>1</strong> endpoint" in after and endpoint.username in after


@pytest.mark.parametrize(
    "params",
    [
        {"page": "abc"},
        {"page": "-3"},
        {"page": "0"},
        {"page": "99999999999999999999999999"},
        {"page": "١٢"},
        {"per_page": "7"},
        {"per_page": "1e9"},
        {"sort": "password"},
        {"sort": "--username"},
        {"sort": "-"},
        {"status": "dead"},
        {"app": "' OR 1=1 --"},
        {"sub": "SA_NOPE"},
        {"match": "regex", "alias_match": "glob"},
        {"q": "x" * 300},
        {"q": "nul\x00byte"},
        {"q": "😀 ünïcödé ☎"},
    ],
)
def test_bad_parameters_never_fail(support, synced, params):
    for extra in ({}, HX):
        response = support.get(LIST, params, **extra)
        assert response.status_code == 200


def test_an_invalid_filter_is_reported_next_to_its_field(support, synced):
    html = text(support.get(LIST, {"status": "dead", "q": "jane"}))
    assert "Some filters were ignored" in html
    assert 'id="id_status_error"' in html
    assert ">jane_smith</a>" in html  # the valid filter still applies


def test_an_invalid_not_seen_for_is_reported_next_to_its_field(support, synced):
    html = text(support.get(LIST, {"seen": "1 fortnight", "dropped": "1y", "q": "jane"}))
    assert 'id="id_seen_error"' in html and 'id="id_dropped_error"' in html
    assert ">jane_smith</a>" in html


def test_last_seen_column_filter_and_quick_filter(support, db):
    now = timezone.now()
    make_rows(2, sip_registered=True, online_since=now - timezone.timedelta(hours=2))
    Endpoint.objects.create(endpoint_id="900000000000001", username="gone1", synced_at=now,
                            last_seen_at=now - timezone.timedelta(days=3),
                            last_drop_at=now - timezone.timedelta(days=3))
    Endpoint.objects.create(endpoint_id="900000000000002", username="flaky2", synced_at=now,
                            last_seen_at=now - timezone.timedelta(minutes=5),
                            last_drop_at=now - timezone.timedelta(minutes=5))
    Endpoint.objects.create(endpoint_id="900000000000003", username="never3", synced_at=now)
    html = text(support.get(LIST, {"sort": "-last_seen"}))
    assert 'aria-sort="descending" class="col-last_seen"' in html
    assert "Now <span class=\"muted\">(online <time" in html
    assert ">3\xa0days ago</time>" in html and "Never seen" in html
    assert html.index("bulk0000") < html.index("flaky2") < html.index("gone1") < html.index(
        "never3")
    # "Not seen for 24 hours": offline that long, or never seen.
    html = text(support.get(LIST, {"seen": "24h"}, **HX))
    assert ">gone1</a>" in html and ">never3</a>" in html
    assert ">flaky2</a>" not in html and ">bulk0000</a>" not in html
    # The glance number links the quick filter.
    html = text(support.get(LIST))
    assert 'href="/?dropped=1h"' in html
    assert ('<span class="glance-number">1</span> <span class="glance-label"><span '
            'class="status-icon" aria-hidden="true">↯</span> dropped in the last hour') in html
    html = text(support.get(LIST, {"dropped": "1h"}))
    assert ">flaky2</a>" in html and ">gone1</a>" not in html


def test_huge_page_number_shows_the_last_page(support, db):
    make_rows(25)
    html = text(support.get(LIST, {"page": "10000000000000"}))
    assert "21–25</strong> of <strong>25</strong>" in html


QUERY_KEYS = ["q", "match", "alias_match", "app", "sub", "status", "seen", "dropped", "sort",
              "page", "per_page"]


@pytest.mark.django_db
@settings(max_examples=50, deadline=None)
@given(params=st.dictionaries(
    st.sampled_from(QUERY_KEYS),
    st.one_of(st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
              st.integers(min_value=-10**20, max_value=10**20).map(str),
              st.sampled_from(["", "-", "none", "main", "registered", "expiring", "exact",
                               "-username", "updated", "100"])),
    max_size=6,
))
def test_any_query_string_renders(params):
    roles.ensure_roles()
    user, _ = get_user_model().objects.get_or_create(username="prop")
    user.groups.add(Group.objects.get(name=roles.SUPPORT))
    client = Client()
    client.force_login(user)
    assert client.get(LIST, params).status_code == 200
    assert client.get(LIST, params, **HX).status_code == 200


def test_stale_notice_when_the_last_sync_failed(support, synced, sandbox):
    sandbox.fault(path="/Endpoint/", status=503, times=20)
    with pytest.raises(services.VobizError):
        sync.endpoint_sync_all(triggered_by="tests")
    html = text(support.get(LIST))
    state = SyncState.objects.get(name="endpoints")
    assert state.status == "failed"
    assert state.last_error
    assert f"Vobiz unreachable: {state.last_error}</p>" in html
    assert "Data from " in html
    assert html.count('<tr id="ep-') == 20  # the cache still serves the list
    assert "Sync failed" in html  # the badge


def test_hostile_values_from_vobiz_are_escaped_in_the_list(support, sandbox, db):
    sandbox.reset(hostile=True)
    try:
        sync.endpoint_sync_all(triggered_by="tests")
        for params in ({"per_page": "100"}, {"q": "<script>", "per_page": "100"}):
            for extra in ({}, HX):
                html = text(support.get(LIST, params, **extra))
                assert "<script>alert(1)" not in html
                assert "<img src=x" not in html
                assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "{{7*7}}{% debug %}" in text(support.get(LIST, {"q": "debug"}))
    finally:
        sandbox.reset(hostile=False)  # the sandbox keeps the switch across resets


def test_user_without_a_role_is_forbidden(client, django_user_model, db):
    client.force_login(django_user_model.objects.create_user("nobody", password="x" * 12))
    assert client.get(LIST).status_code == 403


# --- one row and the inline alias edit ------------------------------------------------------


def alias_url(endpoint):
    return reverse("endpoints:alias", args=[endpoint.endpoint_id])


def test_row_fragment_and_non_htmx_redirect(support, synced):
    endpoint = first_endpoint()
    url = reverse("endpoints:row", args=[endpoint.endpoint_id])
    response = support.get(url, **HX)
    html = text(response)
    assert html.lstrip().startswith(f'<tr id="ep-{endpoint.endpoint_id}">')
    assert "Edit alias" in html and "data-autofocus" in html
    assert support.get(url).status_code == 302
    assert support.get(reverse("endpoints:row", args=["nope"]), **HX).status_code == 404


def test_alias_form_fragment_has_a_labelled_input_and_save_cancel(support, synced):
    endpoint = first_endpoint()
    html = text(support.get(alias_url(endpoint), **HX))
    assert '<tr id="ep-' in html and 'class="editing"' in html
    assert f'<label for="alias-{endpoint.endpoint_id}">Alias</label>' in html
    assert ">Save</button>" in html and ">Cancel</button>" in html
    assert 'name="seen_alias"' in html


def test_alias_get_without_htmx_goes_to_the_edit_page(support, synced):
    endpoint = first_endpoint()
    response = support.get(alias_url(endpoint))
    assert response.status_code == 302
    assert response["Location"] == reverse("endpoints:edit", args=[endpoint.endpoint_id])


def test_alias_save_updates_vobiz_the_cache_and_answers_the_row(support, synced, sandbox):
    endpoint = first_endpoint()
    response = support.post(alias_url(endpoint),
                            {"alias": "Front-desk_2", "seen_alias": endpoint.alias}, **HX)
    assert response.status_code == 200
    html = text(response)
    assert html.lstrip().startswith(f'<tr id="ep-{endpoint.endpoint_id}">')
    assert "Front-desk_2" in html
    assert '<div id="messages" hx-swap-oob="innerHTML">' in html
    assert f"Alias of {endpoint.username} saved." in html
    assert sandbox.api("GET", f"Endpoint/{endpoint.endpoint_id}/").json()["alias"] == "Front-desk_2"
    assert Endpoint.objects.get(pk=endpoint.pk).alias == "Front-desk_2"
    event = AuditEvent.objects.get(endpoint_id=endpoint.endpoint_id)
    assert event.outcome == "done" and event.changes["alias"][1] == "Front-desk_2"


def test_invalid_alias_answers_422_with_the_error_and_the_typed_value(support, synced, sandbox):
    endpoint = first_endpoint()
    sandbox.reset_stats()
    response = support.post(alias_url(endpoint),
                            {"alias": "bad alias!", "seen_alias": endpoint.alias}, **HX)
    assert response.status_code == 422
    html = text(response)
    assert 'value="bad alias!"' in html
    assert "Enter an alias using only letters, digits, hyphens (-) and underscores (_)." in html
    assert 'aria-invalid="true"' in html
    assert sandbox.stats()["total"] == 0


def test_too_long_alias_is_refused(support, synced):
    endpoint = first_endpoint()
    response = support.post(alias_url(endpoint), {"alias": "a" * 101,
                                                  "seen_alias": endpoint.alias}, **HX)
    assert response.status_code == 422
    assert "at most 100 characters" in text(response)


def test_unchanged_alias_is_not_sent(support, synced, sandbox):
    endpoint = Endpoint.objects.get(username="john_doe")  # legacy alias breaking the rules
    sandbox.reset_stats()
    response = support.post(alias_url(endpoint),
                            {"alias": endpoint.alias, "seen_alias": endpoint.alias}, **HX)
    assert response.status_code == 200
    assert "unchanged" in text(response)
    assert sandbox.stats()["total"] == 0


def test_vobiz_failure_keeps_the_form_and_says_why(support, synced, sandbox):
    endpoint = first_endpoint()
    sandbox.fault(method="POST", path=f"/Endpoint/{endpoint.endpoint_id}/", status=400,
                  times=1)
    response = support.post(alias_url(endpoint),
                            {"alias": "Kept-value", "seen_alias": endpoint.alias}, **HX)
    assert response.status_code == 422
    html = text(response)
    assert 'value="Kept-value"' in html
    assert 'class="error-message"' in html
    assert Endpoint.objects.get(pk=endpoint.pk).alias == endpoint.alias


def test_vobiz_down_keeps_the_form(support, synced, sandbox):
    endpoint = first_endpoint()
    sandbox.fault(path=f"/Endpoint/{endpoint.endpoint_id}/", status=503, times=10)
    response = support.post(alias_url(endpoint),
                            {"alias": "Kept-value", "seen_alias": endpoint.alias}, **HX)
    assert response.status_code == 422
    assert "Not saved:" in text(response) and 'value="Kept-value"' in text(response)


def test_edit_conflict_says_what_changed(support, synced, sandbox):
    endpoint = first_endpoint()
    sandbox.api("POST", f"Endpoint/{endpoint.endpoint_id}/", json={"alias": "Changed-elsewhere"})
    response = support.post(alias_url(endpoint),
                            {"alias": "Mine", "seen_alias": endpoint.alias}, **HX)
    assert response.status_code == 422
    html = text(response)
    assert "Changed-elsewhere" in html and 'value="Mine"' in html
    assert 'name="seen_alias" value="Changed-elsewhere"' in html
    # Saving again (now from the current value) goes through.
    response = support.post(alias_url(endpoint),
                            {"alias": "Mine", "seen_alias": "Changed-elsewhere"}, **HX)
    assert response.status_code == 200
    assert sandbox.api("GET", f"Endpoint/{endpoint.endpoint_id}/").json()["alias"] == "Mine"


def test_alias_post_without_htmx_redirects_with_a_message(support, synced):
    endpoint = first_endpoint()
    response = support.post(alias_url(endpoint), {"alias": "No-js", "seen_alias": endpoint.alias,
                                                  "next": "/?q=x"}, follow=True)
    assert response.redirect_chain[0] == ("/?q=x", 302)
    assert f"Alias of {endpoint.username} saved." in text(response)
    response = support.post(alias_url(endpoint), {"alias": "bad alias", "seen_alias": "No-js"},
                            follow=True)
    assert response.redirect_chain[0][1] == 302
    assert "not saved" in text(response)


def test_alias_post_refuses_offsite_next(support, synced):
    endpoint = first_endpoint()
    response = support.post(alias_url(endpoint), {"alias": "x1", "seen_alias": endpoint.alias,
                                                  "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_alias_edit_needs_the_edit_permission(client, django_user_model, synced):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="x" * 12)
    user.user_permissions.add(Permission.objects.get(codename="view_endpoint"))
    client.force_login(user)
    endpoint = first_endpoint()
    assert client.get(LIST).status_code == 200
    assert "Edit alias" not in text(client.get(LIST))
    assert client.post(alias_url(endpoint), {"alias": "x"}, **HX).status_code == 403


# --- sync -----------------------------------------------------------------------------------


def test_admin_queues_a_sync_for_a_worker_and_the_panel_follows_it(
        admin, sandbox, db, enqueued_tasks):
    response = admin.post(reverse("endpoints:sync"), **HX)
    assert response.status_code == 200
    assert enqueued_tasks == ["run_sync"]  # queued, and run by the suite's immediate backend
    assert 'hx-trigger="every 1s"' in text(response)
    state = SyncState.objects.get(name="endpoints")
    assert state.status == "ok" and state.triggered_by == "ada"
    remote_total = sandbox.api("GET", "Endpoint/", params={"limit": 1}).json()["meta"][
        "total_count"]
    assert Endpoint.objects.count() == remote_total > 0
    done = admin.get(reverse("endpoints:sync_status"), **HX)
    assert "every 1s" not in text(done) and done["HX-Trigger"] == "endpoints-changed"


def test_sync_without_htmx_redirects_back_with_a_message(admin, sandbox, db):
    response = admin.post(reverse("endpoints:sync"), {"next": "/?status=registered"})
    assert response.status_code == 302 and response["Location"] == "/?status=registered"
    assert "Sync with Vobiz queued." in text(admin.get(LIST))


def test_support_cannot_start_a_sync(support, synced, sandbox, enqueued_tasks):
    before = SyncState.objects.get(name="endpoints").started_at
    sandbox.reset_stats()
    assert support.post(reverse("endpoints:sync"), **HX).status_code == 403
    assert support.post(reverse("endpoints:sync")).status_code == 403
    assert enqueued_tasks == []
    assert SyncState.objects.get(name="endpoints").started_at == before
    assert sandbox.stats()["total"] == 0
    assert "Refresh from Vobiz" not in text(support.get(LIST))


def test_sync_start_is_post_only(admin, db):
    assert admin.get(reverse("endpoints:sync")).status_code == 405


@pytest.mark.parametrize("status", ["running", "queued"])
def test_a_second_sync_is_refused_while_one_runs_or_waits(admin, db, enqueued_tasks, status):
    SyncState.objects.create(name="endpoints", status=status, started_at=timezone.now(),
                             heartbeat_at=timezone.now(), queued_at=timezone.now())
    response = admin.post(reverse("endpoints:sync"), **HX)
    assert "A sync is already running." in text(response)
    assert enqueued_tasks == []


def test_a_queued_sync_no_worker_picked_up_says_so(support, db, clock):
    SyncState.objects.create(name="endpoints", status="queued", queued_at=timezone.now())
    html = text(support.get(reverse("endpoints:sync_status"), **HX))
    assert "Sync queued: waiting for a worker" in html and 'hx-trigger="every 1s"' in html
    assert "No worker is running" not in html
    clock.shift(31)
    html = text(support.get(reverse("endpoints:sync_status"), **HX))
    assert "No worker is running: the sync is queued." in html
    assert 'hx-trigger="every 1s"' in html  # it keeps waiting for one
    assert "No worker is running: the sync is queued." in text(support.get(LIST))


def test_sync_status_polls_while_running_and_shows_progress(support, db):
    SyncState.objects.create(name="endpoints", status="running", started_at=timezone.now(),
                             heartbeat_at=timezone.now(), pages_fetched=3, total_remote=480)
    response = support.get(reverse("endpoints:sync_status"), **HX)
    html = text(response)
    assert 'hx-trigger="every 1s"' in html
    assert "page 3 of 5" in html and 'max="5" value="3"' in html
    assert "HX-Trigger" not in response
    assert "Syncing with Vobiz" in text(support.get(LIST))  # the page polls too


def test_sync_status_when_done_stops_polling_and_refreshes_the_table(admin, synced):
    response = admin.get(reverse("endpoints:sync_status"), **HX)
    html = text(response)
    assert "every 1s" not in html
    assert response["HX-Trigger"] == "endpoints-changed"
    assert 'id="sync-badge"' in html and "Synced" in html
    assert "Refresh from Vobiz" in html


def test_sync_status_failed_shows_the_notice(admin, synced, sandbox):
    sandbox.fault(path="/Endpoint/", status=503, times=20)
    with pytest.raises(services.VobizError):
        sync.endpoint_sync_all(triggered_by="tests")
    html = text(admin.get(reverse("endpoints:sync_status"), **HX))
    assert 'id="sync-notice" hx-swap-oob="true"' in html and "Vobiz unreachable" in html


def test_sync_status_without_htmx_redirects_to_the_list(support, db):
    assert support.get(reverse("endpoints:sync_status"))["Location"] == "/"


def test_a_queued_sync_that_fails_is_recorded_and_the_list_keeps_its_rows(admin, synced,
                                                                        sandbox):
    before = Endpoint.objects.count()
    sandbox.fault(path="/Endpoint/", status=503, times=20)
    admin.post(reverse("endpoints:sync"), **HX)  # the worker's failure is not the request's
    state = SyncState.objects.get(name="endpoints")
    assert state.status == "failed" and "HTTP 503" in state.last_error
    assert Endpoint.objects.count() == before


# --- audit ----------------------------------------------------------------------------------


@pytest.fixture
def audit_events(db):
    for n in range(60):
        AuditEvent.objects.create(username="sam" if n % 2 else "ada", action="update",
                                  endpoint_id=str(800000000000000 + n),
                                  endpoint_username=f"user{n}", outcome="done",
                                  changes={"alias": [f"old{n}", f"new{n}"]})
    AuditEvent.objects.create(username="ada", action="delete", endpoint_id="1",
                              endpoint_username="gone", outcome="failed", message="Vobiz down")


def test_audit_page_lists_events_with_filters_and_paging(support, audit_events):
    html = text(support.get(reverse("endpoints:audit")))
    assert "<html" in html and "1–50</strong> of <strong>61</strong> events" in html
    assert "old59" in html and "new59" in html
    for label in ("User", "Action", "Outcome", "Endpoint"):
        assert f">{label}</label>" in html
    html = text(support.get(reverse("endpoints:audit"), {"page": "2"}))
    assert "51–61</strong> of <strong>61</strong>" in html


def test_audit_fragment_and_filters(support, audit_events):
    response = support.get(reverse("endpoints:audit"), {"outcome": "failed"}, **HX)
    html = text(response)
    assert html.lstrip().startswith('<div id="audit-results"')
    assert "gone" in html and "user1<" not in html
    assert 'id="audit-count" class="result-count" hx-swap-oob="true"' in html
    html = text(support.get(reverse("endpoints:audit"), {"user": "sam", "endpoint": "user1"}, **HX))
    assert html.count("<tr>") - 1 == len([n for n in range(60) if n % 2 and "user1" in f"user{n}"])


def test_audit_bad_params_never_fail(support, audit_events):
    for params in ({"page": "x"}, {"page": "10" * 20}, {"action": "nope"}, {"outcome": "??"},
                   {"user": "\x00"}):
        assert support.get(reverse("endpoints:audit"), params).status_code == 200


def test_audit_history_restore_gets_the_full_page(support, audit_events):
    response = support.get(reverse("endpoints:audit"), HTTP_HX_HISTORY_RESTORE_REQUEST="true",
                           **HX)
    assert "<html" in text(response)


def test_audit_needs_the_audit_permission(client, django_user_model, db):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="x" * 12)
    user.user_permissions.add(Permission.objects.get(codename="view_endpoint"))
    client.force_login(user)
    assert client.get(reverse("endpoints:audit")).status_code == 403
