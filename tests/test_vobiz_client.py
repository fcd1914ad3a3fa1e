"""The Vobiz client against the sandbox over loopback HTTP: parsing, errors, retries."""

import logging
import socket
from datetime import UTC, datetime, timedelta

import pytest

from endpoints import vobiz
from endpoints.vobiz import (
    VobizAuthError,
    VobizBadResponse,
    VobizClient,
    VobizNotFound,
    VobizRequestError,
    VobizUnavailable,
)

# Time stands still unless a test moves it (conftest's clock).
pytestmark = pytest.mark.usefixtures("clock")


def _client(sandbox, **overrides):
    options = {
        "base_url": sandbox.server.api_url,
        "auth_id": "MA_SANDBOX01",
        "auth_token": "sandbox-token",
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "max_retries": 2,
        "max_retry_wait": 3.0,
    }
    options.update(overrides)
    return VobizClient(**options)


def _pages(client):
    """Every endpoint page, as a sync walks them (by what each page held)."""
    return list(vobiz._walk(lambda offset: client.list_endpoints(offset=offset)))


def _first_id(sandbox):
    return sandbox.api("GET", "Endpoint/", params={"limit": 1}).json()["objects"][0]["endpoint_id"]


def _requests(sandbox, key):
    return sandbox.stats()["requests"].get(key, 0)


# --- reads and parsing


def test_list_endpoints_reads_objects_and_meta(sandbox, client_vobiz):
    page = client_vobiz.list_endpoints(limit=10, offset=0)
    assert page.total_count == 30
    assert len(page.objects) == 10
    assert page.has_next is True
    first = page.objects[0]
    assert first.endpoint_id.isdigit()
    assert isinstance(first.sip_registered, bool)
    assert set(first.permissions) == set(vobiz.PERMISSIONS)


def test_paging_walks_every_page_once(sandbox, client_vobiz):
    ids = [e.endpoint_id for page in _pages(client_vobiz) for e in page.objects]
    assert len(ids) == 30
    assert len(set(ids)) == 30


def test_list_passes_filters_to_vobiz(sandbox, client_vobiz):
    target = client_vobiz.list_endpoints(limit=1).objects[0]
    page = client_vobiz.list_endpoints(username__exact=target.username)
    assert [e.endpoint_id for e in page.objects] == [target.endpoint_id]


def test_limit_above_api_maximum_is_capped(sandbox, client_vobiz):
    sandbox.reset(endpoints=150)
    page = client_vobiz.list_endpoints(limit=500)
    assert len(page.objects) == 100


@pytest.mark.parametrize("shape", ["uri", "object", "empty"])
def test_every_application_shape_yields_the_app_id(sandbox, client_vobiz, shape):
    sandbox.config(application_shape=shape)
    apps = {a.app_id: a.name for p in client_vobiz.iter_applications() for a in p.objects}
    endpoints = [e for p in _pages(client_vobiz) for e in p.objects]
    with_app = [e for e in endpoints if e.app_id]
    without_app = [e for e in endpoints if not e.app_id]
    assert with_app and without_app
    assert all(e.app_id in apps for e in with_app)
    if shape == "object":
        assert all(e.app_name == apps[e.app_id] for e in with_app)
    raw_none = {e.raw["application"] for e in without_app}
    assert raw_none == ({""} if shape == "empty" else {None})


def test_parse_endpoint_accepts_documented_variants():
    base = {"endpoint_id": 87654321, "username": "john_doe", "sip_registered": "true"}
    parsed = vobiz.parse_endpoint({**base, "application": 12345678901234567})
    assert parsed.endpoint_id == "87654321"
    assert parsed.app_id == "12345678901234567"
    assert parsed.sip_registered is True
    # The docs' own objects may carry no allow_* key: unknown, never the documented default.
    assert parsed.permissions == dict.fromkeys(vobiz.PERMISSIONS)
    assert vobiz.parse_endpoint({**base, "allow_video": "true", "allow_apps": False}
                                ).permissions["allow_video"] is True


def test_parse_endpoint_reads_both_registration_styles():
    expires = "2030-10-28T11:30:00Z"
    top = vobiz.parse_endpoint({
        "endpoint_id": "1", "username": "a", "sip_registered": "true",
        "sip_contact": "192.168.1.100:5060", "sip_expires": expires, "sip_user_agent": "Zoiper",
    })
    nested = vobiz.parse_endpoint({
        "endpoint_id": "1", "username": "a", "sip_registered": "true",
        "sip_registration": {"contact": "192.168.1.100:5060", "expires": expires,
                             "user_agent": "Zoiper", "received": "203.0.113.42:5060",
                             "path": None},
    })
    assert top.registration.contact == nested.registration.contact == "192.168.1.100:5060"
    assert top.registration.expires == nested.registration.expires
    assert nested.registration.received == "203.0.113.42:5060"


def test_browser_registration_reported_false_still_counts_as_registered():
    soon = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    parsed = vobiz.parse_endpoint({
        "endpoint_id": "1", "username": "a", "sip_registered": "false",
        "sip_contact": "sip:a@df7jal23ls0d.invalid;transport=ws", "sip_expires": soon,
    })
    assert parsed.sip_registered is False
    assert parsed.is_registered is True


@pytest.mark.parametrize(
    "record",
    [
        None,
        "text",
        {"username": "nobody"},
        {"endpoint_id": "1"},
        {"endpoint_id": "1", "username": "a", "application": {"weird": True, "app_id": []}},
        {"endpoint_id": "1", "username": "a", "created_at": "yesterday"},
        {"endpoint_id": "1", "username": "a", "allow_voice": "perhaps"},
        {"endpoint_id": "1", "username": ["a"]},
    ],
)
def test_parse_endpoint_rejects_unreadable_records(record):
    with pytest.raises(vobiz.ParseError):
        vobiz.parse_endpoint(record)


def test_malformed_record_in_a_list_is_skipped_and_reported(sandbox, client_vobiz):
    sandbox.plant({"endpoint_id": "999000000000001", "username": "broken",
                   "created_at": "not a date"})
    pages = list(_pages(client_vobiz))
    skipped = [s for p in pages for s in p.skipped]
    objects = [e for p in pages for e in p.objects]
    assert len(objects) == 30
    assert [record["endpoint_id"] for record, _ in skipped] == ["999000000000001"]


def test_get_endpoint_returns_single_object(sandbox, client_vobiz):
    endpoint_id = _first_id(sandbox)
    endpoint = client_vobiz.get_endpoint(endpoint_id)
    assert endpoint.endpoint_id == endpoint_id
    assert endpoint.raw.get("api_id")


# --- errors


def test_unknown_endpoint_raises_not_found(sandbox, client_vobiz):
    with pytest.raises(VobizNotFound):
        client_vobiz.get_endpoint("111111111111111")


def test_wrong_token_raises_auth_error(sandbox):
    client = _client(sandbox, auth_token="wrong")
    with pytest.raises(VobizAuthError) as info:
        client.list_endpoints()
    assert info.value.status == 401


@pytest.mark.parametrize(("envelope", "status"), [("flat", 400), ("global", 422)])
def test_invalid_create_raises_request_error_with_field_messages(sandbox, client_vobiz, envelope,
                                                                 status):
    sandbox.config(error_envelope=envelope)
    with pytest.raises(VobizRequestError) as info:
        client_vobiz.create_endpoint({"username": "bad name!", "password": "Pw7!x",
                                      "alias": "no spaces allowed"})
    assert set(info.value.field_errors) >= {"username", "password", "alias"}
    assert info.value.status == status
    # The global envelope's errors echo each bad "value", the password too: never kept.
    said = " ".join([info.value.message, *info.value.field_errors.values()])
    assert "Pw7!x" not in said and "{" not in said


def test_duplicate_username_raises_request_error_on_username(sandbox, client_vobiz):
    sandbox.config(username_suffix=False)
    client_vobiz.create_endpoint({"username": "dupe1", "password": "longenough1"})
    with pytest.raises(VobizRequestError) as info:
        client_vobiz.create_endpoint({"username": "dupe1", "password": "longenough1"})
    assert info.value.status == 409
    assert "username" in info.value.field_errors


def test_unknown_app_on_update_is_reported_on_the_application_field(sandbox, client_vobiz):
    with pytest.raises(VobizRequestError) as info:
        client_vobiz.update_endpoint(_first_id(sandbox), {"app_id": "12345"})
    assert "application" in info.value.field_errors


# --- writes and their variants


@pytest.mark.parametrize("body", ["short", "message", "full"])
def test_create_reads_every_documented_success_body(sandbox, client_vobiz, body):
    sandbox.config(create_body=body)
    result = client_vobiz.create_endpoint({"username": "zendeskagent", "password": "longenough1"})
    assert result.endpoint_id.isdigit()
    stored = client_vobiz.get_endpoint(result.endpoint_id)
    assert stored.username.startswith("zendeskagent")
    assert stored.username != "zendeskagent"  # the live API's suffix


def test_create_without_suffix_variant_keeps_the_username(sandbox, client_vobiz):
    sandbox.config(username_suffix=False)
    result = client_vobiz.create_endpoint({"username": "plainname", "password": "longenough1"})
    assert client_vobiz.get_endpoint(result.endpoint_id).username == "plainname"


@pytest.mark.parametrize("body", ["empty", "text", "message"])
def test_update_accepts_every_documented_success_body(sandbox, client_vobiz, body):
    sandbox.config(update_body=body)
    endpoint_id = _first_id(sandbox)
    client_vobiz.update_endpoint(endpoint_id, {"alias": f"Desk-{body}"})
    assert client_vobiz.get_endpoint(endpoint_id).alias == f"Desk-{body}"


def test_delete_then_get_is_not_found(sandbox, client_vobiz):
    endpoint_id = _first_id(sandbox)
    client_vobiz.delete_endpoint(endpoint_id)
    with pytest.raises(VobizNotFound):
        client_vobiz.delete_endpoint(endpoint_id)


# --- faults and retries


@pytest.mark.parametrize("status", [502, 503, 504])
def test_get_is_retried_on_gateway_errors(sandbox, client_vobiz, status):
    sandbox.fault(method="GET", path="/Endpoint/", status=status, times=2)
    page = client_vobiz.list_endpoints()
    assert page.total_count == 30
    assert _requests(sandbox, "GET /Endpoint/") == 3


def test_get_gives_up_after_the_retry_bound(sandbox, client_vobiz):
    sandbox.fault(method="GET", path="/Endpoint/", status=503, times=10)
    with pytest.raises(VobizUnavailable) as info:
        client_vobiz.list_endpoints()
    assert info.value.status == 503
    assert _requests(sandbox, "GET /Endpoint/") == 3  # 1 + max_retries


def test_500_is_not_retried(sandbox, client_vobiz):
    sandbox.fault(method="GET", path="/Endpoint/", status=500, times=3)
    with pytest.raises(VobizUnavailable):
        client_vobiz.list_endpoints()
    assert _requests(sandbox, "GET /Endpoint/") == 1


def test_429_honours_retry_after_seconds(sandbox):
    waits = []
    client = _client(sandbox, sleep=waits.append)
    sandbox.fault(method="GET", path="/Endpoint/", status=429, retry_after=2, times=1)
    assert client.list_endpoints().total_count == 30
    assert waits == [2.0]


def test_429_with_http_date_retry_after(sandbox):
    waits = []
    client = _client(sandbox, sleep=waits.append)
    when = datetime.now(UTC) + timedelta(seconds=2)
    sandbox.fault(method="GET", path="/Endpoint/", status=429, times=1,
                  retry_after=when.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    client.list_endpoints()
    assert len(waits) == 1 and 0 < waits[0] <= 2.0


def test_429_retry_after_beyond_the_bound_fails_fast_with_the_wait(sandbox):
    waits = []
    client = _client(sandbox, sleep=waits.append, max_retry_wait=3.0)
    sandbox.fault(method="GET", path="/Endpoint/", status=429, retry_after=120, times=1)
    with pytest.raises(VobizUnavailable) as info:
        client.list_endpoints()
    assert waits == []
    assert info.value.retry_after == 120
    assert "120 s" in info.value.message


def test_create_is_never_retried(sandbox, client_vobiz):
    sandbox.fault(method="POST", path="/Endpoint/", status=503, times=3)
    with pytest.raises(VobizUnavailable):
        client_vobiz.create_endpoint({"username": "once", "password": "longenough1"})
    assert _requests(sandbox, "POST /Endpoint/") == 1


def test_delete_is_retried_on_503(sandbox, client_vobiz):
    endpoint_id = _first_id(sandbox)
    sandbox.fault(method="DELETE", path="/Endpoint/", status=503, times=1)
    client_vobiz.delete_endpoint(endpoint_id)
    assert sandbox.api("GET", f"Endpoint/{endpoint_id}/").status_code == 404


def test_read_timeout_on_get_is_unavailable_and_not_uncertain(sandbox):
    client = _client(sandbox, read_timeout=0.3, max_retries=0)
    sandbox.fault(method="GET", path="/Endpoint/", delay=1.0, times=1)
    with pytest.raises(VobizUnavailable) as info:
        client.list_endpoints()
    assert info.value.uncertain is False
    assert "in time" in info.value.message


def test_read_timeout_on_a_write_is_uncertain(sandbox):
    client = _client(sandbox, read_timeout=0.3)
    endpoint_id = _first_id(sandbox)
    sandbox.fault(method="POST", path=f"/Endpoint/{endpoint_id}/", delay=1.0, times=1)
    with pytest.raises(VobizUnavailable) as info:
        client.update_endpoint(endpoint_id, {"alias": "Maybe"})
    assert info.value.uncertain is True


def test_dropped_connection_on_get_is_retried(sandbox, client_vobiz):
    sandbox.fault(method="GET", path="/Endpoint/", drop=True, times=1)
    assert client_vobiz.list_endpoints().total_count == 30


def test_dropped_connection_on_a_write_is_uncertain(sandbox, client_vobiz):
    sandbox.fault(method="POST", path="/Endpoint/", drop=True, times=1)
    with pytest.raises(VobizUnavailable) as info:
        client_vobiz.create_endpoint({"username": "dropped", "password": "longenough1"})
    assert info.value.uncertain is True


def test_connection_refused_is_unavailable(sandbox):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = _client(sandbox, base_url=f"http://127.0.0.1:{port}/api/v1", max_retries=0)
    with pytest.raises(VobizUnavailable) as info:
        client.list_endpoints()
    assert "connect" in info.value.message.lower()


def test_connect_timeout_is_unavailable():
    # A loopback listener that never accepts, with its backlog filled: new SYNs are dropped,
    # so the client's TCP connect hangs until our connect timeout.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
    try:
        client = VobizClient(base_url=f"http://127.0.0.1:{address[1]}/api/v1", auth_id="MA_X",
                             auth_token="t", connect_timeout=0.3, max_retries=0)
        with pytest.raises(VobizUnavailable) as info:
            client.list_endpoints()
        assert "in time" in info.value.message
    finally:
        for sock in [*fillers, listener]:
            sock.close()


@pytest.mark.parametrize("body", ["malformed", "empty"])
def test_unreadable_success_body_is_bad_response(sandbox, client_vobiz, body):
    sandbox.fault(method="GET", path="/Endpoint/", status=200, body=body, times=1)
    with pytest.raises(VobizBadResponse):
        client_vobiz.list_endpoints()


def test_malformed_error_body_still_gives_a_typed_error(sandbox, client_vobiz):
    sandbox.fault(method="POST", path="/Endpoint/", status=400, body="malformed", times=1)
    with pytest.raises(VobizRequestError):
        client_vobiz.create_endpoint({"username": "x1", "password": "longenough1"})


def test_fault_with_json_list_body_where_object_expected_is_bad_response(sandbox, client_vobiz):
    sandbox.fault(method="GET", path="/Endpoint/", status=200, body=[1, 2, 3], times=1)
    with pytest.raises(VobizBadResponse):
        client_vobiz.list_endpoints()


# --- hygiene


def test_every_call_sends_auth_headers_user_agent_and_timeout(sandbox, client_vobiz):
    assert client_vobiz.session.headers["User-Agent"].startswith("vobizadmin/")
    assert client_vobiz.session.headers["X-Auth-ID"] == "MA_SANDBOX01"
    adapter = client_vobiz.session.get_adapter(sandbox.server.api_url)
    assert adapter.timeout == (1.0, 1.0)


def test_token_and_password_never_reach_the_log(sandbox, client_vobiz, caplog):
    caplog.set_level(logging.DEBUG)
    secret_password = "S3cret-Password-42"
    client_vobiz.create_endpoint({"username": "logcheck", "password": secret_password})
    sandbox.fault(method="GET", path="/Endpoint/", status=503, times=1)
    client_vobiz.list_endpoints()
    text = caplog.text + repr(client_vobiz)
    assert "vobiz POST" in caplog.text  # the call was logged...
    assert secret_password not in text  # ...without the password
    assert "sandbox-token" not in text


def test_get_client_is_shared_per_settings(sandbox, settings):
    first = vobiz.get_client()
    assert vobiz.get_client() is first
    settings.VOBIZ_READ_TIMEOUT = 2.5
    assert vobiz.get_client() is not first


def test_a_proxy_set_in_the_environment_is_used(sandbox, monkeypatch):
    # Read once when the client is made (not on every call): point it at a closed port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = VobizClient(base_url=sandbox.server.api_url, auth_id="MA_SANDBOX01",
                          auth_token="sandbox-token", max_retries=0)
    with pytest.raises(VobizUnavailable):
        proxied.list_endpoints(limit=1)
    monkeypatch.delenv("HTTP_PROXY")
    direct = VobizClient(base_url=sandbox.server.api_url, auth_id="MA_SANDBOX01",
                         auth_token="sandbox-token", max_retries=0)
    assert direct.list_endpoints(limit=1).total_count == 30
