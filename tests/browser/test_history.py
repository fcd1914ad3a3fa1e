"""Registration history in Chromium: the list's Last seen column, its sort and filters, and an
endpoint's timeline with its warnings. History is made the way production makes it: the
sandbox's devices come and go, and syncs observe them."""

import re

import pytest
from playwright.sync_api import expect

from endpoints import sync
from endpoints.models import Endpoint

pytestmark = pytest.mark.browser


def _sync():
    sync.endpoint_sync_all(triggered_by="tests")


@pytest.fixture
def lived(live, sandbox):
    """History begun (the live fixture's sync), then one phone dropped and back twice, one
    gone offline, one with another device: returns their usernames."""
    ids = dict(Endpoint.objects.filter(sip_registered=True).order_by("username")
               .values_list("username", "endpoint_id")[:3])
    flaky, gone, swapped = list(ids)
    device = {"contact": "sip:u@203.0.113.7:5060", "user_agent": "Yealink T54W",
              "expires_in": 600, "renew": True}
    sandbox.register(ids[swapped], **device)
    sandbox.register(ids[flaky], **device)
    _sync()
    for _ in range(3):
        sandbox.unregister(ids[flaky])
        _sync()
        sandbox.register(ids[flaky], **device)
        _sync()
    sandbox.unregister(ids[gone])
    _sync()
    sandbox.register(ids[swapped], **{**device, "user_agent": "Unknown SIP/1.0"})
    _sync()
    return {"flaky": flaky, "gone": gone, "swapped": swapped}


def test_last_seen_column_sort_and_filters(support_page, live, lived, screenshot):
    page = support_page
    page.set_viewport_size({"width": 1400, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live}/")
    header = page.get_by_role("columnheader", name=re.compile("Last seen"))
    expect(header).to_be_visible()
    header.get_by_role("link").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    expect(page).to_have_url(re.compile(r"sort=last_seen"))
    # Ascending: the never seen first; the phone that just went offline after them.
    first = page.locator("#results tbody tr").first
    expect(first.locator("td.last-seen")).to_have_text("Never seen")

    page.get_by_label("Dropped").select_option("1h")
    expect(page).to_have_url(re.compile(r"dropped=1h"))
    table = page.locator("#results tbody")
    expect(table.get_by_role("link", name=lived["flaky"], exact=True)).to_be_visible()
    expect(table.get_by_role("link", name=lived["gone"], exact=True)).to_be_visible()
    expect(table.get_by_role("link", name=lived["swapped"], exact=True)).to_have_count(0)
    gone_row = page.locator("#results tbody tr").filter(
        has=page.get_by_role("link", name=lived["gone"], exact=True))
    expect(gone_row.locator("td.last-seen")).to_contain_text("ago")
    flaky_row = page.locator("#results tbody tr").filter(
        has=page.get_by_role("link", name=lived["flaky"], exact=True))
    expect(flaky_row.locator("td.last-seen")).to_contain_text("Now")

    page.get_by_label("Dropped").select_option("")
    expect(page).to_have_url(re.compile(r"dropped=&"))
    page.get_by_label("Not seen for").select_option("never")
    expect(page).to_have_url(re.compile(r"seen=never"))
    expect(table.get_by_role("link", name=lived["gone"], exact=True)).to_have_count(0)
    expect(page.locator("#results tbody tr td.last-seen").first).to_have_text("Never seen")
    screenshot(page, "list-last-seen.png")

    # The glance number is the quick filter.
    page.goto(f"{live}/")
    page.get_by_role("link", name=re.compile("dropped in the last hour")).click()
    expect(page).to_have_url(re.compile(r"dropped=1h"))
    expect(page.get_by_label("Dropped")).to_have_value("1h")
    assert errors == []


def test_endpoint_timeline_and_warnings(admin_page, live, lived, screenshot):
    page = admin_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("link", name=lived["flaky"], exact=True).click()
    history = page.get_by_role("region", name="Registration history")
    expect(history).to_be_visible()
    expect(history).to_contain_text("This endpoint is flapping")
    expect(history).to_contain_text("it dropped 3 times")
    timeline = history.get_by_role("table", name="Registrations, newest first")
    # A header, and five periods: the phone from before history until its device was
    # registered again (another contact), then three drops and returns.
    expect(timeline.get_by_role("row")).to_have_count(1 + 5)
    expect(timeline.get_by_role("row").nth(1)).to_contain_text("now")
    expect(timeline.get_by_role("row").nth(2)).to_contain_text("went offline")
    screenshot(page, "endpoint-timeline.png")

    page.goto(f"{live}/")
    page.get_by_role("link", name=lived["swapped"], exact=True).click()
    history = page.get_by_role("region", name="Registration history")
    expect(history).to_contain_text("2 times in the last 7 days, another device or address "
                                     "registered with this endpoint's credentials")
    expect(history).to_contain_text("Unknown SIP/1.0")
    expect(history).to_contain_text("Yealink T54W")
    history.get_by_role("link", name="reset the password").click()
    expect(page).to_have_url(re.compile(r"/password/$"))
