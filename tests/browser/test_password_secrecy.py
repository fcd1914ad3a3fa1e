"""A SIP password typed in Chromium is shown once, in the answer to the POST that set it
(marked ``Cache-Control: no-store``), and then found nowhere: not in any database table or
session, the cache, the logs, the audit log, any page served afterwards, the browser's
storage, or the page the back and forward buttons bring back. The Vobiz API token never
appears in a log or a page either.
"""

import logging
import re

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

CREATE_PASSWORD = "Unique-Secret-5150-Zebra"
RESET_PASSWORD = "Unique-Reset-8264-Quokka"
VOBIZ_TOKEN = "sandbox-token"
SECRETS = (CREATE_PASSWORD, RESET_PASSWORD, VOBIZ_TOKEN)


def everything_in_the_database() -> str:
    """Every row of every table (sessions decoded too), as text."""
    from django.apps import apps
    from django.contrib.sessions.models import Session

    dumps = []
    for model in apps.get_models():
        dumps.append(f"{model._meta.db_table}: {list(model.objects.values())!r}")
    for session in Session.objects.all():
        dumps.append(repr(session.get_decoded()))
    return "\n".join(dumps)


def everything_in_the_cache() -> bytes:
    """Every key and value in Django's cache (nonce claims, login throttle), raw."""
    from django.core.cache import caches
    from django.core.cache.backends import locmem

    cache = caches["default"]
    backend = type(cache).__name__
    if backend == "LocMemCache":  # what tests use unless REDIS_URL is set
        stores = locmem._caches.values()
        return b"\n".join(key.encode() + b"=" + value
                          for store in stores for key, value in store.items())
    if backend == "RedisCache":
        client = cache._cache.get_client()
        return b"\n".join(key + b"=" + (client.dump(key) or b"") for key in client.keys("*"))
    pytest.fail(f"no way to look inside a {backend}")


def log_everything_at_debug(caplog):
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)


@pytest.fixture
def console(capfd):
    """Everything written to stdout/stderr, the app's console log included: its handler
    (settings.LOGGING) holds the stream it was created with, which pytest had replaced, so
    it is pointed at file descriptor 2 itself, where capfd reads."""
    handlers = [h for h in logging.root.handlers if h.get_name() == "console"]
    assert handlers, "settings.LOGGING has no console handler"
    fd2 = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    previous = [(handler, handler.setStream(fd2)) for handler in handlers]

    def read() -> str:
        fd2.flush()
        out, err = capfd.readouterr()
        return out + err

    yield read
    for handler, stream in previous:
        handler.setStream(stream)
    fd2.close()


def submit_and_capture(page, button, path):
    """Click ``button`` and return the answer to the POST it sends to ``path``."""
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(path)
    ) as answer:
        button.click()
    return answer.value


def assert_revealed_once(response, page, password):
    assert response.status == 200
    cache_control = response.headers["cache-control"]
    assert "no-store" in cache_control and "private" in cache_control
    assert response.text().count(password) == 1  # in the HTML the server sent
    expect(page.locator("#reveal-password")).to_have_text(password)
    assert page.content().count(password) == 1  # and in the page as the browser has it
    expect(page.get_by_text("This password will not be shown again.")).to_be_visible()


def assert_secret_free(text, where):
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} found in {where}"


def test_typed_passwords_are_shown_once_and_kept_nowhere(admin_page, live, sandbox, caplog,
                                                        console):
    from endpoints.models import AuditEvent, Endpoint

    log_everything_at_debug(caplog)
    page = admin_page
    served = []  # every answer the browser gets after the reveals: (url, body)

    # --- create, with a password typed into the form ----------------------------------------
    page.goto(f"{live}/endpoints/new/")
    page.get_by_label("Username").fill("secretdesk")
    page.get_by_label("Password", exact=True).press_sequentially(CREATE_PASSWORD)
    page.get_by_label("Alias").fill("Secret-Desk")
    created = submit_and_capture(page, page.get_by_role("button", name="Create endpoint"),
                                 "/endpoints/new/")
    assert_revealed_once(created, page, CREATE_PASSWORD)
    endpoint = Endpoint.objects.get(username__startswith="secretdesk")

    # Back to the form: it is fetched again and never holds the password.
    page.go_back()
    expect(page.get_by_role("heading", name="New endpoint")).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    assert CREATE_PASSWORD not in page.content()

    # --- reset, with another typed password --------------------------------------------------
    page.goto(f"{live}/endpoints/{endpoint.endpoint_id}/")
    page.get_by_role("link", name="Reset password").click()
    page.get_by_label("New password").press_sequentially(RESET_PASSWORD)
    reset = submit_and_capture(page, page.get_by_role("button", name="Reset password"),
                               f"/endpoints/{endpoint.endpoint_id}/password/")
    assert_revealed_once(reset, page, RESET_PASSWORD)
    assert CREATE_PASSWORD not in reset.text()

    def keep(response):
        if response.request.resource_type in ("document", "xhr", "fetch"):
            try:
                served.append((response.url, response.text()))
            except PlaywrightError:  # a redirect has no body
                served.append((response.url, ""))

    page.on("response", keep)

    # Back, then forward to the reveal: the no-store answer is not shown again from a cache.
    page.go_back()
    expect(page.get_by_label("New password")).to_have_value("")
    assert RESET_PASSWORD not in page.content()
    try:
        page.go_forward()
    except PlaywrightError as exc:
        # Chromium may not show a no-store answer to a POST from its cache, nor re-send it.
        assert "ERR_CACHE_MISS" in str(exc)
        page.wait_for_url(re.compile(r"^chrome-error://"))
    if RESET_PASSWORD in page.content():
        # Only acceptable if the browser asked the server again (which would be a new reset).
        assert AuditEvent.objects.filter(action="password_reset").count() == 2
    else:
        assert AuditEvent.objects.filter(action="password_reset").count() == 1

    # --- every page afterwards -----------------------------------------------------------------
    for path in ("/", f"/endpoints/{endpoint.endpoint_id}/",
                 f"/endpoints/{endpoint.endpoint_id}/edit/",
                 f"/endpoints/{endpoint.endpoint_id}/password/",
                 f"/endpoints/{endpoint.endpoint_id}/application/", "/audit/",
                 f"/audit/?endpoint={endpoint.username}"):
        response = page.goto(f"{live}{path}")
        assert response.status == 200, path
        assert_secret_free(response.text(), f"the page {path}")
        assert_secret_free(page.content(), f"the page {path} in the browser")
    # An htmx fragment too: the list's results and the inline alias form.
    page.goto(f"{live}/?q={endpoint.username}")
    with page.expect_response(lambda r: "/alias/" in r.url) as fragment:
        page.get_by_role("button", name=re.compile(f"Edit alias of {endpoint.username}")).click()
    expect(page.get_by_label("Alias", exact=True)).to_have_value("Secret-Desk")
    assert "Secret-Desk" in fragment.value.text()
    assert_secret_free(fragment.value.text(), "the inline alias form")
    for url, body in served:
        assert_secret_free(body, url)
    storage = page.evaluate("JSON.stringify([Object.entries(localStorage),"
                            " Object.entries(sessionStorage)])")
    assert_secret_free(storage, "the browser's storage")

    # --- what the server kept -------------------------------------------------------------------
    events = AuditEvent.objects.filter(endpoint_id=endpoint.endpoint_id)
    assert {(e.action, e.outcome) for e in events} == {("create", "done"),
                                                        ("password_reset", "done")}
    assert_secret_free(repr(list(events.values())), "the audit log")
    assert_secret_free(everything_in_the_database(), "the database")
    for secret in SECRETS:
        assert secret.encode() not in everything_in_the_cache(), f"{secret!r} in the cache"

    # --- the logs (every logger at DEBUG) and anything written to stdout / stderr ---------------
    assert any("vobiz POST" in r.getMessage() for r in caplog.records)  # logging was captured
    assert_secret_free(caplog.text, "the log")
    assert_secret_free("\n".join(repr(r.args) for r in caplog.records), "log arguments")
    written = console()
    assert "vobiz POST" in written  # the console log was captured
    assert_secret_free(written, "stdout/stderr")
