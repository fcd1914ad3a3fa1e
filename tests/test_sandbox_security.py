"""Attacks on the Vobiz API sandbox, each written as the attack it stops.

The control routes (/_sandbox/...) reseed data, plant records and change switches without
credentials. A web page the developer visits can reach them through the browser: with a
cross-site "simple request" (text/plain or form POST, no CORS preflight) or through DNS
rebinding (evil.example resolving to 127.0.0.1, so the browser connects from loopback). And
``manage.py runsandbox`` must not run in production, nor print the token it accepts.
"""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from vobizadmin.sandbox.server import is_json_content_type, is_loopback_host_header

ROOT = Path(__file__).resolve().parent.parent


def _total(sandbox):
    return sandbox.api("GET", "Endpoint/").json()["meta"]["total_count"]


# --- cross-site simple requests ----------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", None],
)
def test_cross_site_simple_post_cannot_change_the_config(sandbox, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    attack = sandbox.request(
        "POST", "config", data=b'{"error_envelope": "global"}', headers=headers
    )
    assert attack.status_code == 415
    assert sandbox.current_config()["error_envelope"] == "flat"


def test_cross_site_form_post_cannot_wipe_the_data_or_plant_records(sandbox):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert sandbox.request("POST", "reset", data=b"endpoints=0", headers=form).status_code == 415
    # Even with no body at all: a bodiless POST would reseed with the current sizes.
    assert sandbox.request("POST", "reset", headers=form).status_code == 415
    planted = sandbox.request(
        "POST", "endpoints", data=b'{"username": "<script>x</script>"}', headers=form
    )
    assert planted.status_code == 415
    fault = sandbox.request("POST", "faults", data=b'{"status": 500}', headers=form)
    assert fault.status_code == 415
    assert _total(sandbox) == 30
    assert sandbox.api("GET", "Endpoint/").status_code == 200  # no fault was queued


def test_control_routes_accept_json_with_parameters(sandbox):
    response = sandbox.request(
        "POST",
        "config",
        data=b'{"create_body": "full"}',
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert response.status_code == 200
    assert sandbox.current_config()["create_body"] == "full"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("text/plain", False),
        ("application/jsonp", False),
        ("multipart/form-data; boundary=x", False),
        ("", False),
        (None, False),
    ],
)
def test_only_application_json_counts_as_json(value, ok):
    assert is_json_content_type(value) is ok


# --- DNS rebinding -----------------------------------------------------------------------------


def test_dns_rebinding_request_cannot_reach_the_control_routes(sandbox):
    evil = {"Host": "evil.example"}
    attack = sandbox.request("POST", "reset", json={"endpoints": 0}, headers=evil)
    assert attack.status_code == 403
    assert sandbox.request("GET", "config", headers=evil).status_code == 403
    port_too = {"Host": f"evil.example:{sandbox.server.port}"}
    assert sandbox.request("DELETE", "stats", headers=port_too).status_code == 403
    assert _total(sandbox) == 30


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_control_routes_answer_a_loopback_host_with_or_without_port(sandbox, host):
    port = sandbox.server.port
    for value in (host, f"{host}:{port}"):
        assert sandbox.request("GET", "config", headers={"Host": value}).status_code == 200


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("127.0.0.1:8765", True),
        ("LOCALHOST:80", True),
        ("127.8.9.10", True),
        ("[::1]:8765", True),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io:8765", False),
        ("127.0.0.1:80@evil.example", False),
        ("[::1]evil", False),
        ("[::ffff:7f00:1]:80", True),
        ("::1", False),
        ("192.168.1.10:8765", False),
        ("", False),
        (None, False),
    ],
)
def test_only_loopback_host_headers_are_accepted(value, ok):
    assert is_loopback_host_header(value) is ok


def test_the_api_itself_still_answers_any_host(sandbox):
    # The API is guarded by its token, as the real one is; only control routes check Host.
    url = f"{sandbox.server.api_url}/Account/{sandbox.server.auth_id}/Endpoint/"
    headers = {
        "X-Auth-ID": sandbox.server.auth_id,
        "X-Auth-Token": sandbox.server.auth_token,
        "Host": "api.vobiz.example",
    }
    assert requests.get(url, headers=headers, timeout=10).status_code == 200


# --- the runsandbox command --------------------------------------------------------------------


def _runsandbox(debug: str, *extra: str, token: str = "sb-secret-token-4242"):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vobizadmin.settings",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_DEBUG": debug,
    }
    command = [
        sys.executable, "manage.py", "runsandbox", "127.0.0.1:0", "--endpoints", "3",
        "--applications", "1", "--auth-id", "MA_SECRETS", "--auth-token", token, *extra,
    ]  # fmt: skip
    return subprocess.Popen(  # noqa: S603 - fixed arguments, our own interpreter
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_runsandbox_refuses_to_run_with_production_settings():
    process = _runsandbox("false")
    try:
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 2
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "DEBUG" in lines[0]


def test_runsandbox_with_debug_on_never_prints_the_token_in_full():
    token = "sb-secret-token-4242"
    process = _runsandbox("true", "-v", "2", token=token)
    try:
        line = process.stdout.readline()
        match = re.search(r"VOBIZ_API_URL=(\S+) VOBIZ_AUTH_ID=\S+ VOBIZ_AUTH_TOKEN=(\S+) ", line)
        assert match, line
        assert match.group(2) == "sb-…"
        api_url = match.group(1)
        # Requests with the token (right and wrong) are logged at -v 2: the token stays out.
        for sent in (token, "wrong-token"):
            headers = {"X-Auth-ID": "MA_SECRETS", "X-Auth-Token": sent}
            requests.get(f"{api_url}/Account/MA_SECRETS/Endpoint/", headers=headers, timeout=10)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=15)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = line + stdout + stderr
    assert "GET /api/v1/Account/MA_SECRETS/Endpoint/" in stderr  # the request log is on
    assert token not in output
