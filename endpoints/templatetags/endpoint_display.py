"""Cells of the endpoint list, rendered in Python.

They run for every row of every list request (20 to 100 rows), where each replaces a dozen
template nodes and several ``date`` filter calls: at 100 rows that was most of the page's
server time. Output is built with ``format_html``, so every value is escaped.
"""

from urllib.parse import quote

from django import template
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil

register = template.Library()

# status -> (icon, word, title); the word and the icon carry the meaning, colour only helps.
STATUS_DISPLAY = {
    "offline": ("○", "Offline", ""),
    "registered": ("●", "Registered", ""),
    "expiring": ("◐", "Expiring", "Less than 5 minutes left"),
    "lapsed": ("◌", "Lapsed", "The registration ran out at {at}, after the last sync"),
}

NO_UPDATE = mark_safe('<span class="muted">—</span>')
NO_APPLICATION = mark_safe('<span class="muted">None</span>')
MAIN_ACCOUNT = mark_safe('<span class="muted">Main account</span>')


def _full(moment) -> str:
    """'2026-12-01 21:17:11 UTC', in the current time zone (Django's 'Y-m-d H:i:s e')."""
    local = timezone.localtime(moment)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''}".rstrip()


def _iso(moment) -> str:
    return timezone.localtime(moment).isoformat()


def _missing(what: str) -> SafeString:
    return format_html('<span class="muted"><span aria-hidden="true">—</span>'
                       '<span class="visually-hidden">{}</span></span>', what)


NO_DEVICE = _missing("No device")
NO_EXPIRY = _missing("No expiry")


@register.simple_tag
def registration_status(endpoint) -> SafeString:
    """The endpoint's registration status as an icon and a word (Endpoint.registration_status)."""
    status = endpoint.registration_status
    icon, word, title = STATUS_DISPLAY[status]
    title = title.format(at=_full(endpoint.sip_expires)) if title else ""
    return format_html(
        '<span class="status status-{}"{}><span class="status-icon" aria-hidden="true">{}'
        "</span> {}</span>",
        status, format_html(' title="{}"', title) if title else "", icon, word,
    )


@register.simple_tag
def expiry(endpoint) -> SafeString:
    """When the registration runs (or ran) out, relative: "in 31 minutes", "2 minutes ago"."""
    moment = endpoint.sip_expires
    if moment is None:
        return NO_EXPIRY
    text = (f"in {timeuntil(moment)}" if endpoint.expires_in_future
            else f"{timesince(moment)} ago")
    return format_html('<time datetime="{}" title="{}">{}</time>', _iso(moment), _full(moment),
                       text)


@register.simple_tag
def updated(moment) -> SafeString:
    """The day of the last change at Vobiz, with the exact time as the title."""
    if moment is None:
        return NO_UPDATE
    local = timezone.localtime(moment)
    return format_html('<time datetime="{}" title="{}">{}</time>', local.isoformat(),
                       _full(moment), f"{local:%Y-%m-%d}")


# An id the URL converter accepts and that no URL holds otherwise.
_ID_SLOT = "0ENDPOINTID0"
# (route name, script prefix, urlconf) -> the reversed URL split around the id.
_url_slots: dict[tuple, list[str]] = {}


@receiver(setting_changed)
def _forget_url_slots(*, setting, **kwargs):
    if setting in ("ROOT_URLCONF", "FORCE_SCRIPT_NAME"):
        _url_slots.clear()


@register.simple_tag
def endpoint_url(name: str, endpoint_id: str) -> str:
    """``{% url name endpoint_id %}`` for one of the per-endpoint routes, at a fraction of
    the cost (each list row links two): the route is reversed once and the id put in its
    place, quoted as reverse() quotes (RFC 3986 path characters)."""
    key = (name, get_script_prefix(), get_urlconf())
    slot = _url_slots.get(key)
    if slot is None:
        slot = _url_slots[key] = reverse(name, args=[_ID_SLOT]).split(_ID_SLOT)
    head, tail = slot
    return head + quote(str(endpoint_id), safe=RFC3986_SUBDELIMS + "/~:@") + tail


@register.simple_tag
def endpoint_cells(endpoint) -> SafeString:
    """The list row's read-only cells, from registration status to last update (the
    username, alias and actions around them stay in the template: they are interactive)."""
    if endpoint.sip_contact or endpoint.sip_user_agent:
        device = format_html(
            "{}{}",
            format_html('<code class="contact-uri">{}</code>', endpoint.sip_contact)
            if endpoint.sip_contact else "",
            format_html('<span class="ua">{}</span>', endpoint.sip_user_agent)
            if endpoint.sip_user_agent else "",
        )
    else:
        device = NO_DEVICE
    application = (endpoint.app_name or endpoint.app_id) if endpoint.app_id else NO_APPLICATION
    sub_account = (format_html("<code>{}</code>", endpoint.sub_account) if endpoint.sub_account
                   else MAIN_ACCOUNT)
    return format_html(
        '<td class="status-cell">{}</td><td class="contact">{}</td><td class="expires">{}</td>'
        '<td class="application">{}</td><td class="sub-account">{}</td>'
        '<td class="updated">{}</td>',
        registration_status(endpoint), device, expiry(endpoint), application, sub_account,
        updated(endpoint.updated_at),
    )
