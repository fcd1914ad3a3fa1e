"""CSRF is enforced on every state-changing request, htmx requests included.

A browser that enforces CSRF (``Client(enforce_csrf_checks=True)``), logged in as a
superuser and holding its CSRF cookie, POSTs to every write route: without the token, or with
a token from another browser, the answer is 403 and nothing changes (no call to Vobiz, no
audit event, no cache row, the session intact). With the token htmx sends (the X-CSRFToken
header from ``<body hx-headers>``) the same request is carried out.
"""

import json
import re
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from endpoints.models import AuditEvent, Endpoint, SyncState
from endpoints.views.manage import NONCE_SESSION_KEY

WRITE_CALLS = ("POST /Endpoint/", "POST /Endpoint/{id}/", "DELETE /Endpoint/{id}/")
PASSWORD = "Csrf-Guarded-Secret-77"

# url name, path to GET first (the page the form is on), whether it takes an endpoint id
ROUTES = [
    ("endpoints:sync", "endpoints:list", False),
    ("endpoints:create", "endpoints:create", False),
    ("endpoints:alias", "endpoints:list", True),
    ("endpoints:edit", "endpoints:edit", True),
    ("endpoints:password", "endpoints:password", True),
    ("endpoints:application", "endpoints:application", True),
    ("endpoints:delete", "endpoints:delete", True),
    ("logout", "endpoints:list", False),
    ("logout_everywhere", "endpoints:list", False),
    ("login", "login", False),
]
ROUTE_IDS = [name.split(":")[-1] for name, _, _ in ROUTES]


class _BodyAttrs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.attrs = None

    def handle_starttag(self, tag, attrs):
        if tag == "body" and self.attrs is None:
            self.attrs = dict(attrs)


def hx_headers(response) -> dict:
    """The JSON of ``<body hx-headers='...'>``, as htmx reads it."""
    parser = _BodyAttrs()
    parser.feed(response.content.decode())
    assert parser.attrs is not None, "no <body> in the page"
    return json.loads(parser.attrs["hx-headers"])


def write_calls(sandbox) -> dict:
    calls = sandbox.stats()["requests"]
    return {key: calls[key] for key in WRITE_CALLS if calls.get(key)}


@pytest.fixture
def started_syncs(enqueued_tasks):
    """The syncs queued for a worker (run at once by the suite's immediate task backend)."""
    return enqueued_tasks


@pytest.fixture
def target(synced):
    return next(
        e for e in Endpoint.objects.order_by("username")
        if re.fullmatch(r"[A-Za-z0-9_-]+", e.alias) and e.username.isalnum()
    )


def browser_for(route, superuser):
    """A CSRF-enforcing browser: logged in (except for the login form), with its cookie."""
    browser = Client(enforce_csrf_checks=True)
    if route != "login":
        browser.force_login(superuser)
    return browser


def form_data(route, target, nonce) -> dict:
    """What the form would send (a change that would be made if the request were allowed)."""
    return {
        "endpoints:sync": {},
        "endpoints:create": {"nonce": nonce, "username": "csrfdesk", "password": PASSWORD,
                             "alias": "Csrf-Desk", "application": "", "allow_voice": "on"},
        "endpoints:alias": {"alias": "Csrf-Alias", "seen_alias": target.alias},
        "endpoints:edit": {"alias": "Csrf-Edit", "seen_alias": target.alias,
                           **{f"seen_{n}": str(getattr(target, n)).lower()
                              for n in ("allow_voice", "allow_message", "allow_video")},
                           **{n: "on" for n in ("allow_voice", "allow_message", "allow_video")
                              if getattr(target, n)}},
        "endpoints:password": {"password": PASSWORD},
        "endpoints:application": {"application": "", "action": "detach"},
        "endpoints:delete": {},
        "logout": {},
        "logout_everywhere": {},
        "login": {"username": "root", "password": "pw-for-tests-1"},
    }[route]


def visit(browser, route, page, target):
    """GET the page the form is on: it sets the CSRF cookie (and a create nonce)."""
    args = [target.endpoint_id] if page in ("endpoints:edit", "endpoints:password",
                                            "endpoints:application", "endpoints:delete") else []
    response = browser.get(reverse(page, args=args))
    assert response.status_code == 200
    assert browser.cookies.get("csrftoken"), "the page set no CSRF cookie"
    nonce = ""
    if route == "endpoints:create":
        nonce = re.search(r'name="nonce" value="([^"]+)"', response.content.decode()).group(1)
    return response, nonce


def session_user(browser):
    """Who the browser's session cookie is logged in as (without creating a session, as
    ``Client.session`` would)."""
    cookie = browser.cookies.get(settings.SESSION_COOKIE_NAME)
    stored = Session.objects.filter(session_key=cookie.value).first() if cookie else None
    return stored.get_decoded().get("_auth_user_id") if stored else None


def snapshot(browser):
    return {
        "endpoints": list(Endpoint.objects.order_by("endpoint_id")
                          .values_list("endpoint_id", "alias", "app_id", "fingerprint")),
        "audit": AuditEvent.objects.count(),
        "sync": list(SyncState.objects.values_list("status", "started_at")),
        "sessions": Session.objects.count(),
        "user": session_user(browser),
    }


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize("token", ["none", "another-browsers"])
@pytest.mark.parametrize(("route", "page", "with_id"), ROUTES, ids=ROUTE_IDS)
def test_post_without_this_browsers_token_is_refused_and_changes_nothing(
    sandbox, superuser, target, started_syncs, route, page, with_id, token, htmx
):
    browser = browser_for(route, superuser)
    _, nonce = visit(browser, route, page, target)
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    if token == "another-browsers":
        # A well-formed token, valid for someone else's cookie.
        other = browser_for(route, superuser)
        other_page, _ = visit(other, route, page, target)
        headers["HTTP_X_CSRFTOKEN"] = hx_headers(other_page)["X-CSRFToken"]
    before = snapshot(browser)
    sandbox.reset_stats()

    url = reverse(route, args=[target.endpoint_id] if with_id else [])
    response = browser.post(url, form_data(route, target, nonce), **headers)

    assert response.status_code == 403
    assert "CSRF verification failed" in response.content.decode()
    assert sandbox.stats()["total"] == 0
    assert snapshot(browser) == before
    assert started_syncs == []
    if route == "endpoints:create":
        assert nonce in browser.session[NONCE_SESSION_KEY]  # not used up either
    if before["user"]:
        assert browser.get(reverse("endpoints:list")).status_code == 200  # still logged in


def expect_done(route, response, sandbox, target, started_syncs, browser, superuser):
    """The request was carried out: what each route does when allowed."""
    calls = write_calls(sandbox)
    body = response.content.decode()
    if route == "endpoints:sync":
        assert response.status_code == 200 and started_syncs == ["run_sync"]
    elif route == "endpoints:create":
        assert 'id="reveal-password"' in body and calls == {"POST /Endpoint/": 1}
    elif route == "endpoints:alias":
        assert response.status_code == 200 and calls == {"POST /Endpoint/{id}/": 1}
        assert Endpoint.objects.get(pk=target.pk).alias == "Csrf-Alias"
        assert sandbox.api("GET", f"Endpoint/{target.endpoint_id}/").json()["alias"] \
            == "Csrf-Alias"
    elif route == "endpoints:edit":
        assert response["HX-Redirect"] == reverse("endpoints:detail", args=[target.endpoint_id])
        assert calls == {"POST /Endpoint/{id}/": 1}
    elif route == "endpoints:password":
        assert 'id="reveal-password"' in body and calls == {"POST /Endpoint/{id}/": 1}
    elif route == "endpoints:application":
        assert response.status_code == 302
        assert calls.get("POST /Endpoint/{id}/") or not target.app_id
    elif route == "endpoints:delete":
        assert response.status_code == 302 and calls == {"DELETE /Endpoint/{id}/": 1}
        assert not Endpoint.objects.filter(pk=target.pk).exists()
    elif route in ("logout", "logout_everywhere"):
        assert response.status_code == 302 and session_user(browser) is None
    elif route == "login":
        assert response.status_code == 302 and session_user(browser) == str(superuser.pk)


@pytest.mark.parametrize(("route", "page", "with_id"), ROUTES, ids=ROUTE_IDS)
def test_htmx_post_with_the_token_from_body_hx_headers_is_carried_out(
    sandbox, superuser, target, started_syncs, route, page, with_id
):
    browser = browser_for(route, superuser)
    response, nonce = visit(browser, route, page, target)
    token = hx_headers(response)["X-CSRFToken"]
    sandbox.reset_stats()
    url = reverse(route, args=[target.endpoint_id] if with_id else [])
    data = form_data(route, target, nonce)
    assert "csrfmiddlewaretoken" not in data  # the header alone, as htmx sends it
    response = browser.post(url, data, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token,
                            HTTP_HX_CURRENT_URL=f"http://testserver{url}")
    assert response.status_code != 403
    expect_done(route, response, sandbox, target, started_syncs, browser, superuser)


def test_inline_alias_edit_with_the_page_token_saves_and_is_audited(sandbox, superuser,
                                                                    target):
    browser = browser_for("endpoints:alias", superuser)
    list_page = browser.get(reverse("endpoints:list"))
    token = hx_headers(list_page)["X-CSRFToken"]
    form = browser.get(reverse("endpoints:alias", args=[target.endpoint_id]),
                       HTTP_HX_REQUEST="true")
    assert form.status_code == 200 and 'name="alias"' in form.content.decode()
    response = browser.post(reverse("endpoints:alias", args=[target.endpoint_id]),
                            {"alias": "Token-Ok", "seen_alias": target.alias},
                            HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert "Token-Ok" in response.content.decode()
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.endpoint_id) == ("update", "done",
                                                                 target.endpoint_id)
    assert event.changes["alias"] == [target.alias, "Token-Ok"]


@pytest.mark.parametrize("page", ["endpoints:list", "endpoints:audit", "endpoints:create",
                                  "endpoints:detail", "endpoints:edit", "login"])
def test_every_page_carries_a_working_token_in_body_hx_headers(sandbox, superuser, target,
                                                               page):
    browser = browser_for(page, superuser)
    args = [target.endpoint_id] if page in ("endpoints:detail", "endpoints:edit") else []
    response = browser.get(reverse(page, args=args))
    assert response.status_code == 200
    assert re.search(r"<body hx-headers='\{\"X-CSRFToken\": \"[A-Za-z0-9]{32,}\"\}'>",
                     response.content.decode())
    token = hx_headers(response)["X-CSRFToken"]
    assert token and token != browser.cookies["csrftoken"].value  # masked, not the secret
    # The token works for this browser and no other.
    stranger = Client(enforce_csrf_checks=True)
    stranger.get(reverse("login"))
    url = reverse("logout")
    assert stranger.post(url, HTTP_X_CSRFTOKEN=token).status_code == 403
    assert browser.post(url, HTTP_X_CSRFTOKEN=token).status_code == 302
