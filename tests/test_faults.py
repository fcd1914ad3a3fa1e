"""Every fault Vobiz can throw at every action, through the real views.

The matrix: {connection refused, connect timeout, read timeout, dropped connection, 429 with
Retry-After, 500, 502, 503, malformed JSON, empty body, 401, endpoint deleted elsewhere} x
{list refresh/sync, endpoint page, create, edit, inline alias edit, reset password, attach
application, delete}. For each cell: no 500 page or blank answer, a message in plain words,
the user's input kept, the cache unchanged by a failed write, an audit entry recording the
failure, and the right retries (GETs within a bound, creates never).
"""

import contextlib
import re
import socket

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from endpoints import sync
from endpoints.models import Application, AuditEvent, Endpoint, SyncState
from endpoints.vobiz import VobizError

KINDS = {
    # kind: words the user must read
    "refused": "Could not connect to Vobiz",
    "connect_timeout": "did not accept the connection in time",
    "read_timeout": "did not answer in time",
    "dropped": "closed the connection",
    "rate_limited": "rate-limiting",
    "http_500": "HTTP 500",
    "http_502": "HTTP 502",
    "http_503": "HTTP 503",
    "malformed": "could not read",
    "empty": "empty answer",
    "unauthorized": "rejected the dashboard's API credentials",
    "deleted_elsewhere": "no longer",
}
TYPED_ALIAS = "Typed-By-Agent"
TYPED_USERNAME = "faultyagent"
TYPED_PASSWORD = "Typed-Password-99"


@pytest.fixture(scope="module")
def blackhole():
    """A loopback port whose listener never accepts and whose backlog is full: connects hang
    until the client's connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    yield listener.getsockname()[1]
    for sock in [*fillers, listener]:
        sock.close()


@pytest.fixture
def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def world(sandbox, synced, client, admin_user_role, settings):
    """Logged-in admin, a cached endpoint with a rule-abiding alias, and a second app."""
    settings.VOBIZ_READ_TIMEOUT = 0.3
    client.force_login(admin_user_role)
    endpoint = next(e for e in Endpoint.objects.order_by("username")
                    if re.fullmatch(r"[A-Za-z0-9_-]+", e.alias) and e.username.isalnum())
    other_app = Application.objects.exclude(app_id=endpoint.app_id).first()
    return {"client": client, "endpoint": endpoint, "app": other_app}


def _inject(kind, *, sandbox, settings, method, path, endpoint_id, blackhole, closed_port):
    if kind == "refused":
        settings.VOBIZ_API_URL = f"http://127.0.0.1:{closed_port}/api/v1"
    elif kind == "connect_timeout":
        settings.VOBIZ_CONNECT_TIMEOUT = 0.2
        settings.VOBIZ_API_URL = f"http://127.0.0.1:{blackhole}/api/v1"
    elif kind == "read_timeout":
        # No answer within the read timeout, and the request is never carried out.
        sandbox.fault(method=method, path=path, delay=0.6, drop=True, times=10)
    elif kind == "dropped":
        sandbox.fault(method=method, path=path, drop=True, times=10)
    elif kind == "rate_limited":
        sandbox.fault(method=method, path=path, status=429, retry_after=30, times=10)
    elif kind.startswith("http_"):
        sandbox.fault(method=method, path=path, status=int(kind[5:]), times=10)
    elif kind in ("malformed", "empty"):
        # Every call on that path answers 200 with a body we cannot read.
        sandbox.fault(path=path, status=200, body=kind, times=10)
    elif kind == "unauthorized":
        settings.VOBIZ_AUTH_TOKEN = "not-the-token"
    elif kind == "deleted_elsewhere":
        sandbox.api("DELETE", f"Endpoint/{endpoint_id}/")


def _scope(action, endpoint_id):
    """The Vobiz call each action depends on: the fault hits that one."""
    one = f"/Endpoint/{endpoint_id}/"
    return {
        "sync": ("GET", "/Endpoint/"),
        "detail": ("GET", one),
        "create": ("POST", "/Endpoint/"),
        "delete": ("DELETE", one),
    }.get(action, ("POST", one))


def _act(action, world):
    client, endpoint = world["client"], world["endpoint"]
    eid = endpoint.endpoint_id
    if action == "sync":
        with contextlib.suppress(VobizError):  # the failure is what the cell checks
            sync.endpoint_sync_all(triggered_by="tests")
        return client.get(reverse("endpoints:list"))
    if action == "detail":
        return client.get(reverse("endpoints:detail", args=[eid]))
    if action == "create":
        page = client.get(reverse("endpoints:create")).content.decode()
        nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)
        return client.post(reverse("endpoints:create"), {
            "nonce": nonce, "username": TYPED_USERNAME, "password": TYPED_PASSWORD,
            "alias": TYPED_ALIAS, "application": "", "allow_voice": "on",
            "allow_message": "on", "allow_same_domain": "on", "allow_phones": "on",
            "allow_apps": "on"})
    if action == "edit":
        data = {"alias": TYPED_ALIAS, "seen_alias": endpoint.alias}
        for name in ("allow_voice", "allow_message", "allow_video"):
            if getattr(endpoint, name):
                data[name] = "on"
            data[f"seen_{name}"] = "true" if getattr(endpoint, name) else "false"
        return client.post(reverse("endpoints:edit", args=[eid]), data)
    if action == "alias":
        return client.post(reverse("endpoints:alias", args=[eid]),
                           {"alias": TYPED_ALIAS, "seen_alias": endpoint.alias},
                           HTTP_HX_REQUEST="true")
    if action == "password":
        return client.post(reverse("endpoints:password", args=[eid]),
                           {"password": TYPED_PASSWORD})
    if action == "application":
        return client.post(reverse("endpoints:application", args=[eid]),
                           {"application": world["app"].app_id, "action": "attach"})
    if action == "delete":
        return client.post(reverse("endpoints:delete", args=[eid]), follow=True)
    raise AssertionError(action)


def _visible_text(response):
    text = response.content.decode()
    text += " ".join(str(m) for m in get_messages(response.wsgi_request))
    return text.replace("&#x27;", "'").replace("&quot;", '"')


SHOWN = ("endpoint_id", "username", "alias", "app_id", "app_name", "sub_account",
         "allow_voice", "allow_message", "allow_video", "allow_same_domain",
         "allow_other_domains", "allow_phones", "allow_apps")


def _snapshot():
    # What the dashboard shows (registration expiries renew on their own, so not those).
    return list(Endpoint.objects.order_by("endpoint_id").values_list(*SHOWN))


def _kinds(action):
    """The faults that apply to ``action`` (sync and create involve no single endpoint)."""
    return [k for k in KINDS if not (k == "deleted_elsewhere" and action in ("sync", "create"))]


def _uncertain(action, kind):
    """Sent but unanswered (or answered unreadably, for a create): it may have happened."""
    return kind in ("read_timeout", "dropped") or (
        action == "create" and kind in ("malformed", "empty"))


class Cell:
    """One action under one fault, run through the real view against the sandbox."""

    def __init__(self, action, kind, world, sandbox, settings, blackhole, closed_port):
        self.action, self.kind, self.world, self.sandbox = action, kind, world, sandbox
        self.endpoint = world["endpoint"]
        method, path = _scope(action, self.endpoint.endpoint_id)
        self.before = _snapshot()
        self.remote_before = self._remote_total()
        _inject(kind, sandbox=sandbox, settings=settings, method=method, path=path,
                endpoint_id=self.endpoint.endpoint_id, blackhole=blackhole,
                closed_port=closed_port)
        sandbox.reset_stats()
        self.response = _act(action, world)
        sandbox.clear_faults()
        self.text = _visible_text(self.response)
        self.calls = sandbox.stats()["requests"]
        self.gone = kind == "deleted_elsewhere"

    def _remote_total(self):
        return self.sandbox.api("GET", "Endpoint/", params={"limit": 1}).json()["meta"][
            "total_count"]

    def assert_answered_in_plain_words(self):
        """Never a 500 page or a blank answer; the fault's own words on the page."""
        status = self.response.status_code
        assert status < 500 or (self.action == "detail" and status == 503)
        assert self.response.content.strip()
        assert KINDS[self.kind] in self.text, self.text[:3000]

    def assert_nothing_changed(self):
        """The cache and Vobiz are as they were (an endpoint deleted elsewhere leaves the
        cache, nothing else changes)."""
        after = _snapshot()
        if self.gone:
            assert after == [row for row in self.before if row[0] != self.endpoint.endpoint_id]
        else:
            assert after == self.before
        assert self._remote_total() == self.remote_before - (1 if self.gone else 0)

    def assert_audited(self, *, expected=None):
        event = AuditEvent.objects.get()
        assert (expected or KINDS[self.kind]) in event.message
        assert event.outcome == ("uncertain" if _uncertain(self.action, self.kind)
                                 else "failed")


@pytest.fixture
def cell(world, sandbox, settings, blackhole, closed_port):
    return lambda action, kind: Cell(action, kind, world, sandbox, settings, blackhole,
                                     closed_port)


@pytest.mark.parametrize("kind", _kinds("sync"))
def test_sync_fault_keeps_the_cache_and_records_the_failure(cell, kind):
    run = cell("sync", kind)
    run.assert_answered_in_plain_words()
    run.assert_nothing_changed()
    state = SyncState.objects.get(name="endpoints")
    assert state.status == SyncState.Status.FAILED
    assert KINDS[kind] in state.last_error
    assert "Vobiz unreachable" in run.text or "sync failed" in run.text.lower()


@pytest.mark.parametrize("kind", _kinds("detail"))
def test_endpoint_page_fault_is_explained_and_gets_are_retried_within_the_bound(cell, kind):
    run = cell("detail", kind)
    run.assert_answered_in_plain_words()
    run.assert_nothing_changed()
    # GETs are retried within the bound on 502/503 and on timeouts/drops, not on 500 or a
    # Retry-After longer than the bound.
    if kind not in ("refused", "connect_timeout"):
        retried = kind in ("http_502", "http_503", "read_timeout", "dropped")
        assert run.calls.get("GET /Endpoint/{id}/") == (3 if retried else 1)


@pytest.mark.parametrize("kind", _kinds("create"))
def test_create_fault_keeps_the_form_and_is_sent_once(cell, kind):
    run = cell("create", kind)
    if _uncertain("create", kind):
        assert run.response.status_code < 500
        assert "did not confirm whether the endpoint was created" in run.text
        assert "Check the list before trying again" in run.text
    else:
        run.assert_answered_in_plain_words()
    assert f'value="{TYPED_ALIAS}"' in run.text
    assert f'value="{TYPED_USERNAME}"' in run.text
    assert TYPED_PASSWORD not in run.text  # passwords are deliberately not re-shown
    run.assert_nothing_changed()
    run.assert_audited(expected="could not read" if kind == "empty" else None)
    # Never retried: Vobiz rewrites usernames, so a second POST is a second endpoint.
    if kind not in ("refused", "connect_timeout", "unauthorized"):
        assert run.calls.get("POST /Endpoint/") == 1


@pytest.mark.parametrize("kind", _kinds("edit"))
def test_edit_fault_keeps_the_typed_values(cell, kind):
    run = cell("edit", kind)
    run.assert_answered_in_plain_words()
    if not run.gone:
        assert f'value="{TYPED_ALIAS}"' in run.text
    run.assert_nothing_changed()
    run.assert_audited()


@pytest.mark.parametrize("kind", _kinds("alias"))
def test_inline_alias_fault_answers_the_row_form_with_the_typed_alias(cell, kind):
    run = cell("alias", kind)
    run.assert_answered_in_plain_words()
    if not run.gone:
        assert run.response.status_code == 422
        assert f'value="{TYPED_ALIAS}"' in run.text
    run.assert_nothing_changed()
    run.assert_audited()


@pytest.mark.parametrize("kind", _kinds("password"))
def test_password_reset_fault_never_shows_the_typed_password(cell, kind):
    run = cell("password", kind)
    run.assert_answered_in_plain_words()
    assert TYPED_PASSWORD not in run.text
    run.assert_nothing_changed()
    run.assert_audited()


@pytest.mark.parametrize("kind", _kinds("application"))
def test_application_fault_keeps_the_chosen_application(cell, kind):
    run = cell("application", kind)
    run.assert_answered_in_plain_words()
    if not run.gone:
        assert f'value="{run.world["app"].app_id}" selected' in run.text
    run.assert_nothing_changed()
    run.assert_audited()


@pytest.mark.parametrize("kind", _kinds("delete"))
def test_delete_fault_keeps_the_endpoint_unless_vobiz_says_it_is_gone(cell, kind):
    run = cell("delete", kind)
    if run.gone or kind in ("malformed", "empty"):
        # Already gone counts as deleted; any 2xx to a DELETE means deleted
        # (docs/vobiz-api.md).
        assert "Deleted" in run.text
        assert not Endpoint.objects.filter(endpoint_id=run.endpoint.endpoint_id).exists()
        assert AuditEvent.objects.get(action="delete").outcome == "done"
        return
    run.assert_answered_in_plain_words()
    run.assert_nothing_changed()
    run.assert_audited()


def test_unreadable_api_records_are_reported_and_never_crash_a_page(world, sandbox):
    client = world["client"]
    planted = sandbox.plant({"endpoint_id": "999000000000003", "username": "broken",
                             "created_at": "yesterday", "allow_voice": "sometimes"})
    sync.endpoint_sync_all()
    page = client.get(reverse("endpoints:list")).content.decode()
    assert "1 endpoint record from Vobiz could not be read" in page
    assert not Endpoint.objects.filter(endpoint_id=planted["endpoint_id"]).exists()
    assert Endpoint.objects.count() == 30  # the rest of the sync went on

    detail = client.get(reverse("endpoints:detail", args=[planted["endpoint_id"]]))
    assert detail.status_code in (503, 404)
    assert "could not read" in _visible_text(detail)
