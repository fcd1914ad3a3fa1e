"""Login, throttling, headers and production settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parent.parent


def test_every_page_requires_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/")


def test_htmx_request_without_login_is_told_to_load_the_login_page(client, db):
    response = client.get("/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/?q=a")
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/accounts/login/?next=%2F%3Fq%3Da"


def test_health_check_needs_no_login(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_login_then_logout(client, support_user):
    response = client.post(reverse("login"), {"username": "sam", "password": "pw-for-tests-1"})
    assert response.status_code == 302
    assert client.get("/accounts/login/").status_code == 302  # already logged in
    client.post(reverse("logout"))
    assert client.get("/").status_code == 302


def test_login_is_throttled_after_repeated_failures(client, support_user, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        response = client.post(reverse("login"), {"username": "sam", "password": "wrong"})
        assert "didn" in response.content.decode() or "correct" in response.content.decode()
    response = client.post(reverse("login"), {"username": "sam", "password": "pw-for-tests-1"})
    assert response.status_code == 200  # the right password is refused while locked
    assert "Too many failed attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_responses_carry_security_headers(client, support_user):
    client.force_login(support_user)
    response = client.get("/healthz")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def _manage(*args, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VOBIZ_"))}
    environment.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=60)


PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "a-real-looking-secret-" + "k" * 50,
    "DJANGO_ALLOWED_HOSTS": "endpoints.example.com",
    "VOBIZ_AUTH_ID": "MA_LIVE0001",
    "VOBIZ_AUTH_TOKEN": "live-token",
}


def test_production_settings_pass_check_deploy_without_warnings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "VOBIZ_AUTH_ID", "VOBIZ_AUTH_TOKEN"])
def test_production_refuses_to_start_without_a_required_secret(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = _manage("check", **env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_logout_everywhere_ends_every_session_of_the_user(client, support_user, admin_user_role):
    from django.test import Client

    other_browser, someone_else = Client(), Client()
    other_browser.force_login(support_user)
    someone_else.force_login(admin_user_role)
    client.force_login(support_user)
    response = client.post(reverse("logout_everywhere"))
    assert response.status_code == 302
    assert other_browser.get("/").status_code == 302  # logged out there too
    assert client.get("/").status_code == 302
    assert someone_else.get("/healthz").status_code == 200
    assert "_auth_user_id" in someone_else.session


def test_sessions_expire(settings):
    assert settings.SESSION_COOKIE_AGE <= 12 * 3600
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True


def test_post_without_csrf_token_is_refused(support_user):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(support_user)
    response = browser.post(reverse("logout_everywhere"), HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert browser.get("/healthz").status_code == 200
    assert "_auth_user_id" in browser.session


def test_passwords_are_stored_with_the_production_hasher_and_still_log_in(
        client, django_user_model, settings):
    """The suite hashes with MD5 for speed (conftest); production uses Django's default."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    user = django_user_model.objects.create_user(username="realhash", password="pw-for-tests-1")
    assert user.password.startswith("pbkdf2_sha256$")
    response = client.post(reverse("login"), {"username": "realhash",
                                               "password": "pw-for-tests-1"})
    assert response.status_code == 302
    assert client.get("/accounts/login/").status_code == 302  # logged in


def test_the_suite_hashes_with_md5_only_in_tests():
    from vobizadmin import settings as project_settings

    assert not hasattr(project_settings, "PASSWORD_HASHERS")  # Django's default in production
