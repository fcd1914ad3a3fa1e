"""Bulk work in Chromium, with a real worker: filter, select all matching, preview, run,
watch the progress bar finish, read the results, download the passwords once; and the list
on a phone."""

import csv
import io
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def eighty(live, sandbox):
    """80 endpoints in the cache, so that a filter matches more than one page."""
    from endpoints import sync

    sandbox.reset(endpoints=80, applications=4)
    sync.endpoint_sync_all(triggered_by="tests")
    return live


def test_select_all_matching_preview_run_watch_and_download_the_passwords_once(
        admin_page, eighty, sandbox, workers, screenshot):
    from endpoints.models import Endpoint

    page = admin_page
    page.set_viewport_size({"width": 1280, "height": 900})
    workers.start()
    sandbox.fault(method="POST", path="/Endpoint/", delay=0.05, times=10_000)  # watchable
    page.goto(f"{eighty}/?status=not_registered")
    matching = Endpoint.objects.filter(sip_registered=False).count()
    assert matching > 20
    expect(page.get_by_text("None selected")).to_be_visible()
    page.get_by_label("Select all on this page").check()
    expect(page.get_by_text("20 selected")).to_be_visible()  # updated without a reload
    page.get_by_role("button", name=f"Select all {matching} matching").click()
    expect(page.get_by_text(f"{matching} selected: every endpoint matching this filter")
           ).to_be_visible()
    # Keyboard: the row boxes are reachable and labelled.
    first = Endpoint.objects.filter(sip_registered=False).order_by("username").first()
    expect(page.get_by_label(f"Select {first.username}")).to_be_checked()

    page.get_by_label("Bulk action").select_option("reset_password")
    expect(page.get_by_label("Application to attach")).to_be_hidden()
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name="Preview: Reset passwords")).to_be_visible()
    expect(page.get_by_text("nothing has been sent to Vobiz")).to_be_visible()
    screenshot(page, "bulk-preview.png")
    page.get_by_role("button", name=f"Run on {matching} endpoints").click()

    expect(page.get_by_role("heading", name=re.compile(r"^Job \d+: Reset passwords"))
           ).to_be_visible()
    progress = page.get_by_role("progressbar", name="Job progress")
    expect(progress).to_be_visible()
    expect(page.get_by_text("Finished")).to_be_visible(timeout=60_000)
    expect(progress).to_have_attribute("value", str(matching))
    expect(page.get_by_text(f"{matching} of {matching}")).to_be_visible()
    expect(page.locator(".outcome-counts")).to_contain_text(f"Done {matching}")
    expect(page.get_by_role("rowheader", name=first.username)).to_be_visible()
    screenshot(page, "job.png")

    download_button = page.get_by_role("button", name="Download the new passwords (CSV, once)")
    with page.expect_download() as info:
        download_button.click()
    text = open(info.value.path(), encoding="utf-8").read()  # noqa: SIM115
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(rows) == matching and rows[0]["password"] and rows[0]["sip_domain"]
    # A second try (the same button, still on the page) is refused.
    download_button.click()
    expect(page.get_by_text("already downloaded once")).to_be_visible()
    expect(page.get_by_role("button", name="Download the new passwords (CSV, once)")
           ).to_have_count(0)


def test_on_a_phone_the_table_comes_first_and_the_filters_fold(support_page, eighty):
    page = support_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{eighty}/?status=registered")
    summary = page.get_by_text("Filters (1 active)")
    expect(summary).to_be_visible()
    expect(page.get_by_label("Search")).to_be_hidden()  # folded
    first_row = page.locator("table.endpoints tbody tr").first
    expect(first_row).to_be_in_viewport()
    expect(page.get_by_label("Select all on this page")).to_be_in_viewport()
    summary.click()
    expect(page.get_by_label("Search")).to_be_visible()
