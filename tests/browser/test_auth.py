"""Logging in and out in Chromium."""

from playwright.sync_api import expect


def test_login_rejects_a_wrong_password_then_logs_in_and_out(page, live, support_user):
    page.goto(f"{live}/endpoints/123/")
    expect(page).to_have_url(f"{live}/accounts/login/?next=/endpoints/123/")
    page.get_by_label("Username").fill("sam")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("enter a correct username and password")
    expect(page.get_by_label("Username")).to_have_value("sam")

    page.get_by_label("Password").fill("pw-for-tests-1")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live}/")
    expect(page.get_by_role("heading", name="Endpoints")).to_be_visible()
    expect(page.get_by_text("sam (Support)")).to_be_visible()

    page.get_by_role("button", name="Log out", exact=True).click()
    expect(page).to_have_url(f"{live}/accounts/login/")
    page.goto(f"{live}/")
    expect(page).to_have_url(f"{live}/accounts/login/?next=/")
