"""The login throttle, written as the attacks it stops.

Every login form shares one count per username (as authentication resolves it) and one per
client address (as the trusted proxy reports it; IPv6 by /64); a locked login is refused
before the password is checked. Test users' password is "pw-for-tests-1" (conftest).
"""

import threading
import time
from types import SimpleNamespace

import pytest
from django.core.cache import caches
from django.core.cache.backends import base as base_cache
from django.core.cache.backends import locmem
from django.core.management import call_command
from django.db import connection
from django.test import RequestFactory
from django.test.utils import override_settings
from django.urls import reverse

from endpoints import auth

RIGHT = "pw-for-tests-1"
ADMIN_LOGIN = "/admin/login/"
LOCKED = "Too many failed attempts. Wait 15 minutes, then try again."


def post_login(client, username, password, url=None, address="127.0.0.1", **extra):
    return client.post(url or reverse("login"), {"username": username, "password": password},
                       REMOTE_ADDR=address, **extra)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def limit(settings):
    settings.LOGIN_FAILURE_LIMIT = 5
    settings.LOGIN_LOCKOUT_SECONDS = 15 * 60
    return 5


# --- hole 1: the admin login ------------------------------------------------------------


def test_admin_login_is_locked_after_the_limit_and_refuses_the_right_password(
        client, superuser, limit):
    for _ in range(limit + 7):  # the attack: 12 wrong passwords, then the right one
        response = post_login(client, "root", "wrong", url=ADMIN_LOGIN)
        assert response.status_code == 200 and not logged_in(client)
    response = post_login(client, "root", RIGHT, url=ADMIN_LOGIN)
    assert response.status_code == 200
    assert LOCKED in response.content.decode()
    assert not logged_in(client)


def test_admin_login_failures_lock_the_dashboard_login_too(client, superuser, limit):
    for n in range(limit):  # from different addresses: only the username's count is shared
        post_login(client, "root", "wrong", url=ADMIN_LOGIN, address=f"198.51.100.{n + 1}")
    response = post_login(client, "root", RIGHT, address="198.51.100.99")
    assert LOCKED in response.content.decode()
    assert not logged_in(client)


def test_dashboard_login_failures_lock_the_admin_login_too(client, superuser, limit):
    for n in range(limit):
        post_login(client, "root", "wrong", address=f"198.51.100.{n + 1}")
    response = post_login(client, "root", RIGHT, url=ADMIN_LOGIN, address="198.51.100.99")
    assert LOCKED in response.content.decode()
    assert not logged_in(client)


def test_admin_login_still_works_below_the_limit(client, superuser, limit):
    for _ in range(limit - 1):
        post_login(client, "root", "wrong", url=ADMIN_LOGIN)
    response = post_login(client, "root", RIGHT, url=ADMIN_LOGIN)
    assert response.status_code == 302 and logged_in(client)


# --- hole 2: the username as authentication resolves it, IPv6 by /64 --------------------


@pytest.mark.parametrize("variant", [" sam", "sam ", "\uff53am", "sam\xa0", "\u3000sam", "SAM"],
                         ids=["leading-space", "trailing-space", "full-width-s", "nbsp",
                              "ideographic-space", "upper-case"])
def test_a_spelling_variant_of_a_locked_username_is_locked_too(client, support_user, limit,
                                                                variant):
    for n in range(limit):
        post_login(client, "sam", "wrong", address=f"198.51.100.{n + 1}")
    response = post_login(client, variant, RIGHT, address="203.0.113.7")
    assert LOCKED in response.content.decode()
    assert not logged_in(client)


def test_failures_under_different_spellings_add_up(client, support_user, limit):
    variants = [" sam", "sam ", "\uff53am", "sam\xa0", "sam"]
    for n, variant in enumerate(variants[:limit]):
        post_login(client, variant, "wrong", address=f"198.51.100.{n + 1}")
    response = post_login(client, "sam", RIGHT, address="203.0.113.7")
    assert LOCKED in response.content.decode()
    assert not logged_in(client)


def test_spelling_variants_still_log_in_when_nothing_is_locked(client, support_user):
    # The same variants Django accepts (the lock keys on what it resolves, not on more).
    assert post_login(client, " sam\xa0", RIGHT).status_code == 302 and logged_in(client)


def test_ipv6_addresses_of_one_64_network_share_one_count(client, db, limit):
    for n in range(limit):  # a new address and a new username for every guess
        post_login(client, f"guess{n}", "wrong", address=f"2001:db8:1:2::{n + 1:x}")
    same_network = post_login(client, "another", "wrong", address="2001:db8:1:2:ffff::9")
    assert LOCKED in same_network.content.decode()
    next_network = post_login(client, "another", "wrong", address="2001:db8:1:3::1")
    assert LOCKED not in next_network.content.decode()


def test_address_key_is_the_64_network_for_ipv6_and_the_address_for_ipv4():
    assert auth.address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64"
    assert auth.address_key("2001:db8:1:2::1") == auth.address_key("2001:db8:1:2:ffff::ffff")
    assert auth.address_key("2001:db8:1:2::1") != auth.address_key("2001:db8:1:3::1")
    assert auth.address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert auth.address_key("192.0.2.1") == "192.0.2.1"


# --- hole 3: the client address behind the proxy; a lock before the password -----------


@pytest.fixture
def behind_proxy(settings):
    """One TLS proxy at 10.0.0.5 that appends the address it was connected from."""
    import ipaddress

    settings.FORWARDED_ALLOW_IPS = ["10.0.0.5"]
    settings.TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network("10.0.0.5")]
    settings.TRUSTED_PROXY_HOPS = 1
    return "10.0.0.5"


def test_behind_the_proxy_one_clients_failures_do_not_lock_out_another(
        client, support_user, admin_user_role, limit, behind_proxy):
    for n in range(limit + 3):  # one attacker, guessing at different usernames
        post_login(client, f"guess{n}", "wrong", address=behind_proxy,
                   HTTP_X_FORWARDED_FOR="203.0.113.66")
    response = post_login(client, "sam", RIGHT, address=behind_proxy,
                          HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert response.status_code == 302 and logged_in(client)
    from django.test import Client

    attacker = post_login(Client(), "ada", RIGHT, address=behind_proxy,
                          HTTP_X_FORWARDED_FOR="203.0.113.66")
    assert LOCKED in attacker.content.decode()


def test_a_client_cannot_escape_its_count_by_sending_its_own_forwarded_header(
        client, db, limit, behind_proxy):
    # The proxy appends the real address; what the client sent stays on the left.
    for n in range(limit):
        post_login(client, f"guess{n}", "wrong", address=behind_proxy,
                   HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.66")
    response = post_login(client, "another", "wrong", address=behind_proxy,
                          HTTP_X_FORWARDED_FOR="192.0.2.200, 203.0.113.66")
    assert LOCKED in response.content.decode()


def test_a_direct_client_is_counted_by_its_connection_not_by_its_forwarded_header(
        client, db, limit, behind_proxy):
    for n in range(limit):  # not from the proxy: X-Forwarded-For is the client's own text
        post_login(client, f"guess{n}", "wrong", address="203.0.113.66",
                   HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    response = post_login(client, "another", "wrong", address="203.0.113.66",
                          HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert LOCKED in response.content.decode()


@pytest.mark.parametrize(("remote", "forwarded", "hops", "expected"), [
    ("10.0.0.5", "203.0.113.9", 1, "203.0.113.9"),
    ("10.0.0.5", "1.2.3.4, 203.0.113.9", 1, "203.0.113.9"),
    ("10.0.0.5", "1.2.3.4, 203.0.113.9, 10.0.0.4", 2, "203.0.113.9"),
    ("10.0.0.5", "[2001:db8::7]:443", 1, "2001:db8::7"),
    ("10.0.0.5", "203.0.113.9:51000", 1, "203.0.113.9"),
    ("10.0.0.5", "", 1, "10.0.0.5"),  # the proxy's own request (health check)
    ("10.0.0.5", "203.0.113.9", 2, "10.0.0.5"),  # fewer entries than hops: not believed
    ("10.0.0.5", "not-an-address", 1, "10.0.0.5"),
    ("10.0.0.5", "203.0.113.9", 0, "10.0.0.5"),  # no proxy configured
    ("203.0.113.66", "192.0.2.1", 1, "203.0.113.66"),  # not the proxy: header ignored
    ("::ffff:10.0.0.5", "203.0.113.9", 1, "203.0.113.9"),  # dual-stack socket
])
def test_client_address_is_taken_from_the_trusted_hop_only(behind_proxy, settings, remote,
                                                            forwarded, hops, expected):
    settings.TRUSTED_PROXY_HOPS = hops
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert auth.client_address(request) == expected


def test_a_locked_login_is_refused_before_the_password_is_checked(
        client, support_user, limit, monkeypatch):
    for n in range(limit):
        post_login(client, "sam", "wrong", address=f"198.51.100.{n + 1}")
    checked = []
    original = type(support_user).check_password
    monkeypatch.setattr(type(support_user), "check_password",
                        lambda self, raw: checked.append(raw) or original(self, raw))
    response = post_login(client, "sam", RIGHT, address="203.0.113.7")
    assert LOCKED in response.content.decode()
    assert checked == []  # no hasher ran: a locked login says nothing about the password


def test_parallel_guesses_cannot_get_more_attempts_than_the_limit(db, limit, monkeypatch):
    """Attempts are counted before the password is checked, so a burst of concurrent guesses
    (each taking a password hash's time) gets `limit` tries, not one per request."""
    monkeypatch.setattr(auth, "IN_FLIGHT_WAIT_SECONDS", 0)
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.5")
    throttles = [auth.LoginThrottle(request, "sam") for _ in range(3 * limit)]
    admitted = [t for t in throttles if t.reserve()]  # all in flight at once
    assert len(admitted) == limit


def test_parallel_logins_with_wrong_passwords_are_held_to_the_limit(client, support_user,
                                                                     limit, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    support_user.set_password(RIGHT)
    support_user.save()
    results, barrier = [], threading.Barrier(3 * limit)

    def guess(n):
        from django.db import connections
        from django.test import Client

        try:
            barrier.wait()
            body = post_login(Client(), "sam", f"wrong-{n}", address=f"198.51.100.{n + 1}")
            results.append(LOCKED in body.content.decode())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(3 * limit)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    checked = results.count(False)
    assert len(results) == 3 * limit and checked <= limit


def test_logins_at_the_same_moment_from_one_address_wait_for_each_other(db, limit):
    """An office behind one address at 9:00: more logins in flight than the limit is no lock;
    the next one waits for a slot instead of being refused."""
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.5")
    in_flight = [auth.LoginThrottle(request, f"colleague{n}") for n in range(limit)]
    assert all(t.reserve() for t in in_flight)
    threading.Timer(0.3, in_flight[0].release).start()  # the first one's password was right
    started = time.monotonic()
    assert auth.LoginThrottle(request, "latecomer").reserve()
    assert time.monotonic() - started >= 0.25


def test_a_failure_while_others_are_in_flight_does_not_lock_the_address(db, limit):
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.5")
    in_flight = [auth.LoginThrottle(request, f"colleague{n}") for n in range(limit)]
    assert all(t.reserve() for t in in_flight)
    in_flight[0].failed()  # one typo among colleagues still being checked
    for throttle in in_flight[1:]:
        throttle.release()
    again = auth.LoginThrottle(request, "colleague0")
    assert again.reserve()


def test_a_login_that_crashes_does_not_hold_a_slot(client, support_user, limit, monkeypatch):
    from django.contrib.auth.backends import ModelBackend

    def broken(*args, **kwargs):
        raise ConnectionError("database went away")

    with monkeypatch.context() as patched:
        patched.setattr(ModelBackend, "authenticate", broken)
        for _ in range(limit + 1):
            with pytest.raises(ConnectionError):
                post_login(client, "sam", RIGHT)
    assert post_login(client, "sam", RIGHT).status_code == 302


def test_a_successful_login_does_not_count_as_a_failure(client, support_user, limit):
    for _ in range(2 * limit):
        assert post_login(client, "sam", RIGHT).status_code == 302
        client.post(reverse("logout"))
    for _ in range(limit - 1):
        post_login(client, "sam", "wrong")
    assert post_login(client, "sam", RIGHT).status_code == 302


@pytest.fixture
def cache_clock(monkeypatch):
    """A settable clock for the local-memory cache (expiry is set in base, read in locmem)."""
    now = [time.time()]
    clock = SimpleNamespace(time=lambda: now[0])
    monkeypatch.setattr(base_cache, "time", clock)
    monkeypatch.setattr(locmem, "time", clock)
    return now


def test_the_lock_lifts_after_the_cool_down(client, support_user, limit, cache_clock):
    now = cache_clock
    for _ in range(limit):
        post_login(client, "sam", "wrong")
    now[0] += 15 * 60 - 5
    assert LOCKED in post_login(client, "sam", RIGHT).content.decode()
    now[0] += 10
    assert post_login(client, "sam", RIGHT).status_code == 302 and logged_in(client)


def test_the_lock_runs_from_the_last_failure_not_the_first(client, support_user, limit,
                                                            cache_clock):
    now = cache_clock
    for _ in range(limit):
        post_login(client, "sam", "wrong")
        now[0] += 120  # one failure every two minutes
    now[0] += 15 * 60 - 120 - 30  # the first failure is long past its 15 minutes
    assert LOCKED in post_login(client, "sam", RIGHT).content.decode()


DATABASE_CACHE = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                              "LOCATION": "login_throttle_test_cache"}}


def test_the_throttle_counts_in_the_shared_database_cache(client, support_user, limit):
    """Production's default cache: what one web process counts, another one sees."""
    with override_settings(CACHES=DATABASE_CACHE):
        call_command("createcachetable", verbosity=0)
        for _ in range(limit):
            post_login(client, "sam", "wrong")
        another_process = caches.create_connection("default")
        key = auth.LoginThrottle(None, "sam").keys[0]
        assert another_process.get(f"{key}:locked") == 1
        response = post_login(client, "sam", RIGHT)
        assert LOCKED in response.content.decode()
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM login_throttle_test_cache")
            assert cursor.fetchone()[0] >= limit


def test_the_lock_message_is_plain(client, support_user, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    settings.LOGIN_LOCKOUT_SECONDS = 600
    for _ in range(2):
        post_login(client, "sam", "wrong")
    response = post_login(client, "sam", RIGHT)
    assert response.status_code == 200
    assert "Too many failed attempts. Wait 10 minutes, then try again." in \
        response.content.decode()
