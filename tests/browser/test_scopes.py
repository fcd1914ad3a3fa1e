"""Sub-account scopes in Chromium: an Endpoint admin scopes a Support user to one
sub-account on the Staff page; that user then sees only those endpoints and counts, gets 404
on another sub-account's endpoint, and a scoped admin cannot create outside the scope."""

import re

import pytest
from playwright.sync_api import expect

from .conftest import login

pytestmark = pytest.mark.browser


def _sub_accounts():
    from endpoints.models import Endpoint

    return sorted(set(Endpoint.objects.exclude(sub_account="")
                      .values_list("sub_account", flat=True)))


def _in(sub):
    from endpoints.models import Endpoint

    return Endpoint.objects.filter(sub_account=sub).order_by("username")


def test_a_support_user_scoped_to_one_sub_account_sees_only_it(page, live, admin_user_role,
                                                               support_user, screenshot):
    mine, other = _sub_accounts()[:2]
    login(page, live, admin_user_role.username)
    page.get_by_role("link", name="Staff").click()
    expect(page.get_by_role("heading", name="Staff", level=1)).to_be_visible()
    page.get_by_label(f"Name for {mine}").fill("Acme")
    page.get_by_role("button", name=f"Save name for {mine}").click()
    expect(page.get_by_role("status")).to_contain_text(f"{mine} is now called Acme")
    page.get_by_role("link", name="Change scope of sam").click()
    page.get_by_label("Only the sub-accounts ticked below").check()
    page.get_by_label(f"Acme ({mine})").check()
    page.get_by_role("button", name="Save scope").click()
    expect(page.get_by_role("status")).to_contain_text("sam now sees Acme")
    row = page.get_by_role("row", name=re.compile(r"^sam "))
    expect(row).to_contain_text("Acme")
    screenshot(page, "staff.png")
    page.get_by_role("button", name="Log out", exact=True).click()

    login(page, live, support_user.username)
    expect(page.get_by_text("Scope: Acme")).to_be_visible()
    total = _in(mine).count()
    expect(page.locator("#result-count")).to_contain_text(f"of {total} endpoint")
    expect(page.locator(".glance-number").first).to_have_text(str(total))
    cells = page.locator("td.sub-account")
    expect(cells.first).to_be_visible()
    for text in cells.all_inner_texts():
        assert mine in text and "Acme" in text
    for endpoint in _in(other)[:3]:
        expect(page.locator(f"#ep-{endpoint.endpoint_id}")).to_have_count(0)
    # The sub-account filter offers only this scope.
    options = page.get_by_label("Sub-account").locator("option").all_inner_texts()
    assert options == ["Any", f"Acme ({mine})"]
    # Another sub-account's endpoint, by typed URL: not found, nothing of it shown.
    hidden = _in(other).first()
    response = page.goto(f"{live}/endpoints/{hidden.endpoint_id}/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Endpoint not found")).to_be_visible()
    expect(page.get_by_text(hidden.username)).to_have_count(0)
    # An endpoint of the scope opens as usual.
    shown = _in(mine).first()
    page.goto(f"{live}/endpoints/{shown.endpoint_id}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(shown.username)


def test_a_scoped_admin_cannot_create_outside_the_scope(page, live, sandbox, django_user_model):
    from django.contrib.auth.models import Group

    from endpoints import roles
    from endpoints.models import StaffScope

    mine, other = _sub_accounts()[:2]
    lead = django_user_model.objects.create_user(username="lead", password="pw-for-tests-1")
    lead.groups.add(Group.objects.get(name=roles.ENDPOINT_ADMIN))
    StaffScope.objects.create(user=lead, all_endpoints=False, sub_accounts=[mine])
    login(page, live, "lead")
    page.get_by_role("link", name="New endpoint").click()
    select = page.get_by_label("Sub-account")
    assert select.locator("option").all_inner_texts() == [mine]
    page.get_by_label("Username").fill("leaddesk")
    page.get_by_label("Password", exact=True).fill("Lead-Desk-Pass-1")
    # A forged choice: an option the page never offered, added in the browser.
    select.evaluate(f"s => {{ s.add(new Option('{other}', '{other}')); s.value = '{other}'; }}")
    sandbox.reset_stats()
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.locator("#id_sub_account_error")).to_contain_text("Select a valid choice")
    expect(page.get_by_label("Username")).to_have_value("leaddesk")
    assert not sandbox.stats()["requests"].get("POST /Endpoint/")
