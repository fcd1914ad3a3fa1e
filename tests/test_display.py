"""The list's cells, rendered in Python (endpoints.templatetags.endpoint_display): every
registration status as a word and an icon, relative expiry times, and escaping."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse, set_script_prefix
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from endpoints.models import Endpoint
from endpoints.templatetags import endpoint_display as display

# Time stands still unless a test moves it (conftest's clock).
pytestmark = pytest.mark.usefixtures("clock")


def endpoint(**fields):
    fields.setdefault("endpoint_id", "100000000000001")
    fields.setdefault("username", "jane1234")
    return Endpoint(**fields)


def in_(seconds):
    return timezone.now() + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "registered, expires_in, css, icon, word",
    [
        (False, None, "status-offline", "○", "Offline"),
        (True, None, "status-registered", "●", "Registered"),
        (True, 3600, "status-registered", "●", "Registered"),
        (True, 120, "status-expiring", "◐", "Expiring"),
        (True, -60, "status-lapsed", "◌", "Lapsed"),
        # Vobiz did not report it registered: offline, whatever the stale expiry says.
        (False, 3600, "status-offline", "○", "Offline"),
    ],
)
def test_status_is_a_word_with_an_icon(registered, expires_in, css, icon, word):
    expires = None if expires_in is None else in_(expires_in)  # now, not at collection
    html = display.registration_status(endpoint(sip_registered=registered, sip_expires=expires))
    assert f'class="status {css}"' in html
    assert f'<span class="status-icon" aria-hidden="true">{icon}</span> {word}</span>' in html


def test_lapsed_and_expiring_say_why_in_the_title():
    ran_out = datetime(2026, 12, 1, 9, 30, 5, tzinfo=UTC)
    html = display.registration_status(endpoint(sip_registered=True, sip_expires=ran_out))
    assert 'title="The registration ran out at 2026-12-01 09:30:05 UTC, after the last sync"' \
        in html
    html = display.registration_status(endpoint(sip_registered=True, sip_expires=in_(100)))
    assert 'title="Less than 5 minutes left"' in html


def test_expiry_is_relative_with_the_exact_time_in_the_title():
    future = display.expiry(endpoint(sip_registered=True, sip_expires=in_(42 * 60 + 30)))
    assert ">in 42\xa0minutes</time>" in future
    past = display.expiry(endpoint(sip_expires=in_(-3 * 60 - 10)))
    assert ">3\xa0minutes ago</time>" in past
    moment = datetime(2026, 12, 1, 9, 30, 5, tzinfo=UTC)
    exact = display.expiry(endpoint(sip_expires=moment))
    assert 'datetime="2026-12-01T09:30:05+00:00" title="2026-12-01 09:30:05 UTC"' in exact
    assert "No expiry" in display.expiry(endpoint())


def test_updated_shows_the_day_and_the_exact_time():
    moment = datetime(2024, 5, 13, 23, 50, 17, tzinfo=UTC)
    html = display.updated(moment)
    assert html == ('<time datetime="2024-05-13T23:50:17+00:00" '
                    'title="2024-05-13 23:50:17 UTC">2024-05-13</time>')
    assert display.updated(None) == '<span class="muted">—</span>'


def test_cells_escape_what_vobiz_sent():
    html = display.endpoint_cells(endpoint(
        sip_contact='sip:x@h"><script>alert(1)</script>', sip_user_agent="<b>UA</b>",
        app_id="1", app_name="<img src=x onerror=alert(1)>", sub_account="SA_<i>"))
    assert "<script>" not in html and "<b>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;UA&lt;/b&gt;" in html
    assert "<code>SA_&lt;i&gt;</code>" in html


def test_cells_say_what_is_missing():
    html = display.endpoint_cells(endpoint())
    assert '<td class="contact"><span class="muted"><span aria-hidden="true">—</span>' \
           '<span class="visually-hidden">No device</span></span></td>' in html
    assert '<td class="application"><span class="muted">None</span></td>' in html
    assert '<td class="sub-account"><span class="muted">Main account</span></td>' in html
    # An application the cache has not named yet shows its id.
    assert '<td class="application">5553</td>' in display.endpoint_cells(endpoint(app_id="5553"))


@settings(max_examples=300, deadline=None)
@given(endpoint_id=st.text(st.characters(exclude_characters="/\x00", exclude_categories=("Cs",)),
                           min_size=1, max_size=32))
def test_endpoint_url_is_what_reverse_gives_for_any_id(endpoint_id):
    for name in ("endpoints:detail", "endpoints:alias", "endpoints:row"):
        assert display.endpoint_url(name, endpoint_id) == reverse(name, args=[endpoint_id])


def test_endpoint_url_follows_the_script_prefix():
    set_script_prefix("/support/")
    try:
        assert display.endpoint_url("endpoints:detail", "1234") == "/support/endpoints/1234/"
    finally:
        set_script_prefix("/")
    assert display.endpoint_url("endpoints:detail", "1234") == "/endpoints/1234/"


def test_list_relative_times_read_exactly_as_djangos():
    """The list's own timesince/timeuntil (faster: unit strings translated once) give
    Django's text for every delta, across unit boundaries and past four weeks."""
    import random
    from datetime import UTC, datetime, timedelta

    from django.utils import timesince as django

    from endpoints.templatetags import endpoint_display as ours

    now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    rng = random.Random(7)
    seconds = [-61, -1, 0, 59, 60, 61, 3599, 3600, 3660, 86399, 86400, 90000, 604799, 604800,
               691200, 28 * 86400 - 1, 28 * 86400, 40 * 86400, 400 * 86400]
    seconds += [rng.randrange(-3600, 60 * 86400) for _ in range(3000)]
    for value in seconds:
        moment = now - timedelta(seconds=value, microseconds=rng.randrange(10**6))
        assert ours.timesince(moment, now) == django.timesince(moment, now), value
        assert ours.timeuntil(now, moment) == django.timeuntil(now, moment), value
