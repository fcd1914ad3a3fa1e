"""Registration history: what syncs and live reads record, against the sandbox over HTTP."""

from datetime import timedelta

import pytest

from endpoints import history, sync
from endpoints.models import Endpoint, RegistrationEvent, RegistrationTally, SyncState

Kind = RegistrationEvent.Kind
pytestmark = pytest.mark.django_db


def _ids(sandbox, count=3):
    body = sandbox.api("GET", "Endpoint/?limit=100").json()
    return [o["endpoint_id"] for o in body["objects"][:count]]


def _sync():
    return sync.endpoint_sync_all(triggered_by="tests")


def _events(endpoint_id=None):
    qs = RegistrationEvent.objects.order_by("at", "id")
    if endpoint_id:
        qs = qs.filter(endpoint_id=endpoint_id)
    return list(qs.values_list("endpoint_id", "kind"))


@pytest.fixture
def started(sandbox, clock):
    """History begun: every device of the chosen endpoints pinned (renewing), then a first
    sync, which is the starting point."""
    ids = _ids(sandbox)
    for eid in ids:
        sandbox.register(eid, contact=f"sip:u{eid}@203.0.113.7:5060", user_agent="Yealink T54W",
                         received="203.0.113.7:5060", expires_in=600, renew=True)
    _sync()
    return ids


def test_the_first_sync_is_the_starting_point_and_records_nothing(sandbox, clock):
    assert history.history_since() is None
    result = _sync()
    assert result.created == 30
    assert RegistrationEvent.objects.count() == 0
    assert RegistrationTally.objects.count() == 0
    assert history.history_since() == SyncState.objects.get().started_at
    registered = Endpoint.objects.filter(sip_registered=True)
    assert registered.exists()
    # Online before history began: since when is not known, and not made up.
    assert not registered.filter(online_since__isnull=False).exists()


def test_a_failed_first_sync_does_not_begin_history(sandbox, clock):
    sandbox.fault(status=500, times=10, path="/Endpoint/")
    with pytest.raises(Exception):  # noqa: B017,PT011 (a VobizError of some kind)
        _sync()
    assert history.history_since() is None


def _registrations(sandbox) -> dict:
    """The API's own view: endpoint id -> (registered, contact, user agent)."""
    objects = sandbox.api("GET", "Endpoint/?limit=100").json()["objects"]
    return {o["endpoint_id"]: (o["sip_registered"] == "true" or bool(o["sip_contact"]),
                               o["sip_contact"], o["sip_user_agent"]) for o in objects}


def test_nothing_is_recorded_when_nothing_changed(sandbox, clock, started):
    # Renewals move every expiry (rows are rewritten) but change no registration; the only
    # changes are the seeded devices that stop renewing and lapse, one event each.
    before = _registrations(sandbox)
    updated = 0
    for _ in range(5):
        clock.shift(600)
        updated += _sync().updated
        now = _registrations(sandbox)
        assert {e for e, _ in _events()} == {e for e in now if now[e] != before[e]}
    assert updated > len(_events())
    assert all(kind == Kind.OFFLINE for _, kind in _events())
    for eid in started:
        assert not RegistrationEvent.objects.filter(endpoint_id=eid).exists()


def test_going_offline_and_coming_back(sandbox, clock, started):
    eid = started[0]
    clock.shift(60)
    sandbox.unregister(eid)
    dropped_seen = clock.shift(0) or _now()
    _sync()
    row = Endpoint.objects.get(endpoint_id=eid)
    assert not row.sip_registered
    assert row.online_since is None
    # Dated when it was seen gone: its registration still had minutes to run.
    assert row.last_seen_at == row.last_drop_at == dropped_seen
    assert _events(eid) == [(eid, Kind.OFFLINE)]

    clock.shift(300)
    sandbox.register(eid, contact=f"sip:u{eid}@203.0.113.7:5060", user_agent="Yealink T54W",
                     expires_in=600, renew=True)
    _sync()
    row = Endpoint.objects.get(endpoint_id=eid)
    assert row.sip_registered
    assert row.online_since == _now()
    assert row.last_seen_at is None  # being seen
    assert row.last_drop_at == dropped_seen  # kept: "dropped in the last hour" still finds it
    assert _events(eid) == [(eid, Kind.OFFLINE), (eid, Kind.ONLINE)]
    online = RegistrationEvent.objects.get(endpoint_id=eid, kind=Kind.ONLINE)
    assert online.user_agent == "Yealink T54W"
    assert online.contact == f"sip:u{eid}@203.0.113.7:5060"


def test_a_lapsed_registration_is_dated_at_its_expiry(sandbox, clock, started):
    eid = started[1]
    sandbox.register(eid, contact=f"sip:u{eid}@203.0.113.7:5060", user_agent="Yealink T54W",
                     expires_in=120, renew=False)
    _sync()  # the same device, a new expiry: no change
    assert RegistrationEvent.objects.count() == 0
    expiry = Endpoint.objects.get(endpoint_id=eid).sip_expires
    clock.shift(600)  # the sync that notices comes long after the registration ran out
    _sync()
    assert Endpoint.objects.get(endpoint_id=eid).last_seen_at == expiry
    assert RegistrationEvent.objects.get(endpoint_id=eid).at == expiry


@pytest.mark.parametrize(("change", "kind"), [
    ({"user_agent": "Zoiper v5.6.4"}, Kind.DEVICE),
    ({"contact": "sip:u{eid}@198.51.100.99:5060"}, Kind.ADDRESS),
    ({"contact": "sip:u{eid}@203.0.113.7:40001"}, Kind.CONTACT),
])
def test_another_device_address_or_contact_is_a_change(sandbox, clock, started, change, kind):
    eid = started[0]
    device = {"contact": f"sip:u{eid}@203.0.113.7:5060", "user_agent": "Yealink T54W",
              "expires_in": 600, "renew": True}
    device.update({k: v.format(eid=eid) for k, v in change.items()})
    clock.shift(60)
    sandbox.register(eid, **device)
    _sync()
    assert _events(eid) == [(eid, kind)]
    row = Endpoint.objects.get(endpoint_id=eid)
    assert row.online_since is None  # still online without a break, since before history
    assert RegistrationTally.objects.count() == 0  # the registered count did not move


def test_a_live_read_records_what_it_sees(sandbox, clock, started, client_vobiz):
    from endpoints import services
    from endpoints.scopes import EVERYTHING

    eid = started[2]
    sandbox.unregister(eid)
    services.endpoint_fetch(endpoint_id=eid, scope=EVERYTHING, client=client_vobiz)
    assert _events(eid) == [(eid, Kind.OFFLINE)]
    _sync()  # the sync sees what the live read saw: nothing new
    assert _events(eid) == [(eid, Kind.OFFLINE)]


def test_an_endpoint_deleted_while_registered_leaves_the_count(sandbox, clock, started):
    eid = started[0]
    clock.shift(60)
    assert sandbox.api("DELETE", f"Endpoint/{eid}/").status_code == 204
    _sync()
    assert _events(eid) == [(eid, Kind.DELETED)]
    tally = RegistrationTally.objects.get()
    assert (tally.came_online, tally.went_offline) == (0, 1)


def test_a_new_endpoint_seen_registered_came_online(sandbox, clock, started):
    created = sandbox.api("POST", "Endpoint/", json={
        "username": "newphone", "password": "Secret-pass-1", "alias": "New"}).json()
    eid = created["endpoint_id"]
    sandbox.register(eid, user_agent="Grandstream GXP2170", expires_in=600, renew=True)
    _sync()
    assert _events(eid) == [(eid, Kind.ONLINE)]
    assert Endpoint.objects.get(endpoint_id=eid).online_since == _now()


def test_tallies_count_each_hour(sandbox, clock, started):
    a, b, c = started
    sandbox.unregister(a)
    sandbox.unregister(b)
    _sync()
    clock.shift(3600)
    sandbox.register(a, user_agent="Yealink T54W", expires_in=600, renew=True)
    _sync()
    tallies = {hour: (up, down) for hour, up, down in RegistrationTally.objects.values_list(
        "hour", "came_online", "went_offline")}
    # Each hour counts exactly its events (a seeded device that lapsed among them).
    expected = {}
    for at, kind in RegistrationEvent.objects.values_list("at", "kind"):
        hour = at.replace(minute=0, second=0, microsecond=0)
        up, down = expected.get(hour, (0, 0))
        expected[hour] = (up + (kind == Kind.ONLINE), down + (kind in history.DROPS))
    assert tallies == expected
    assert _events(a) == [(a, Kind.OFFLINE), (a, Kind.ONLINE)]
    assert _events(b) == [(b, Kind.OFFLINE)]
    assert sum(up for up, _ in tallies.values()) == 1


def test_pruning_keeps_exactly_the_retention_window(sandbox, clock, started, settings):
    settings.REGISTRATION_HISTORY_DAYS = 2
    eid = started[0]
    for _ in range(6):  # a drop and a return every 12 hours, for three days
        sandbox.unregister(eid)
        _sync()
        clock.shift(6 * 3600)
        sandbox.register(eid, user_agent="Yealink T54W", expires_in=600, renew=True)
        _sync()
        clock.shift(6 * 3600)
    kept_from = _now() - timedelta(days=2)
    total = RegistrationEvent.objects.count()
    older = RegistrationEvent.objects.filter(at__lt=kept_from).count()
    assert older and total > older
    assert history.history_prune() == older
    assert RegistrationEvent.objects.count() == total - older
    assert not RegistrationEvent.objects.filter(at__lt=kept_from).exists()
    assert RegistrationEvent.objects.filter(at=kept_from).exists() or min(
        RegistrationEvent.objects.values_list("at", flat=True)) >= kept_from
    assert not RegistrationTally.objects.filter(hour__lt=kept_from - timedelta(hours=1)).exists()


def test_contact_host():
    assert history.contact_host("sip:alice@203.0.113.5:5060;transport=udp") == "203.0.113.5"
    assert history.contact_host("<sips:alice@[2001:DB8::1]:5061>") == "2001:db8::1"
    assert history.contact_host("192.168.1.20:5060") == "192.168.1.20"
    assert history.contact_host("sip:abc@x1y2.invalid;transport=ws") == "x1y2.invalid"
    assert history.contact_host("") == ""


def _now():
    from django.utils import timezone

    return timezone.now()



# --- the endpoint page ----------------------------------------------------------------------


def _page(client, eid):
    from django.urls import reverse

    response = client.get(reverse("endpoints:detail", args=[eid]))
    assert response.status_code == 200
    return response.content.decode()


def _device(eid, **change):
    device = {"contact": f"sip:u{eid}@203.0.113.7:5060", "user_agent": "Yealink T54W",
              "received": "203.0.113.7:5060", "expires_in": 600, "renew": True}
    device.update(change)
    return device


def test_the_endpoint_page_shows_the_timeline(sandbox, clock, started, client,
                                              admin_user_role):
    client.force_login(admin_user_role)
    eid = started[0]
    clock.shift(600)
    sandbox.unregister(eid)
    _sync()
    html = _page(client, eid)  # a live read: it sees the same, records nothing new
    assert _events(eid) == [(eid, Kind.OFFLINE)]
    assert "Last seen registered" in html and "Registration history" in html
    assert "before history" in html and "went offline" in html
    clock.shift(900)
    sandbox.register(eid, **_device(eid))
    _sync()
    html = _page(client, eid)
    assert "Online since" in html
    assert html.count("Yealink T54W") >= 2  # the current registration and its period
    assert "flapping" not in html and "may have leaked" not in html
    assert "Dropped 1 time in the last 24 hours." in html


def test_three_drops_in_an_hour_is_flapping(sandbox, clock, started, client, support_user):
    client.force_login(support_user)
    eid = started[0]
    for _ in range(3):
        clock.shift(240)
        sandbox.unregister(eid)
        _sync()
        clock.shift(120)
        sandbox.register(eid, **_device(eid))
        _sync()
    html = _page(client, eid)
    assert "This endpoint is flapping:</strong> it dropped 3 times between" in html
    assert "(3 in the last hour)" in html
    # Two hours later it is not flapping now, but it did today: still said.
    clock.shift(7200)
    client.force_login(support_user)  # idle sessions end
    html = _page(client, eid)
    assert "it dropped 3 times between" in html and "in the last hour)" not in html
    clock.shift(86400)
    client.force_login(support_user)
    assert "flapping" not in _page(client, eid)


@pytest.mark.parametrize(("change", "said"), [
    ({"user_agent": "Evil<script>alert(1)</script>SIP"}, "a different device registered, "),
    ({"contact": "sip:x@198.51.100.66:5060", "received": "198.51.100.66:5060"},
     "a device registered from a new address, "),
])
def test_another_device_or_address_suggests_a_password_reset(sandbox, clock, started, client,
                                                               admin_user_role, change, said):
    client.force_login(admin_user_role)
    eid = started[0]
    sandbox.unregister(eid)  # history sees the usual phone come back first
    _sync()
    clock.shift(60)
    sandbox.register(eid, **_device(eid))
    _sync()
    clock.shift(600)
    sandbox.register(eid, **_device(eid, **change))
    _sync()
    html = _page(client, eid)
    assert said in html and "the password may have leaked" in html
    assert ("1 time in the last 7 days, another device or address registered with this "
            "endpoint's credentials") in html
    assert "reset the password</a>" in html
    assert "<script>alert(1)" not in html
    if "user_agent" in change:
        assert "Evil&lt;script&gt;alert(1)&lt;/script&gt;SIP" in html
        assert "where <span class=\"ua\">Yealink T54W</span> was before" in html
    else:
        assert "<code>198.51.100.66:5060</code>" in html  # received, from the live read
    clock.shift(8 * 86400)
    client.force_login(admin_user_role)  # the session ran out meanwhile
    assert "may have leaked" not in _page(client, eid)  # a week on, no longer raised


def test_a_user_who_cannot_reset_is_told_to_ask(sandbox, clock, started, client,
                                               django_user_model):
    from django.contrib.auth.models import Group

    from endpoints import roles

    roles.ensure_roles()
    viewer = django_user_model.objects.create_user("vera", password="pw-for-tests-1")
    viewer.groups.add(Group.objects.get(name=roles.SUPPORT))
    viewer.user_permissions.clear()
    group = Group.objects.create(name="Read only")
    from django.contrib.auth.models import Permission

    group.permissions.add(Permission.objects.get(codename="view_endpoint"))
    viewer.groups.set([group])
    client.force_login(viewer)
    eid = started[0]
    sandbox.register(eid, **_device(eid, user_agent="Other phone"))
    _sync()
    html = _page(client, eid)
    assert "ask an endpoint admin to reset the password" in html


# --- retention ------------------------------------------------------------------------------


def _old_event(eid, at):
    return RegistrationEvent.objects.create(endpoint_id=eid, at=at, kind=Kind.OFFLINE)


def test_the_periodic_tick_prunes_once_an_hour(sandbox, clock, started, settings,
                                                enqueued_tasks):
    from endpoints import periodic
    from endpoints.models import Schedule

    settings.REGISTRATION_HISTORY_DAYS = 90
    now = _now()
    _old_event("1", now - timedelta(days=91))
    kept = _old_event("2", now - timedelta(days=89))
    Schedule.objects.create(name=periodic.TICK, token="t1")
    periodic.tick(token="t1")  # the immediate backend runs the queued prune at once
    assert enqueued_tasks.count("prune_history") == 1
    assert list(RegistrationEvent.objects.values_list("id", flat=True)) == [kept.id]
    _old_event("3", now - timedelta(days=95))
    clock.shift(30 * 60)
    periodic.tick(token="t1")
    assert enqueued_tasks.count("prune_history") == 1  # not due yet
    clock.shift(31 * 60)
    periodic.tick(token="t1")
    assert enqueued_tasks.count("prune_history") == 2
    # (the ticks' syncs record what changed meanwhile: the seeded devices that lapsed)
    assert set(RegistrationEvent.objects.filter(endpoint_id__in=["1", "2", "3"])
               .values_list("id", flat=True)) == {kept.id}


def test_history_switched_off_records_nothing(sandbox, clock, settings):
    settings.REGISTRATION_HISTORY = False
    eid = _ids(sandbox, 1)[0]
    sandbox.register(eid, user_agent="Yealink T54W", expires_in=600, renew=True)
    _sync()
    sandbox.unregister(eid)
    clock.shift(60)
    _sync()
    assert history.history_since() is None
    assert RegistrationEvent.objects.count() == 0
    assert Endpoint.objects.get(endpoint_id=eid).last_drop_at is None


# --- a simulated day --------------------------------------------------------------------------


def _spans(sandbox, endpoint_id, start, end):
    response = sandbox.request("GET", "registrations", params=[
        ("endpoint_id", endpoint_id), ("from", int(start)), ("to", int(end))])
    assert response.status_code == 200, response.text
    return response.json()["objects"][0]["timeline"]


def _pick(sandbox, profile):
    response = sandbox.request("GET", "registrations", params=[("profile", profile),
                                                                ("limit", 1000)])
    return [o["endpoint_id"] for o in response.json()["objects"]]


@pytest.fixture
def simulated_day(sandbox, clock):
    """60 seeded endpoints whose devices come and go (the sandbox's churn), synced every
    minute for a day through the sandbox's clock. Returns (start, end) in epoch seconds."""
    sandbox.reset(endpoints=60, seed=3)
    sandbox.config(churn=True)
    try:
        _sync()  # history begins
        start = _now().timestamp()
        for _ in range(24 * 60):
            clock.shift(60)
            _sync()
        yield start, _now().timestamp()
    finally:
        sandbox.config(churn=False)


def test_a_simulated_day_of_churn(sandbox, simulated_day):
    from endpoints.history import registration_timeline

    start, end = simulated_day

    def at(epoch):
        from datetime import UTC, datetime

        return datetime.fromtimestamp(epoch, UTC)

    # A flapper: every drop recorded, dated within the minute it happened; online since its
    # last return; flagged as flapping.
    flapper = _pick(sandbox, "flapper")[0]
    spans = _spans(sandbox, flapper, start, end)
    gaps = [(a["to"], b["from"]) for a, b in zip(spans, spans[1:], strict=False)
            if a["to"] < b["from"]]
    drops = list(RegistrationEvent.objects.filter(endpoint_id=flapper, kind=Kind.OFFLINE)
                 .order_by("at").values_list("at", flat=True))
    assert len(drops) == len(gaps) + (spans[-1]["to"] < end) > 20
    for (went, _back), dropped in zip(gaps, drops, strict=False):
        assert at(went - 60) < dropped <= at(went)
    row = Endpoint.objects.get(endpoint_id=flapper)
    timeline = registration_timeline(row)
    assert timeline.flapping is not None and timeline.flapping[2] >= 3
    if spans[-1]["to"] >= end:  # online now: since its last return
        assert row.sip_registered and row.online_since == at(spans[-1]["from"])
        assert row.last_seen_at is None
    assert timeline.drops_day == len(drops)

    # An office softphone: offline for the night (last seen when it went), back in the
    # morning if the day has reached its start.
    office = _pick(sandbox, "office")[0]
    spans = _spans(sandbox, office, start, end)
    row = Endpoint.objects.get(endpoint_id=office)
    kinds = list(RegistrationEvent.objects.filter(endpoint_id=office).order_by("at")
                 .values_list("kind", flat=True))
    evening = next(s["to"] for s in spans if s["to"] < end)
    assert kinds[0] == Kind.OFFLINE
    assert at(evening - 60) < RegistrationEvent.objects.filter(
        endpoint_id=office).order_by("at").first().at <= at(evening)
    if spans[-1]["to"] >= end and spans[-1]["from"] > start:  # back this morning
        assert kinds[-1] == Kind.ONLINE and row.online_since == at(spans[-1]["from"])
    else:
        assert not row.sip_registered and at(evening - 60) < row.last_seen_at <= at(evening)

    # A roaming mobile: each move to another network is an address change, flagged on its
    # page; it never went offline, so it has no drop and no last seen.
    roaming = _pick(sandbox, "roaming")[0]
    spans = _spans(sandbox, roaming, start, end)
    moves = sum(1 for a, b in zip(spans, spans[1:], strict=False)
                if a["to"] == b["from"] and history.contact_host(a["contact"])
                != history.contact_host(b["contact"]))
    assert moves > 0
    events = list(RegistrationEvent.objects.filter(endpoint_id=roaming)
                  .values_list("kind", flat=True))
    assert events.count(Kind.ADDRESS) == moves and Kind.OFFLINE not in events
    timeline = registration_timeline(Endpoint.objects.get(endpoint_id=roaming))
    assert len(timeline.credential_changes) == moves

    # A steady desk phone renews all day: nothing recorded. One never registered: never seen.
    for steady in _pick(sandbox, "steady")[:5]:
        assert not RegistrationEvent.objects.filter(endpoint_id=steady).exists()
        assert Endpoint.objects.get(endpoint_id=steady).online_since is None
    for never in _pick(sandbox, "never"):
        row = Endpoint.objects.get(endpoint_id=never)
        assert row.last_seen_at is None and not row.sip_registered
        assert not RegistrationEvent.objects.filter(endpoint_id=never).exists()
    # The hourly tallies add up to the changes.
    assert sum(RegistrationTally.objects.values_list("went_offline", flat=True)) == (
        RegistrationEvent.objects.filter(kind__in=history.DROPS).count())
