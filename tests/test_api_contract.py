"""The Vobiz API as its docs describe it, and the client's guard against redirects.

Each test drives the real dashboard against the sandbox switched to one documented variant
(docs/vobiz-api.md, "Where the docs disagree"): objects without permissions, integer
application ids, a create that silently drops a field, the global error envelope's list of
errors, pages capped below 100, a redirect. Each fails on the code that ignored the variant.
"""

import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from django.views.debug import ExceptionReporter

from endpoints import services, sync, vobiz
from endpoints.models import Application, AuditEvent, Endpoint
from endpoints.scopes import EVERYTHING
from endpoints.vobiz import PERMISSIONS, VobizBadResponse

PASSWORD = "Contract-Secret-77"


@pytest.fixture
def admin(client, synced, admin_user_role):
    client.force_login(admin_user_role)
    return client


def html(response):
    return response.content.decode()


def create_nonce(client):
    page = html(client.get(reverse("endpoints:create")))
    return re.search(r'name="nonce" value="([^"]+)"', page).group(1)


def create(client, **fields):
    data = {"nonce": create_nonce(client), "username": "contractdesk", "password": PASSWORD,
            "alias": "Contract-Desk", "application": "", "sub_account": "",
            "allow_voice": "on", "allow_message": "on", "allow_same_domain": "on",
            "allow_phones": "on", "allow_apps": "on"}
    data.update(fields)
    return client.post(reverse("endpoints:create"),
                       {k: v for k, v in data.items() if v is not None})


def remote(sandbox, endpoint_id):
    return sandbox.api("GET", f"Endpoint/{endpoint_id}/").json()


def posts(sandbox):
    return sum(n for key, n in sandbox.stats()["requests"].items() if key.startswith("POST "))


# --- permissions Vobiz did not report -------------------------------------------------------


def test_permissions_vobiz_did_not_report_are_unknown_never_defaults(sandbox, admin):
    sandbox.config(object_shape="minimal")  # the docs' eight-key object
    sync.endpoint_sync_all()
    rows = list(Endpoint.objects.values(*PERMISSIONS))
    assert rows and all(value is None for row in rows for value in row.values())

    endpoint = Endpoint.objects.order_by("username").first()
    page = html(admin.get(reverse("endpoints:detail", args=[endpoint.endpoint_id])))
    assert page.count("Not reported by Vobiz") == 7
    assert "✓</span> Yes" not in page and "✕</span> No" not in page


def test_an_edit_checked_against_a_read_back_without_permissions_is_not_a_false_failure(
        sandbox, admin):
    sandbox.config(object_shape="minimal")
    sync.endpoint_sync_all()
    endpoint = Endpoint.objects.order_by("username").first()
    url = reverse("endpoints:edit", args=[endpoint.endpoint_id])
    form = html(admin.get(url))
    assert "Not reported by Vobiz: leave as it is" in form
    response = admin.post(url, {"alias": endpoint.alias, "seen_alias": endpoint.alias,
                                "allow_voice": "unknown", "allow_message": "unknown",
                                "allow_video": "true"}, follow=True)
    text = html(response)
    assert "still shows the old" not in text
    assert "Saved" in text and "Video calls" in text
    sandbox.config(object_shape="full")
    assert remote(sandbox, endpoint.endpoint_id)["allow_video"] is True
    assert AuditEvent.objects.get(action="update").outcome == "done"


def test_a_permission_left_unknown_is_never_sent(sandbox, admin):
    sandbox.config(object_shape="minimal")
    sync.endpoint_sync_all()
    endpoint = Endpoint.objects.order_by("username").first()
    sandbox.config(object_shape="full")
    before = remote(sandbox, endpoint.endpoint_id)
    sandbox.config(object_shape="minimal")
    admin.post(reverse("endpoints:edit", args=[endpoint.endpoint_id]),
               {"alias": "Only-Alias", "seen_alias": endpoint.alias, "allow_voice": "unknown",
                "allow_message": "unknown", "allow_video": "unknown"})
    sandbox.config(object_shape="full")
    after = remote(sandbox, endpoint.endpoint_id)
    assert after["alias"] == "Only-Alias"
    assert {p: after[p] for p in PERMISSIONS} == {p: before[p] for p in PERMISSIONS}
    assert AuditEvent.objects.get(action="update").changes == {
        "alias": [endpoint.alias, "Only-Alias"]}


# --- application ids are integers ----------------------------------------------------------


def test_create_sends_the_application_as_an_integer(sandbox, admin):
    sandbox.config(strict_types=True)  # refuses a string id with the documented 400
    app = Application.objects.order_by("name").first()
    response = create(admin, application=app.app_id)
    assert response.status_code == 200, html(response)[:2000]
    created = Endpoint.objects.get(username__startswith="contractdesk")
    assert remote(sandbox, created.endpoint_id)["application"].rstrip("/").endswith(app.app_id)


def test_attach_sends_the_application_as_an_integer(sandbox, admin):
    sandbox.config(strict_types=True)
    endpoint = Endpoint.objects.order_by("username").first()
    app = Application.objects.exclude(app_id=endpoint.app_id).order_by("name").first()
    response = admin.post(reverse("endpoints:application", args=[endpoint.endpoint_id]),
                          {"application": app.app_id, "action": "attach"}, follow=True)
    assert "Attached" in html(response) or "Changed the application" in html(response)
    assert Endpoint.objects.get(pk=endpoint.pk).app_id == app.app_id


# --- a create is checked against the read-back -------------------------------------------


def test_create_says_what_vobiz_did_not_keep(sandbox, admin):
    sandbox.config(ignore_on_create=["allow_other_domains", "allow_video"])
    response = create(admin, allow_other_domains="on", allow_video="on")
    page = html(response)
    assert "Vobiz did not keep everything that was sent" in page
    assert "Calls to other domains: sent Yes, Vobiz has No" in page
    assert "Video calls: sent Yes, Vobiz has No" in page
    assert PASSWORD in page  # the one-time reveal is still shown
    event = AuditEvent.objects.get(action="create")
    assert event.outcome == "done"
    assert "Calls to other domains: sent Yes, Vobiz has No" in event.message


def test_create_that_kept_everything_says_nothing_about_it(sandbox, admin):
    page = html(create(admin, allow_other_domains="on"))
    assert "did not keep" not in page
    assert "did not keep" not in AuditEvent.objects.get(action="create").message


# --- sub-account on create ------------------------------------------------------------------


def test_create_into_a_sub_account(sandbox, admin):
    subs = sorted(set(Endpoint.objects.exclude(sub_account="")
                      .values_list("sub_account", flat=True)))
    assert subs, "the demo data has sub-accounts"
    form = html(admin.get(reverse("endpoints:create")))
    assert '<option value="" selected>Main account</option>' in form
    assert f'<option value="{subs[0]}">{subs[0]}</option>' in form
    create(admin, sub_account=subs[0])
    created = Endpoint.objects.get(username__startswith="contractdesk")
    assert remote(sandbox, created.endpoint_id)["sub_account"] == subs[0]


def test_a_forged_sub_account_is_refused_next_to_the_field(sandbox, admin):
    sandbox.reset_stats()
    response = create(admin, sub_account="SA_NOTOURS01")
    page = html(response)
    assert 'id="id_sub_account_error"' in page and "Select a valid choice" in page
    assert posts(sandbox) == 0


# --- the global envelope's list of errors ---------------------------------------------------


def test_global_envelope_errors_go_next_to_their_fields_and_values_are_never_shown(
        sandbox, admin):
    envelope = {"status": "error", "error": {
        "code": "VALIDATION_ERROR", "message": "Validation failed",
        "details": {"errors": [
            {"field": "password", "message": "Password is too common", "code": "weak",
             "value": PASSWORD},
            {"field": "alias", "message": "Alias is taken", "code": "taken",
             "value": "Contract-Desk"},
            {"field": "region", "message": "Region unavailable", "code": "region",
             "value": "eu-x"},
        ]}}, "timestamp": "2026-12-03T09:00:00Z", "requestId": "req-1"}
    sandbox.fault(method="POST", path="/Endpoint/", status=422, body=envelope)
    page = html(create(admin))
    password_error = re.search(r'id="id_password_error">(.*?)</p>', page, re.S).group(1)
    alias_error = re.search(r'id="id_alias_error">(.*?)</p>', page, re.S).group(1)
    assert "Password is too common" in password_error
    assert "Alias is taken" in alias_error
    assert "region: Region unavailable" in page  # a field the form does not have: at the top
    assert PASSWORD not in page and "eu-x" not in page
    assert "{" not in re.search(r'class="error-summary".*?</div>', page, re.S).group(0)
    assert PASSWORD not in AuditEvent.objects.get(action="create").message


# --- SIP settings ---------------------------------------------------------------------------


def test_sip_settings_take_the_server_from_the_setting(sandbox, admin, settings):
    settings.VOBIZ_SIP_DOMAIN = "sip.example.test"
    endpoint = Endpoint.objects.exclude(alias="").order_by("username").first()
    page = html(admin.get(reverse("endpoints:detail", args=[endpoint.endpoint_id])))
    for address in ("sip.example.test:5060", "sip.example.test:5061",
                    "wss://sip.example.test:7443"):
        assert f"<code>{address}</code>" in page
    assert '<code id="sip-domain">sip.example.test</code>' in page
    display_name = re.search(r"<dt>Display name</dt>\s*<dd>(.*?)</dd>", page, re.S).group(1)
    assert endpoint.alias in display_name
    assert "same username and password" not in page


# --- paging ---------------------------------------------------------------------------------


def test_a_sync_against_an_api_that_caps_pages_below_100_skips_nothing(sandbox, db):
    sandbox.reset(endpoints=250, applications=3)
    sandbox.config(max_limit=20)
    result = sync.endpoint_sync_all()
    assert Endpoint.objects.count() == 250
    assert not result.deletions_postponed and not result.skipped
    # And a second sync over a full cache deletes nothing it should keep.
    assert sync.endpoint_sync_all().deleted == 0
    assert Endpoint.objects.count() == 250


# --- redirects ------------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """The host a redirect points to: it records every request it gets."""

    seen: list = []

    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_DELETE = _any

    def log_message(self, *args):
        pass


def _serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize(("method", "status"), [("GET", 302), ("POST", 307), ("POST", 308),
                                                ("DELETE", 301)])
def test_the_client_never_follows_a_redirect_so_the_token_and_body_stay_home(method, status):
    _Recorder.seen = []
    elsewhere = _serve(_Recorder)
    target = f"http://localhost:{elsewhere.server_port}/steal"

    class Redirector(BaseHTTPRequestHandler):
        def _any(self):
            self.send_response(status)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_DELETE = _any

        def log_message(self, *args):
            pass

    api = _serve(Redirector)
    client = vobiz.VobizClient(base_url=f"http://127.0.0.1:{api.server_port}/api/v1",
                               auth_id="MA_SANDBOX01", auth_token="the-real-token",
                               sleep=lambda s: None)
    try:
        with pytest.raises(VobizBadResponse) as info:
            if method == "GET":
                client.get_endpoint("147322537258167")
            elif method == "POST":
                client.update_endpoint("147322537258167", {"password": PASSWORD})
            else:
                client.delete_endpoint("147322537258167")
        assert f"redirect (HTTP {status})" in info.value.message
        assert f"localhost:{elsewhere.server_port}" in info.value.message
        assert _Recorder.seen == []  # neither the token nor the password went there
    finally:
        api.shutdown()
        elsewhere.shutdown()


# --- SIP passwords never shown or stored ----------------------------------------------------


def _unencodable_create():
    # Built in its own frame, so the test's frame holds no password for the report to show.
    return {"username": "debugdesk", "password": PASSWORD, "alias": object(), "application": ""}


def test_a_debug_error_page_does_not_show_the_sip_password(sandbox, db, admin_user_role,
                                                            settings):
    settings.DEBUG = True  # what a developer's error page shows
    try:  # an unexpected error deep in the call: the body cannot be encoded as JSON
        services.endpoint_create(scope=EVERYTHING, user=admin_user_role, data=_unencodable_create())
    except TypeError:
        reporter = ExceptionReporter(None, *sys.exc_info())
    else:
        pytest.fail("the create should have failed")
    assert PASSWORD not in reporter.get_traceback_text()
    assert PASSWORD not in reporter.get_traceback_html()


def test_a_password_key_in_a_vobiz_record_is_never_stored(sandbox, admin, synced):
    endpoint = Endpoint.objects.order_by("username").first()
    record = remote(sandbox, endpoint.endpoint_id)
    record["password"] = "Leaked-By-Vobiz-1"
    sandbox.fault(method="GET", path=f"/Endpoint/{endpoint.endpoint_id}/", status=200,
                  body=record)
    assert admin.get(reverse("endpoints:detail", args=[endpoint.endpoint_id])).status_code == 200
    page = {"api_id": "x", "meta": {"limit": 100, "offset": 0, "total_count": 1, "next": None},
            "objects": [dict(record, endpoint_id="999000000000077", username="leaky77")]}
    sandbox.fault(method="GET", path="/Endpoint/?", status=200, body=page, times=1)
    sync.endpoint_sync_all()
    stored = json.dumps(list(Endpoint.objects.values("raw")), default=str)
    assert "Leaked-By-Vobiz-1" not in stored
    assert Endpoint.objects.filter(username="leaky77").exists()
