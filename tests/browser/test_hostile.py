"""Hostile values from the Vobiz API never execute: list, row edit, endpoint page, edit form,
messages and audit log, in Chromium with a listener for dialogs and console errors."""

import re

import pytest
from playwright.sync_api import expect

from endpoints import roles, sync
from endpoints.models import Endpoint

from .conftest import login

pytestmark = pytest.mark.browser


@pytest.fixture
def hostile_live(live_server, sandbox, transactional_db, admin_user_role):
    sandbox.reset(hostile=True)
    roles.ensure_roles()
    sync.endpoint_sync_all(triggered_by="tests")
    return live_server.url


def test_hostile_api_data_is_shown_as_text_and_never_runs(page, hostile_live, sandbox):
    dialogs, errors = [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, hostile_live, "ada")

    hostile = Endpoint.objects.get(username__startswith="xss1")
    page.get_by_label("Search").fill("xss1")
    row = page.locator(f"#ep-{hostile.endpoint_id}")
    expect(row).to_contain_text("<script>alert(1)</script>")  # the alias, as text
    expect(row).to_contain_text("<script>alert('ua')</script>")  # the user agent

    # Inline alias edit on the hostile row: the form shows the raw value as text, then saves.
    row.get_by_role("button", name="Edit alias").click()
    expect(row.get_by_label("Alias", exact=True)).to_have_value("<script>alert(1)</script>")
    row.get_by_label("Alias", exact=True).fill("Safe-Alias")
    with page.expect_response(re.compile(r"/alias/$")):
        row.get_by_role("button", name="Save").click()
    expect(page.locator("#messages")).to_contain_text(f"Alias of {hostile.username} saved.")

    marks = ("<", "{{", "javascript:", "onmouseover")
    hostile_rows = [
        e for e in Endpoint.objects.order_by("id")
        if any(m in text for m in marks
               for text in (e.username, e.alias, e.sip_user_agent, e.sip_contact, e.app_name))
    ]
    assert len(hostile_rows) >= 4
    for endpoint in hostile_rows:
        page.goto(f"{hostile_live}/endpoints/{endpoint.endpoint_id}/")
        expect(page.locator("h1")).to_contain_text(endpoint.username)
        page.goto(f"{hostile_live}/endpoints/{endpoint.endpoint_id}/edit/")
        expect(page.get_by_role("button", name="Save")).to_be_visible()

    page.goto(f"{hostile_live}/audit/")
    expect(page.locator("main")).to_contain_text(hostile.username)

    assert dialogs == []
    assert errors == []
    assert page.evaluate("window.__xss === undefined")
