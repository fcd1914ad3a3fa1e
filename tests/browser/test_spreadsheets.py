"""Spreadsheets in Chromium: export a filter, edit the file, import it, preview, run; onboard
from a file, download the credentials once, open a view-once link once."""

import csv
import io

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _rows(path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(io.StringIO(handle.read().lstrip("\ufeff"))))


def _write(tmp_path, name, rows, columns) -> str:
    path = tmp_path / name
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def test_export_edit_import_preview_run(admin_page, live, sandbox, tmp_path, screenshot):
    page = admin_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live}/?status=not_registered")
    with page.expect_download() as info:
        page.get_by_role("link", name="Export CSV").click()
    download = info.value
    assert download.suggested_filename.startswith("endpoints-MA_SANDBOX01-")
    rows = _rows(download.path())
    assert rows and all(r["registered"] == "false" for r in rows)
    edited = []
    for row in rows:
        if len(edited) < 2 and all(c.isalnum() or c in "-_" for c in row["alias"]):
            row["alias"] = f"From-Sheet-{len(edited)}"
            edited.append(row["endpoint_id"])
    path = _write(tmp_path, "edited.csv", rows, list(rows[0]))

    page.goto(f"{live}/")
    page.get_by_role("link", name="Import CSV").click()
    page.get_by_label("Spreadsheet (CSV)").set_input_files(path)
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.get_by_role("heading", name="Preview: Update 2 endpoints from a spreadsheet")
           ).to_be_visible()
    expect(page.get_by_text("Alias:").first).to_be_visible()
    screenshot(page, "import-preview.png")
    page.get_by_role("button", name="Run on 2 endpoints").click()
    expect(page.get_by_text("Finished")).to_be_visible()
    expect(page.locator(".outcome-counts")).to_contain_text("Done 2")
    for n, endpoint_id in enumerate(edited):
        alias = sandbox.api("GET", f"Endpoint/{endpoint_id}/").json()["alias"]
        assert alias == f"From-Sheet-{n}"


def test_onboarding_from_a_file_hands_the_credentials_over_once(admin_page, live, sandbox,
                                                                tmp_path, browser):
    page = admin_page
    rows = [{"username": f"newdesk{n}", "alias": f"New-Desk-{n}", "allow_video": "true"}
            for n in range(3)]
    path = _write(tmp_path, "new.csv", rows, ["username", "alias", "allow_video"])
    page.goto(f"{live}/")
    page.get_by_role("link", name="Create from CSV").click()
    page.get_by_label("Spreadsheet (CSV)").set_input_files(path)
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.get_by_text("Endpoints to create")).to_be_visible()
    page.get_by_label("Also make a view-once setup link for each endpoint").check()
    page.get_by_role("button", name="Create 3 endpoints").click()
    expect(page.get_by_text("Finished")).to_be_visible()

    button = page.get_by_role("button", name="Download the new passwords (CSV, once)")
    with page.expect_download() as info:
        button.click()
    handed = _rows(info.value.path())
    assert len(handed) == 3 and all(r["password"] and r["setup_link"] for r in handed)
    button.click()
    expect(page.get_by_text("already downloaded once")).to_be_visible()

    # The person setting up the device: no login, the link once.
    stranger = browser.new_context().new_page()
    stranger.goto(handed[0]["setup_link"])
    expect(stranger.get_by_text("This link works once.")).to_be_visible()
    expect(stranger.get_by_text(handed[0]["password"])).to_have_count(0)
    stranger.get_by_role("button", name="Show the settings now").click()
    expect(stranger.locator("#reveal-password")).to_have_text(handed[0]["password"])
    stranger.reload()
    expect(stranger.get_by_role("heading", name="This link has been used or has expired")
           ).to_be_visible()
    expect(stranger.get_by_text(handed[0]["password"])).to_have_count(0)
