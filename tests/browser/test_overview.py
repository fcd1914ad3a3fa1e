"""The Overview page in Chromium: the chart is drawn (uPlot, under the page's CSP), the same
numbers are in a labelled table, periods switch, and the page works without JavaScript."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from endpoints import history
from endpoints.history import Observation
from endpoints.models import Endpoint, RegistrationEvent, SyncState

from .conftest import login

pytestmark = pytest.mark.browser
Kind = RegistrationEvent.Kind


@pytest.fixture
def with_history(live):
    """History begun 40 hours ago, with a drop and a return every few hours."""
    now = timezone.now()
    SyncState.objects.filter(name="endpoints").update(history_since=now - timedelta(hours=40))
    endpoints = list(Endpoint.objects.filter(sip_registered=True)[:4])
    assert endpoints
    observations = []
    for n in range(30):
        endpoint = endpoints[n % len(endpoints)]
        at = now - timedelta(hours=n * 1.3, minutes=7)
        observations.append(Observation(endpoint.endpoint_id, [RegistrationEvent(
            endpoint_id=endpoint.endpoint_id, sub_account=endpoint.sub_account, at=at,
            kind=Kind.OFFLINE if n % 2 else Kind.ONLINE)]))
    history.history_record(observations)
    return live


def _collect_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_the_overview_draws_the_chart_and_switches_periods(support_page, with_history,
                                                           screenshot):
    page = support_page
    errors = _collect_errors(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Overview").click()
    expect(page).to_have_url(f"{with_history}/overview/")
    expect(page.get_by_role("heading", name="Registered endpoints, last 24 hours")).to_be_visible()
    chart = page.locator("[data-overview-chart]")
    expect(chart).to_have_attribute("data-overview-chart-drawn", "")
    expect(chart.locator("canvas")).to_have_count(1)
    box = chart.locator("canvas").bounding_box()
    assert box and box["width"] > 200 and box["height"] > 100
    expect(chart).to_contain_text("Registered endpoints")  # the legend, and the axis names
    expect(chart).to_contain_text("Drops")

    period = page.get_by_role("navigation", name="Period")
    expect(period.get_by_role("link", name="24 hours")).to_have_attribute("aria-current", "page")
    period.get_by_role("link", name="7 days").click()
    expect(page).to_have_url(re.compile(r"/overview/\?period=7d$"))
    expect(page.get_by_role("heading", name="Registered endpoints, last 7 days")).to_be_visible()
    expect(page.locator("[data-overview-chart]")).to_have_attribute("data-overview-chart-drawn",
                                                                    "")
    expect(page.locator("[data-overview-chart] canvas")).to_have_count(1)
    expect(page.locator("div.notice")).to_contain_text("History began")  # 40 h ago: within 7 d
    page.get_by_role("navigation", name="Period").get_by_role("link", name="30 days").click()
    expect(page).to_have_url(re.compile(r"period=30d$"))
    expect(page.locator("[data-overview-chart] canvas")).to_have_count(1)
    assert errors == []  # e.g. no Content-Security-Policy violation

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{with_history}/overview/?period=7d")
    expect(page.locator("[data-overview-chart]")).to_have_attribute("data-overview-chart-drawn",
                                                                    "")
    screenshot(page, "overview.png")


def test_the_numbers_are_a_labelled_table_too(support_page, with_history):
    page = support_page
    errors = _collect_errors(page)
    page.goto(f"{with_history}/overview/")
    table = page.get_by_role("table", name=re.compile(r"^Registered endpoints and drops"))
    expect(table).to_be_hidden()  # inside a closed <details>
    page.get_by_text("Show the numbers as a table").click()
    expect(table).to_be_visible()
    expect(table.get_by_role("columnheader", name="Registered")).to_be_visible()
    expect(table.get_by_role("columnheader", name=re.compile("^Drops"))).to_be_visible()
    rows = table.locator("tbody tr")
    expect(rows.last.get_by_role("rowheader")).to_contain_text("(now)")
    registered = Endpoint.objects.filter(sip_registered=True).count()
    expect(rows.last.locator("td").first).to_have_text(f"{registered:,}")
    expect(page.get_by_role("heading", name="Most flapping endpoints, last 24 hours")
           ).to_be_visible()
    expect(page.get_by_role("table", name=re.compile("user agent"))).to_be_visible()
    assert errors == []


def test_the_overview_works_without_javascript(browser, with_history, support_user):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        login(page, with_history, support_user.username)
        page.goto(f"{with_history}/overview/?period=30d")
        expect(page.get_by_role("heading", name="Registered endpoints, last 30 days")
               ).to_be_visible()
        page.get_by_text("Show the numbers as a table").click()  # <details> needs no script
        table = page.get_by_role("table", name=re.compile(r"^Registered endpoints and drops"))
        expect(table).to_be_visible()
        assert table.locator("tbody tr").count() > 2
        expect(page.locator("[data-overview-chart] canvas")).to_have_count(0)
    finally:
        context.close()
