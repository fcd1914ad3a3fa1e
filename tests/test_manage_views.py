"""The endpoint page and the write views, over real HTTP to the sandbox.

Full pages and htmx fragments, role limits enforced on the server, the one-time password
reveal (no-store, shown once, stored nowhere), and every failure kept on the page.
"""

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.urls import reverse

from endpoints.models import Application, AuditEvent, Endpoint
from endpoints.views.manage import GONE_MESSAGE, NONCE_SESSION_KEY, UNCERTAIN_CREATE

# Time stands still unless a test moves it (conftest's clock).
pytestmark = pytest.mark.usefixtures("clock")

PASSWORD = "Reveal-Once-Secret-42"
TYPED = "revealdesk"
HX = {"HTTP_HX_REQUEST": "true"}
HISTORY_RESTORE = {"HTTP_HX_REQUEST": "true", "HTTP_HX_HISTORY_RESTORE_REQUEST": "true"}


# --- helpers --------------------------------------------------------------------------------



@pytest.fixture
def admin(client, synced, admin_user_role):
    client.force_login(admin_user_role)
    return client


@pytest.fixture
def support(client, synced, support_user):
    client.force_login(support_user)
    return client


@pytest.fixture
def plain(synced):
    """A cached endpoint with a rule-abiding alias and no registration."""
    row = next(
        e for e in Endpoint.objects.order_by("username")
        if re.fullmatch(r"[A-Za-z0-9_-]+", e.alias) and e.username.isalnum()
    )
    return row


def remote(sandbox, endpoint_id):
    return sandbox.api("GET", f"Endpoint/{endpoint_id}/").json()


def remote_total(sandbox):
    return sandbox.api("GET", "Endpoint/?limit=1").json()["meta"]["total_count"]


def page_text(response):
    return response.content.decode()


def flash(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def register_zoiper(sandbox, endpoint_id):
    sandbox.register(endpoint_id, contact="sip:dev@192.168.1.20:5060;transport=udp",
                     user_agent="Zoiper v5.6.2", received="203.0.113.42:5060",
                     expires_in=600, renew=True)


def create_form(client):
    response = client.get(reverse("endpoints:create"))
    nonce = re.search(r'name="nonce" value="([^"]+)"', page_text(response)).group(1)
    return response, nonce


def create_data(nonce, **overrides):
    data = {"nonce": nonce, "username": TYPED, "password": PASSWORD,
            "alias": "Help-Desk", "application": "", "allow_voice": "on",
            "allow_message": "on", "allow_same_domain": "on", "allow_phones": "on",
            "allow_apps": "on"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def everything_stored():
    sessions = []
    for session in Session.objects.all():
        sessions.append(session.session_data)
        sessions.append(repr(session.get_decoded()))
    rows = [repr(list(Endpoint.objects.values())), repr(list(AuditEvent.objects.values()))]
    return "\n".join(rows + sessions)


# --- endpoint page --------------------------------------------------------------------------


def test_detail_reads_live_and_shows_every_field(sandbox, admin, plain):
    sandbox.api("POST", f"Endpoint/{plain.endpoint_id}/", json={"alias": "Live-Alias"})
    register_zoiper(sandbox, plain.endpoint_id)
    response = admin.get(reverse("endpoints:detail", args=[plain.endpoint_id]))
    assert response.status_code == 200
    html = page_text(response)
    live = remote(sandbox, plain.endpoint_id)
    for value in (live["endpoint_id"], live["username"], "Live-Alias", live["sip_uri"],
                  live["resource_uri"], live["sub_account"] or "Main account"):
        assert value in html
    assert "Zoiper v5.6.2" in html and "203.0.113.42:5060" in html
    assert "sip:dev@192.168.1.20:5060;transport=udp" in html
    assert "data-countdown" in html
    assert Endpoint.objects.get(endpoint_id=plain.endpoint_id).alias == "Live-Alias"
    # The SIP settings card, copy-ready.
    assert "Copy SIP URI" in html and "Copy username" in html
    # Server and domain from VOBIZ_SIP_DOMAIN, not from the sip_uri's host (registrar...).
    for address in ("sip.vobiz.ai:5060", "sip.vobiz.ai:5061", "wss://sip.vobiz.ai:7443"):
        assert address in html
    assert "registrar.vobiz.ai:50" not in html
    assert "JWT token obtained from the Vobiz API, not with the SIP password" in html
    # The four locked permissions are marked.
    assert html.count("Locked (set at creation)") == 4
    for label in ("Voice calls", "Messaging", "Video calls", "Calls to phone numbers"):
        assert label in html


def test_detail_shows_the_application_with_a_link_to_change_it(sandbox, admin, synced):
    row = Endpoint.objects.exclude(app_id="").first()
    html = page_text(admin.get(reverse("endpoints:detail", args=[row.endpoint_id])))
    assert row.app_id in html and row.app_name in html
    assert reverse("endpoints:application", args=[row.endpoint_id]) in html


def test_detail_registration_falls_back_to_top_level_fields(sandbox, admin, synced):
    expires = (datetime.now(UTC) + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    planted = sandbox.plant({"username": "toplevel1", "alias": "Top", "sip_registered": "true",
                             "sip_contact": "sip:toplevel1@198.51.100.7:5060",
                             "sip_user_agent": "MicroSIP/3.21.3", "sip_expires": expires})
    assert "sip_registration" not in planted
    html = page_text(admin.get(reverse("endpoints:detail", args=[planted["endpoint_id"]])))
    assert "sip:toplevel1@198.51.100.7:5060" in html
    assert "MicroSIP/3.21.3" in html


def test_detail_htmx_request_gets_the_card_fragment(sandbox, admin, plain):
    url = reverse("endpoints:detail", args=[plain.endpoint_id])
    response = admin.get(url, **HX)
    html = page_text(response)
    assert response.status_code == 200
    assert "<html" not in html and 'id="endpoint"' in html
    assert plain.username in html
    assert "HX-Request" in response["Vary"]


def test_detail_history_restore_gets_the_full_page(sandbox, admin, plain):
    response = admin.get(reverse("endpoints:detail", args=[plain.endpoint_id]),
                         **HISTORY_RESTORE)
    assert "<html" in page_text(response)


def test_detail_falls_back_to_the_cached_copy_when_vobiz_is_down(sandbox, admin, plain):
    sandbox.fault(path=f"/Endpoint/{plain.endpoint_id}/", status=503, times=10)
    response = admin.get(reverse("endpoints:detail", args=[plain.endpoint_id]))
    html = page_text(response)
    assert response.status_code == 200
    assert "Showing the copy from" in html
    assert "Vobiz unreachable: Vobiz is having problems (HTTP 503)." in html
    assert plain.username in html


def test_detail_of_an_endpoint_gone_at_vobiz_is_a_clear_404(sandbox, admin, plain):
    sandbox.api("DELETE", f"Endpoint/{plain.endpoint_id}/")
    response = admin.get(reverse("endpoints:detail", args=[plain.endpoint_id]))
    assert response.status_code == 404
    assert GONE_MESSAGE in page_text(response)
    assert not Endpoint.objects.filter(endpoint_id=plain.endpoint_id).exists()


def test_detail_htmx_refresh_of_a_gone_endpoint_reloads_the_page(sandbox, admin, plain):
    sandbox.api("DELETE", f"Endpoint/{plain.endpoint_id}/")
    response = admin.get(reverse("endpoints:detail", args=[plain.endpoint_id]), **HX)
    assert response["HX-Refresh"] == "true"
    assert not Endpoint.objects.filter(endpoint_id=plain.endpoint_id).exists()


def test_detail_htmx_refresh_while_vobiz_is_down_shows_the_notice(sandbox, admin, plain):
    sandbox.fault(path=f"/Endpoint/{plain.endpoint_id}/", status=503, times=10)
    response = admin.get(reverse("endpoints:detail", args=[plain.endpoint_id]), **HX)
    html = page_text(response)
    assert response.status_code == 200 and "<html" not in html
    assert "Showing the copy from" in html


def test_detail_of_an_unknown_id_while_vobiz_is_down_is_a_clear_503(sandbox, admin):
    sandbox.fault(path="/Endpoint/999999999999999/", status=503, times=10)
    response = admin.get(reverse("endpoints:detail", args=["999999999999999"]))
    assert response.status_code == 503
    assert "Vobiz could not be reached" in page_text(response)


def test_detail_actions_follow_the_role(sandbox, client, synced, plain, support_user,
                                        admin_user_role):
    url = reverse("endpoints:detail", args=[plain.endpoint_id])
    client.force_login(support_user)
    html = page_text(client.get(url))
    assert reverse("endpoints:edit", args=[plain.endpoint_id]) in html
    assert reverse("endpoints:password", args=[plain.endpoint_id]) in html
    assert reverse("endpoints:application", args=[plain.endpoint_id]) in html
    assert reverse("endpoints:delete", args=[plain.endpoint_id]) not in html
    assert reverse("endpoints:create") not in html
    client.force_login(admin_user_role)
    html = page_text(client.get(url))
    assert reverse("endpoints:delete", args=[plain.endpoint_id]) in html


def test_detail_shows_the_endpoints_audit_history(sandbox, admin, plain):
    admin.post(reverse("endpoints:edit", args=[plain.endpoint_id]),
               {"alias": "History-1", "seen_alias": plain.alias,
                "seen_allow_voice": plain.allow_voice, "allow_voice": "on" if plain.allow_voice
                else "", "seen_allow_message": plain.allow_message,
                "allow_message": "on" if plain.allow_message else "",
                "seen_allow_video": plain.allow_video,
                "allow_video": "on" if plain.allow_video else ""})
    html = page_text(admin.get(reverse("endpoints:detail", args=[plain.endpoint_id])))
    assert "History" in html and "History-1" in html and "ada" in html


# --- create ---------------------------------------------------------------------------------


def test_create_form_has_labels_hints_defaults_and_a_nonce(sandbox, admin):
    response, nonce = create_form(admin)
    html = page_text(response)
    assert response.status_code == 200
    for label in ("Username", "Password", "Alias", "Application", "Search applications",
                  "Voice calls", "Messaging", "Video calls", "Calls to the same domain",
                  "Calls to other domains", "Calls to phone numbers", "Calls to apps"):
        assert f">{label}</label>" in html, label
    assert "Letters and digits only. Vobiz adds a number to the end." in html
    assert ">Generate</button>" in html and ">Create endpoint</button>" in html
    default_app = Application.objects.get(default_endpoint_app=True)
    assert f'<option value="{default_app.app_id}" selected>' in html
    assert 'name="allow_voice" id="id_allow_voice" checked' in html
    assert 'name="allow_video" id="id_allow_video">' in html
    assert 'name="allow_other_domains" id="id_allow_other_domains">' in html
    assert nonce in admin.session[NONCE_SESSION_KEY]


@pytest.mark.parametrize("method", ["get", "post"])
def test_support_cannot_create(sandbox, support, method):
    before = remote_total(sandbox)
    response = getattr(support, method)(reverse("endpoints:create"),
                                        create_data("x") if method == "post" else None)
    assert response.status_code == 403
    assert remote_total(sandbox) == before


def test_create_reveals_the_stored_username_and_the_password_once(sandbox, admin, caplog):
    caplog.set_level(logging.DEBUG)
    _, nonce = create_form(admin)
    response = admin.post(reverse("endpoints:create"), create_data(nonce))
    html = page_text(response)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    row = Endpoint.objects.get(username__startswith=TYPED)
    assert row.username != TYPED
    assert (f"Vobiz stored the username as {row.username} (you typed {TYPED}). "
            f"Use {row.username} to register devices.") in html
    assert html.count(PASSWORD) == 1
    assert "This password will not be shown again." in html
    assert "Copy password" in html and "SIP settings" in html
    assert remote(sandbox, row.endpoint_id)["alias"] == "Help-Desk"

    later = admin.get(reverse("endpoints:detail", args=[row.endpoint_id]))
    assert later.status_code == 200
    assert PASSWORD not in page_text(later)
    assert PASSWORD not in everything_stored()
    assert PASSWORD not in caplog.text


def test_create_whose_read_back_fails_still_reveals_the_password(sandbox, admin):
    _, nonce = create_form(admin)
    sandbox.fault(method="GET", path="/Endpoint/", status=503, times=5)
    response = admin.post(reverse("endpoints:create"), create_data(nonce))
    html = page_text(response)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert html.count(PASSWORD) == 1
    assert "could not be read back" in html
    assert Endpoint.objects.filter(username__startswith=TYPED).count() == 1


def test_create_replayed_post_creates_nothing(sandbox, admin):
    _, nonce = create_form(admin)
    first = admin.post(reverse("endpoints:create"), create_data(nonce))
    assert first.status_code == 200
    total = remote_total(sandbox)
    again = admin.post(reverse("endpoints:create"), create_data(nonce))
    assert again.status_code == 409
    html = page_text(again)
    assert "already submitted" in html and reverse("endpoints:list") in html
    assert PASSWORD not in html
    assert remote_total(sandbox) == total
    assert AuditEvent.objects.filter(action="create").count() == 1


def test_create_with_a_forged_nonce_creates_nothing(sandbox, admin):
    create_form(admin)
    before = remote_total(sandbox)
    response = admin.post(reverse("endpoints:create"), create_data("made-up"))
    assert response.status_code == 409
    assert remote_total(sandbox) == before


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("username", "front desk", "only letters (a-z, A-Z) and digits (0-9)"),
        ("alias", "Jane's phone", "letters, digits, hyphens (-) and underscores (_)"),
        ("password", "short", "at least 8 characters"),
        ("username", "", "This field is required."),
    ],
)
def test_create_errors_are_shown_next_to_the_field_and_in_the_summary(
    sandbox, admin, field, value, message
):
    _, nonce = create_form(admin)
    before = remote_total(sandbox)
    response = admin.post(reverse("endpoints:create"), create_data(nonce, **{field: value}))
    html = page_text(response)
    assert response.status_code == 200
    assert "There is a problem" in html
    assert f'<a href="#id_{field}">' in html  # summary links to the field
    assert f'id="id_{field}_error"' in html and message in html
    assert 'aria-invalid="true"' in html
    if field != "username":
        assert f'value="{TYPED}"' in html  # what was typed is kept
    if field != "password":
        assert "Enter the password again" in html
    assert PASSWORD not in html
    assert remote_total(sandbox) == before
    # The same form (nonce) can be corrected and sent.
    fixed = admin.post(reverse("endpoints:create"), create_data(nonce))
    assert fixed.status_code == 200 and "This password will not be shown again." in page_text(fixed)


def test_create_duplicate_username_from_vobiz_is_shown_on_the_field(sandbox, admin, synced):
    existing = next(e.username for e in Endpoint.objects.all() if e.username.isalnum())
    _, nonce = create_form(admin)
    response = admin.post(reverse("endpoints:create"), create_data(nonce, username=existing))
    html = page_text(response)
    assert response.status_code == 200
    assert 'id="id_username_error"' in html and "username already exists" in html
    assert f'value="{existing}"' in html
    assert re.search(r'name="nonce" value="([^"]+)"', html).group(1) != nonce


def test_create_when_vobiz_is_down_keeps_the_form(sandbox, admin):
    _, nonce = create_form(admin)
    sandbox.fault(method="POST", path="/Endpoint/", status=503, times=1)
    before = Endpoint.objects.count()
    response = admin.post(reverse("endpoints:create"), create_data(nonce))
    html = page_text(response)
    assert response.status_code == 200
    assert "Vobiz is having problems (HTTP 503)." in html
    assert f'value="{TYPED}"' in html and 'value="Help-Desk"' in html
    assert PASSWORD not in html and "Enter the password again" in html
    assert Endpoint.objects.count() == before
    assert AuditEvent.objects.get(action="create").outcome == "failed"


def test_create_without_an_answer_says_it_is_uncertain(sandbox, admin):
    _, nonce = create_form(admin)
    sandbox.fault(method="POST", path="/Endpoint/", drop=True)
    response = admin.post(reverse("endpoints:create"), create_data(nonce))
    assert response.status_code == 200
    assert UNCERTAIN_CREATE in page_text(response)
    assert AuditEvent.objects.get(action="create").outcome == "uncertain"


# --- edit -----------------------------------------------------------------------------------


def edit_data(row, **overrides):
    data = {"alias": row.alias, "seen_alias": row.alias}
    for name in ("allow_voice", "allow_message", "allow_video"):
        if getattr(row, name):
            data[name] = "on"
        data[f"seen_{name}"] = str(getattr(row, name))
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_edit_form_shows_locked_fields_disabled(sandbox, admin, plain):
    response = admin.get(reverse("endpoints:edit", args=[plain.endpoint_id]))
    html = page_text(response)
    assert response.status_code == 200
    for name in ("username", "endpoint_id", "domain", "allow_same_domain",
                 "allow_other_domains", "allow_phones", "allow_apps"):
        assert re.search(rf'<input[^>]*name="{name}"[^>]*disabled', html), name
    assert "set at creation" in html
    assert f'name="seen_alias" value="{plain.alias}"' in html
    assert 'value="sip.vobiz.ai"' in html  # VOBIZ_SIP_DOMAIN, not the sip_uri's host
    assert ">Save</button>" in html


def test_edit_saves_changed_fields_and_redirects(sandbox, admin, plain):
    url = reverse("endpoints:edit", args=[plain.endpoint_id])
    response = admin.post(url, edit_data(plain, alias="Renamed-1", allow_video="on"))
    assert response.status_code == 302
    assert response["Location"] == reverse("endpoints:detail", args=[plain.endpoint_id])
    live = remote(sandbox, plain.endpoint_id)
    assert live["alias"] == "Renamed-1" and live["allow_video"] is True
    assert "Saved" in flash(response)[0]


def test_edit_htmx_invalid_answers_422_with_the_form_fragment(sandbox, admin, plain):
    url = reverse("endpoints:edit", args=[plain.endpoint_id])
    response = admin.post(url, edit_data(plain, alias="bad alias!"), **HX)
    html = page_text(response)
    assert response.status_code == 422
    assert "<html" not in html and 'id="edit-form"' in html
    assert 'value="bad alias!"' in html and "There is a problem" in html
    assert remote(sandbox, plain.endpoint_id)["alias"] == plain.alias


def test_edit_htmx_success_redirects_the_whole_page(sandbox, admin, plain):
    url = reverse("endpoints:edit", args=[plain.endpoint_id])
    response = admin.post(url, edit_data(plain, alias="Via-Htmx"), **HX)
    assert response["HX-Redirect"] == reverse("endpoints:detail", args=[plain.endpoint_id])
    assert remote(sandbox, plain.endpoint_id)["alias"] == "Via-Htmx"


def test_edit_history_restore_gets_the_full_page(sandbox, admin, plain):
    response = admin.get(reverse("endpoints:edit", args=[plain.endpoint_id]), **HISTORY_RESTORE)
    assert "<html" in page_text(response)


def test_edit_ignores_forged_locked_fields(sandbox, admin, plain):
    before = remote(sandbox, plain.endpoint_id)
    sandbox.reset_stats()
    forged = edit_data(plain, alias="Forged-1", username="hijacked", endpoint_id="1",
                       allow_phones="" if before["allow_phones"] else "on",
                       allow_apps="", allow_same_domain="", allow_other_domains="on",
                       domain="evil.example")
    response = admin.post(reverse("endpoints:edit", args=[plain.endpoint_id]), forged)
    assert response.status_code == 302
    after = remote(sandbox, plain.endpoint_id)
    assert after["alias"] == "Forged-1"
    for name in ("username", "allow_phones", "allow_apps", "allow_same_domain",
                 "allow_other_domains", "sip_uri"):
        assert after[name] == before[name], name


def test_edit_of_a_legacy_alias_does_not_resend_it(sandbox, admin, synced):
    row = Endpoint.objects.get(username="john_doe")
    assert row.alias == "John's Desktop Phone"
    page = admin.get(reverse("endpoints:edit", args=[row.endpoint_id]))
    assert "John&#x27;s Desktop Phone" in page_text(page)
    video = "" if row.allow_video else "on"
    response = admin.post(reverse("endpoints:edit", args=[row.endpoint_id]),
                          edit_data(row, allow_video=video))
    assert response.status_code == 302
    live = remote(sandbox, row.endpoint_id)
    assert live["alias"] == "John's Desktop Phone"
    assert live["allow_video"] is (video == "on")
    event = AuditEvent.objects.get(action="update")
    assert list(event.changes) == ["allow_video"]


def test_edit_conflict_shows_what_changed(sandbox, admin, plain):
    sandbox.api("POST", f"Endpoint/{plain.endpoint_id}/", json={"alias": "Changed-Elsewhere"})
    response = admin.post(reverse("endpoints:edit", args=[plain.endpoint_id]),
                          edit_data(plain, alias="Mine-1"))
    html = page_text(response)
    assert response.status_code == 200
    assert (f"alias: you saw &#x27;{plain.alias}&#x27;, Vobiz now has "
            f"&#x27;Changed-Elsewhere&#x27;") in html
    assert 'name="seen_alias" value="Changed-Elsewhere"' in html
    assert remote(sandbox, plain.endpoint_id)["alias"] == "Changed-Elsewhere"


def test_edit_that_vobiz_did_not_apply_is_reported(sandbox, admin, plain):
    sandbox.fault(method="POST", path=f"/Endpoint/{plain.endpoint_id}/", status=202,
                  body="empty")
    response = admin.post(reverse("endpoints:edit", args=[plain.endpoint_id]),
                          edit_data(plain, alias="Ignored-1"))
    html = page_text(response)
    assert response.status_code == 200
    assert "Vobiz accepted the change but the endpoint still shows the old alias." in html
    assert 'value="Ignored-1"' in html


def test_edit_when_vobiz_is_down_keeps_the_input_and_the_cache(sandbox, admin, plain):
    sandbox.fault(method="POST", path=f"/Endpoint/{plain.endpoint_id}/", status=503)
    before = Endpoint.objects.get(pk=plain.pk)
    response = admin.post(reverse("endpoints:edit", args=[plain.endpoint_id]),
                          edit_data(plain, alias="Not-Saved"))
    html = page_text(response)
    assert response.status_code == 200
    assert 'value="Not-Saved"' in html and "Vobiz is having problems (HTTP 503)." in html
    assert Endpoint.objects.get(pk=plain.pk).alias == before.alias
    assert AuditEvent.objects.get(action="update").outcome == "failed"
    assert remote(sandbox, plain.endpoint_id)["alias"] == plain.alias


def test_edit_uncertain_write_says_so_and_rebases_on_the_reread(sandbox, admin, plain):
    sandbox.fault(method="POST", path=f"/Endpoint/{plain.endpoint_id}/", drop=True)
    response = admin.post(reverse("endpoints:edit", args=[plain.endpoint_id]),
                          edit_data(plain, alias="Maybe-1"))
    html = page_text(response)
    assert response.status_code == 200
    assert "may or may not have been made" in html and "re-read" in html
    assert AuditEvent.objects.get(action="update").outcome == "uncertain"


# --- reset password -------------------------------------------------------------------------


def test_password_page_names_the_devices_that_will_be_signed_out(sandbox, admin, plain):
    register_zoiper(sandbox, plain.endpoint_id)
    response = admin.get(reverse("endpoints:password", args=[plain.endpoint_id]))
    html = page_text(response)
    assert response.status_code == 200
    assert ("Zoiper v5.6.2 at 203.0.113.42:5060 will be signed out and must re-register "
            "with the new password.") in html
    assert ">New password</label>" in html and ">Reset password</button>" in html


def test_password_reset_reveals_once_and_lists_signed_out_devices(sandbox, admin, plain,
                                                                    caplog):
    caplog.set_level(logging.DEBUG)
    register_zoiper(sandbox, plain.endpoint_id)
    response = admin.post(reverse("endpoints:password", args=[plain.endpoint_id]),
                          {"password": PASSWORD})
    html = page_text(response)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert html.count(PASSWORD) == 1
    assert "This password will not be shown again." in html
    assert "Signed out: Zoiper v5.6.2 at 203.0.113.42:5060." in html
    assert remote(sandbox, plain.endpoint_id)["sip_contact"] is None
    later = admin.get(reverse("endpoints:detail", args=[plain.endpoint_id]))
    assert PASSWORD not in page_text(later)
    assert PASSWORD not in everything_stored()
    assert PASSWORD not in caplog.text


def test_password_reset_rejects_a_short_password(sandbox, admin, plain):
    response = admin.post(reverse("endpoints:password", args=[plain.endpoint_id]),
                          {"password": "short"})
    html = page_text(response)
    assert response.status_code == 200
    assert "Enter a password of at least 8 characters." in html
    assert AuditEvent.objects.filter(action="password_reset").count() == 0


def test_password_reset_failure_keeps_the_form_without_the_password(sandbox, admin, plain):
    sandbox.fault(method="POST", path=f"/Endpoint/{plain.endpoint_id}/", status=500)
    response = admin.post(reverse("endpoints:password", args=[plain.endpoint_id]),
                          {"password": PASSWORD})
    html = page_text(response)
    assert response.status_code == 200
    assert "Vobiz is having problems (HTTP 500)." in html
    assert "Enter the password again" in html
    assert PASSWORD not in html
    assert AuditEvent.objects.get(action="password_reset").outcome == "failed"


# --- application ----------------------------------------------------------------------------


def test_application_page_has_a_searchable_picker(sandbox, admin, plain):
    html = page_text(admin.get(reverse("endpoints:application", args=[plain.endpoint_id])))
    assert ">Application</label>" in html and ">Search applications</label>" in html
    assert "No application (detach)" in html
    for app in Application.objects.all():
        assert app.app_id in html


def test_attach_change_and_detach_application(sandbox, admin, synced):
    row = Endpoint.objects.get(username="sipuser_demo")  # seeded without an application
    assert row.app_id == ""
    url = reverse("endpoints:application", args=[row.endpoint_id])
    first, second = Application.objects.order_by("app_id")[:2]
    assert ">Attach application</button>" in page_text(admin.get(url))

    response = admin.post(url, {"application": first.app_id, "action": "attach"})
    assert response.status_code == 302
    assert flash(response) == [f"Attached {first.name} ({first.app_id}) to sipuser_demo."]
    assert remote(sandbox, row.endpoint_id)["application"].rstrip("/").endswith(first.app_id)

    html = page_text(admin.get(url))
    assert ">Change application</button>" in html and ">Detach application</button>" in html
    response = admin.post(url, {"application": second.app_id, "action": "attach"})
    assert flash(response) == [
        f"Changed the application of sipuser_demo to {second.name} ({second.app_id})."]
    assert remote(sandbox, row.endpoint_id)["application"].rstrip("/").endswith(second.app_id)

    response = admin.post(url, {"application": second.app_id, "action": "detach"})
    assert flash(response)[-1] == "Detached the application from sipuser_demo."
    assert remote(sandbox, row.endpoint_id)["application"] is None
    assert Endpoint.objects.get(pk=row.pk).app_id == ""


def test_application_change_vobiz_did_not_take_is_said_plainly(sandbox, admin, synced):
    row = Endpoint.objects.get(username="sipuser_demo")
    app = Application.objects.first()
    sandbox.fault(method="POST", path=f"/Endpoint/{row.endpoint_id}/", status=202,
                  body="empty")
    response = admin.post(reverse("endpoints:application", args=[row.endpoint_id]),
                          {"application": app.app_id, "action": "attach"})
    html = page_text(response)
    assert response.status_code == 200
    assert "Vobiz did not take the change." in html
    assert "still without an application" in html
    assert ">Attach application</button>" in html  # still on the form
    assert remote(sandbox, row.endpoint_id)["application"] is None


def test_application_failure_keeps_the_choice(sandbox, admin, synced):
    row = Endpoint.objects.get(username="sipuser_demo")
    app = Application.objects.first()
    sandbox.fault(method="POST", path=f"/Endpoint/{row.endpoint_id}/", status=503)
    response = admin.post(reverse("endpoints:application", args=[row.endpoint_id]),
                          {"application": app.app_id, "action": "attach"})
    html = page_text(response)
    assert response.status_code == 200
    assert "Vobiz is having problems (HTTP 503)." in html
    assert f'<option value="{app.app_id}" selected>' in html


# --- delete ---------------------------------------------------------------------------------


def test_delete_confirmation_names_the_endpoint_and_its_devices(sandbox, admin, plain):
    register_zoiper(sandbox, plain.endpoint_id)
    html = page_text(admin.get(reverse("endpoints:delete", args=[plain.endpoint_id])))
    assert f">Delete {plain.username}</button>" in html
    assert "Zoiper v5.6.2 at 203.0.113.42:5060 is registered now and will be disconnected" in html
    assert f'href="{reverse("endpoints:detail", args=[plain.endpoint_id])}">Cancel</a>' in html


def test_delete_removes_it_and_redirects_to_the_list(sandbox, admin, plain):
    response = admin.post(reverse("endpoints:delete", args=[plain.endpoint_id]))
    assert response.status_code == 302 and response["Location"] == reverse("endpoints:list")
    assert flash(response) == [f"Deleted endpoint {plain.username}."]
    assert sandbox.api("GET", f"Endpoint/{plain.endpoint_id}/").status_code == 404
    assert not Endpoint.objects.filter(pk=plain.pk).exists()


def test_delete_of_an_endpoint_already_gone_counts_as_done(sandbox, admin, plain):
    sandbox.api("DELETE", f"Endpoint/{plain.endpoint_id}/")
    response = admin.post(reverse("endpoints:delete", args=[plain.endpoint_id]))
    assert response.status_code == 302
    assert not Endpoint.objects.filter(pk=plain.pk).exists()
    assert AuditEvent.objects.get(action="delete").outcome == "done"


def test_delete_failure_stays_on_the_confirmation_with_the_error(sandbox, admin, plain):
    sandbox.fault(method="DELETE", path=f"/Endpoint/{plain.endpoint_id}/", status=500,
                  times=5)
    response = admin.post(reverse("endpoints:delete", args=[plain.endpoint_id]))
    html = page_text(response)
    assert response.status_code == 200
    assert "The endpoint was not deleted" in html and "HTTP 500" in html
    assert sandbox.api("GET", f"Endpoint/{plain.endpoint_id}/").status_code == 200
    assert Endpoint.objects.filter(pk=plain.pk).exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_support_cannot_delete(sandbox, support, plain, method):
    response = getattr(support, method)(reverse("endpoints:delete", args=[plain.endpoint_id]))
    assert response.status_code == 403
    assert sandbox.api("GET", f"Endpoint/{plain.endpoint_id}/").status_code == 200
    assert Endpoint.objects.filter(pk=plain.pk).exists()


def test_support_can_use_the_support_writes(sandbox, support, plain):
    for name in ("edit", "password", "application"):
        assert support.get(reverse(f"endpoints:{name}", args=[plain.endpoint_id])).status_code \
            == 200


def test_write_pages_of_a_gone_endpoint_are_404_not_500(sandbox, admin, plain):
    sandbox.api("DELETE", f"Endpoint/{plain.endpoint_id}/")
    for name in ("edit", "password", "application", "delete"):
        response = admin.get(reverse(f"endpoints:{name}", args=[plain.endpoint_id]))
        assert response.status_code == 404, name
        assert GONE_MESSAGE in page_text(response)


def test_hostile_values_from_vobiz_are_escaped_everywhere(sandbox, db, client, admin_user_role):
    from endpoints import sync

    sandbox.reset(hostile=True)
    sync.endpoint_sync_all(triggered_by="tests")
    client.force_login(admin_user_role)
    hostile = Endpoint.objects.filter(username__startswith="xss1").get()
    for name in ("detail", "edit", "password", "application", "delete"):
        html = page_text(client.get(reverse(f"endpoints:{name}", args=[hostile.endpoint_id])))
        assert "<script>alert" not in html, name
        assert "<img src=x" not in html, name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, name
