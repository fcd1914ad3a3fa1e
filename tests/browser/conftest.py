"""Browser fixtures: a live Django server pointed at the sandbox, with a synced cache,
and a logged-in Chromium page for each role."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.browser


@pytest.fixture
def live(live_server, sandbox, transactional_db):
    """The live server URL, after a real sync filled the cache from the sandbox."""
    from endpoints import roles, sync

    roles.ensure_roles()
    sync.endpoint_sync_all(triggered_by="tests")
    return live_server.url


def login(page, base_url, username, password="pw-for-tests-1"):
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")


@pytest.fixture
def admin_page(page, live, admin_user_role):
    login(page, live, admin_user_role.username)
    return page


@pytest.fixture
def support_page(page, live, support_user):
    login(page, live, support_user.username)
    return page


def pytest_collection_modifyitems(config, items):
    """With SCREENSHOTS_DIR set (``make screenshots``), run only the tests that take one."""
    if not os.environ.get("SCREENSHOTS_DIR"):
        return
    keep = [item for item in items if "screenshot" in getattr(item, "fixturenames", ())]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


@pytest.fixture
def screenshot():
    """``screenshot(page, "list.png")``: a full-page screenshot. Test runs write them to
    test-results/screenshots/ (ignored by git); ``make screenshots`` sets SCREENSHOTS_DIR to
    docs/screenshots/, the README's copies, so a test run never dirties the tree."""
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "test-results" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name):
        path = folder / name
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000  # a rendered page, not a blank one
        return path

    return take
