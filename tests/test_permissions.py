"""Every URL x {anonymous, no role, Support, Endpoint admin, superuser} x {GET, POST, htmx}.

Anonymous users are sent to the login page (htmx requests with HX-Redirect, so the login page
never lands inside a table cell); a forbidden action answers 403 and changes nothing at Vobiz
or in the cache.
"""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from endpoints.models import AuditEvent, Endpoint

WRITE_CALLS = ("POST /Endpoint/", "POST /Endpoint/{id}/", "DELETE /Endpoint/{id}/")

# (url name, needs an endpoint id, methods, capability needed for GET, for POST)
ROUTES = [
    ("list", False, ("GET",), "view", None),
    ("sync", False, ("POST",), None, "sync"),
    ("sync_status", False, ("GET",), "view", None),
    ("audit", False, ("GET",), "audit", None),
    ("create", False, ("GET", "POST"), "create", "create"),
    ("detail", True, ("GET",), "view", None),
    ("row", True, ("GET",), "view", None),
    ("alias", True, ("GET", "POST"), "edit", "edit"),
    ("edit", True, ("GET", "POST"), "edit", "edit"),
    ("password", True, ("GET", "POST"), "reset_password", "reset_password"),
    ("application", True, ("GET", "POST"), "manage_application", "manage_application"),
    ("delete", True, ("GET", "POST"), "delete", "delete"),
    ("staff", False, ("GET",), "staff", None),
    ("staff_scope", "user", ("GET", "POST"), "staff", "staff"),
    ("sub_account_name", False, ("POST",), None, "staff"),
    ("selection", False, ("POST",), None, "view"),
    ("bulk_preview", False, ("GET",), "view", None),
    ("bulk_run", False, ("POST",), None, "view"),
    ("jobs", False, ("GET",), "view", None),
    ("job", "job", ("GET",), "view", None),
    ("job_cancel", "job", ("POST",), None, "view"),
    ("job_retry", "job", ("POST",), None, "view"),
    ("job_resume", "job", ("POST",), None, "view"),
    ("job_credentials", "job", ("POST",), None, "view"),
    ("export", False, ("GET",), "view", None),
    ("import_update", False, ("GET", "POST"), "edit", "edit"),
    ("import_create", False, ("GET", "POST"), "create", "create"),
    ("import_preview", "job", ("GET",), "view", None),
    ("import_run", "job", ("POST",), None, "view"),
]

SUPPORT = {"view", "audit", "edit", "reset_password", "manage_application"}
ROLE_CAN = {
    "norole": set(),
    "support": SUPPORT,
    "admin": SUPPORT | {"create", "delete", "sync", "staff"},
    "superuser": SUPPORT | {"create", "delete", "sync", "staff"},
}


@pytest.fixture
def users(db, support_user, admin_user_role, superuser):
    norole = get_user_model().objects.create_user(username="nobody", password="pw-for-tests-1")
    return {"norole": norole, "support": support_user, "admin": admin_user_role,
            "superuser": superuser}


def _url(name, with_id, endpoint_id):
    if with_id in ("user", "job"):  # a staff member's or a job's page (any id will do)
        return reverse(f"endpoints:{name}", args=[1])
    return reverse(f"endpoints:{name}", args=[endpoint_id] if with_id else [])


def _cases():
    for name, with_id, methods, get_cap, post_cap in ROUTES:
        for method in methods:
            for htmx in (False, True):
                yield pytest.param(name, with_id, method, htmx,
                                   get_cap if method == "GET" else post_cap,
                                   id=f"{method}-{name}-{'htmx' if htmx else 'page'}")


def _request(client, method, url, htmx):
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": f"http://testserver{url}"} \
        if htmx else {}
    # A POST body that would do something if it were allowed.
    data = {"alias": "Forbidden-1", "password": "Forbidden-Pass-1", "username": "forbidden1",
            "application": "", "confirm": "yes"}
    return getattr(client, method.lower())(url, data, **headers) if method == "POST" \
        else client.get(url, **headers)


@pytest.mark.parametrize(("name", "with_id", "method", "htmx", "needs"), list(_cases()))
def test_anonymous_is_sent_to_login(client, synced, name, with_id, method, htmx, needs):
    endpoint_id = Endpoint.objects.first().endpoint_id
    url = _url(name, with_id, endpoint_id)
    response = _request(client, method, url, htmx)
    if htmx:
        assert response.status_code == 204
        assert response["HX-Redirect"].startswith("/accounts/login/?next=")
    else:
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("role", ["norole", "support", "admin", "superuser"])
@pytest.mark.parametrize(("name", "with_id", "method", "htmx", "needs"), list(_cases()))
def test_roles_are_enforced_on_the_server(client, sandbox, synced, users, role, name, with_id,
                                          method, htmx, needs):
    endpoint = Endpoint.objects.order_by("username").first()
    client.force_login(users[role])
    sandbox.reset_stats()
    before = list(Endpoint.objects.order_by("id").values_list("endpoint_id", "fingerprint"))
    response = _request(client, method, _url(name, with_id, endpoint.endpoint_id), htmx)
    if needs in ROLE_CAN[role]:
        assert response.status_code != 403
        assert response.status_code < 500
        return
    assert response.status_code == 403
    calls = sandbox.stats()["requests"]
    assert not any(calls.get(key) for key in WRITE_CALLS)
    assert list(Endpoint.objects.order_by("id").values_list("endpoint_id", "fingerprint")) \
        == before
    assert not AuditEvent.objects.exists()
