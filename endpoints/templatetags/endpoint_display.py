"""The endpoint list's rows, rendered in Python.

A list request renders 20 to 100 rows; as template markup each row cost ~30 nodes and five
``date`` filters, most of the request's server time at 100,000 endpoints. Here every dynamic
value goes through ``_esc`` (Django's escaping: ``__html__`` for safe strings, else
``html.escape``), and times are converted to the current time zone once per row.
"""

from html import escape as _html_escape
from urllib.parse import quote

from django import template
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.html import avoid_wrapping
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import TIME_STRINGS
from django.utils.timesince import timesince as django_timesince
from django.utils.translation import get_language, gettext

register = template.Library()

# status -> (icon, word, title); the word and the icon carry the meaning, colour only helps.
STATUS_DISPLAY = {
    "offline": ("○", "Offline", ""),
    "registered": ("●", "Registered", ""),
    "expiring": ("◐", "Expiring", "Less than 5 minutes left"),
    "lapsed": ("◌", "Lapsed", "The registration ran out at {at}, after the last sync"),
}


# Django's timesince translates each unit lazily on every call: ~50 us a call, and a list row
# makes one or two. Below four weeks (no calendar months involved) the text is worked out
# here, from unit strings translated once per language and number.
_UNITS = (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60))
_FOUR_WEEKS = 28 * 86400
_unit_texts: dict[tuple, str] = {}


def _unit(language, name: str, count: int) -> str:
    key = (language, name, count)
    text = _unit_texts.get(key)
    if text is None:
        if len(_unit_texts) > 10000:
            _unit_texts.clear()
        if name == ", ":
            text = gettext(", ")
        else:
            text = avoid_wrapping(TIME_STRINGS[name] % {"num": count})
        _unit_texts[key] = text
    return text


def timesince(moment, now=None) -> str:
    """Django's ``timesince(moment, now)`` (two units at most: "3 days, 4 hours"), the same
    text, faster."""
    now = now or timezone.now()
    delta = now - moment
    since = delta.days * 86400 + delta.seconds
    if since >= _FOUR_WEEKS:
        return django_timesince(moment, now)
    language = get_language()
    if since <= 0:
        return _unit(language, "minute", 0)
    first = None
    for name, seconds in _UNITS:
        count, since = divmod(since, seconds)
        if first is not None:
            if not count:
                return first
            return first + _unit(language, ", ", 0) + _unit(language, name, count)
        if count:
            first = _unit(language, name, count)
    return first or _unit(language, "minute", 0)


def timeuntil(moment, now=None) -> str:
    """Django's ``timeuntil``: the time from now until ``moment``."""
    return timesince(now or timezone.now(), moment)


def _esc(value) -> str:
    """conditional_escape without its lazy-string wrapper (it runs ~20 times a row)."""
    html = getattr(value, "__html__", None)
    return html() if html else _html_escape(str(value))


def _missing(what: str) -> SafeString:
    return mark_safe(f'<span class="muted"><span aria-hidden="true">—</span>'  # noqa: S308
                     f'<span class="visually-hidden">{_esc(what)}</span></span>')


NO_ALIAS = _missing("No alias")
NO_DEVICE = _missing("No device")
NO_EXPIRY = _missing("No expiry")
NO_UPDATE = mark_safe('<span class="muted">—</span>')
NO_APPLICATION = mark_safe('<span class="muted">None</span>')
MAIN_ACCOUNT = mark_safe('<span class="muted">Main account</span>')


def _full(local) -> str:
    """'2026-12-01 21:17:11 UTC' for a datetime already in the display zone (Django's
    'Y-m-d H:i:s e')."""
    return f"{local.replace(tzinfo=None).isoformat(' ', 'seconds')} {local.tzname() or ''}".rstrip()


def _time(local, text: str) -> str:
    """``text`` as a <time> of ``local`` (already in the display zone), the exact time as
    its title."""
    return (f'<time datetime="{local.isoformat()}" title="{_esc(_full(local))}">'
            f"{_esc(text)}</time>")


def _status(endpoint, zone) -> str:
    status = endpoint.registration_status
    icon, word, title = STATUS_DISPLAY[status]
    if title:
        title = f' title="{_esc(title.format(at=_full(endpoint.sip_expires.astimezone(zone))))}"'
    return (f'<span class="status status-{status}"{title}>'
            f'<span class="status-icon" aria-hidden="true">{icon}</span> {word}</span>')


def _expiry(endpoint, zone) -> str:
    moment = endpoint.sip_expires
    if moment is None:
        return NO_EXPIRY
    text = (f"in {timeuntil(moment)}" if endpoint.expires_in_future
            else f"{timesince(moment)} ago")
    return _time(moment.astimezone(zone), text)


NEVER_SEEN = mark_safe('<span class="muted">Never seen</span>')


def _last_seen(endpoint, zone) -> str:
    """"Now" (and since when) while registered, when it was last seen registered, or
    "Never seen" (since registration history began)."""
    if endpoint.sip_registered:
        since = endpoint.online_since
        if since is None:
            return "Now"
        online = _time(since.astimezone(zone), timesince(since))
        return f'Now <span class="muted">(online {online})</span>'
    moment = endpoint.last_seen_at
    if moment is None:
        return NEVER_SEEN
    return _time(moment.astimezone(zone), f"{timesince(moment)} ago")


@register.simple_tag
def last_seen(endpoint) -> SafeString:
    """When the endpoint was last seen registered ("Now" while it is), relative, the exact
    time as the title."""
    return mark_safe(_last_seen(endpoint, timezone.get_current_timezone()))  # noqa: S308


def _updated(moment, zone) -> str:
    if moment is None:
        return NO_UPDATE
    local = moment.astimezone(zone)
    return _time(local, local.date().isoformat())


@register.simple_tag
def registration_status(endpoint) -> SafeString:
    """The endpoint's registration status as an icon and a word (Endpoint.registration_status)."""
    return mark_safe(_status(endpoint, timezone.get_current_timezone()))  # noqa: S308


@register.simple_tag
def expiry(endpoint) -> SafeString:
    """When the registration runs (or ran) out, relative: "in 31 minutes", "2 minutes ago",
    with the exact time as the title."""
    return mark_safe(_expiry(endpoint, timezone.get_current_timezone()))  # noqa: S308


@register.simple_tag
def updated(moment) -> SafeString:
    """The day of the last change at Vobiz, with the exact time as the title."""
    return mark_safe(_updated(moment, timezone.get_current_timezone()))  # noqa: S308


# An id the URL converter accepts and that no URL holds otherwise.
_ID_SLOT = "0ENDPOINTID0"
_PATH_SAFE = RFC3986_SUBDELIMS + "/~:@"  # what reverse() leaves unquoted
# (route name, script prefix, urlconf) -> the reversed URL split around the id.
_url_slots: dict[tuple, list[str]] = {}


@receiver(setting_changed)
def _forget_url_slots(*, setting, **kwargs):
    if setting in ("ROOT_URLCONF", "FORCE_SCRIPT_NAME"):
        _url_slots.clear()


def _url_maker(name: str, where: tuple):
    key = (name, *where)
    slot = _url_slots.get(key)
    if slot is None:
        slot = _url_slots[key] = reverse(name, args=[_ID_SLOT]).split(_ID_SLOT)
    head, tail = slot
    return lambda endpoint_id: head + quote(str(endpoint_id), safe=_PATH_SAFE) + tail


@register.simple_tag
def endpoint_url(name: str, endpoint_id: str) -> str:
    """``{% url name endpoint_id %}`` for one of the per-endpoint routes, at a fraction of
    the cost (each list row links two): the route is reversed once (per script prefix and
    URLconf) and the id put in its place, quoted as reverse() quotes."""
    return _url_maker(name, (get_script_prefix(), get_urlconf()))(endpoint_id)


def _sub_account(sub_account: str, names) -> str:
    if not sub_account:
        return MAIN_ACCOUNT
    name = names.get(sub_account) if names else None
    if name:
        return (f'<span class="sub-name">{_esc(name)}</span> '
                f'<code class="sub-id">{_esc(sub_account)}</code>')
    return f"<code>{_esc(sub_account)}</code>"


def _cells(endpoint, zone, names=None) -> str:
    contact, agent = endpoint.sip_contact, endpoint.sip_user_agent
    if contact or agent:
        device = ((f'<code class="contact-uri">{_esc(contact)}</code>' if contact else "")
                  + (f'<span class="ua">{_esc(agent)}</span>' if agent else ""))
    else:
        device = NO_DEVICE
    application = (_esc(endpoint.app_name or endpoint.app_id) if endpoint.app_id
                   else NO_APPLICATION)
    sub_account = _sub_account(endpoint.sub_account, names)
    return (f'<td class="status-cell">{_status(endpoint, zone)}</td>'
            f'<td class="last-seen">{_last_seen(endpoint, zone)}</td>'
            f'<td class="contact">{device}</td>'
            f'<td class="expires">{_expiry(endpoint, zone)}</td>'
            f'<td class="application">{application}</td>'
            f'<td class="sub-account">{sub_account}</td>'
            f'<td class="updated">{_updated(endpoint.updated_at, zone)}</td>')


def endpoint_cells(endpoint, names: dict | None = None) -> SafeString:
    """The list row's read-only cells, from registration status to last update (also used
    by the row while its alias is edited in place). ``names``: sub-account local names."""
    return mark_safe(_cells(endpoint, timezone.get_current_timezone(), names))  # noqa: S308


@register.simple_tag(takes_context=True, name="endpoint_cells")
def endpoint_cells_tag(context, endpoint) -> SafeString:
    """``endpoint_cells`` with the context's ``sub_account_names``."""
    return endpoint_cells(endpoint, context.get("sub_account_names"))


@register.simple_tag(takes_context=True, name="endpoint_row")
def endpoint_row_tag(context, endpoint, can_edit: bool = False,
                     refocus: bool = False) -> SafeString:
    """``endpoint_row`` with the context's ``sub_account_names`` and ``selection``."""
    return endpoint_row(endpoint, can_edit, refocus, names=context.get("sub_account_names"),
                        selected=_is_selected(context, endpoint))


def _is_selected(context, endpoint) -> bool:
    selection = context.get("selection")
    return bool(selection) and (selection.all_matching or endpoint.endpoint_id in selection.ids)


def _select_cell(endpoint_id: str, username: str, selected: bool) -> str:
    """The row's checkbox: part of the selection form (by its ``form`` attribute), so the
    inline alias form in the same row is never nested in another form."""
    checked = " checked" if selected else ""
    return (f'<td class="select"><input type="checkbox" class="row-select" name="ids" '
            f'value="{_esc(endpoint_id)}" form="selection-form" '
            f'aria-label="Select {username}"{checked}></td>')


@register.simple_tag(takes_context=True)
def endpoint_select_cell(context, endpoint) -> SafeString:
    """The checkbox cell (also used by the row while its alias is edited in place)."""
    return mark_safe(_select_cell(endpoint.endpoint_id, _esc(endpoint.username),  # noqa: S308
                                  _is_selected(context, endpoint)))


def endpoint_row(endpoint, can_edit: bool = False, refocus: bool = False,
                 names: dict | None = None, selected: bool = False) -> SafeString:
    """One row of the list (``list.html#row`` renders the row being edited itself).
    ``refocus`` gives the Edit alias button focus when the row comes back from an edit;
    ``names`` maps sub-account ids to their local names; ``selected`` ticks its checkbox."""
    endpoint_id, username = endpoint.endpoint_id, _esc(endpoint.username)
    alias = _esc(endpoint.alias) if endpoint.alias else NO_ALIAS
    where = (get_script_prefix(), get_urlconf())
    action = ""
    if can_edit:
        action = (
            f'<button type="button" class="small" '
            f'hx-get="{_esc(_url_maker("endpoints:alias", where)(endpoint_id))}" '
            'hx-target="closest tr" hx-swap="outerHTML" hx-indicator="closest tr" '
            f'hx-sync="this:replace"{" data-autofocus" if refocus else ""}>Edit alias'
            f'<span class="visually-hidden"> of {username}</span></button>'
        )
    return mark_safe(  # noqa: S308 - every value is escaped
        f'<tr id="ep-{_esc(endpoint_id)}">{_select_cell(endpoint_id, username, selected)}'
        f'{_username_cell(endpoint, where)}'
        f'<td class="alias">{alias}</td>'
        f'{_cells(endpoint, timezone.get_current_timezone(), names)}'
        f'<td class="row-actions">{action}</td></tr>'
    )


def _username_cell(endpoint, where: tuple) -> str:
    href = _esc(_url_maker("endpoints:detail", where)(endpoint.endpoint_id))
    return (f'<th scope="row" class="mono username"><a href="{href}">'
            f"{_esc(endpoint.username)}</a></th>")


@register.simple_tag
def endpoint_username_cell(endpoint) -> SafeString:
    """The row's first cell, the username linking to the endpoint page (also used by the row
    while its alias is edited in place)."""
    return mark_safe(_username_cell(endpoint, (get_script_prefix(), get_urlconf())))  # noqa: S308
