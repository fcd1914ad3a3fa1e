"""The endpoint list in Chromium: filters, sorting, paging, history, inline alias edit, sync.

The live server reads the cache a real sync filled from the sandbox (30 endpoints by default;
the tests read the count from the cache rather than assume it)."""

import re

import pytest
from playwright.sync_api import expect

from endpoints import selectors
from endpoints.models import Endpoint
from endpoints.scopes import EVERYTHING

pytestmark = pytest.mark.browser


def rows(page):
    return page.locator("#results tbody tr")


def row_of(page, username):
    return page.locator("#results tbody tr").filter(
        has=page.get_by_role("link", name=username, exact=True)
    )


def names_in_db(filters, sort="username", limit=20):
    found, _ = selectors.endpoint_list(scope=EVERYTHING,
                                       filters=filters, sort=sort, offset=0, limit=limit)
    return [e.username for e in found]


def test_search_and_match_modes_swap_the_table(admin_page, live, screenshot):
    page = admin_page
    page.set_viewport_size({"width": 1280, "height": 900})
    expect(rows(page)).to_have_count(20)
    expect(page.get_by_text(f"1–20 of {Endpoint.objects.count()} endpoints")).to_be_visible()
    console_errors = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    page.keyboard.press("/")
    search = page.get_by_label("Search")
    expect(search).to_be_focused()
    search.fill("jane")
    expect(row_of(page, "jane_smith")).to_be_visible()
    expect(row_of(page, "john_doe")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"q=jane"))
    expect(page.locator("#list-status")).to_contain_text("Showing 1 to")

    search.fill("jane_smith")
    page.get_by_label("Username match").select_option("exact")
    expect(rows(page)).to_have_count(1)
    expect(page).to_have_url(re.compile(r"match=exact"))

    search.fill("Jane's Mobile")
    page.get_by_label("Alias match").select_option("exact")
    expect(rows(page)).to_have_count(1)
    expect(row_of(page, "jane_smith")).to_be_visible()
    search.fill("Jane's")
    expect(page.get_by_text("No endpoint matches “Jane's”.")).to_be_visible()
    page.locator("#results").get_by_role("link", name="Clear filters").click()
    expect(rows(page)).to_have_count(20)
    expect(page.get_by_label("Search")).to_have_value("")
    assert console_errors == []  # e.g. no Content-Security-Policy violation, no stale swap

    # For the README. Last: Playwright's screenshot leaves style="" on inputs, which htmx
    # would copy on the next swap (and the CSP would refuse).
    page.goto(live + "/")
    expect(rows(page)).to_have_count(20)
    screenshot(page, "list.png")


def test_application_sub_account_and_registration_filters(support_page, live):
    page = support_page
    app = Endpoint.objects.exclude(app_id="").values_list("app_id", "app_name").first()
    page.get_by_label("Application", exact=True).select_option(app[0])
    expected = names_in_db({"app": app[0]})
    expect(rows(page)).to_have_count(len(expected))
    expect(rows(page).first.locator("th")).to_have_text(expected[0])

    page.get_by_label("Application", exact=True).select_option("none")
    expect(rows(page)).to_have_count(len(names_in_db({"app": "none"})))

    page.get_by_label("Application", exact=True).select_option("")
    sub = Endpoint.objects.exclude(sub_account="").values_list("sub_account", flat=True).first()
    page.get_by_label("Sub-account").select_option(sub)
    expect(rows(page)).to_have_count(len(names_in_db({"sub": sub})))
    page.get_by_label("Sub-account").select_option("main")
    expect(rows(page)).to_have_count(len(names_in_db({"sub": "main"})))

    page.get_by_label("Sub-account").select_option("")
    page.get_by_label("Registration").select_option("registered")
    registered = names_in_db({"status": "registered"})
    expect(rows(page)).to_have_count(len(registered))
    expect(page.locator("#results .status-offline")).to_have_count(0)
    page.get_by_label("Registration").select_option("not_registered")
    expect(rows(page)).to_have_count(len(names_in_db({"status": "not_registered"})))
    expect(page.locator("#results .status-registered")).to_have_count(0)
    page.get_by_label("Registration").select_option("expiring")
    expect(rows(page)).to_have_count(len(names_in_db({"status": "expiring"})))
    expect(page).to_have_url(re.compile(r"status=expiring"))


def test_sort_by_header_then_page_and_page_size(support_page, live):
    page = support_page
    header = page.get_by_role("columnheader", name="Alias")
    header.get_by_role("link").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    expect(rows(page).first.locator("th")).to_have_text(names_in_db({}, sort="alias")[0])
    header = page.get_by_role("columnheader", name="Alias")
    header.get_by_role("link").click()
    expect(page.get_by_role("columnheader", name="Alias")).to_have_attribute(
        "aria-sort", "descending")
    expect(rows(page).first.locator("th")).to_have_text(names_in_db({}, sort="-alias")[0])
    expect(page).to_have_url(re.compile(r"sort=-alias"))

    total = Endpoint.objects.count()
    assert 20 < total <= 40  # two pages of 20, one of 50
    page.get_by_role("link", name="Next ›").click()
    expect(rows(page)).to_have_count(total - 20)
    expect(page.get_by_text(f"21–{total} of {total} endpoints")).to_be_visible()
    expect(page).to_have_url(re.compile(r"page=2"))
    # Sorting survives a filter change (the sort rides along with the form).
    page.get_by_label("Per page").select_option("50")
    expect(rows(page)).to_have_count(total)
    expect(rows(page).first.locator("th")).to_have_text(names_in_db({}, sort="-alias")[0])
    page.goto(live + "/")
    expect(rows(page)).to_have_count(total)  # the page size is remembered
    expect(page.get_by_label("Per page")).to_have_value("50")


def test_back_and_forward_restore_filters_and_rows(support_page, live):
    page = support_page
    registered = names_in_db({"status": "registered"})
    page.get_by_label("Registration").select_option("registered")
    expect(rows(page)).to_have_count(len(registered))
    page.get_by_label("Search").fill("zz-no-such")
    expect(page.get_by_text("No endpoint matches “zz-no-such”")).to_be_visible()

    page.go_back()
    expect(page).to_have_url(re.compile(r"status=registered(?!.*zz)"))
    expect(rows(page)).to_have_count(len(registered))
    expect(page.get_by_label("Registration")).to_have_value("registered")
    expect(page.get_by_label("Search")).to_have_value("")

    page.go_back()
    expect(rows(page)).to_have_count(20)
    expect(page.get_by_label("Registration")).to_have_value("")

    page.go_forward()
    expect(rows(page)).to_have_count(len(registered))
    expect(page.get_by_label("Registration")).to_have_value("registered")


def test_inline_alias_edit_saves_at_vobiz_and_escape_cancels(support_page, live, sandbox):
    page = support_page
    endpoint = Endpoint.objects.order_by("username").first()
    row = page.locator(f"#ep-{endpoint.endpoint_id}")
    row.get_by_role("button", name="Edit alias").click()
    alias = row.get_by_label("Alias", exact=True)
    expect(alias).to_be_focused()
    alias.fill("Desk-42")
    with page.expect_response(re.compile(r"/alias/$")) as answer:
        row.get_by_role("button", name="Save").click()
    assert answer.value.status == 200
    expect(row.locator("td.alias")).to_have_text("Desk-42")
    expect(page.locator("#messages")).to_contain_text(f"Alias of {endpoint.username} saved.")
    expect(row.get_by_role("button", name="Edit alias")).to_be_focused()
    assert sandbox.api("GET", f"Endpoint/{endpoint.endpoint_id}/").json()["alias"] == "Desk-42"

    row.get_by_role("button", name="Edit alias").click()
    # Focus arrives once htmx has wired the swapped-in form (its Cancel button included).
    expect(row.get_by_label("Alias", exact=True)).to_be_focused()
    row.get_by_label("Alias", exact=True).fill("not saved")
    page.keyboard.press("Escape")
    expect(row.get_by_label("Alias", exact=True)).to_have_count(0)
    expect(row.locator("td.alias")).to_have_text("Desk-42")


def test_inline_alias_edit_shows_the_error_in_the_row(support_page, live, sandbox):
    page = support_page
    endpoint = Endpoint.objects.order_by("username").first()
    row = page.locator(f"#ep-{endpoint.endpoint_id}")
    row.get_by_role("button", name="Edit alias").click()
    row.get_by_label("Alias", exact=True).fill("bad alias!")
    with page.expect_response(re.compile(r"/alias/$")) as answer:
        row.get_by_role("button", name="Save").click()
    assert answer.value.status == 422
    expect(row.locator(".error-message")).to_contain_text("Enter an alias using only letters")
    expect(row.get_by_label("Alias", exact=True)).to_have_value("bad alias!")
    expect(row.get_by_label("Alias", exact=True)).to_have_attribute("aria-invalid", "true")
    row.get_by_role("button", name="Cancel").click()
    expect(row.locator("td.alias")).to_have_text(endpoint.alias or "—No alias")
    assert sandbox.api("GET", f"Endpoint/{endpoint.endpoint_id}/").json()["alias"] == endpoint.alias


def test_admin_refresh_shows_progress_then_synced(admin_page, live, sandbox):
    page = admin_page
    expect(page.locator("[data-autorefresh]")).to_be_visible()
    sandbox.fault(path="/Endpoint/", delay=0.5, times=1)
    page.get_by_role("button", name="Refresh from Vobiz").click()
    expect(page.get_by_text("Syncing with Vobiz")).to_be_visible()
    expect(page.locator("#messages")).to_contain_text(
        f"Sync finished: {Endpoint.objects.count()} endpoints")
    expect(page.locator("#sync-badge")).to_contain_text("Synced")
    expect(page.get_by_role("button", name="Refresh from Vobiz")).to_be_visible()
    expect(rows(page)).to_have_count(20)


def test_support_does_not_see_refresh(support_page, live):
    expect(rows(support_page)).to_have_count(20)
    expect(support_page.get_by_role("button", name="Refresh from Vobiz")).to_have_count(0)


def test_vobiz_down_during_refresh_keeps_the_list_and_says_so(admin_page, live, sandbox):
    page = admin_page
    sandbox.fault(path="/Endpoint/", status=503, times=20)
    page.get_by_role("button", name="Refresh from Vobiz").click()
    notice = page.locator("#sync-notice")
    expect(notice).to_contain_text("Vobiz unreachable:")
    expect(notice).to_contain_text("Data from")
    expect(page.locator("#sync-badge")).to_contain_text("Sync failed")
    expect(page.locator("#messages")).to_contain_text("Sync failed")
    expect(rows(page)).to_have_count(20)
    page.reload()
    expect(page.locator("#sync-notice")).to_contain_text("Vobiz unreachable:")
    expect(rows(page)).to_have_count(20)


def test_auto_refresh_reloads_the_table_only_when_ticked(support_page, live):
    page = support_page
    page.clock.install()
    page.reload()
    endpoint = Endpoint.objects.order_by("username").first()
    row = page.locator(f"#ep-{endpoint.endpoint_id}")
    expect(row.locator("td.alias")).to_have_text(endpoint.alias)
    toggle = page.get_by_label("Auto-refresh")
    expect(toggle).not_to_be_checked()

    Endpoint.objects.filter(pk=endpoint.pk).update(alias="Paused-1")
    with page.expect_request(re.compile(r"/\?|/$")) as refresh:
        toggle.check()
        page.clock.fast_forward(16_000)
    assert refresh.value.headers.get("hx-request") == "true"
    expect(row.locator("td.alias")).to_have_text("Paused-1")

    page.reload()  # the choice is remembered in this browser
    expect(page.get_by_label("Auto-refresh")).to_be_checked()
    page.get_by_label("Auto-refresh").uncheck()
    Endpoint.objects.filter(pk=endpoint.pk).update(alias="Never-shown")
    fetched = []
    page.on("request", lambda request: fetched.append(request.url)
            if request.headers.get("hx-request") else None)
    page.clock.fast_forward(31_000)
    # htmx sends synchronously from the timer callback, so any request event arrives before
    # the answer to this round trip.
    assert page.evaluate("1 + 1") == 2
    assert fetched == []
    expect(page.locator(f"#ep-{endpoint.endpoint_id} td.alias")).to_have_text("Paused-1")
