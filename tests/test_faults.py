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
ACTIONS = ["sync", "detail", "create", "edit", "alias", "password", "application", "delete"]
WRITES = {"create", "edit", "alias", "password", "application", "delete"}
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


def _cells():
    for action in ACTIONS:
        for kind in KINDS:
            if kind == "deleted_elsewhere" and action in ("sync", "create"):
                continue  # no single endpoint involved
            yield pytest.param(action, kind, id=f"{action}-{kind}")


@pytest.mark.parametrize(("action", "kind"), list(_cells()))
def test_fault_matrix(action, kind, world, sandbox, settings, blackhole, closed_port):
    endpoint = world["endpoint"]
    method, path = _scope(action, endpoint.endpoint_id)
    before = _snapshot()
    remote_before = sandbox.api("GET", "Endpoint/", params={"limit": 1}).json()["meta"]
    _inject(kind, sandbox=sandbox, settings=settings, method=method, path=path,
            endpoint_id=endpoint.endpoint_id, blackhole=blackhole, closed_port=closed_port)
    sandbox.reset_stats()

    response = _act(action, world)
    sandbox.clear_faults()

    # Never a 500 page, never a blank answer.
    assert response.status_code < 500 or (action == "detail" and response.status_code == 503)
    assert response.content.strip()
    text = _visible_text(response)
    calls = sandbox.stats()["requests"]
    gone = kind == "deleted_elsewhere"

    if action == "delete" and (gone or kind in ("malformed", "empty")):
        # Already gone counts as deleted; any 2xx to a DELETE means deleted (CONTRACT.md).
        assert "Deleted" in text
        assert not Endpoint.objects.filter(endpoint_id=endpoint.endpoint_id).exists()
        assert AuditEvent.objects.get(action="delete").outcome == "done"
        return

    # A message in plain words.
    uncertain = kind in ("read_timeout", "dropped") or (
        action == "create" and kind in ("malformed", "empty"))
    if action == "create" and uncertain:
        assert "did not confirm whether the endpoint was created" in text
        assert "Check the list before trying again" in text
    else:
        assert KINDS[kind] in text, text[:3000]

    # The user's input is kept (passwords are deliberately not re-shown).
    if action in ("create", "edit") and not gone:
        assert f'value="{TYPED_ALIAS}"' in text
    if action == "create":
        assert f'value="{TYPED_USERNAME}"' in text
        assert TYPED_PASSWORD not in text
    if action == "alias" and not gone:
        assert response.status_code == 422
        assert f'value="{TYPED_ALIAS}"' in text
    if action == "application" and not gone:
        assert f'value="{world["app"].app_id}" selected' in text

    # The cache is unchanged (an endpoint gone at Vobiz leaves it, nothing else changes).
    after = _snapshot()
    if gone:
        assert after == [row for row in before if row[0] != endpoint.endpoint_id]
    else:
        assert after == before
    if action == "sync":
        state = SyncState.objects.get(name="endpoints")
        assert state.status == SyncState.Status.FAILED
        assert KINDS[kind] in state.last_error
        assert "Vobiz unreachable" in text or "sync failed" in text.lower()
    # Nothing changed at Vobiz either.
    remote_after = sandbox.api("GET", "Endpoint/", params={"limit": 1}).json()["meta"]
    assert remote_after["total_count"] == remote_before["total_count"] - (1 if gone else 0)

    # The failure is in the audit log.
    if action in WRITES:
        event = AuditEvent.objects.get()
        assert event.outcome in ("failed", "uncertain")
        expected = "could not read" if action == "create" and kind == "empty" else KINDS[kind]
        assert expected in event.message
        # Sent but unanswered (or answered unreadably, for a create): it may have happened.
        assert event.outcome == ("uncertain" if uncertain else "failed")

    # Retries: a create is sent once; GETs are retried within the bound on 502/503 and on
    # timeouts/drops, not on 500 or a Retry-After longer than the bound.
    if action == "create" and kind not in ("refused", "connect_timeout", "unauthorized"):
        assert calls.get("POST /Endpoint/") == 1
    if action == "detail" and kind not in ("refused", "connect_timeout"):
        retried = kind in ("http_502", "http_503", "read_timeout", "dropped")
        assert calls.get("GET /Endpoint/{id}/") == (3 if retried else 1)


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
