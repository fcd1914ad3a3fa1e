"""What the endpoint pages show, derived from a cache row: registration, SIP settings,
permissions and labels. Plain data for templates; nothing here queries or calls Vobiz."""

from __future__ import annotations

from django.conf import settings

from .vobiz import (
    LOCKED_PERMISSIONS,
    PERMISSION_LABELS,
    PERMISSIONS,
    ParseError,
    parse_endpoint,
)

SIP_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061, "wss": 7443}


def sip_domain() -> str:
    """The SIP server and domain devices register with (``VOBIZ_SIP_DOMAIN``). Vobiz's docs
    name ``sip.vobiz.ai``; an endpoint's ``sip_uri`` host (``registrar.vobiz.ai`` in some
    examples) is where external callers reach it, not where devices register."""
    return settings.VOBIZ_SIP_DOMAIN


def sip_settings(endpoint) -> dict:
    """What a device needs to register: server and domain, username as stored, display
    name (the alias), transports and ports (docs/vobiz-api.md, "Registration and clients")."""
    domain = sip_domain()
    return {
        "domain": domain,
        "sip_uri": endpoint.sip_uri,
        "username": endpoint.username,
        "display_name": endpoint.alias,
        "transports": [
            ("UDP", f"{domain}:{SIP_PORTS['udp']}"),
            ("TCP", f"{domain}:{SIP_PORTS['tcp']}"),
            ("TLS", f"{domain}:{SIP_PORTS['tls']}"),
        ],
        "webrtc": f"wss://{domain}:{SIP_PORTS['wss']}",
    }


def vobiz_sip_registered(endpoint):
    """``sip_registered`` exactly as Vobiz reported it (a string, "true"/"false"), or None."""
    return endpoint.raw.get("sip_registered") if isinstance(endpoint.raw, dict) else None


def registration(endpoint) -> dict | None:
    """The device registration as Vobiz reported it in the stored payload (its detailed
    ``sip_registration`` when there is one), else the cached columns; None when nothing is
    registered."""
    try:
        remote = parse_endpoint(endpoint.raw)
    except ParseError:
        remote = None
    reg = remote.registration if remote else None
    if reg is not None:
        found = {"contact": reg.contact, "received": reg.received, "user_agent": reg.user_agent,
                 "path": reg.path, "expires": reg.expires or endpoint.sip_expires}
    elif endpoint.sip_contact:
        found = {"contact": endpoint.sip_contact, "received": "",
                 "user_agent": endpoint.sip_user_agent, "path": "",
                 "expires": endpoint.sip_expires}
    else:
        return None
    found["device"] = device_label(found["user_agent"], found["received"], found["contact"])
    found["reported_registered"] = bool(remote and remote.sip_registered)
    return found


def device_label(user_agent: str, received: str, contact: str) -> str:
    """ "Zoiper v5.6.2 at 203.0.113.42:5060" """
    where = received or contact
    return f"{user_agent or 'A device'} at {where}" if where else (user_agent or "A device")


def registered_devices(endpoint) -> list[str]:
    """The devices a password reset or a delete would sign out."""
    reg = registration(endpoint)
    return [reg["device"]] if reg and endpoint.sip_registered else []


def permission_rows(endpoint) -> list[dict]:
    return [
        {
            "name": name,
            "label": PERMISSION_LABELS[name],
            "value": getattr(endpoint, name),
            "locked": name in LOCKED_PERMISSIONS,
        }
        for name in PERMISSIONS
    ]


def application_label(endpoint) -> str:
    """ "Main IVR (12345678901234567)", the bare id when the name is unknown, or ""."""
    if not endpoint.app_id:
        return ""
    return f"{endpoint.app_name} ({endpoint.app_id})" if endpoint.app_name else endpoint.app_id


def shown(value) -> str:
    """A field value in a sentence: Yes/No for permissions, quoted text otherwise."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return f"'{value}'"


def conflict_lines(changes: dict, typed: dict) -> list[str]:
    """One line per field that changed at Vobiz while the user edited it: ``changes`` maps
    field -> (value the user saw, value Vobiz has now), ``typed`` what the user entered."""
    lines = []
    for name, (seen, now) in changes.items():
        label = "alias" if name == "alias" else PERMISSION_LABELS.get(name, name)
        line = f"{label}: you saw {shown(seen)}, Vobiz now has {shown(now)}"
        if name in typed:
            line += f" (you entered {shown(typed[name])})"
        lines.append(line)
    return lines
