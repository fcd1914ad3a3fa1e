"""The endpoint page and its write forms in Chromium, against the sandbox.

Screenshots of the endpoint page and the create form: see the ``screenshot`` fixture.
"""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def wide(page):
    page.set_viewport_size({"width": 1280, "height": 900})
    return page


def cached(**lookup):
    from endpoints.models import Endpoint

    return Endpoint.objects.get(**lookup)


def plain_endpoint():
    from endpoints.models import Endpoint

    return next(
        e for e in Endpoint.objects.order_by("username")
        if re.fullmatch(r"[A-Za-z0-9_-]+", e.alias) and e.username.isalnum()
    )


def remote(sandbox, endpoint_id):
    return sandbox.api("GET", f"Endpoint/{endpoint_id}/").json()


def remote_total(sandbox):
    return sandbox.api("GET", "Endpoint/?limit=1").json()["meta"]["total_count"]


def csrf_token(page):
    return page.locator("input[name=csrfmiddlewaretoken]").first.input_value()


# --- endpoint page --------------------------------------------------------------------------


def test_endpoint_page_shows_settings_and_copies_them(admin_page, live, sandbox, wide,
                                                      screenshot):
    page = admin_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live)
    row = cached(username="john_doe")
    page.goto(f"{live}/endpoints/{row.endpoint_id}/")
    expect(page.get_by_role("heading", name="SIP settings")).to_be_visible()
    expect(page.get_by_text("Locked (set at creation)")).to_have_count(4)
    expect(page.get_by_text("Zoiper v5.4.5").first).to_be_visible()
    expect(page.locator("time[data-countdown]")).to_have_text(re.compile(r"^in \d+ min \d\d s$"))
    screenshot(page, "endpoint.png")

    page.get_by_role("button", name="Copy username").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "john_doe"
    page.get_by_role("button", name="Copy SIP URI").click()
    assert page.evaluate("navigator.clipboard.readText()") == row.sip_uri


def test_endpoint_page_falls_back_to_the_cached_copy_when_vobiz_is_down(admin_page, live,
                                                                        sandbox):
    row = plain_endpoint()
    sandbox.fault(path=f"/Endpoint/{row.endpoint_id}/", status=503, times=20)
    admin_page.goto(f"{live}/endpoints/{row.endpoint_id}/")
    expect(admin_page.get_by_text("Showing the copy from")).to_be_visible()
    expect(admin_page.get_by_text("Vobiz unreachable")).to_be_visible()
    expect(admin_page.get_by_role("heading", level=1)).to_contain_text(row.username)


# --- create ---------------------------------------------------------------------------------


def test_create_shows_the_stored_username_and_the_password_once(admin_page, live, sandbox,
                                                                 wide, screenshot):
    page = admin_page
    page.goto(f"{live}/endpoints/new/")
    expect(page.get_by_label("Calls to other domains")).not_to_be_checked()
    expect(page.get_by_label("Voice calls")).to_be_checked()
    screenshot(page, "create.png")

    page.get_by_label("Username").fill("browserdesk")
    page.get_by_role("button", name="Generate").click()
    password_box = page.get_by_label("Password", exact=True)
    expect(password_box).to_have_attribute("type", "text")
    password = password_box.input_value()
    assert len(password) >= 16 and password.isalnum()
    page.get_by_role("button", name="Hide password").click()
    expect(password_box).to_have_attribute("type", "password")
    page.get_by_label("Alias").fill("Browser-Desk")
    page.get_by_label("Search applications").fill("sales")
    expect(page.locator("#id_application option:not([hidden])")).to_have_count(2)  # None + 1
    from endpoints.models import Application

    sales = Application.objects.get(name="Sales Queue")
    page.get_by_label("Application", exact=True).select_option(f"{sales.app_id}")
    page.get_by_label("Video calls").check()
    page.get_by_role("button", name="Create endpoint").click()

    note = page.locator(".username-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Vobiz stored the username as browserdesk")
    expect(note).to_contain_text("(you typed browserdesk). Use browserdesk")
    expect(page.locator("#reveal-password")).to_have_text(password)
    expect(page.get_by_text("This password will not be shown again.")).to_be_visible()
    expect(page.get_by_role("button", name="Copy password")).to_be_visible()
    stored = cached(username__startswith="browserdesk")
    assert stored.username != "browserdesk" and stored.allow_video is True
    assert stored.app_name == "Sales Queue"

    page.get_by_role("link", name=re.compile("go to the endpoint page")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(stored.username)
    page.reload()
    expect(page.get_by_role("heading", name="SIP settings")).to_be_visible()
    assert password not in page.content()


@pytest.mark.parametrize(
    ("label", "value", "attribute", "field", "message"),
    [
        ("Username", "front desk", "pattern", "username", "only letters (a-z, A-Z) and digits"),
        ("Alias", "Jane's phone", "pattern", "alias", "letters, digits, hyphens"),
        ("Password", "short", "minlength", "password", "at least 8 characters"),
    ],
)
def test_create_rules_are_checked_in_the_browser_and_on_the_server(
    admin_page, live, sandbox, label, value, attribute, field, message
):
    page = admin_page
    page.goto(f"{live}/endpoints/new/")
    before = remote_total(sandbox)
    page.get_by_label("Username").fill("ruledesk")
    page.get_by_label("Password", exact=True).fill("Long-enough-pw")
    page.get_by_label("Alias").fill("Rule-Desk")
    page.get_by_label(label, exact=True).fill(value)
    box = page.locator(f"#id_{field}")
    # The browser's own check stops the submit.
    assert box.evaluate("el => !el.checkValidity()")
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.locator(".error-summary")).to_have_count(0)

    # Without the attribute, the server is the authority.
    box.evaluate(f"el => el.removeAttribute('{attribute}')")
    page.get_by_role("button", name="Create endpoint").click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link", name=re.compile(re.escape(message), re.I))).to_be_visible()
    expect(page.locator(f"#id_{field}_error")).to_contain_text(message)
    if field != "password":
        expect(page.locator(f"#id_{field}")).to_have_value(value)
        expect(page.locator("#id_password_error")).to_contain_text("Enter the password again")
    if field != "username":
        expect(page.get_by_label("Username")).to_have_value("ruledesk")
    summary.locator(f'a[href="#id_{field}"]').click()
    expect(page.locator(f"#id_{field}")).to_be_focused()
    assert remote_total(sandbox) == before


# --- edit -----------------------------------------------------------------------------------


def test_edit_keeps_locked_fields_unchangeable(admin_page, live, sandbox):
    page = admin_page
    row = plain_endpoint()
    before = remote(sandbox, row.endpoint_id)
    page.goto(f"{live}/endpoints/{row.endpoint_id}/edit/")
    for label in ("Username", "Endpoint ID", "SIP domain", "Calls to the same domain",
                  "Calls to other domains", "Calls to phone numbers", "Calls to apps"):
        expect(page.get_by_label(label, exact=True)).to_be_disabled()
    expect(page.get_by_label("Video calls")).to_be_enabled()
    page.get_by_label("Alias").fill("Edited-In-Browser")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text(re.compile(r"Saved .*: changed alias"))).to_be_visible()
    assert remote(sandbox, row.endpoint_id)["alias"] == "Edited-In-Browser"

    # A forged POST with the locked fields changed does not change them at Vobiz.
    page.goto(f"{live}/endpoints/{row.endpoint_id}/edit/")
    response = page.request.post(
        f"{live}/endpoints/{row.endpoint_id}/edit/",
        form={
            "csrfmiddlewaretoken": csrf_token(page),
            "alias": "Forged-Alias", "seen_alias": "Edited-In-Browser",
            "seen_allow_voice": str(before["allow_voice"]),
            "seen_allow_message": str(before["allow_message"]),
            "seen_allow_video": str(before["allow_video"]),
            **{n: "on" for n in ("allow_voice", "allow_message", "allow_video") if before[n]},
            "allow_phones": "" if before["allow_phones"] else "on",
            "allow_apps": "", "allow_other_domains": "on", "username": "hijacked",
        },
    )
    assert response.ok
    after = remote(sandbox, row.endpoint_id)
    assert after["alias"] == "Forged-Alias"
    for name in ("username", "allow_phones", "allow_apps", "allow_other_domains"):
        assert after[name] == before[name], name


def test_edit_when_vobiz_is_down_keeps_the_input(admin_page, live, sandbox):
    page = admin_page
    row = plain_endpoint()
    page.goto(f"{live}/endpoints/{row.endpoint_id}/edit/")
    sandbox.fault(method="POST", path=f"/Endpoint/{row.endpoint_id}/", status=503)
    page.get_by_label("Alias").fill("Not-Saved-Yet")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".error-summary")).to_contain_text("Vobiz is having problems (HTTP 503).")
    expect(page.locator(".error-summary")).to_be_focused()
    expect(page.get_by_label("Alias")).to_have_value("Not-Saved-Yet")
    assert remote(sandbox, row.endpoint_id)["alias"] == row.alias


# --- reset password -------------------------------------------------------------------------


def test_reset_password_lists_devices_first_and_reveals_once(admin_page, live, sandbox):
    page = admin_page
    row = plain_endpoint()
    sandbox.register(row.endpoint_id, user_agent="Zoiper v5.6.2", received="203.0.113.42:5060",
                     expires_in=600, renew=True)
    page.goto(f"{live}/endpoints/{row.endpoint_id}/")
    page.get_by_role("link", name="Reset password").click()
    expect(page.get_by_text("Zoiper v5.6.2 at 203.0.113.42:5060 will be signed out and must "
                            "re-register with the new password.")).to_be_visible()
    page.get_by_role("button", name="Generate").click()
    password = page.get_by_label("New password").input_value()
    page.get_by_role("button", name="Reset password").click()
    expect(page.locator("#reveal-password")).to_have_text(password)
    expect(page.get_by_text("Signed out: Zoiper v5.6.2 at 203.0.113.42:5060.")).to_be_visible()
    expect(page.get_by_text("This password will not be shown again.")).to_be_visible()
    assert remote(sandbox, row.endpoint_id)["sip_contact"] is None

    page.goto(f"{live}/endpoints/{row.endpoint_id}/")
    expect(page.get_by_text("No device is registered with this endpoint.")).to_be_visible()
    assert password not in page.content()


# --- application ----------------------------------------------------------------------------


def test_attach_change_and_detach_application(admin_page, live, sandbox):
    from endpoints.models import Application

    page = admin_page
    row = cached(username="sipuser_demo")
    first, second = Application.objects.order_by("name")[:2]
    url = f"{live}/endpoints/{row.endpoint_id}/application/"
    page.goto(url)
    picker = page.get_by_label("Application", exact=True)
    page.get_by_label("Search applications").fill(first.name[:5])
    picker.select_option(first.app_id)
    page.get_by_role("button", name="Attach application").click()
    expect(page.get_by_text(f"Attached {first.name} ({first.app_id}) to sipuser_demo.")) \
        .to_be_visible()

    page.get_by_role("list", name="Actions").get_by_role("link", name="Change application").click()
    picker.select_option(second.app_id)
    page.get_by_role("button", name="Change application").click()
    expect(page.get_by_text(f"Changed the application of sipuser_demo to {second.name}")) \
        .to_be_visible()
    assert remote(sandbox, row.endpoint_id)["application"].rstrip("/").endswith(second.app_id)

    page.goto(url)
    page.get_by_role("button", name="Detach application").click()
    expect(page.get_by_text("Detached the application from sipuser_demo.")).to_be_visible()
    assert remote(sandbox, row.endpoint_id)["application"] is None


# --- delete ---------------------------------------------------------------------------------


def test_delete_confirmation_names_the_endpoint(admin_page, live, sandbox):
    page = admin_page
    row = plain_endpoint()
    page.goto(f"{live}/endpoints/{row.endpoint_id}/")
    page.get_by_role("link", name="Delete", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Delete endpoint {row.username}")
    expect(page.get_by_role("link", name="Cancel")).to_have_attribute(
        "href", f"/endpoints/{row.endpoint_id}/")
    page.get_by_role("button", name=f"Delete {row.username}").click()
    page.wait_for_url(f"{live}/")
    expect(page.get_by_text(f"Deleted endpoint {row.username}.")).to_be_visible()
    assert sandbox.api("GET", f"Endpoint/{row.endpoint_id}/").status_code == 404


# --- roles ----------------------------------------------------------------------------------


def test_support_sees_no_create_or_delete_and_cannot_post_them(support_page, live, sandbox):
    page = support_page
    row = plain_endpoint()
    page.goto(f"{live}/endpoints/{row.endpoint_id}/")
    expect(page.get_by_role("link", name="Edit", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Delete", exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="New endpoint")).to_have_count(0)
    token = csrf_token(page)
    before = remote_total(sandbox)
    created = page.request.post(f"{live}/endpoints/new/", form={
        "csrfmiddlewaretoken": token, "username": "sneaky", "password": "Long-enough-1"})
    assert created.status == 403
    deleted = page.request.post(f"{live}/endpoints/{row.endpoint_id}/delete/",
                                form={"csrfmiddlewaretoken": token})
    assert deleted.status == 403
    assert remote_total(sandbox) == before
    assert sandbox.api("GET", f"Endpoint/{row.endpoint_id}/").status_code == 200
