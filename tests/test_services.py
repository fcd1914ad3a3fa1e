"""Write services against the sandbox: Vobiz first, then the cache, then the audit log."""

import logging

import pytest
from django.contrib.sessions.models import Session

from endpoints import services
from endpoints.models import AuditEvent, Endpoint
from endpoints.scopes import EVERYTHING
from endpoints.vobiz import VobizNotFound, VobizRequestError, VobizUnavailable

PASSWORD = "Fresh-Password-123"


@pytest.fixture
def row(synced):
    return Endpoint.objects.order_by("username").first()


def _remote(sandbox, endpoint_id):
    return sandbox.api("GET", f"Endpoint/{endpoint_id}/").json()


def _all_text_in_db():
    rows = [repr(list(model.objects.values())) for model in (Endpoint, AuditEvent, Session)]
    return "\n".join(rows)


def test_fetch_refreshes_the_cache_row(sandbox, row):
    sandbox.api("POST", f"Endpoint/{row.endpoint_id}/", json={"alias": "Live-Value"})
    fresh = services.endpoint_fetch(scope=EVERYTHING, endpoint_id=row.endpoint_id)
    assert fresh.alias == "Live-Value"
    assert Endpoint.objects.get(pk=row.pk).alias == "Live-Value"


def test_fetch_of_an_endpoint_deleted_elsewhere_drops_it_from_the_cache(sandbox, row):
    sandbox.api("DELETE", f"Endpoint/{row.endpoint_id}/")
    with pytest.raises(VobizNotFound):
        services.endpoint_fetch(scope=EVERYTHING, endpoint_id=row.endpoint_id)
    assert not Endpoint.objects.filter(pk=row.pk).exists()


def test_fetch_failure_leaves_the_cache_row(sandbox, row):
    sandbox.fault(path=f"/Endpoint/{row.endpoint_id}/", status=503, times=5)
    with pytest.raises(VobizUnavailable):
        services.endpoint_fetch(scope=EVERYTHING, endpoint_id=row.endpoint_id)
    assert Endpoint.objects.get(pk=row.pk).fingerprint == row.fingerprint


def test_create_learns_the_stored_username_and_audits_without_password(
    sandbox, synced, admin_user_role, caplog
):
    caplog.set_level(logging.DEBUG)
    outcome = services.endpoint_create(scope=EVERYTHING,
        user=admin_user_role,
        data={"username": "zendeskagent", "password": PASSWORD, "alias": "Help-Desk",
              "application": "", "allow_video": True},
    )
    assert outcome.username_rewritten
    assert outcome.endpoint.username.startswith("zendeskagent")
    assert outcome.endpoint.username == _remote(sandbox, outcome.endpoint.endpoint_id)["username"]
    assert outcome.endpoint.allow_video is True
    event = AuditEvent.objects.get(action="create")
    assert event.outcome == "done" and event.user == admin_user_role
    assert event.changes["username"] == [None, outcome.endpoint.username]
    assert "password" not in event.changes
    assert PASSWORD not in _all_text_in_db()
    assert PASSWORD not in caplog.text


def test_create_without_application_falls_back_to_the_default_app(sandbox, synced, admin_user_role):
    outcome = services.endpoint_create(scope=EVERYTHING,
        user=admin_user_role, data={"username": "plain", "password": PASSWORD}
    )
    default = sandbox.api("GET", "Application/").json()["objects"]
    default_id = next(a["app_id"] for a in default if a["default_endpoint_app"])
    assert outcome.endpoint.app_id == default_id


def test_create_refused_by_vobiz_records_the_failure(sandbox, synced, admin_user_role):
    with pytest.raises(VobizRequestError) as info:
        services.endpoint_create(scope=EVERYTHING, user=admin_user_role,
                                 data={"username": "bad name", "password": PASSWORD})
    assert "username" in info.value.field_errors
    assert Endpoint.objects.count() == 30
    event = AuditEvent.objects.get(action="create")
    assert event.outcome == "failed" and event.message


def test_create_that_times_out_is_recorded_as_uncertain(sandbox, synced, admin_user_role):
    sandbox.fault(method="POST", path="/Endpoint/", drop=True, times=1)
    with pytest.raises(VobizUnavailable) as info:
        services.endpoint_create(scope=EVERYTHING, user=admin_user_role,
                                 data={"username": "maybe", "password": PASSWORD})
    assert info.value.uncertain
    assert AuditEvent.objects.get(action="create").outcome == "uncertain"
    assert sandbox.stats()["requests"]["POST /Endpoint/"] == 1


def test_update_sends_only_changed_fields_and_verifies(sandbox, row, support_user):
    endpoint = services.endpoint_update(scope=EVERYTHING,
        user=support_user, endpoint_id=row.endpoint_id,
        changes={"alias": "New-Alias", "allow_voice": row.allow_voice,
                 "allow_video": not row.allow_video},
    )
    assert endpoint.alias == "New-Alias"
    assert endpoint.allow_video is (not row.allow_video)
    event = AuditEvent.objects.get(action="update")
    assert set(event.changes) == {"alias", "allow_video"}
    assert event.changes["alias"] == [row.alias, "New-Alias"]


def test_update_ignores_locked_fields(sandbox, row, support_user):
    services.endpoint_update(scope=EVERYTHING,
        user=support_user, endpoint_id=row.endpoint_id,
        changes={"allow_phones": not row.allow_phones, "username": "hijack", "alias": "Ok-1"},
    )
    remote = _remote(sandbox, row.endpoint_id)
    assert remote["allow_phones"] == row.allow_phones
    assert remote["username"] == row.username


def test_update_refuses_when_the_field_changed_at_vobiz_meanwhile(sandbox, row, support_user):
    sandbox.api("POST", f"Endpoint/{row.endpoint_id}/", json={"alias": "Someone-Else"})
    with pytest.raises(services.EditConflict) as info:
        services.endpoint_update(scope=EVERYTHING, user=support_user, endpoint_id=row.endpoint_id,
                                 changes={"alias": "Mine"}, seen={"alias": row.alias})
    assert info.value.changes == {"alias": (row.alias, "Someone-Else")}
    assert _remote(sandbox, row.endpoint_id)["alias"] == "Someone-Else"
    assert Endpoint.objects.get(pk=row.pk).alias == "Someone-Else"  # cache shows the truth


def test_update_does_not_overwrite_untouched_fields_changed_elsewhere(sandbox, row, support_user):
    sandbox.api("POST", f"Endpoint/{row.endpoint_id}/",
                json={"allow_video": not row.allow_video})
    services.endpoint_update(scope=EVERYTHING, user=support_user, endpoint_id=row.endpoint_id,
                             changes={"alias": "Mine-2"},
                             seen={"alias": row.alias, "allow_video": row.allow_video})
    remote = _remote(sandbox, row.endpoint_id)
    assert remote["alias"] == "Mine-2"
    assert remote["allow_video"] == (not row.allow_video)


def test_update_that_vobiz_acknowledges_but_ignores_is_reported(sandbox, row, support_user):
    sandbox.fault(method="POST", path=f"/Endpoint/{row.endpoint_id}/", status=202, body="empty")
    with pytest.raises(services.WriteNotApplied):
        services.endpoint_update(scope=EVERYTHING, user=support_user, endpoint_id=row.endpoint_id,
                                 changes={"alias": "Ignored"})
    assert AuditEvent.objects.get(action="update").outcome == "failed"


def test_failed_update_changes_nothing_locally(sandbox, row, support_user):
    sandbox.fault(method="POST", path=f"/Endpoint/{row.endpoint_id}/", status=500)
    with pytest.raises(VobizUnavailable):
        services.endpoint_update(scope=EVERYTHING, user=support_user, endpoint_id=row.endpoint_id,
                                 changes={"alias": "Nope"})
    assert Endpoint.objects.get(pk=row.pk).alias == row.alias
    event = AuditEvent.objects.get(action="update")
    assert event.outcome == "failed" and "HTTP 500" in event.message


def test_uncertain_update_rereads_the_endpoint(sandbox, row, support_user, settings):
    settings.VOBIZ_READ_TIMEOUT = 0.3
    sandbox.api("POST", f"Endpoint/{row.endpoint_id}/", json={"allow_video": True})
    sandbox.fault(method="POST", path=f"/Endpoint/{row.endpoint_id}/", delay=1.0)
    with pytest.raises(VobizUnavailable) as info:
        services.endpoint_update(scope=EVERYTHING, user=support_user, endpoint_id=row.endpoint_id,
                                 changes={"alias": "Perhaps"})
    assert info.value.uncertain
    assert AuditEvent.objects.get(action="update").outcome == "uncertain"
    assert Endpoint.objects.get(pk=row.pk).allow_video is True  # re-read after the doubt


def test_password_reset_signs_out_devices_and_keeps_no_password(sandbox, row, support_user,
                                                                caplog):
    caplog.set_level(logging.DEBUG)
    sandbox.register(row.endpoint_id, contact="sip:x@203.0.113.7:5060", user_agent="Zoiper 5",
                     expires_in=600)
    outcome = services.endpoint_password_reset(scope=EVERYTHING,
                                               user=support_user, endpoint_id=row.endpoint_id,
                                               password=PASSWORD)
    assert [device.user_agent for device in outcome.signed_out] == ["Zoiper 5"]
    assert _remote(sandbox, row.endpoint_id)["sip_registered"] == "false"
    assert outcome.endpoint.sip_registered is False
    event = AuditEvent.objects.get(action="password_reset")
    assert event.outcome == "done" and "1 registered device" in event.message
    assert PASSWORD not in _all_text_in_db()
    assert PASSWORD not in caplog.text


def test_password_reset_refused_for_short_password(sandbox, row, support_user):
    with pytest.raises(VobizRequestError) as info:
        services.endpoint_password_reset(scope=EVERYTHING,
                                         user=support_user, endpoint_id=row.endpoint_id,
                                         password="short")
    assert "password" in info.value.field_errors


def _other_app(sandbox, current):
    apps = sandbox.api("GET", "Application/").json()["objects"]
    return next(a["app_id"] for a in apps if a["app_id"] != current)


def test_attach_change_and_detach_application(sandbox, row, support_user):
    target = _other_app(sandbox, row.app_id)
    endpoint = services.endpoint_application_set(scope=EVERYTHING, user=support_user,
                                                 endpoint_id=row.endpoint_id, app_id=target)
    assert endpoint.app_id == target and endpoint.app_name
    assert _remote(sandbox, row.endpoint_id)["application"].rstrip("/").endswith(target)
    endpoint = services.endpoint_application_set(scope=EVERYTHING, user=support_user,
                                                 endpoint_id=row.endpoint_id, app_id="")
    assert endpoint.app_id == ""
    assert _remote(sandbox, row.endpoint_id)["application"] is None
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "outcome"))
    assert actions == [("attach_application", "done"), ("detach_application", "done")]


def test_application_change_that_did_not_take_is_reported(sandbox, row, support_user):
    target = _other_app(sandbox, row.app_id)
    sandbox.fault(method="POST", path=f"/Endpoint/{row.endpoint_id}/", status=202, body="empty")
    with pytest.raises(services.WriteNotApplied) as info:
        services.endpoint_application_set(scope=EVERYTHING,
                                          user=support_user, endpoint_id=row.endpoint_id,
                                          app_id=target)
    assert "did not change the application" in info.value.message


def test_application_honoured_on_update_variant_still_links(sandbox, row, support_user):
    sandbox.config(honour_application_on_update=True)
    target = _other_app(sandbox, row.app_id)
    endpoint = services.endpoint_application_set(scope=EVERYTHING, user=support_user,
                                                 endpoint_id=row.endpoint_id, app_id=target)
    assert endpoint.app_id == target


def test_delete_removes_remote_and_cache(sandbox, row, admin_user_role):
    services.endpoint_delete(scope=EVERYTHING, user=admin_user_role, endpoint_id=row.endpoint_id)
    assert sandbox.api("GET", f"Endpoint/{row.endpoint_id}/").status_code == 404
    assert not Endpoint.objects.filter(pk=row.pk).exists()
    assert AuditEvent.objects.get(action="delete").outcome == "done"


def test_delete_of_an_endpoint_already_gone_counts_as_done(sandbox, row, admin_user_role):
    sandbox.api("DELETE", f"Endpoint/{row.endpoint_id}/")
    services.endpoint_delete(scope=EVERYTHING, user=admin_user_role, endpoint_id=row.endpoint_id)
    assert not Endpoint.objects.filter(pk=row.pk).exists()
    assert "no longer had" in AuditEvent.objects.get(action="delete").message


def test_failed_delete_keeps_the_cache_row(sandbox, row, admin_user_role):
    sandbox.fault(method="DELETE", path="/Endpoint/", status=500)
    with pytest.raises(VobizUnavailable):
        services.endpoint_delete(scope=EVERYTHING,
                                 user=admin_user_role, endpoint_id=row.endpoint_id)
    assert Endpoint.objects.filter(pk=row.pk).exists()
    assert AuditEvent.objects.get(action="delete").outcome == "failed"


def test_create_whose_read_back_fails_still_returns_the_endpoint(sandbox, synced,
                                                                 admin_user_role):
    sandbox.fault(method="GET", path="/Endpoint/", status=500, times=1)
    outcome = services.endpoint_create(scope=EVERYTHING,
        user=admin_user_role, data={"username": "readback", "password": PASSWORD}
    )
    assert "could not be read back" in outcome.unverified
    stored = sandbox.api("GET", f"Endpoint/{outcome.endpoint.endpoint_id}/").json()
    assert outcome.endpoint.username == stored["username"]  # the short create body names it
    event = AuditEvent.objects.get(action="create")
    assert event.outcome == "done" and "could not be read back" in event.message
    assert sandbox.stats()["requests"]["POST /Endpoint/"] == 1
