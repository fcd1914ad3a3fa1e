"""The Vobiz API sandbox over real loopback HTTP: routes, variants, faults and control routes.

These tests need no database: they talk to a SandboxServer started in this module.
"""

import concurrent.futures
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from vobizadmin.sandbox.management.commands.runsandbox import parse_addrport
from vobizadmin.sandbox.server import SandboxServer, is_loopback

AUTH_ID = "MA_TESTSB01"
TOKEN = "test-token"
START = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
SEED_ENDPOINTS = 40
SEED_APPS = 4
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ENDPOINT_KEYS = {
    "endpoint_id",
    "username",
    "alias",
    "sip_uri",
    "sip_registered",
    "sip_contact",
    "sip_expires",
    "sip_user_agent",
    "application",
    "allow_voice",
    "allow_message",
    "allow_video",
    "allow_same_domain",
    "allow_other_domains",
    "allow_phones",
    "allow_apps",
    "sub_account",
    "resource_uri",
    "created_at",
    "updated_at",
}
APP_KEYS = {
    "app_id",
    "app_name",
    "answer_url",
    "answer_method",
    "hangup_url",
    "hangup_method",
    "fallback_answer_url",
    "fallback_method",
    "message_url",
    "message_method",
    "default_endpoint_app",
    "default_app",
    "enabled",
    "application_type",
    "sip_uri",
    "sub_account",
    "resource_uri",
    "created_at",
    "updated_at",
}
DEFAULT_CONFIG = {
    "username_suffix": True,
    "application_shape": "uri",
    "honour_application_on_update": False,
    "error_envelope": "flat",
    "create_body": "short",
    "update_body": "empty",
    "object_shape": "full",
    "strict_types": False,
    "max_limit": 100,
    "ignore_on_create": [],
    "churn": False,
}


class FakeClock:
    """A settable UTC clock the sandbox reads instead of the system time."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Sandbox:
    """Test helper: API calls with the right credentials, and control-route calls."""

    def __init__(self, server: SandboxServer, clock: FakeClock):
        self.server = server
        self.clock = clock
        self.http = requests.Session()
        self.headers = {"X-Auth-ID": server.auth_id, "X-Auth-Token": server.auth_token}

    def api(self, method, path, *, headers=None, **kwargs):
        url = f"{self.server.api_url}/Account/{self.server.auth_id}/{path}"
        kwargs.setdefault("timeout", 10)
        return self.http.request(method, url, headers=headers or self.headers, **kwargs)

    def control(self, method, path, payload=None):
        kwargs = {} if payload is None else {"json": payload}
        return self.http.request(
            method, f"{self.server.base_url}/_sandbox/{path}", timeout=30, **kwargs
        )

    def ok(self, method, path, payload=None):
        response = self.control(method, path, payload)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def endpoints(self, **params):
        params.setdefault("limit", 100)
        response = self.api("GET", "Endpoint/", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def first(self, **params):
        return self.endpoints(**params)["objects"][0]

    def get(self, endpoint_id):
        response = self.api("GET", f"Endpoint/{endpoint_id}/")
        assert response.status_code == 200, response.text
        return response.json()

    def create(self, **body):
        body.setdefault("password", "Secret-pass-1")
        return self.api("POST", "Endpoint/", json=body)

    def update(self, endpoint_id, **body):
        return self.api("POST", f"Endpoint/{endpoint_id}/", json=body)

    def apps(self):
        return self.api("GET", "Application/", params={"limit": 100}).json()["objects"]

    def default_app_id(self):
        return next(a["app_id"] for a in self.apps() if a["default_endpoint_app"])

    def registered_ids(self):
        return {
            o["endpoint_id"] for o in self.endpoints()["objects"] if o["sip_contact"] is not None
        }


@pytest.fixture(scope="module")
def sandbox_parts():
    clock = FakeClock(START)
    server = SandboxServer(
        host="127.0.0.1",
        port=0,
        auth_id=AUTH_ID,
        auth_token=TOKEN,
        endpoints=SEED_ENDPOINTS,
        applications=SEED_APPS,
        seed=7,
        clock=clock,
    ).start()
    yield server, clock
    server.stop()


@pytest.fixture
def sb(sandbox_parts):
    """The module's sandbox, reseeded with default variants, no faults, zeroed stats."""
    server, clock = sandbox_parts
    clock.now = START
    helper = Sandbox(server, clock)
    helper.ok("DELETE", "faults")
    helper.ok("POST", "config", DEFAULT_CONFIG)
    helper.ok(
        "POST",
        "reset",
        {"endpoints": SEED_ENDPOINTS, "applications": SEED_APPS, "seed": 7, "hostile": False},
    )
    helper.ok("DELETE", "stats")
    yield helper
    helper.control("DELETE", "faults")


def _stable(page):
    """A list page without its per-response api_id."""
    return {"meta": page["meta"], "objects": page["objects"]}


# --- reads ---------------------------------------------------------------------------------


def test_list_answers_first_page_with_meta_and_default_limit(sb):
    response = sb.api("GET", "Endpoint/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    page = response.json()
    assert UUID.fullmatch(page["api_id"])
    assert page["meta"] == {
        "limit": 20,
        "offset": 0,
        "total_count": SEED_ENDPOINTS,
        "next": f"/v1/Account/{AUTH_ID}/Endpoint/?limit=20&offset=20",
        "previous": None,
    }
    assert len(page["objects"]) == 20


def test_endpoint_objects_carry_every_documented_field_in_documented_types(sb):
    for obj in sb.endpoints()["objects"]:
        assert set(obj) == ENDPOINT_KEYS
        assert re.fullmatch(r"\d{15}", obj["endpoint_id"])
        assert obj["sip_registered"] in ("true", "false")
        assert obj["sip_uri"] in (
            f"sip:{obj['username']}@registrar.vobiz.ai",
            f"sip:{obj['username']}@sip.vobiz.ai",  # the legacy doc records
        )
        assert obj["resource_uri"] == f"/v1/Account/{AUTH_ID}/Endpoint/{obj['endpoint_id']}/"
        assert ISO_Z.fullmatch(obj["created_at"]) and ISO_Z.fullmatch(obj["updated_at"])
        for name in (
            "allow_voice",
            "allow_message",
            "allow_video",
            "allow_same_domain",
            "allow_other_domains",
            "allow_phones",
            "allow_apps",
        ):
            assert isinstance(obj[name], bool)
        if obj["application"] is not None:
            assert re.fullmatch(rf"/v1/Account/{AUTH_ID}/Application/\d{{17}}/", obj["application"])
        if obj["sip_contact"] is None:
            assert obj["sip_registered"] == "false"
            assert obj["sip_expires"] is None and obj["sip_user_agent"] is None
        else:
            assert ISO_Z.fullmatch(obj["sip_expires"])
        assert obj["sub_account"] is None or obj["sub_account"].startswith("SA_")


def test_retrieve_adds_api_id_and_sip_registration_when_registered(sb):
    registered = sb.first(**{"username__exact": "john_doe"})
    detail = sb.get(registered["endpoint_id"])
    assert UUID.fullmatch(detail["api_id"])
    assert detail["sip_registered"] == "true"
    assert detail["sip_registration"] == {
        "contact": "192.168.1.100:5060",
        "expires": detail["sip_expires"],
        "user_agent": "Zoiper v5.4.5",
        "received": "203.0.113.42:5060",
        "path": None,
    }
    unregistered = next(o for o in sb.endpoints()["objects"] if o["sip_contact"] is None)
    detail = sb.get(unregistered["endpoint_id"])
    assert "sip_registration" not in detail
    assert set(detail) == ENDPOINT_KEYS | {"api_id"}


def test_retrieve_unknown_endpoint_answers_404_with_its_id(sb):
    response = sb.api("GET", "Endpoint/123456789012345/")
    assert response.status_code == 404
    assert response.json() == {"error": "Endpoint not found", "endpoint_id": "123456789012345"}


def test_missing_credentials_answer_401(sb):
    for headers in ({}, {"X-Auth-ID": AUTH_ID}, {"X-Auth-Token": TOKEN}):
        response = sb.api("GET", "Endpoint/", headers=headers or {"X-Other": "1"})
        assert response.status_code == 401
        assert response.json() == {"error": "invalid credentials"}


def test_wrong_token_or_account_answers_401(sb):
    wrong_token = sb.api("GET", "Endpoint/", headers={"X-Auth-ID": AUTH_ID, "X-Auth-Token": "x"})
    assert wrong_token.status_code == 401
    other_account = {"X-Auth-ID": "MA_OTHER", "X-Auth-Token": TOKEN}
    assert sb.api("GET", "Endpoint/", headers=other_account).status_code == 401
    # Right headers, but the path names another account.
    url = f"{sb.server.api_url}/Account/MA_OTHER/Endpoint/"
    response = sb.http.get(url, headers=sb.headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid credentials"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/Account/{auth}/Number/",
        "/api/v1/Account/{auth}/endpoint/",
        "/api/v1/Account/{auth}/Endpoint",
        "/api/v1/Account/{auth}/Endpoint/1/extra/",
        "/api/v2/Account/{auth}/Endpoint/",
        "/favicon.ico",
    ],
)
def test_unknown_paths_answer_404_json(sb, path):
    response = sb.http.get(
        sb.server.base_url + path.format(auth=AUTH_ID), headers=sb.headers, timeout=10
    )
    assert response.status_code == 404
    assert response.json()["error"] == "not found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "Endpoint/{id}/", "GET, POST, DELETE"),
        ("PATCH", "Endpoint/{id}/", "GET, POST, DELETE"),
        ("DELETE", "Endpoint/", "GET, POST"),
        ("POST", "Application/", "GET"),
        ("DELETE", "Application/{app}/", "GET"),
    ],
)
def test_wrong_method_answers_405_with_allow_header(sb, method, path, allow):
    path = path.format(id=sb.first()["endpoint_id"], app=sb.apps()[0]["app_id"])
    response = sb.api(method, path, json={})
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.json()["error"] == "method not allowed"


def test_applications_carry_every_contract_field_and_one_default_endpoint_app(sb):
    page = sb.api("GET", "Application/").json()
    assert page["meta"]["total_count"] == SEED_APPS
    apps = page["objects"]
    assert len(apps) == SEED_APPS
    for app in apps:
        assert set(app) == APP_KEYS
        assert re.fullmatch(r"\d{17}", app["app_id"])
        assert app["application_type"] == "XML"
        assert app["resource_uri"] == f"/v1/Account/{AUTH_ID}/Application/{app['app_id']}/"
        assert app["answer_url"].startswith("https://")
    assert sum(app["default_endpoint_app"] for app in apps) == 1
    assert "Support IVR" in {app["app_name"] for app in apps}


def test_application_retrieve_answers_object_or_404(sb):
    app = sb.apps()[2]
    response = sb.api("GET", f"Application/{app['app_id']}/")
    assert response.status_code == 200
    body = response.json()
    assert UUID.fullmatch(body.pop("api_id"))
    assert body == app
    missing = sb.api("GET", "Application/11111111111111111/")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Application not found", "app_id": "11111111111111111"}


def test_application_list_pages_with_limit_and_offset(sb):
    page = sb.api("GET", "Application/", params={"limit": 3, "offset": 0}).json()
    assert len(page["objects"]) == 3
    assert page["meta"]["next"] == f"/v1/Account/{AUTH_ID}/Application/?limit=3&offset=3"
    second = sb.api("GET", "Application/", params={"limit": 3, "offset": 3}).json()
    assert len(second["objects"]) == 1
    assert second["meta"]["next"] is None
    assert second["meta"]["previous"] == f"/v1/Account/{AUTH_ID}/Application/?limit=3&offset=0"
    assert sb.api("GET", "Application/", params={"limit": 101}).status_code == 400


# --- create ----------------------------------------------------------------------------------


def test_create_rewrites_username_with_numeric_suffix(sb):
    response = sb.create(username="zendeskagent", alias="Agent-1")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"alias", "endpoint_id", "username"}
    assert re.fullmatch(r"zendeskagent\d{19,22}", body["username"])
    stored = sb.get(body["endpoint_id"])
    assert stored["username"] == body["username"]
    assert stored["sip_uri"] == f"sip:{body['username']}@registrar.vobiz.ai"
    assert stored["alias"] == "Agent-1"
    assert re.fullmatch(r"\d{15}", body["endpoint_id"])
    assert sb.endpoints(username__exact="zendeskagent")["meta"]["total_count"] == 0


def test_create_without_suffix_stores_username_as_typed(sb):
    sb.ok("POST", "config", {"username_suffix": False})
    body = sb.create(username="frontdesk7").json()
    assert body["username"] == "frontdesk7"
    assert sb.get(body["endpoint_id"])["username"] == "frontdesk7"


def test_create_reports_every_invalid_field_at_once(sb):
    response = sb.create(
        username="john_doe",
        password="short",
        alias="John's Phone",
        application=12345,
        allow_video="yes",
        sub_account="nobody",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid request parameters"
    assert set(body["details"]) == {
        "username",
        "password",
        "alias",
        "application",
        "allow_video",
        "sub_account",
    }
    assert sb.endpoints()["meta"]["total_count"] == SEED_ENDPOINTS


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "Secret-pass-1"}, "username"),
        ({"username": "", "password": "Secret-pass-1"}, "username"),
        ({"username": "alice 1", "password": "Secret-pass-1"}, "username"),
        ({"username": "ålice", "password": "Secret-pass-1"}, "username"),
        ({"username": "alice"}, "password"),
        ({"username": "alice", "password": "1234567"}, "password"),
        ({"username": "alice", "password": "Secret-pass-1", "alias": "a.b"}, "alias"),
        ({"username": "alice", "password": "Secret-pass-1", "application": "abc"}, "application"),
        ({"username": "alice", "password": "Secret-pass-1", "allow_apps": 1}, "allow_apps"),
    ],
)
def test_create_rejects_each_invalid_field_with_a_detail(sb, body, field):
    response = sb.api("POST", "Endpoint/", json=body)
    assert response.status_code == 400
    assert list(response.json()["details"]) == [field]


def test_create_rejects_a_body_that_is_not_a_json_object(sb):
    for data in (b"[1, 2]", b"{not json", b""):
        response = sb.api("POST", "Endpoint/", data=data)
        assert response.status_code == 400
        assert "body" in response.json()["details"]


def test_create_rejects_duplicate_username_with_409(sb):
    sb.ok("POST", "config", {"username_suffix": False})
    assert sb.create(username="dupe1").status_code == 201
    response = sb.create(username="dupe1")
    assert response.status_code == 409
    assert response.json() == {"error": "username already exists", "username": "dupe1"}
    sb.ok("POST", "config", {"username_suffix": True})
    stored = sb.create(username="dupe").json()["username"]
    assert sb.create(username="dupe").status_code == 201  # typed name is not a stored one
    assert sb.create(username=stored).status_code == 409


def test_create_without_application_falls_back_to_default_endpoint_app(sb):
    default = sb.default_app_id()
    body = sb.create(username="nolink").json()
    assert sb.get(body["endpoint_id"])["application"] == (
        f"/v1/Account/{AUTH_ID}/Application/{default}/"
    )
    sb.ok("POST", "reset", {"endpoints": 0, "applications": 0})
    body = sb.create(username="nolink").json()
    assert sb.get(body["endpoint_id"])["application"] is None


def test_create_links_application_and_sets_permissions_and_sub_account(sb):
    app = sb.apps()[3]
    body = sb.create(
        username="linked",
        application=int(app["app_id"]),
        allow_video=True,
        allow_phones=False,
        sub_account="SA_ABC123",
    ).json()
    stored = sb.get(body["endpoint_id"])
    assert stored["application"] == app["resource_uri"]
    assert stored["allow_video"] is True and stored["allow_phones"] is False
    assert stored["allow_voice"] is True and stored["allow_other_domains"] is False
    assert stored["sub_account"] == "SA_ABC123"
    assert stored["sip_registered"] == "false" and stored["sip_contact"] is None
    assert stored["created_at"] == stored["updated_at"] == "2025-11-01T12:00:00Z"


@pytest.mark.parametrize(
    ("shape", "keys"),
    [
        ("short", {"alias", "endpoint_id", "username"}),
        ("message", {"api_id", "message", "endpoint_id", "sip_uri", "resource_uri"}),
        ("full", ENDPOINT_KEYS | {"api_id"}),
    ],
)
def test_create_answers_the_configured_success_body(sb, shape, keys):
    sb.ok("POST", "config", {"create_body": shape})
    response = sb.create(username="shaped", alias="Shaped")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == keys
    if shape == "message":
        assert body["message"] == "created"
        assert body["resource_uri"] == f"/v1/Account/{AUTH_ID}/Endpoint/{body['endpoint_id']}/"
    assert sb.get(body["endpoint_id"])["alias"] == "Shaped"


def test_password_is_never_returned(sb):
    sb.ok("POST", "config", {"create_body": "full"})
    secret = "Never-echo-me-42"
    created = sb.create(username="secretive", password=secret)
    eid = created.json()["endpoint_id"]
    sb.update(eid, password="Another-secret-99")
    for text in (
        created.text,
        sb.api("GET", f"Endpoint/{eid}/").text,
        sb.api("GET", "Endpoint/", params={"limit": 100}).text,
    ):
        assert secret not in text and "Another-secret-99" not in text
        assert '"password"' not in text


# --- update ----------------------------------------------------------------------------------


def test_update_is_partial_and_bumps_updated_at(sb):
    before = sb.get(sb.first()["endpoint_id"])
    sb.clock.advance(90)
    response = sb.api("POST", f"Endpoint/{before['endpoint_id']}/", json={"alias": "New-Alias_1"})
    assert response.status_code == 202
    assert response.content == b""
    after = sb.get(before["endpoint_id"])
    assert after["alias"] == "New-Alias_1"
    assert after["updated_at"] == "2025-11-01T12:01:30Z"
    unchanged = {k: v for k, v in after.items() if k not in {"alias", "updated_at", "api_id"}}
    assert unchanged == {
        k: v for k, v in before.items() if k not in {"alias", "updated_at", "api_id"}
    }


def test_update_changes_the_editable_permissions(sb):
    eid = sb.first()["endpoint_id"]
    body = {"allow_voice": False, "allow_message": False, "allow_video": True}
    assert sb.api("POST", f"Endpoint/{eid}/", json=body).status_code == 202
    after = sb.get(eid)
    assert (after["allow_voice"], after["allow_message"], after["allow_video"]) == (
        False,
        False,
        True,
    )


def test_update_ignores_locked_fields(sb):
    before = sb.first()
    eid = before["endpoint_id"]
    locked = {
        "username": "renamed",
        "endpoint_id": "999999999999999",
        "domain": "evil.example",
        "allow_same_domain": not before["allow_same_domain"],
        "allow_other_domains": not before["allow_other_domains"],
        "allow_phones": not before["allow_phones"],
        "allow_apps": not before["allow_apps"],
        "sub_account": "SA_MOVED",
    }
    assert sb.api("POST", f"Endpoint/{eid}/", json=locked).status_code == 202
    after = sb.get(eid)
    for key in locked:
        if key != "domain":
            assert after[key] == before[key], key
    assert after["sip_uri"] == before["sip_uri"]


def test_update_honours_app_id_and_ignores_application(sb):
    eid = sb.first(application_id__isnull="false")["endpoint_id"]
    apps = sb.apps()
    current = sb.get(eid)["application"]
    other = next(a for a in apps if a["resource_uri"] != current)
    third = next(a for a in apps if a["resource_uri"] not in (current, other["resource_uri"]))
    assert sb.update(eid, application=other["app_id"]).status_code == 202
    assert sb.get(eid)["application"] == current
    assert sb.update(eid, application="not-even-an-id").status_code == 202
    response = sb.api(
        "POST", f"Endpoint/{eid}/", json={"app_id": other["app_id"], "application": third["app_id"]}
    )
    assert response.status_code == 202
    assert sb.get(eid)["application"] == other["resource_uri"]


def test_update_honours_application_when_switched_on(sb):
    sb.ok("POST", "config", {"honour_application_on_update": True})
    eid = sb.first()["endpoint_id"]
    target = sb.apps()[3]
    assert sb.update(eid, application=target["app_id"]).status_code == 202
    assert sb.get(eid)["application"] == target["resource_uri"]
    assert sb.update(eid, application=None).status_code == 202
    assert sb.get(eid)["application"] is None
    bad = sb.update(eid, application="22222222222222222")
    assert bad.status_code == 400
    assert set(bad.json()["details"]) == {"application"}


@pytest.mark.parametrize("detach", ["", None])
def test_update_detaches_application_with_empty_or_null_app_id(sb, detach):
    eid = sb.first(application_id__isnull="false")["endpoint_id"]
    assert sb.update(eid, app_id=detach).status_code == 202
    assert sb.get(eid)["application"] is None


def test_update_rejects_unknown_app_and_short_password_and_bad_alias(sb):
    before = sb.first()
    eid = before["endpoint_id"]
    response = sb.api(
        "POST",
        f"Endpoint/{eid}/",
        json={"app_id": "33333333333333333", "password": "short", "alias": "bad alias!"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid request parameters"
    assert set(response.json()["details"]) == {"app_id", "password", "alias"}
    after = sb.get(eid)
    assert after["alias"] == before["alias"] and after["updated_at"] == before["updated_at"]


def test_update_unknown_endpoint_answers_404(sb):
    response = sb.api("POST", "Endpoint/404404404404404/", json={"alias": "x"})
    assert response.status_code == 404
    assert response.json() == {"error": "Endpoint not found", "endpoint_id": "404404404404404"}


def test_password_change_drops_registrations(sb):
    eid = sb.first(username__exact="john_doe")["endpoint_id"]
    assert sb.get(eid)["sip_registered"] == "true"
    assert sb.update(eid, alias="Renamed").status_code == 202
    assert sb.get(eid)["sip_registered"] == "true"
    assert sb.update(eid, password="Brand-new-pass").status_code == 202
    after = sb.get(eid)
    assert after["sip_registered"] == "false"
    assert after["sip_contact"] is None and "sip_registration" not in after


@pytest.mark.parametrize(
    ("shape", "content"),
    [("empty", b""), ("text", b'"changed"'), ("message", b'{"message": "changed"}')],
)
def test_update_answers_the_configured_success_body(sb, shape, content):
    sb.ok("POST", "config", {"update_body": shape})
    response = sb.api("POST", f"Endpoint/{sb.first()['endpoint_id']}/", json={"alias": "X"})
    assert response.status_code == 202
    assert response.content == content


# --- delete ----------------------------------------------------------------------------------


def test_delete_answers_204_then_404_and_keeps_the_order_of_the_rest(sb):
    ids = [o["endpoint_id"] for o in sb.endpoints()["objects"]]
    victim = ids[5]
    response = sb.api("DELETE", f"Endpoint/{victim}/")
    assert response.status_code == 204
    assert response.content == b""
    again = sb.api("DELETE", f"Endpoint/{victim}/")
    assert again.status_code == 404
    assert again.json() == {"error": "Endpoint not found", "endpoint_id": victim}
    assert sb.api("GET", f"Endpoint/{victim}/").status_code == 404
    page = sb.endpoints()
    assert page["meta"]["total_count"] == SEED_ENDPOINTS - 1
    assert [o["endpoint_id"] for o in page["objects"]] == ids[:5] + ids[6:]
    assert sb.endpoints(limit=2, offset=5)["objects"][0]["endpoint_id"] == ids[6]


# --- registrations -----------------------------------------------------------------------------


def test_registration_renews_on_its_interval_while_the_device_refreshes(sb):
    eid = sb.first()["endpoint_id"]
    sb.ok("POST", f"registrations/{eid}", {"expires_in": 60, "renew": True})
    assert sb.get(eid)["sip_expires"] == "2025-11-01T12:01:00Z"
    sb.clock.advance(150)
    renewed = sb.get(eid)
    assert renewed["sip_registered"] == "true"
    assert renewed["sip_expires"] == "2025-11-01T12:03:00Z"


def test_registration_lapses_when_the_device_stops_refreshing(sb):
    eid = sb.first()["endpoint_id"]
    registered = sb.ok(
        "POST",
        f"registrations/{eid}",
        {
            "expires_in": 300,
            "renew": False,
            "contact": "sip:x@192.168.1.100:5060",
            "user_agent": "MicroSIP/3.21.3",
            "received": "198.51.100.7:41000",
        },
    )
    assert registered["sip_registered"] == "true"
    assert registered["sip_registration"]["received"] == "198.51.100.7:41000"
    sb.clock.advance(299)
    assert sb.get(eid)["sip_user_agent"] == "MicroSIP/3.21.3"
    sb.clock.advance(1)
    lapsed = sb.get(eid)
    assert lapsed["sip_registered"] == "false"
    assert (lapsed["sip_contact"], lapsed["sip_expires"], lapsed["sip_user_agent"]) == (
        None,
        None,
        None,
    )


def test_websocket_registration_keeps_sip_registered_false_but_fills_the_contact(sb):
    eid = sb.first()["endpoint_id"]
    contact = "sip:k2j4h5@df7jal23ls0d.invalid;transport=ws"
    sb.ok("POST", f"registrations/{eid}", {"contact": contact, "user_agent": "SIP.js/0.21.2"})
    obj = sb.get(eid)
    assert obj["sip_registered"] == "false"
    assert obj["sip_contact"] == contact
    assert obj["sip_user_agent"] == "SIP.js/0.21.2"
    assert obj["sip_expires"] == "2025-11-01T12:10:00Z"


def test_unregister_clears_registration_and_unknown_endpoint_answers_404(sb):
    eid = sb.first(username__exact="john_doe")["endpoint_id"]
    assert sb.ok("DELETE", f"registrations/{eid}")["sip_contact"] is None
    assert sb.get(eid)["sip_registered"] == "false"
    assert sb.control("POST", "registrations/123", {}).status_code == 404
    assert sb.control("DELETE", "registrations/123").status_code == 404
    assert sb.control("POST", f"registrations/{eid}", {"expires_in": -1}).status_code == 400


def test_seeded_registrations_renew_or_lapse_deterministically_as_time_passes(sb):
    before = sb.registered_ids()
    assert before
    sb.clock.advance(2 * 3600)
    after = sb.registered_ids()
    assert after < before  # some devices lapsed, the rest renewed
    assert len(after) > len(before) // 2
    now = sb.clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert all(o["sip_expires"] > now for o in sb.endpoints()["objects"] if o["sip_expires"])
    # Same seed, same clock: the same devices survive, however the reads were spread.
    sb.clock.now = START
    sb.ok("POST", "reset", {"seed": 7})
    sb.clock.advance(3600)
    sb.registered_ids()
    sb.clock.advance(3600)
    assert sb.registered_ids() == after


# --- list parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"application_id__isnull": "maybe"}, "application_id__isnull"),
        ({"application_id__exact": "abc"}, "application_id__exact"),
    ],
)
def test_list_rejects_bad_paging_and_filter_values_with_400(sb, params, field):
    response = sb.api("GET", "Endpoint/", params=params)
    assert response.status_code == 400
    assert list(response.json()["details"]) == [field]


def test_list_accepts_the_maximum_limit_of_100(sb):
    sb.ok("POST", "reset", {"endpoints": 150})
    page = sb.endpoints(limit=100)
    assert len(page["objects"]) == 100
    assert page["meta"]["next"] == f"/v1/Account/{AUTH_ID}/Endpoint/?limit=100&offset=100"
    assert len(sb.endpoints(limit=100, offset=100)["objects"]) == 50


def test_list_next_and_previous_keep_the_filters(sb):
    params = {"username__contains": "a", "application_id__isnull": "false", "limit": 2}
    page = sb.endpoints(**params, offset=2)
    base = f"/v1/Account/{AUTH_ID}/Endpoint/?username__contains=a&application_id__isnull=false"
    assert page["meta"]["next"] == f"{base}&limit=2&offset=4"
    assert page["meta"]["previous"] == f"{base}&limit=2&offset=0"
    follow = sb.http.get(
        sb.server.base_url + "/api" + page["meta"]["next"], headers=sb.headers, timeout=10
    ).json()
    assert follow["meta"]["offset"] == 4
    assert all("a" in o["username"] and o["application"] for o in follow["objects"])


@pytest.fixture
def filter_data(sb):
    """Three typed endpoints on an empty account: alpha1, alphabet2 (no app), beta3."""
    sb.ok("POST", "reset", {"endpoints": 0, "applications": 3})
    sb.ok("POST", "config", {"username_suffix": False})
    apps = [a["app_id"] for a in sb.apps()]
    made = {}
    for username, alias, extra in (
        ("alpha1", "Front-Desk_1", {"application": apps[0]}),
        ("alphabet2", "Back-Office", {}),
        ("beta3", "Front-Desk_10", {"application": apps[2], "sub_account": "SA_ONE"}),
    ):
        made[username] = sb.create(username=username, alias=alias, **extra).json()["endpoint_id"]
    sb.api("POST", f"Endpoint/{made['alphabet2']}/", json={"app_id": ""})
    return apps


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"username__contains": "pha"}, ["alpha1", "alphabet2"]),
        ({"username__contains": "PHA"}, []),
        ({"username__exact": "alpha1"}, ["alpha1"]),
        ({"username__startswith": "alpha"}, ["alpha1", "alphabet2"]),
        ({"username__startswith": "lpha"}, []),
        ({"alias__contains": "Front"}, ["alpha1", "beta3"]),
        ({"alias__exact": "Front-Desk_1"}, ["alpha1"]),
        ({"application_id__exact": 0}, ["alpha1"]),
        ({"application_id__exact": 2}, ["beta3"]),
        ({"application_id__isnull": "true"}, ["alphabet2"]),
        ({"application_id__isnull": "false"}, ["alpha1", "beta3"]),
        ({"sub_account": "SA_ONE"}, ["beta3"]),
        ({"username__contains": "a", "alias__contains": "Desk_1"}, ["alpha1", "beta3"]),
        ({"limit": 1, "offset": 1}, ["alphabet2"]),
        ({"offset": 2}, ["beta3"]),
        ({"offset": 3}, []),
    ],
)
def test_list_filters_select_matching_endpoints(sb, filter_data, params, expected):
    if "application_id__exact" in params:
        params = {"application_id__exact": filter_data[params["application_id__exact"]]}
    page = sb.endpoints(**params)
    assert [o["username"] for o in page["objects"]] == expected
    if "offset" not in params:
        assert page["meta"]["total_count"] == len(expected)


# --- variants ----------------------------------------------------------------------------------


def test_application_shape_object_renders_the_app_summary(sb):
    sb.ok("POST", "config", {"application_shape": "object"})
    linked = sb.first(application_id__isnull="false")
    app = next(a for a in sb.apps() if a["app_id"] == linked["application"]["app_id"])
    assert linked["application"] == {
        "app_id": app["app_id"],
        "app_name": app["app_name"],
        "answer_url": app["answer_url"],
        "answer_method": app["answer_method"],
    }
    assert sb.first(application_id__isnull="true")["application"] is None


def test_application_shape_empty_renders_empty_string_for_none(sb):
    sb.ok("POST", "config", {"application_shape": "empty"})
    assert sb.first(application_id__isnull="true")["application"] == ""
    linked = sb.first(application_id__isnull="false")["application"]
    assert re.fullmatch(rf"/v1/Account/{AUTH_ID}/Application/\d{{17}}/", linked)


def test_global_error_envelope_wraps_every_api_error(sb):
    sb.ok("POST", "config", {"error_envelope": "global"})
    sb.ok("POST", "config", {"username_suffix": False})
    sb.create(username="taken")
    sb.ok("POST", "faults", {"path": "offset=7", "status": 429, "retry_after": 3})
    sb.ok("POST", "faults", {"path": "offset=8", "status": 500})
    cases = [
        (sb.create(username="bad_name"), 422, "VALIDATION_ERROR", {"errors"}),
        (sb.api("GET", "Endpoint/", params={"limit": 101}), 422, "VALIDATION_ERROR", {"errors"}),
        (
            sb.api("GET", "Endpoint/", headers={"X-Auth-ID": AUTH_ID, "X-Auth-Token": "no"}),
            401,
            "UNAUTHORIZED",
            set(),
        ),
        (sb.api("GET", "Endpoint/777777777777777/"), 404, "NOT_FOUND", {"endpoint_id"}),
        (sb.api("GET", "Application/1/"), 404, "NOT_FOUND", {"app_id"}),
        (sb.create(username="taken"), 409, "CONFLICT", {"username"}),
        (sb.api("GET", "Endpoint/", params={"offset": 7}), 429, "RATE_LIMITED", set()),
        (sb.api("GET", "Endpoint/", params={"offset": 8}), 500, "INTERNAL_ERROR", set()),
    ]
    for response, status, code, detail_keys in cases:
        assert response.status_code == status
        body = response.json()
        assert set(body) == {"status", "error", "timestamp", "requestId"}
        assert body["status"] == "error"
        assert body["error"]["code"] == code
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert set(body["error"]["details"]) == detail_keys
        assert ISO_Z.fullmatch(body["timestamp"]) and UUID.fullmatch(body["requestId"])


def test_global_envelope_lists_each_invalid_field_with_the_value_sent(sb):
    sb.ok("POST", "config", {"error_envelope": "global"})
    response = sb.create(username="bad_name", password="short7!", alias="Fine-Alias")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["message"] == "invalid request parameters"
    assert error["details"] == {
        "errors": [
            {
                "field": "username",
                "message": "Only letters (a-z, A-Z) and digits (0-9) are allowed.",
                "code": "invalid_format",
                "value": "bad_name",
            },
            # The password is echoed: what a dashboard must never show or log.
            {
                "field": "password",
                "message": "Must be at least 8 characters.",
                "code": "too_short",
                "value": "short7!",
            },
        ]
    }
    eid = sb.first()["endpoint_id"]
    update = sb.update(eid, app_id="33333333333333333", alias="no spaces")
    assert update.status_code == 422
    errors = update.json()["error"]["details"]["errors"]
    assert [(e["field"], e["code"], e["value"]) for e in errors] == [
        ("alias", "invalid_format", "no spaces"),
        ("app_id", "not_found", "33333333333333333"),
    ]
    listed = sb.api("GET", "Endpoint/", params={"limit": "ten", "application_id__isnull": "maybe"})
    assert listed.status_code == 422
    assert [(e["field"], e["value"]) for e in listed.json()["error"]["details"]["errors"]] == [
        ("limit", "ten"),
        ("application_id__isnull", "maybe"),
    ]
    # The flat envelope keeps the documented 400 with field -> message, and no values.
    sb.ok("POST", "config", {"error_envelope": "flat"})
    flat = sb.create(username="bad_name", password="short7!")
    assert flat.status_code == 400
    assert "short7!" not in flat.text
    assert set(flat.json()["details"]) == {"username", "password"}


def test_config_route_shows_and_validates_switches(sb):
    assert sb.ok("GET", "config") == DEFAULT_CONFIG
    changed = sb.ok("POST", "config", {"create_body": "full", "update_body": "text"})
    assert changed == {**DEFAULT_CONFIG, "create_body": "full", "update_body": "text"}
    for bad in (
        {"create_body": "long"},
        {"username_suffix": 1},
        {"colour": "blue"},
        {"object_shape": "tiny"},
        {"strict_types": "yes"},
        {"max_limit": 0},
        {"max_limit": 101},
        {"max_limit": "20"},
        {"max_limit": True},
        {"ignore_on_create": ["username"]},
        {"ignore_on_create": "allow_video"},
    ):
        response = sb.control("POST", "config", bad)
        assert response.status_code == 400
        assert set(response.json()["details"]) == set(bad)
    assert sb.ok("GET", "config")["create_body"] == "full"


def test_constructor_switches_select_the_variants():
    server = SandboxServer(
        auth_id="MA_VARIANT1",
        auth_token="variant-token",
        endpoints=5,
        applications=2,
        seed=3,
        username_suffix=False,
        application_shape="object",
        honour_application_on_update=True,
        error_envelope="global",
        create_body="message",
        update_body="text",
        object_shape="full",
        strict_types=True,
        max_limit=3,
    ).start()
    try:
        helper = Sandbox(server, FakeClock(START))
        assert helper.ok("GET", "config") == {
            "username_suffix": False,
            "application_shape": "object",
            "honour_application_on_update": True,
            "error_envelope": "global",
            "create_body": "message",
            "update_body": "text",
            "object_shape": "full",
            "strict_types": True,
            "max_limit": 3,
            "ignore_on_create": [],
            "churn": False,
        }
        assert len(helper.endpoints()["objects"]) == 3
        created = helper.create(username="plain")
        assert created.status_code == 201
        assert created.json()["message"] == "created"
        eid = created.json()["endpoint_id"]
        assert helper.get(eid)["username"] == "plain"
        target = helper.apps()[0]["app_id"]
        update = helper.api("POST", f"Endpoint/{eid}/", json={"application": int(target)})
        assert update.content == b'"changed"'
        assert helper.get(eid)["application"]["app_id"] == target
        assert helper.api("GET", "Endpoint/9/").json()["status"] == "error"
    finally:
        server.stop()


def test_constructor_uses_the_documented_demo_credentials_by_default():
    server = SandboxServer(endpoints=1, applications=1)
    try:
        assert (server.auth_id, server.auth_token) == ("MA_SANDBOX01", "sandbox-token")
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.api_url == f"http://127.0.0.1:{server.port}/api/v1"
        assert server.port > 0
    finally:
        server.stop()


# --- faults ------------------------------------------------------------------------------------


def test_fault_answers_its_status_for_the_given_times_then_the_real_route(sb):
    spec = {"method": "GET", "path": "/Endpoint/", "status": 503, "times": 2}
    fault = sb.ok("POST", "faults", spec)
    assert fault["remaining"] == 2
    first = sb.api("GET", "Endpoint/")
    assert first.status_code == 503
    assert first.json() == {"error": "service unavailable"}
    assert sb.ok("GET", "faults")["faults"][0]["remaining"] == 1
    assert sb.api("GET", "Endpoint/").status_code == 503
    assert sb.ok("GET", "faults")["faults"] == []
    assert sb.api("GET", "Endpoint/").status_code == 200


def test_fault_matches_only_its_method_and_path(sb):
    sb.ok("POST", "faults", {"method": "delete", "path": "/Application/", "status": 500})
    sb.ok("POST", "faults", {"path": "offset=40", "status": 502})
    assert sb.api("GET", "Application/").status_code == 200
    assert sb.api("DELETE", "Endpoint/1/").status_code == 404
    assert sb.api("GET", "Endpoint/", params={"offset": 20}).status_code == 200
    assert sb.api("GET", "Endpoint/", params={"offset": 40}).status_code == 502
    response = sb.api("DELETE", "Application/1/")
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error"}


def test_fault_without_status_defaults_to_500_and_ignores_the_real_state(sb):
    sb.ok("POST", "faults", {"method": "POST", "path": "/Endpoint/", "body": {"error": "boom"}})
    response = sb.create(username="ghost")
    assert response.status_code == 500
    assert response.json() == {"error": "boom"}
    assert sb.endpoints(username__startswith="ghost")["meta"]["total_count"] == 0


def test_fault_delay_without_status_slows_the_real_answer(sb):
    sb.ok("POST", "faults", {"path": "/Endpoint/", "delay": 0.4})
    started = time.monotonic()
    response = sb.api("GET", "Endpoint/")
    assert time.monotonic() - started >= 0.4
    assert response.status_code == 200
    assert response.json()["meta"]["total_count"] == SEED_ENDPOINTS


def test_fault_delay_longer_than_the_read_timeout_makes_the_client_time_out(sb):
    sb.ok("POST", "faults", {"path": "/Endpoint/", "delay": 1.0})
    with pytest.raises(requests.exceptions.ReadTimeout):
        sb.api("GET", "Endpoint/", timeout=(1, 0.2))
    assert sb.api("GET", "Endpoint/").status_code == 200


def test_a_reset_drops_a_request_still_waiting_in_a_delay(sb):
    # A client that timed out on a delayed write must not have it land on the next test's data.
    before = sb.first()
    eid = before["endpoint_id"]
    sb.ok("POST", "faults", {"method": "POST", "path": f"/Endpoint/{eid}/", "delay": 0.5})
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        late = pool.submit(sb.update, eid, alias="Late")
        deadline = time.monotonic() + 10
        while sb.ok("GET", "faults")["faults"] and time.monotonic() < deadline:
            pass  # until the handler has taken the fault and is waiting
        sb.ok("POST", "reset", {"seed": 7})
        with pytest.raises(requests.exceptions.ConnectionError):
            late.result(timeout=10)
    assert sb.get(eid)["alias"] == before["alias"]
    assert sb.get(eid)["updated_at"] == before["updated_at"]


@pytest.mark.parametrize(
    ("spec", "status", "header"),
    [
        ({"status": 429, "retry_after": 2}, 429, "2"),
        (
            {"status": 503, "retry_after": "Wed, 21 Oct 2026 07:28:00 GMT"},
            503,
            "Wed, 21 Oct 2026 07:28:00 GMT",
        ),
        ({"retry_after": 7}, 429, "7"),
    ],
)
def test_fault_retry_after_sets_the_header(sb, spec, status, header):
    sb.ok("POST", "faults", spec)
    response = sb.api("GET", "Endpoint/")
    assert response.status_code == status
    assert response.headers["Retry-After"] == header
    assert response.json()["error"]


def test_fault_malformed_body_is_broken_json_with_a_json_content_type(sb):
    sb.ok("POST", "faults", {"status": 200, "body": "malformed"})
    response = sb.api("GET", "Endpoint/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.content
    with pytest.raises(ValueError):
        json.loads(response.content)


def test_fault_empty_body_has_zero_length(sb):
    sb.ok("POST", "faults", {"status": 200, "body": "empty"})
    response = sb.api("GET", "Endpoint/")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "0"
    assert response.content == b""


def test_fault_json_body_is_sent_as_is(sb):
    sb.ok("POST", "faults", {"status": 200, "body": [1, 2, 3]})
    assert sb.api("GET", "Endpoint/").json() == [1, 2, 3]
    sb.ok("POST", "faults", {"status": 422, "body": {"error": "custom", "message": "m"}})
    response = sb.api("GET", "Endpoint/")
    assert (response.status_code, response.json()) == (422, {"error": "custom", "message": "m"})


def test_fault_drop_closes_the_connection_without_an_answer(sb):
    sb.ok("POST", "faults", {"method": "GET", "path": "/Endpoint/", "drop": True})
    with pytest.raises(requests.exceptions.ConnectionError):
        sb.api("GET", "Endpoint/")
    assert sb.api("GET", "Endpoint/").status_code == 200


def test_faults_queue_in_order_and_delete_clears_them(sb):
    sb.ok("POST", "faults", {"path": "/Endpoint/", "status": 502})
    sb.ok("POST", "faults", {"path": "/Endpoint/", "status": 504})
    sb.ok("POST", "faults", {"path": "/Application/", "status": 500})
    assert sb.api("GET", "Endpoint/").status_code == 502
    assert sb.api("GET", "Endpoint/").status_code == 504
    assert [f["status"] for f in sb.ok("GET", "faults")["faults"]] == [500]
    assert sb.control("DELETE", "faults").status_code == 204
    assert sb.ok("GET", "faults")["faults"] == []
    assert sb.api("GET", "Application/").status_code == 200


def test_faults_never_touch_control_routes_and_reject_bad_specs(sb):
    sb.ok("POST", "faults", {"status": 500, "times": 5})
    assert sb.control("GET", "config").status_code == 200
    assert sb.ok("GET", "faults")["faults"][0]["remaining"] == 5
    for bad in ({"status": 99}, {"times": 0}, {"delay": -1}, {"drop": "yes"}, {"stauts": 500}):
        response = sb.control("POST", "faults", bad)
        assert response.status_code == 400, bad
        assert set(response.json()["details"]) == {next(iter(bad))}


# --- control: reset, hostile, mutate, stats, plant ---------------------------------------------


def test_reset_with_the_same_seed_gives_the_same_data_and_ids(sb):
    first = _stable(sb.endpoints())
    apps = sb.apps()
    sb.ok("POST", "reset", {"endpoints": SEED_ENDPOINTS, "applications": SEED_APPS, "seed": 7})
    assert _stable(sb.endpoints()) == first
    assert sb.apps() == apps
    summary = sb.ok("POST", "reset", {"seed": 8})
    assert summary == {
        "endpoints": SEED_ENDPOINTS,
        "applications": SEED_APPS,
        "seed": 8,
        "hostile": False,
    }
    other = sb.endpoints()["objects"]
    assert {o["endpoint_id"] for o in other}.isdisjoint(o["endpoint_id"] for o in first["objects"])


def test_reset_changes_the_sizes_and_rejects_bad_ones(sb):
    assert sb.ok("POST", "reset", {"endpoints": 3, "applications": 1})["endpoints"] == 3
    assert sb.endpoints()["meta"]["total_count"] == 3
    assert len(sb.apps()) == 1 and sb.apps()[0]["default_endpoint_app"] is True
    for bad in ({"endpoints": -1}, {"applications": "many"}, {"hostile": "yes"}):
        assert sb.control("POST", "reset", bad).status_code == 400
    assert sb.endpoints()["meta"]["total_count"] == 3


def test_hostile_seed_adds_script_payloads_to_endpoints_and_an_application(sb):
    summary = sb.ok("POST", "reset", {"hostile": True})
    assert summary["endpoints"] == SEED_ENDPOINTS + 4
    objects = sb.endpoints()["objects"]
    hostile = [o for o in objects if "<" in o["alias"] or "{{" in o["alias"] or "'" in o["alias"]]
    assert {"<script>alert(1)</script>", '"><img src=x onerror=alert(1)>'} <= {
        o["alias"] for o in hostile
    }
    assert any("<" in o["username"] for o in hostile)
    assert any("<script>" in (o["sip_user_agent"] or "") for o in hostile)
    assert any("onerror" in (o["sip_contact"] or "") for o in hostile)
    assert "<img src=x onerror=alert('app')>" in {a["app_name"] for a in sb.apps()}
    sb.ok("POST", "reset", {"hostile": False})
    assert not any("<" in o["alias"] for o in sb.endpoints()["objects"])


def test_mutate_changes_the_requested_share_of_endpoints_deterministically(sb):
    sb.clock.advance(60)
    before = {o["endpoint_id"]: o for o in sb.endpoints()["objects"]}
    result = sb.ok("POST", "mutate", {"fraction": 0.1, "seed": 5})
    assert result["changed"] == 4
    after = {o["endpoint_id"]: o for o in sb.endpoints()["objects"]}
    changed = {eid for eid in after if after[eid] != before[eid]}
    assert changed == set(result["endpoint_ids"])
    for eid in changed:
        assert after[eid]["updated_at"] == "2025-11-01T12:01:00Z"
        assert (after[eid]["sip_contact"] is None) != (before[eid]["sip_contact"] is None)
    sb.ok("POST", "reset", {"seed": 7})
    assert (
        sb.ok("POST", "mutate", {"fraction": 0.1, "seed": 5})["endpoint_ids"]
        == (result["endpoint_ids"])
    )
    assert sb.control("POST", "mutate", {"fraction": 2}).status_code == 400


def test_stats_count_api_requests_by_route_but_not_control_requests(sb):
    eid = sb.first()["endpoint_id"]
    sb.get(eid)
    sb.get(eid)
    sb.create(username="counted")
    sb.update(eid, alias="Counted")
    sb.api("DELETE", f"Endpoint/{eid}/")
    sb.api("GET", "Application/")
    sb.api("GET", "Application/1/")
    sb.ok("GET", "config")
    stats = sb.ok("GET", "stats")
    assert stats == {
        "requests": {
            "GET /Endpoint/": 1,
            "GET /Endpoint/{id}/": 2,
            "POST /Endpoint/": 1,
            "POST /Endpoint/{id}/": 1,
            "DELETE /Endpoint/{id}/": 1,
            "GET /Application/": 1,
            "GET /Application/{id}/": 1,
        },
        "total": 8,
        # Writes per endpoint: how a test proves each endpoint was written at most once.
        "writes_by_endpoint": {f"POST {eid}": 1, f"DELETE {eid}": 1},
    }
    assert sb.control("DELETE", "stats").status_code == 204
    assert sb.ok("GET", "stats") == {"requests": {}, "total": 0, "writes_by_endpoint": {}}


def test_planted_endpoint_is_served_verbatim_bypassing_validation(sb):
    planted = sb.ok(
        "POST",
        "endpoints",
        {
            "endpoint_id": "999000000000001",
            "username": "bad user!",
            "alias": "Zoë's <b>phone</b>",
            "password": "planted-secret",
            "sip_registered": True,
            "application": "garbage",
            "created_at": "not a date",
            "_omit": ["sip_uri"],
        },
    )
    assert planted["sip_registered"] is True and planted["application"] == "garbage"
    fetched = sb.get("999000000000001")
    assert "sip_uri" not in fetched and "password" not in fetched
    assert fetched["username"] == "bad user!" and fetched["created_at"] == "not a date"
    assert fetched["alias"] == "Zoë's <b>phone</b>"
    listed = sb.endpoints(username__exact="bad user!")["objects"]
    assert [o["endpoint_id"] for o in listed] == ["999000000000001"]
    assert sb.endpoints()["meta"]["total_count"] == SEED_ENDPOINTS + 1
    # A real update supersedes the planted value it touches, and only that one.
    sb.api("POST", "Endpoint/999000000000001/", json={"alias": "Fixed"})
    fetched = sb.get("999000000000001")
    assert fetched["alias"] == "Fixed" and fetched["created_at"] == "not a date"


def test_planting_an_existing_id_replaces_it_in_place(sb):
    ids = [o["endpoint_id"] for o in sb.endpoints()["objects"]]
    sb.ok("POST", "endpoints", {"endpoint_id": ids[3], "username": "replaced"})
    page = sb.endpoints()
    assert [o["endpoint_id"] for o in page["objects"]] == ids
    assert page["objects"][3]["username"] == "replaced"


def _non_loopback_ipv4():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP connect sends nothing; it only picks a route
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if is_loopback(address) else address


def test_control_routes_refuse_non_loopback_clients():
    address = _non_loopback_ipv4()
    if address is None:
        pytest.skip("no non-loopback IPv4 address on this machine")
    server = SandboxServer(host="0.0.0.0", endpoints=2, applications=1).start()  # noqa: S104
    try:
        remote = f"http://{address}:{server.port}"
        refused = requests.get(f"{remote}/_sandbox/config", timeout=10)
        assert refused.status_code == 403
        assert requests.post(f"{remote}/_sandbox/reset", json={}, timeout=10).status_code == 403
        headers = {"X-Auth-ID": server.auth_id, "X-Auth-Token": server.auth_token}
        api = requests.get(
            f"{remote}/api/v1/Account/{server.auth_id}/Endpoint/", headers=headers, timeout=10
        )
        assert api.status_code == 200
        assert requests.get(f"{server.base_url}/_sandbox/config", timeout=10).status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.2", False),
        ("::ffff:10.0.0.1", False),
        ("fd00::2", False),
        ("not-an-ip", False),
    ],
)
def test_is_loopback_recognises_loopback_addresses_only(address, loopback):
    assert is_loopback(address) is loopback


def test_unknown_control_route_and_wrong_control_method_are_refused(sb):
    assert sb.control("GET", "nothing").status_code == 404
    wrong = sb.control("GET", "reset")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"


# --- transport and scale -----------------------------------------------------------------------


def test_keep_alive_connection_carries_every_kind_of_answer(sb):
    eid = sb.first()["endpoint_id"]
    conn = http.client.HTTPConnection("127.0.0.1", sb.server.port, timeout=10)
    headers = {**sb.headers, "Content-Type": "application/json"}
    base = f"/api/v1/Account/{AUTH_ID}"
    calls = [
        ("GET", f"{base}/Endpoint/", None, 200),
        ("POST", f"{base}/Endpoint/{eid}/", b'{"alias": "KA"}', 202),
        ("DELETE", f"{base}/Endpoint/{eid}/", None, 204),
        ("GET", f"{base}/Endpoint/{eid}/", None, 404),
        ("GET", f"{base}/Endpoint/", None, 401),
        ("PUT", f"{base}/Endpoint/", b"{}", 405),
    ]
    try:
        conn.connect()
        sock = conn.sock
        for method, path, body, status in calls:
            conn.request(method, path, body=body, headers={} if status == 401 else headers)
            response = conn.getresponse()
            response.read()
            assert response.status == status
            assert conn.sock is sock  # the same TCP connection served every answer
    finally:
        conn.close()


def test_concurrent_requests_on_pooled_connections_all_succeed(sb):
    def fetch(offset):
        return sb.api("GET", "Endpoint/", params={"limit": 5, "offset": offset}).json()

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        pages = list(pool.map(fetch, range(0, SEED_ENDPOINTS, 5)))
    ids = [o["endpoint_id"] for page in pages for o in page["objects"]]
    assert len(ids) == len(set(ids)) == SEED_ENDPOINTS


def test_seeding_100000_endpoints_serves_the_last_page(sb):
    assert sb.ok("POST", "reset", {"endpoints": 100_000})["endpoints"] == 100_000
    page = sb.endpoints(limit=100, offset=99_900)
    assert len(page["objects"]) == 100
    assert page["meta"]["total_count"] == 100_000
    assert page["meta"]["next"] is None
    assert page["meta"]["previous"] == f"/v1/Account/{AUTH_ID}/Endpoint/?limit=100&offset=99800"
    created = [o["created_at"] for o in page["objects"]]
    assert created == sorted(created)
    assert len({o["endpoint_id"] for o in page["objects"]}) == 100
    assert sb.endpoints(limit=1, offset=100_000)["objects"] == []


def test_demo_data_looks_like_a_real_account(sb):
    sb.ok("POST", "reset", {"endpoints": 1000, "applications": 8, "seed": 1})
    objects = []
    for offset in range(0, 1000, 100):
        objects += sb.endpoints(limit=100, offset=offset)["objects"]
    contacts = [o for o in objects if o["sip_contact"]]
    assert 0.33 < len(contacts) / 1000 < 0.47
    assert 0.72 < sum(1 for o in objects if o["application"]) / 1000 < 0.88
    subs = [o["sub_account"] for o in objects if o["sub_account"]]
    assert 0.24 < len(subs) / 1000 < 0.36 and len(set(subs)) in (2, 3)
    browsers = [o for o in contacts if "transport=ws" in o["sip_contact"]]
    assert browsers and all(o["sip_registered"] == "false" for o in browsers)
    agents = " ".join(o["sip_user_agent"] for o in contacts)
    for product in ("Zoiper", "Linphone", "Yealink", "Grandstream", "MicroSIP"):
        assert product in agents
    usernames = [o["username"] for o in objects]
    assert len(set(usernames)) == 1000
    assert {"john_doe", "jane_smith", "acme_sip_user_01", "sipuser_demo"} <= set(usernames)
    assert any(re.fullmatch(r"[a-z]+\d{19,22}", u) for u in usernames)
    rule_breaking = [o for o in objects if not re.fullmatch(r"[A-Za-z0-9_-]+", o["alias"])]
    assert 4 <= len(rule_breaking) < 40
    expiries = [datetime.fromisoformat(o["sip_expires"]) - START for o in contacts]
    assert all(timedelta(minutes=1) <= e <= timedelta(minutes=60) for e in expiries)


# --- management command ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("127.0.0.1", 8765)),
        ("9000", ("127.0.0.1", 9000)),
        ("0.0.0.0:8765", ("0.0.0.0", 8765)),  # noqa: S104
        ("[::1]:8000", ("::1", 8000)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_runsandbox_parses_addr_and_port(value, expected):
    assert parse_addrport(value) == expected


def test_runsandbox_rejects_a_malformed_addrport():
    from django.core.management.base import CommandError

    for value in ("host:", "1.2.3.4:99999", "a:b:c"):
        with pytest.raises(CommandError):
            parse_addrport(value)


@pytest.mark.parametrize(
    ("flags", "config"),
    [
        ([], {**DEFAULT_CONFIG, "churn": True}),
        (
            [
                "--no-username-suffix",
                "--application-object",
                "--honour-application-on-update",
                "--error-envelope",
                "global",
                "--create-body",
                "full",
                "--update-body",
                "message",
                "--object-shape",
                "minimal",
                "--strict-types",
                "--max-limit",
                "20",
            ],
            {
                "username_suffix": False,
                "application_shape": "object",
                "honour_application_on_update": True,
                "error_envelope": "global",
                "create_body": "full",
                "update_body": "message",
                "object_shape": "minimal",
                "strict_types": True,
                "max_limit": 20,
                "ignore_on_create": [],
                "churn": True,
            },
        ),
        (
            ["--application-empty-string", "--no-churn"],
            {**DEFAULT_CONFIG, "application_shape": "empty"},
        ),
    ],
)
def test_runsandbox_serves_with_the_flags_until_sigterm(flags, config):
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vobizadmin.settings",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_DEBUG": "true",  # the command refuses to run with DEBUG off
    }
    command = [
        sys.executable, "manage.py", "runsandbox", "127.0.0.1:0", "--endpoints", "12",
        "--applications", "3", "--seed", "4", "--auth-id", "MA_CMD", "--auth-token", "cmd-token",
        *flags,
    ]  # fmt: skip
    process = subprocess.Popen(  # noqa: S603 - fixed arguments, our own interpreter
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"VOBIZ_API_URL=(\S+) VOBIZ_AUTH_ID=MA_CMD VOBIZ_AUTH_TOKEN=cmd…", line)
        assert match, line + process.stderr.read() if process.poll() is not None else line
        api_url = match.group(1)
        base = api_url.removesuffix("/api/v1")
        assert requests.get(f"{base}/_sandbox/config", timeout=10).json() == config
        headers = {"X-Auth-ID": "MA_CMD", "X-Auth-Token": "cmd-token"}
        page = requests.get(f"{api_url}/Account/MA_CMD/Endpoint/", headers=headers, timeout=10)
        assert page.json()["meta"]["total_count"] == 12
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_request_whose_client_dies_mid_body_is_neither_counted_nor_applied(sb):
    """A worker killed while sending an update: the sandbox gets the headers and part of the
    body, then the connection closes. That is no request: no write counted, nothing changed
    (a truncated body once counted as a write, and a test of exactly-once writes failed)."""
    eid = sb.first()["endpoint_id"]
    before = sb.get(eid)
    sb.control("DELETE", "stats")
    host, port = sb.server.base_url.removeprefix("http://").split(":")
    body = json.dumps({"alias": "Half-sent"}).encode()
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        path = f"/api/v1/Account/{sb.server.auth_id}/Endpoint/{eid}/"
        conn.sendall((f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      f"X-Auth-ID: {sb.server.auth_id}\r\nX-Auth-Token: {sb.server.auth_token}\r\n"
                      "Content-Type: application/json\r\n"
                      f"Content-Length: {len(body) + 40}\r\n\r\n").encode() + body)
        conn.shutdown(socket.SHUT_WR)  # the rest of the body never comes
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")
    assert sb.ok("GET", "stats")["writes_by_endpoint"] == {}
    assert sb.get(eid)["alias"] == before["alias"]
