"""Sub-account scopes: a staff member sees and changes only the endpoints of their scope.

The matrix: every endpoint URL (full page, htmx, POST) x {unscoped, scoped to one
sub-account, scoped to two, main account only} x an endpoint inside and outside the scope.
Outside the scope an endpoint does not exist for the user: the answer is the one an unknown
endpoint gets (404), nothing reaches Vobiz, nothing changes in the cache or the audit log.
"""

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from endpoints import roles, selectors, services, sync
from endpoints.models import AuditEvent, Endpoint, StaffScope, SubAccount
from endpoints.scopes import EVERYTHING, MAIN_ACCOUNT, Scope

HX = {"HTTP_HX_REQUEST": "true"}
WRITES = ("POST /Endpoint/", "POST /Endpoint/{id}/", "DELETE /Endpoint/{id}/")
UNKNOWN_ID = "111111111111111"


@pytest.fixture
def world(sandbox, db):
    """Three sub-accounts and the main account, synced; one endpoint of each picked."""
    sandbox.reset(endpoints=80, applications=3, sub_accounts=3)
    sync.endpoint_sync_all()
    subs = sorted(set(Endpoint.objects.exclude(sub_account="")
                      .values_list("sub_account", flat=True)))
    assert len(subs) == 3

    def pick(sub):
        return Endpoint.objects.filter(sub_account=sub).order_by("username").first()

    return {"subs": subs, "in": {s: pick(s) for s in [*subs, MAIN_ACCOUNT]}}


def scoped_admin(django_user_model, name, sub_accounts):
    """An Endpoint admin (every action allowed by role) with a scope; None = unscoped."""
    roles.ensure_roles()
    user = django_user_model.objects.create_user(username=name, password="pw-for-tests-1")
    user.groups.add(Group.objects.get(name=roles.ENDPOINT_ADMIN))
    if sub_accounts is not None:
        StaffScope.objects.create(user=user, all_endpoints=False, sub_accounts=sub_accounts)
    return user


# scope name -> (sub-accounts by index into world["subs"] or "main"; None = everything)
SCOPES = {
    "unscoped": None,
    "one": [0],
    "two": [0, 1],
    "main_only": ["main"],
}


def scope_subs(world, spec):
    if spec is None:
        return None
    return [MAIN_ACCOUNT if i == "main" else world["subs"][i] for i in spec]


def inside_and_outside(world, spec):
    """An endpoint the scope sees and one it does not (None when it sees everything)."""
    if spec is None:
        return world["in"][world["subs"][2]], None
    if spec == ["main"]:
        return world["in"][MAIN_ACCOUNT], world["in"][world["subs"][0]]
    return world["in"][world["subs"][0]], world["in"][world["subs"][2]]


# name, method, htmx, POST data
CASES = [
    ("detail", "GET", False, None),
    ("detail", "GET", True, None),
    ("row", "GET", True, None),
    ("alias", "GET", True, None),
    ("alias", "POST", True, {"alias": "Scope-Probe", "seen_alias": "x"}),
    ("alias", "POST", False, {"alias": "Scope-Probe", "seen_alias": "x"}),
    ("edit", "GET", False, None),
    ("edit", "GET", True, None),
    ("edit", "POST", False, {"alias": "Scope-Probe", "seen_alias": "x"}),
    ("edit", "POST", True, {"alias": "Scope-Probe", "seen_alias": "x"}),
    ("password", "GET", False, None),
    ("password", "POST", False, {"password": "Scope-Probe-Pass-1"}),
    ("application", "GET", False, None),
    ("application", "POST", False, {"application": "", "action": "detach"}),
    ("delete", "GET", False, None),
    ("delete", "POST", False, {}),
    ("delete", "POST", True, {}),
]


def call(client, name, method, htmx, data, endpoint_id):
    url = reverse(f"endpoints:{name}", args=[endpoint_id])
    headers = dict(HX, HTTP_HX_CURRENT_URL=f"http://testserver{url}") if htmx else {}
    if method == "GET":
        return client.get(url, **headers)
    return client.post(url, data, **headers)


def shape(response):
    """What a reader can tell from an answer: status, refresh/redirect headers, page title."""
    title = re.search(r"<title>(.*?)</title>", response.content.decode(), re.S)
    return (response.status_code, response.get("HX-Refresh"), response.get("Location"),
            title.group(1).strip() if title else None)


@pytest.mark.parametrize("scope_name", list(SCOPES))
@pytest.mark.parametrize(("name", "method", "htmx", "data"), CASES,
                         ids=[f"{m}-{n}-{'htmx' if h else 'page'}" for n, m, h, _ in CASES])
def test_an_endpoint_outside_the_scope_answers_like_one_that_does_not_exist(
        client, sandbox, world, django_user_model, scope_name, name, method, htmx, data):
    spec = SCOPES[scope_name]
    user = scoped_admin(django_user_model, "lead", scope_subs(world, spec))
    client.force_login(user)
    inside, outside = inside_and_outside(world, spec)

    seen = call(client, name, method, htmx, dict(data or {}, seen_alias=inside.alias)
                if data else data, inside.endpoint_id)
    assert seen.status_code not in (403, 404), seen.content[:500]
    assert seen.status_code < 500
    if outside is None:
        return

    sandbox.reset_stats()
    before = list(Endpoint.objects.order_by("id").values_list("endpoint_id", "fingerprint"))
    events = AuditEvent.objects.count()
    hidden = call(client, name, method, htmx, data, outside.endpoint_id)
    unknown = call(client, name, method, htmx, data, UNKNOWN_ID)
    assert shape(hidden) == shape(unknown)  # the same answer as for an endpoint that is not there
    if hidden.get("HX-Refresh"):  # htmx reloads the page, which is then a 404
        hidden = call(client, name, method, False, data, outside.endpoint_id)
    assert hidden.status_code == 404
    assert outside.username not in hidden.content.decode()
    calls = sandbox.stats()["requests"]
    assert not any(calls.get(key) for key in WRITES)
    assert list(Endpoint.objects.order_by("id").values_list("endpoint_id", "fingerprint")) \
        == before
    # The attempt is audited only if it reached a write service; the views stop it first.
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("scope_name", list(SCOPES))
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_the_list_its_counts_search_and_choices_show_only_the_scope(
        client, world, django_user_model, scope_name, htmx):
    spec = SCOPES[scope_name]
    subs = scope_subs(world, spec)
    client.force_login(scoped_admin(django_user_model, "lead", subs))
    visible = Endpoint.objects.all() if subs is None else Endpoint.objects.filter(
        sub_account__in=subs)
    hidden = Endpoint.objects.exclude(pk__in=visible)
    page = client.get(reverse("endpoints:list"), {"per_page": 100},
                      **(HX if htmx else {})).content.decode()
    assert f"of <strong>{visible.count()}</strong> endpoint" in page
    for endpoint in visible[:100]:
        assert f'id="ep-{endpoint.endpoint_id}"' in page
    for endpoint in hidden:
        assert f'id="ep-{endpoint.endpoint_id}"' not in page
    # The glance numbers (the fragment carries them out of band) count only the scope.
    assert re.search(r'glance-number">(\d+)</span> <span class="glance-label">endpoint',
                     page).group(1) == str(visible.count())
    # Searching for a hidden endpoint's exact username finds nothing.
    for endpoint in hidden[:3]:
        found = client.get(reverse("endpoints:list"),
                           {"q": endpoint.username, "match": "exact"}, **HX).content.decode()
        assert f'id="ep-{endpoint.endpoint_id}"' not in found
        assert "<strong>0</strong> endpoints" in found
    # Paging and a sort stay inside the scope.
    last = client.get(reverse("endpoints:list"), {"sort": "-sub_account", "page": 99999},
                      **HX).content.decode()
    assert not any(f'id="ep-{e.endpoint_id}"' in last for e in hidden)
    # The sub-account filter offers only the scope's sub-accounts.
    full = client.get(reverse("endpoints:list")).content.decode()
    select = re.search(r'<select name="sub".*?</select>', full, re.S).group(0)
    for sub in world["subs"]:
        assert (sub in select) == (subs is None or sub in subs)
    assert ("Main account" in select) == (subs is None or MAIN_ACCOUNT in subs)
    # A forged filter for a sub-account outside the scope shows nothing of it.
    other = next((s for s in world["subs"] if subs is not None and s not in subs), None)
    if other:
        forged = client.get(reverse("endpoints:list"), {"sub": other}, **HX).content.decode()
        assert not any(f'id="ep-{e.endpoint_id}"' in forged
                       for e in Endpoint.objects.filter(sub_account=other))


def test_counts_are_cached_per_scope(world, django_assert_num_queries):
    one = Scope(frozenset([world["subs"][0]]))
    assert selectors.endpoint_counts(scope=one)["total"] == Endpoint.objects.filter(
        sub_account=world["subs"][0]).count()
    with django_assert_num_queries(1):  # the version only; the numbers come from the cache
        selectors.endpoint_counts(scope=one)
    assert selectors.endpoint_counts(scope=EVERYTHING)["total"] == Endpoint.objects.count()


def test_an_empty_scope_means_nothing_never_everything(client, world, django_user_model):
    client.force_login(scoped_admin(django_user_model, "lead", []))
    page = client.get(reverse("endpoints:list")).content.decode()
    assert "Your scope is empty: you can see no endpoints." in page
    assert "<strong>0</strong> endpoints" in page
    assert "Scope: nothing" in page
    endpoint = world["in"][MAIN_ACCOUNT]
    assert client.get(reverse("endpoints:detail", args=[endpoint.endpoint_id])
                      ).status_code == 404
    assert client.get(reverse("endpoints:create")).status_code == 403


def test_a_scope_naming_a_sub_account_that_no_longer_exists_explains_the_empty_list(
        client, world, django_user_model):
    client.force_login(scoped_admin(django_user_model, "lead", ["SA_GONE000001"]))
    response = client.get(reverse("endpoints:list"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "No endpoint in your scope (SA_GONE000001)" in page
    assert "may no longer exist at Vobiz" in page


def test_create_offers_only_the_scope_and_refuses_a_forged_sub_account(
        client, sandbox, world, django_user_model):
    mine, other = world["subs"][0], world["subs"][1]
    client.force_login(scoped_admin(django_user_model, "lead", [mine]))
    form = client.get(reverse("endpoints:create")).content.decode()
    select = re.search(r'<select name="sub_account".*?</select>', form, re.S).group(0)
    assert mine in select and other not in select and "Main account" not in select
    nonce = re.search(r'name="nonce" value="([^"]+)"', form).group(1)
    sandbox.reset_stats()
    data = {"nonce": nonce, "username": "scopedesk", "password": "Scope-Create-Pass-1",
            "alias": "", "application": "", "sub_account": other}
    response = client.post(reverse("endpoints:create"), data)
    page = response.content.decode()
    assert 'id="id_sub_account_error"' in page and "Select a valid choice" in page
    assert not sandbox.stats()["requests"].get("POST /Endpoint/")
    data["sub_account"] = mine
    page = client.post(reverse("endpoints:create"), data).content.decode()
    assert 'id="reveal-password"' in page
    created = Endpoint.objects.get(username__startswith="scopedesk")
    assert created.sub_account == mine
    assert AuditEvent.objects.get(action="create").sub_account == mine


def test_a_write_service_refuses_an_endpoint_outside_the_scope(sandbox, world,
                                                                admin_user_role):
    """The views stop it first; the services check the live record again."""
    one = Scope(frozenset([world["subs"][0]]))
    outside = world["in"][world["subs"][2]]
    with pytest.raises(services.OutOfScope):
        services.endpoint_update(user=admin_user_role, endpoint_id=outside.endpoint_id,
                                 changes={"alias": "Nope"}, scope=one)
    with pytest.raises(services.OutOfScope):
        services.endpoint_delete(user=admin_user_role, endpoint_id=outside.endpoint_id,
                                 scope=one)
    with pytest.raises(services.OutOfScope):
        services.endpoint_create(user=admin_user_role, scope=one, data={
            "username": "x", "password": "longenough1", "sub_account": world["subs"][2]})
    assert sandbox.api("GET", f"Endpoint/{outside.endpoint_id}/").json()["alias"] != "Nope"


def test_the_audit_log_shows_only_events_of_the_scope(client, world, django_user_model,
                                                      admin_user_role):
    mine, other = world["in"][world["subs"][0]], world["in"][world["subs"][2]]
    for endpoint, alias in ((mine, "Mine-1"), (other, "Other-1")):
        services.endpoint_update(user=admin_user_role, endpoint_id=endpoint.endpoint_id,
                                 changes={"alias": alias}, scope=EVERYTHING)
    client.force_login(scoped_admin(django_user_model, "lead", [world["subs"][0]]))
    page = client.get(reverse("endpoints:audit")).content.decode()
    assert mine.username in page and "Mine-1" in page
    assert other.username not in page and "Other-1" not in page
    detail = client.get(reverse("endpoints:detail", args=[mine.endpoint_id])).content.decode()
    assert "Mine-1" in detail


# --- the Staff page ------------------------------------------------------------------------


@pytest.fixture
def admin(client, world, admin_user_role):
    client.force_login(admin_user_role)
    return client


def test_an_admin_scopes_a_support_user_and_it_applies_on_their_next_request(
        admin, world, support_user):
    sam = Client()
    sam.force_login(support_user)
    everything = sam.get(reverse("endpoints:list")).content.decode()
    assert f"of <strong>{Endpoint.objects.count()}</strong>" in everything
    assert "Scope: all endpoints" in everything

    sub = world["subs"][0]
    staff = admin.get(reverse("endpoints:staff")).content.decode()
    assert "sam" in staff and "all endpoints" in staff
    response = admin.post(reverse("endpoints:staff_scope", args=[support_user.pk]),
                          {"mode": "some", "sub_accounts": [sub]})
    assert response.status_code == 302

    scoped = sam.get(reverse("endpoints:list")).content.decode()  # the very next request
    assert f"of <strong>{Endpoint.objects.filter(sub_account=sub).count()}</strong>" in scoped
    assert f"Scope: {sub}" in scoped
    event = AuditEvent.objects.get(action="scope_change")
    assert event.username == "ada" and event.changes == {"scope": ["all endpoints", sub]}
    assert "Scope of sam" in event.message


def test_sub_account_names_show_wherever_the_id_does_and_are_audited(
        admin, world, django_user_model):
    sub = world["subs"][0]
    staff = admin.get(reverse("endpoints:staff")).content.decode()
    prefix = re.search(rf'name="prefix" value="(n\d+)">\s*<input type="hidden" '
                       rf'name="n\d+-sub_account" value="{sub}"', staff).group(1)
    admin.post(reverse("endpoints:sub_account_name"),
               {"prefix": prefix, f"{prefix}-sub_account": sub, f"{prefix}-name": "Acme"})
    assert SubAccount.objects.get(sub_account=sub).name == "Acme"
    assert AuditEvent.objects.get(action="sub_account_name").changes == {"name": [None, "Acme"]}
    page = admin.get(reverse("endpoints:list"), {"sub": sub}).content.decode()
    assert f'<option value="{sub}" selected>Acme ({sub})</option>' in page
    assert f'<span class="sub-name">Acme</span> <code class="sub-id">{sub}</code>' in page
    endpoint = world["in"][sub]
    detail = admin.get(reverse("endpoints:detail", args=[endpoint.endpoint_id])).content.decode()
    assert f"Acme ({sub})" in detail
    lead = Client()
    lead.force_login(scoped_admin(django_user_model, "lead", [sub]))
    assert "Scope: Acme" in lead.get(reverse("endpoints:list")).content.decode()


def test_a_scoped_admin_cannot_widen_any_scope(client, world, django_user_model, support_user):
    lead = scoped_admin(django_user_model, "lead", [world["subs"][0]])
    client.force_login(lead)
    assert client.get(reverse("endpoints:staff")).status_code == 403
    response = client.post(reverse("endpoints:staff_scope", args=[lead.pk]), {"mode": "all"})
    assert response.status_code == 403
    assert selectors.scope_get(user=lead) == Scope(frozenset([world["subs"][0]]))
    assert not AuditEvent.objects.filter(action="scope_change").exists()


def test_support_cannot_reach_the_staff_page(client, world, support_user):
    client.force_login(support_user)
    assert client.get(reverse("endpoints:staff")).status_code == 403
    assert client.post(reverse("endpoints:staff_scope", args=[support_user.pk]),
                       {"mode": "some"}).status_code == 403
    assert selectors.scope_get(user=support_user).everything


def test_a_superuser_always_sees_everything(admin, world, superuser):
    response = admin.post(reverse("endpoints:staff_scope", args=[superuser.pk]),
                          {"mode": "some", "sub_accounts": [world["subs"][0]]})
    assert response.status_code == 409
    assert not StaffScope.objects.filter(user=superuser).exists()
    assert selectors.scope_get(user=superuser).everything


def test_a_scope_form_without_this_browsers_csrf_token_changes_nothing(world, admin_user_role,
                                                                       support_user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user_role)
    response = browser.post(reverse("endpoints:staff_scope", args=[support_user.pk]),
                            {"mode": "some", "sub_accounts": [world["subs"][0]]})
    assert response.status_code == 403
    assert selectors.scope_get(user=support_user).everything


def test_a_forged_sub_account_in_the_scope_form_is_refused(admin, world, support_user):
    response = admin.post(reverse("endpoints:staff_scope", args=[support_user.pk]),
                          {"mode": "some", "sub_accounts": ["SA_INVENTED99"]})
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()
    assert selectors.scope_get(user=support_user).everything
