"""Forwarded headers are believed only from the configured proxy, through real gunicorn.

gunicorn runs on a loopback port with the production settings. A direct client (127.0.0.1,
not in FORWARDED_ALLOW_IPS) sends `X-Forwarded-Proto: https` and `X-Forwarded-For`: neither is
believed. The same requests through a server that lists 127.0.0.1 as its proxy show that the
test can see the difference (HSTS is sent only on a request taken for HTTPS; the login throttle
counts the address the request is taken to come from).
"""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
LOCKED = "Too many failed attempts"


def _environment(database: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "VOBIZ_", "FORWARDED_", "TRUSTED_", "REDIS_"))}
    env.update({
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "proxy-test-secret-" + "s" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",  # so that plain-HTTP requests are answered
        "DJANGO_STATIC_MANIFEST": "false",
        "DJANGO_LOG_LEVEL": "WARNING",
        "VOBIZ_AUTH_ID": "MA_PROXYTEST",
        "VOBIZ_AUTH_TOKEN": "proxy-test-token",
        "DATABASE_URL": f"sqlite:///{database}",
        "LOGIN_FAILURE_LIMIT": "2",
        **extra,
    })
    return env


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    path = tmp_path_factory.mktemp("gunicorn") / "proxy.sqlite3"
    result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                            cwd=ROOT, env=_environment(path), capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gunicorn(database, forwarded_allow_ips):
    port = _free_port()
    # As the Dockerfile runs it: no --forwarded-allow-ips, gunicorn reads FORWARDED_ALLOW_IPS.
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "vobizadmin.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"],
        cwd=ROOT, env=_environment(database, FORWARDED_ALLOW_IPS=forwarded_allow_ips),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited: {process.stderr.read()[-3000:]}")
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return process, base
        except requests.ConnectionError:
            time.sleep(0.1)
    process.terminate()
    pytest.fail("gunicorn did not answer within 30 s")


@pytest.fixture(scope="module")
def direct(database):
    """gunicorn whose only trusted proxy is 192.0.2.1: our requests come straight from a client."""
    process, base = _gunicorn(database, "192.0.2.1")
    yield base
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def via_proxy(database):
    """The control: gunicorn that takes 127.0.0.1 for its TLS proxy."""
    process, base = _gunicorn(database, "127.0.0.1,::1")
    yield base
    process.terminate()
    process.wait(10)


def failed_login(base, username, forwarded_for, proto="https") -> str:
    """One wrong-password login as a browser would post it; returns the page."""
    headers = {"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": proto}
    page = requests.get(f"{base}/accounts/login/", headers=headers, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    # The cookie is Secure, so requests would not send it over http: send it by hand.
    headers.update({"Cookie": f"csrftoken={page.cookies['csrftoken']}",
                    "Referer": f"{proto}://{base.split('://', 1)[1]}/accounts/login/"})
    response = requests.post(f"{base}/accounts/login/", headers=headers, timeout=30,
                             data={"csrfmiddlewaretoken": token, "username": username,
                                   "password": "wrong"}, allow_redirects=False)
    assert response.status_code == 200, response.text[:500]
    return response.text


def test_a_direct_client_cannot_claim_https(direct):
    response = requests.get(f"{direct}/healthz", headers={"X-Forwarded-Proto": "https"},
                            timeout=10)
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers  # taken for plain HTTP


def test_the_configured_proxy_is_believed_about_https(via_proxy):
    response = requests.get(f"{via_proxy}/healthz", headers={"X-Forwarded-Proto": "https"},
                            timeout=10)
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_a_direct_client_cannot_choose_its_address_with_x_forwarded_for(direct):
    # Two failures from "different clients" by the header: the connection's address (limit 2)
    # is what counts, so the third, from yet another claimed address, is already locked.
    for n in (1, 2):
        assert LOCKED not in failed_login(direct, f"direct{n}", f"198.51.100.{n}", proto="http")
    assert LOCKED in failed_login(direct, "direct3", "198.51.100.3", proto="http")


def test_the_configured_proxy_is_believed_about_the_client_address(via_proxy):
    for n in (1, 2):
        assert LOCKED not in failed_login(via_proxy, f"proxied{n}", "203.0.113.50")
    assert LOCKED not in failed_login(via_proxy, "proxied3", "203.0.113.51")  # another client
    assert LOCKED in failed_login(via_proxy, "proxied4", "203.0.113.50")  # the same one


def test_the_dockerfile_leaves_the_trusted_proxies_to_forwarded_allow_ips():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--forwarded-allow-ips" not in dockerfile
    assert "FORWARDED_ALLOW_IPS" in dockerfile
