"""The list's cells, rendered in Python (endpoints.templatetags.endpoint_display): every
registration status as a word and an icon, relative expiry times, and escaping."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from endpoints.models import Endpoint
from endpoints.templatetags import endpoint_display as display


def endpoint(**fields):
    fields.setdefault("endpoint_id", "100000000000001")
    fields.setdefault("username", "jane1234")
    return Endpoint(**fields)


def in_(seconds):
    return timezone.now() + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "fields, css, icon, word",
    [
        ({}, "status-offline", "○", "Offline"),
        ({"sip_registered": True}, "status-registered", "●", "Registered"),
        ({"sip_registered": True, "sip_expires": in_(3600)}, "status-registered", "●",
         "Registered"),
        ({"sip_registered": True, "sip_expires": in_(120)}, "status-expiring", "◐", "Expiring"),
        ({"sip_registered": True, "sip_expires": in_(-60)}, "status-lapsed", "◌", "Lapsed"),
        # Vobiz did not report it registered: offline, whatever the stale expiry says.
        ({"sip_registered": False, "sip_expires": in_(3600)}, "status-offline", "○", "Offline"),
    ],
)
def test_status_is_a_word_with_an_icon(fields, css, icon, word):
    html = display.registration_status(endpoint(**fields))
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
    assert html.startswith('<time datetime="2024-05-13T23:50:17+00:00" '
                           'title="2024-05-13 23:50:17 UTC (')
    assert html.endswith(" ago)\">2024-05-13</time>")
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
