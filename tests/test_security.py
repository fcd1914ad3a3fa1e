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
    assert settings.SESSION_COOKIE_AGE == 8 * 3600
    assert settings.SESSION_IDLE_SECONDS == 30 * 60
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


# --- production settings refuse weak values ---------------------------------------------


def _settings_value(expression, **env):
    """Import the production settings in a fresh interpreter and print one expression."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VOBIZ_"))}
    environment.pop("REDIS_URL", None)
    environment.update(env)
    code = f"from vobizadmin import settings as s; print({expression})"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=60)


def test_production_refuses_a_secret_key_shorter_than_50_characters():
    result = _manage("check", **{**PRODUCTION, "DJANGO_SECRET_KEY": "x" * 49})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr and "50 characters" in result.stderr
    assert _manage("check", **{**PRODUCTION, "DJANGO_SECRET_KEY": "x" * 50}).returncode == 0


@pytest.mark.parametrize("url", ["http://api.vobiz.ai/api/v1", "http://10.1.2.3:8765/api/v1",
                                 "http://127.0.0.1.example.com/api/v1", "ftp://api.vobiz.ai/"])
def test_production_refuses_a_vobiz_api_url_that_is_not_https(url):
    result = _manage("check", **{**PRODUCTION, "VOBIZ_API_URL": url})
    assert result.returncode != 0
    assert "VOBIZ_API_URL" in result.stderr


@pytest.mark.parametrize("url", ["https://api.vobiz.ai/api/v1", "http://127.0.0.1:8765/api/v1",
                                 "http://localhost:8765/api/v1", "http://[::1]:8765/api/v1"])
def test_production_accepts_https_and_a_loopback_sandbox(url):
    result = _settings_value("s.VOBIZ_API_URL", **{**PRODUCTION, "VOBIZ_API_URL": url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == url


# --- a shared cache in production -------------------------------------------------------


def test_production_cache_is_shared_by_every_process():
    default = _settings_value("s.CACHES['default']['BACKEND']", **PRODUCTION)
    assert default.stdout.strip() == "django.core.cache.backends.db.DatabaseCache", default.stderr
    redis = _settings_value("s.CACHES['default']['BACKEND']",
                            **PRODUCTION, REDIS_URL="redis://127.0.0.1:6379/0")
    assert redis.stdout.strip() == "django.core.cache.backends.redis.RedisCache", redis.stderr


def test_the_suite_uses_a_process_local_cache_only_in_tests():
    from vobizadmin import settings as project_settings

    assert "locmem" not in project_settings.CACHES["default"]["BACKEND"]


def test_migrate_creates_the_database_cache_table(tmp_path):
    env = {**PRODUCTION, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"}
    result = _manage("migrate", "--noinput", "-v0", **env)
    assert result.returncode == 0, result.stderr
    import sqlite3

    tables = {row[0] for row in sqlite3.connect(tmp_path / "fresh.sqlite3").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "django_cache" in tables


def test_a_proxy_list_of_star_is_refused():
    result = _manage("check", **PRODUCTION, FORWARDED_ALLOW_IPS="*")
    assert result.returncode != 0
    assert "FORWARDED_ALLOW_IPS" in result.stderr


# --- demo users never in production -----------------------------------------------------


def test_demo_users_are_refused_in_production_and_none_is_created(db, django_user_model):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError) as refused:
        call_command("ensure_demo_users")
    assert refused.value.returncode == 2
    assert not django_user_model.objects.exists()


def test_demo_users_command_exits_with_status_2_and_one_line(tmp_path):
    env = {**PRODUCTION, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"}
    result = _manage("ensure_demo_users", **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DJANGO_DEBUG" in lines[0]


def test_demo_users_are_still_created_for_a_local_run(synced, django_user_model, settings):
    """make run: the demo logins, the demo's sub-accounts named, one Support user scoped."""
    from django.core.management import call_command

    from endpoints import selectors
    from endpoints.models import Endpoint, SubAccount

    settings.DEBUG = True
    call_command("ensure_demo_users", stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert set(django_user_model.objects.values_list("username", flat=True)) == {
        "admin", "support", "acme"}
    subs = sorted(set(Endpoint.objects.exclude(sub_account="").values_list("sub_account",
                                                                           flat=True)))
    assert list(SubAccount.objects.order_by("sub_account").values_list("name", flat=True)) \
        == ["Acme", "Globex", "Initech"][:len(subs)]
    acme = selectors.scope_get(user=django_user_model.objects.get(username="acme"))
    assert acme.sub_accounts == frozenset([subs[0]])


# --- no copy of a logged-in page in the browser -----------------------------------------


def _cache_control(response) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part.strip()}


@pytest.mark.parametrize("path", ["/", "/audit/", "/admin/", "/?q=x"])
def test_logged_in_pages_are_private_and_not_stored(client, superuser, path):
    client.force_login(superuser)
    response = client.get(path)
    assert response.status_code == 200
    assert {"private", "no-store"} <= _cache_control(response)


def test_logged_in_htmx_fragments_and_redirects_are_not_stored_either(client, superuser):
    client.force_login(superuser)
    fragment = client.get("/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="results")
    assert fragment.status_code == 200
    assert {"private", "no-store"} <= _cache_control(fragment)
    redirect = client.get("/accounts/login/")  # a logged-in user is sent on
    assert redirect.status_code == 302
    assert {"private", "no-store"} <= _cache_control(redirect)


def test_a_response_that_already_says_no_store_keeps_its_header(client, superuser):
    client.force_login(superuser)
    response = client.get("/healthz")  # never_cache
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"


def test_static_files_stay_cacheable_for_logged_in_users(client, superuser):
    client.force_login(superuser)
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


# --- sessions end when idle, and after 8 hours in any case ------------------------------


LIST = "/"


@pytest.fixture
def clock(monkeypatch):
    import time

    from endpoints.middleware import SessionTimeoutMiddleware

    now = [time.time()]
    monkeypatch.setattr(SessionTimeoutMiddleware, "clock", staticmethod(lambda: now[0]))
    return now


def _sent_to_login(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_session_idle_for_30_minutes_is_logged_out(client, support_user, clock, settings):
    assert settings.SESSION_IDLE_SECONDS == 30 * 60
    client.force_login(support_user)
    assert client.get(LIST).status_code == 200
    clock[0] += 30 * 60 + 1
    assert _sent_to_login(client.get(LIST))
    assert "_auth_user_id" not in client.session
    clock[0] += 1
    assert _sent_to_login(client.get(LIST))  # and stays logged out


def test_an_idle_htmx_request_is_told_to_load_the_login_page(client, support_user, clock):
    client.force_login(support_user)
    assert client.get(LIST).status_code == 200
    clock[0] += 31 * 60
    response = client.get(LIST, HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and response["HX-Redirect"].startswith("/accounts/login/")


def test_activity_keeps_a_session_alive_past_30_minutes(client, support_user, clock):
    client.force_login(support_user)
    for _ in range(6):  # a request every 25 minutes for 2.5 hours
        assert client.get(LIST).status_code == 200
        clock[0] += 25 * 60
    assert client.get(LIST).status_code == 200


def test_a_session_ends_8_hours_after_login_however_active(client, support_user, clock):
    client.force_login(support_user)
    for _ in range(8 * 3):  # a request every 20 minutes
        assert client.get(LIST).status_code == 200
        clock[0] += 20 * 60
    clock[0] += 60  # 8 hours and a minute after login, the last request 21 minutes ago
    assert _sent_to_login(client.get(LIST))
    assert "_auth_user_id" not in client.session


def test_idle_timeout_reads_the_stored_timestamps(client, support_user):
    """The same rule without a test clock: the session's stored last request is moved back."""
    from endpoints.middleware import LAST_SEEN_KEY

    client.force_login(support_user)
    assert client.get(LIST).status_code == 200
    session = client.session
    session[LAST_SEEN_KEY] -= 31 * 60
    session.save()
    assert _sent_to_login(client.get(LIST))


def test_the_idle_clock_starts_at_login(client, support_user, clock):
    client.force_login(support_user)  # and then nothing for 31 minutes
    clock[0] += 31 * 60
    assert _sent_to_login(client.get(LIST))
