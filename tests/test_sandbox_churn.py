"""Device churn in the Vobiz API sandbox, over real loopback HTTP: with the ``churn`` switch on,
seeded endpoints register and drop as desk phones, office softphones, flappers and roaming
mobiles do, driven only by the sandbox's clock (here the frozen ``clock`` fixture).

``churn.churn_timeline`` is the truth a registration history is compared against, so most
tests walk the clock through a simulated day and check that the API said, at each step, what
the timeline says.
"""

import calendar
import collections
import os
import re
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
import requests

from vobizadmin.sandbox import churn

ROOT = Path(__file__).resolve().parent.parent
SEED = 1
ENDPOINTS = 200  # enough that every profile has several endpoints
DAY = 86400


@pytest.fixture
def churn_sandbox(clock, sandbox):
    """The sandbox with ``churn`` put back off afterwards (the ``sandbox`` fixture resets the
    other switches, not this one)."""
    yield sandbox
    sandbox.config(churn=False)


@pytest.fixture
def churning(churn_sandbox):
    """200 seeded endpoints with device churn on, at the frozen clock's instant."""
    churn_sandbox.reset(endpoints=ENDPOINTS, seed=SEED)
    churn_sandbox.config(churn=True)
    return churn_sandbox


def _all(sandbox):
    objects = []
    for offset in range(0, ENDPOINTS, 100):
        page = sandbox.api("GET", "Endpoint/", params={"limit": 100, "offset": offset})
        assert page.status_code == 200, page.text
        objects += page.json()["objects"]
    return objects


def _snapshot(sandbox):
    keys = ("sip_registered", "sip_contact", "sip_expires", "sip_user_agent")
    return {o["endpoint_id"]: tuple(o[k] for k in keys) for o in _all(sandbox)}


def _get(sandbox, endpoint_id):
    response = sandbox.api("GET", f"Endpoint/{endpoint_id}/")
    assert response.status_code == 200, response.text
    return response.json()


def _report(sandbox, *params, status=200):
    response = sandbox.request("GET", "registrations", params=list(params))
    assert response.status_code == status, response.text
    return response.json()


def _of_profile(sandbox, profile, *, native=False):
    """The seeded endpoints of one profile (only those on a native SIP device, if asked)."""
    objects = _report(sandbox, ("profile", profile), ("limit", 1000))["objects"]
    if native:
        devices = [churn.device(SEED, o["endpoint_id"], o["username"]) for o in objects]
        objects = [
            o
            for o, d in zip(objects, devices, strict=True)
            if "transport=ws" not in (getattr(d, "contact", "") or "")
        ]
    assert objects, f"no {profile} endpoint in the seeded data"
    return objects


def _go(clock, epoch):
    clock.shift(epoch - time.time())


def _midnight(days_ahead=1):
    return int(time.time()) // DAY * DAY + days_ahead * DAY


def _truth(spans, t):
    return next((s for s in spans if s.start <= t < s.end), None)


def _walk(sandbox, clock, obj, start, end, step):
    """Move the clock from ``start`` to ``end`` by ``step`` seconds; at each instant check
    that the API shows what the endpoint's timeline says. Returns (instant, object) pairs."""
    eid, username = obj["endpoint_id"], obj["username"]
    spans = churn.churn_timeline(SEED, eid, username, start, end)
    seen = []
    for t in range(start, end, step):
        _go(clock, t)
        got = _get(sandbox, eid)
        span = _truth(spans, t)
        if span is None:
            assert got["sip_contact"] is None, (t, got)
            assert got["sip_registered"] == "false"
        else:
            registration = got["sip_registration"]
            assert (got["sip_contact"], got["sip_user_agent"], registration["received"]) == (
                span.contact,
                span.user_agent,
                span.received,
            ), t
            # The device re-registers before it runs out: expiry is always ahead.
            assert got["sip_expires"] > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        seen.append((t, got))
    return spans, seen


# --- the switch ------------------------------------------------------------------------------


def test_churn_is_off_by_default_and_leaves_seeded_registrations_alone(churn_sandbox):
    sandbox = churn_sandbox
    assert sandbox.current_config()["churn"] is False
    before = _snapshot(sandbox)
    report = _report(sandbox)
    assert report["churn"] is False
    assert not any(o["driven"] for o in report["objects"])

    sandbox.config(churn=True)
    assert _snapshot(sandbox) != before
    sandbox.config(churn=False)
    assert _snapshot(sandbox) == before


def test_the_churn_switch_takes_only_a_boolean(churn_sandbox):
    refused = churn_sandbox.request("POST", "config", json={"churn": "yes"})
    assert refused.status_code == 400
    assert "churn" in refused.json()["details"]
    assert churn_sandbox.config(churn=True)["churn"] is True


# --- determinism -----------------------------------------------------------------------------


def test_the_api_serves_what_registration_at_computes(churning, clock):
    for shift in (0, 7 * 3600 + 13 * 60 + 5, 2 * DAY + 11):
        clock.shift(shift)
        now = time.time()
        for obj in _all(churning):
            reg = churn.registration_at(SEED, obj["endpoint_id"], obj["username"], now)
            if reg is None:
                assert obj["sip_contact"] is None
                assert obj["sip_registered"] == "false"
            else:
                assert obj["sip_contact"] == reg.contact
                assert obj["sip_user_agent"] == reg.user_agent
                assert obj["sip_expires"] == time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(reg.expires)
                )
                assert reg.expires > now
                assert obj["sip_registered"] == ("false" if reg.websocket else "true")


def test_same_seed_and_instant_give_the_same_answer_however_it_is_read(churning, clock):
    start = time.time()
    first = _snapshot(churning)
    assert _snapshot(churning) == first  # reading again changes nothing
    clock.shift(6 * 3600)
    later = _snapshot(churning)
    assert later != first
    _go(clock, start)
    assert _snapshot(churning) == first  # back in time: out-of-order reads agree
    clock.shift(6 * 3600)
    assert _snapshot(churning) == later
    churning.reset(endpoints=ENDPOINTS, seed=SEED)
    assert _snapshot(churning) == later  # a reseed with the same seed: the same devices
    churning.reset(endpoints=ENDPOINTS, seed=SEED + 1)
    assert _snapshot(churning) != later


def test_the_timeline_is_a_pure_function_of_its_arguments():
    start = 1_796_284_800  # 2026-12-03T00:00:00Z
    eid = "147322537258167"
    whole = churn.churn_timeline(SEED, eid, "alice12", start, start + 3 * DAY)
    assert churn.churn_timeline(SEED, eid, "alice12", start, start + 3 * DAY) == whole
    # A part of the span is the whole timeline, clipped.
    part = churn.churn_timeline(SEED, eid, "alice12", start + 5000, start + DAY)
    clipped = [
        s._replace(start=max(s.start, start + 5000), end=min(s.end, start + DAY))
        for s in whole
        if s.end > start + 5000 and s.start < start + DAY
    ]
    assert part == clipped
    assert churn.churn_timeline(SEED, eid, "alice12", start, start) == []


def test_profiles_come_in_the_documented_shares(churning):
    counts = collections.Counter(churn.profile_of(SEED, str(10**14 + n)) for n in range(20000))
    for profile, percent in churn.PROFILE_SHARES.items():
        assert abs(counts[profile] / 200 - percent) < 1.5, (profile, counts)
    # The route reports each endpoint's profile as churn computes it.
    for obj in _report(churning, ("limit", 1000))["objects"]:
        assert obj["profile"] == churn.profile_of(SEED, obj["endpoint_id"])


# --- the profiles over a simulated day ---------------------------------------------------------


def test_a_steady_desk_phone_stays_registered_and_renews_on_a_grid(churning, clock):
    obj = _of_profile(churning, "steady", native=True)[0]
    start = _midnight()
    spans, seen = _walk(churning, clock, obj, start, start + DAY, 300)
    assert len(spans) == 1
    assert (spans[0].start, spans[0].end) == (start, start + DAY)
    assert {got["sip_registered"] for _, got in seen} == {"true"}
    assert len({got["sip_contact"] for _, got in seen}) == 1
    expiries = sorted({got["sip_expires"] for _, got in seen})
    epochs = [calendar.timegm(time.strptime(e, "%Y-%m-%dT%H:%M:%SZ")) for e in expiries]
    assert len({b - a for a, b in pairwise(epochs)}) <= 1  # renewed every interval


def test_an_office_softphone_is_offline_at_night_and_at_weekends(churning, clock):
    obj = _of_profile(churning, "office")[0]
    friday = _midnight()  # the clock starts on a Thursday
    assert time.gmtime(friday).tm_wday == 4
    spans, seen = _walk(churning, clock, obj, friday, friday + DAY, 600)
    assert len(spans) == 1
    assert 7 * 3600 <= spans[0].start - friday <= 9 * 3600
    assert 17 * 3600 <= spans[0].end - friday <= 19 * 3600
    at = dict(seen)
    assert at[friday + 3 * 3600]["sip_contact"] is None
    assert at[friday + 12 * 3600]["sip_contact"] is not None
    assert at[friday + 22 * 3600]["sip_contact"] is None

    saturday = friday + DAY
    assert (
        churn.churn_timeline(
            SEED, obj["endpoint_id"], obj["username"], saturday, saturday + 2 * DAY
        )
        == []
    )
    _go(clock, saturday + 12 * 3600)
    assert _get(churning, obj["endpoint_id"])["sip_contact"] is None


def test_a_flapper_drops_minute_by_minute_as_its_timeline_says(churning, clock):
    obj = _of_profile(churning, "flapper")[0]
    start = _midnight()
    spans, seen = _walk(churning, clock, obj, start, start + DAY, 60)
    gaps = [b.start - a.end for a, b in pairwise(spans)]
    assert all(60 <= gap <= 180 for gap in gaps), gaps  # drops of 1-3 minutes
    assert 2 * 24 <= len(gaps) + 1 <= 4 * 24 + 1  # 2-4 drops an hour
    offline = sum(got["sip_contact"] is None for _, got in seen)
    assert offline * 60 == sum(gaps) + (spans[0].start - start) + (start + DAY - spans[-1].end)
    # Each reconnect comes from a new NAT port; the device itself stays the same.
    assert len({s.received for s in spans}) > len(spans) // 2
    assert len({(s.contact, s.user_agent) for s in spans}) == 1


def test_a_roaming_mobile_changes_address_but_keeps_its_user_agent(churning, clock):
    obj = _of_profile(churning, "roaming")[0]
    start = _midnight()
    spans, seen = _walk(churning, clock, obj, start, start + DAY, 600)
    assert all(got["sip_registered"] == "true" for _, got in seen)  # always registered
    assert all(a.end == b.start for a, b in pairwise(spans))  # moves without a gap
    assert all(a.received != b.received and a.contact != b.contact for a, b in pairwise(spans))
    assert 6 <= len(spans) <= 14  # every 2-4 hours
    assert 2 <= len({got["sip_registration"]["received"] for _, got in seen}) <= 3
    assert len({got["sip_user_agent"] for _, got in seen}) == 1


def test_a_never_registering_endpoint_stays_unregistered(churning, clock):
    obj = _of_profile(churning, "never")[0]
    start = _midnight()
    spans, seen = _walk(churning, clock, obj, start, start + DAY, 3600)
    assert spans == []
    assert all(got["sip_contact"] is None for _, got in seen)


def test_browser_registrations_fill_the_contact_but_report_false(churning):
    websocket = [
        o for o in _all(churning) if o["sip_contact"] and "transport=ws" in o["sip_contact"]
    ]
    assert websocket
    assert {o["sip_registered"] for o in websocket} == {"false"}


# --- pinning ---------------------------------------------------------------------------------


def test_a_hand_set_registration_is_pinned_and_churn_leaves_it_alone(churning, clock):
    never = _of_profile(churning, "never")[0]["endpoint_id"]
    steady = _of_profile(churning, "steady", native=True)[0]["endpoint_id"]
    contact = "sip:pinned@198.51.100.99:5060"
    churning.register(never, contact=contact, expires_in=300, renew=True)
    churning.unregister(steady)
    for _ in range(24):
        clock.shift(3600)
        assert _get(churning, never)["sip_contact"] == contact
        assert _get(churning, steady)["sip_contact"] is None
    report = _report(churning, ("endpoint_id", never), ("endpoint_id", steady))["objects"]
    assert [(o["profile"], o["pinned"], o["driven"]) for o in report] == [
        ("never", True, False),
        ("steady", True, False),
    ]
    assert report[0]["registration"]["contact"] == contact


def test_a_password_change_drops_the_registration_for_good(churning, clock):
    obj = _of_profile(churning, "roaming")[0]
    eid = obj["endpoint_id"]
    assert _get(churning, eid)["sip_contact"] is not None
    changed = churning.api("POST", f"Endpoint/{eid}/", json={"password": "New-secret-9"})
    assert changed.status_code == 202
    for _ in range(12):
        clock.shift(2 * 3600)
        assert _get(churning, eid)["sip_contact"] is None
    assert _report(churning, ("endpoint_id", eid))["objects"][0]["pinned"] is True


def test_mutated_endpoints_are_pinned(churning):
    mutated = churning.request("POST", "mutate", json={"fraction": 0.05, "seed": 3})
    changed = mutated.json()["endpoint_ids"]
    report = _report(churning, *(("endpoint_id", eid) for eid in changed))["objects"]
    assert [o["endpoint_id"] for o in report] == changed
    assert all(o["pinned"] and not o["driven"] for o in report)


def test_an_endpoint_created_after_seeding_is_never_registered_by_churn(churning, clock):
    created = churning.api(
        "POST", "Endpoint/", json={"username": "newdesk", "password": "Secret-pass-1"}
    )
    assert created.status_code == 201
    eid = created.json()["endpoint_id"]
    for _ in range(6):
        clock.shift(4 * 3600)
        assert _get(churning, eid)["sip_contact"] is None
    now = int(time.time())
    obj = _report(churning, ("endpoint_id", eid), ("from", now - DAY), ("to", now))["objects"][0]
    assert (obj["profile"], obj["driven"], obj["registration"], obj["timeline"]) == (
        None,
        False,
        None,
        None,
    )


# --- GET /_sandbox/registrations -------------------------------------------------------------


def test_the_registrations_route_answers_profiles_and_timelines(churning, clock):
    report = _report(churning, ("profile", "flapper"), ("profile", "roaming"), ("limit", 1000))
    assert report["churn"] is True
    assert report["seed"] == SEED
    assert report["now"] == int(time.time())
    assert report["truncated"] is False
    seeded = _all(churning)
    expected = [
        o["endpoint_id"]
        for o in seeded
        if churn.profile_of(SEED, o["endpoint_id"]) in ("flapper", "roaming")
    ]
    assert [o["endpoint_id"] for o in report["objects"]] == expected
    assert all(o["driven"] and not o["pinned"] for o in report["objects"])

    start, end = int(time.time()), int(time.time()) + DAY
    chosen = seeded[3], seeded[0]
    timelines = _report(
        churning, *(("endpoint_id", o["endpoint_id"]) for o in chosen), ("from", start), ("to", end)
    )["objects"]
    assert [o["endpoint_id"] for o in timelines] == [o["endpoint_id"] for o in chosen]
    for obj, got in zip(chosen, timelines, strict=True):
        truth = churn.churn_timeline(SEED, obj["endpoint_id"], obj["username"], start, end)
        assert got["timeline"] == [
            {
                "from": s.start,
                "to": s.end,
                "contact": s.contact,
                "user_agent": s.user_agent,
                "received": s.received,
            }
            for s in truth
        ]
        registration = got["registration"]
        api = _get(churning, obj["endpoint_id"])
        if registration is None:
            assert api["sip_contact"] is None
        else:
            assert (
                registration["contact"],
                registration["expires"],
                registration["sip_registered"],
            ) == (api["sip_contact"], api["sip_expires"], api["sip_registered"])

    limited = _report(churning, ("limit", 5))
    assert len(limited["objects"]) == 5
    assert limited["truncated"] is True
    assert "timeline" not in limited["objects"][0]


@pytest.mark.parametrize(
    "params",
    [
        [("profile", "bogus")],
        [("from", "1796284800")],
        [("to", "1796284800")],
        [("from", "1796284800"), ("to", "1796284799")],
        [("from", "1796284800"), ("to", str(1796284800 + 32 * DAY))],
        [("from", "yesterday"), ("to", "1796284800")],
        [("limit", "0")],
        [("colour", "blue")],
    ],
)
def test_the_registrations_route_refuses_bad_parameters(churn_sandbox, params):
    _report(churn_sandbox, *params, status=400)


def test_the_registrations_route_answers_404_and_405(churn_sandbox):
    _report(churn_sandbox, ("endpoint_id", "123"), status=404)
    assert churn_sandbox.request("POST", "registrations", json={}).status_code == 405
    index = churn_sandbox.request("GET", "").json()
    assert any(route.startswith("GET /_sandbox/registrations?") for route in index["routes"])
    assert index["config"]["churn"] is False


def test_the_registrations_route_refuses_a_rebinding_host(churn_sandbox):
    evil = {"Host": "evil.example"}
    assert churn_sandbox.request("GET", "registrations", headers=evil).status_code == 403
    port_too = {"Host": f"evil.example:{churn_sandbox.server.port}"}
    assert churn_sandbox.request("GET", "registrations", headers=port_too).status_code == 403


# --- runsandbox ------------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "on"), [([], True), (["--no-churn"], False)])
def test_runsandbox_turns_churn_on_unless_told_not_to(flags, on):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vobizadmin.settings",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_DEBUG": "true",
    }
    command = [
        sys.executable,
        "manage.py",
        "runsandbox",
        "127.0.0.1:0",
        "--endpoints",
        "5",
        "--applications",
        "1",
        *flags,
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"VOBIZ_API_URL=(\S+)/api/v1 ", line)
        assert match, line
        assert f"device churn {'on' if on else 'off'}" in line
        config = requests.get(f"{match.group(1)}/_sandbox/config", timeout=10).json()
        assert config["churn"] is on
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
