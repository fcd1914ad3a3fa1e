"""Bulk work, the read side: what a selection is, which actions a role may run, and the
preview (a dry run that reads only the cache).

A selection is either some endpoints picked one by one (their ids) or every endpoint
matching a filter, kept as the filter itself: "every endpoint matching q=desk" stays that
even as endpoints come and go. It is always read within the user's scope. Nothing here
talks to Vobiz; ``endpoints.jobs`` runs what the preview showed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone

from . import roles, selectors
from .models import Application, Endpoint, Job
from .scopes import Scope
from .vobiz import EDITABLE_PERMISSIONS, PERMISSION_LABELS

FILTER_KEYS = selectors.FILTER_KEYS
# Endpoints picked one by one: more than this is what "Select all matching" is for.
MAX_PICKED = 5000
PREVIEW_PAGE = 50

# The actions run on a selection (imports are jobs too, made from a spreadsheet).
BULK_ACTIONS = (Job.Action.SET_APPLICATION, Job.Action.DETACH_APPLICATION,
                Job.Action.SET_PERMISSIONS, Job.Action.RESET_PASSWORD, Job.Action.DELETE)
# action -> the permission a role needs to run it
ACTION_PERMISSION = {
    Job.Action.SET_APPLICATION: roles.MANAGE_APPLICATION,
    Job.Action.DETACH_APPLICATION: roles.MANAGE_APPLICATION,
    Job.Action.SET_PERMISSIONS: roles.EDIT,
    Job.Action.RESET_PASSWORD: roles.RESET_PASSWORD,
    Job.Action.DELETE: roles.DELETE,
    Job.Action.IMPORT_UPDATE: roles.EDIT,
    Job.Action.IMPORT_CREATE: roles.CREATE,
}
PERMISSION_CHOICES = {"on": True, "off": False}


def filters_key(filters: dict) -> str:
    """Names a filter: a selection belongs to the filter it was made under."""
    values = {k: filters.get(k) or "" for k in FILTER_KEYS}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Selection:
    """Every endpoint matching ``filters`` (``all_matching``), or the picked ``ids``."""

    filters: dict = field(default_factory=dict)
    all_matching: bool = False
    ids: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        return filters_key(self.filters)

    @property
    def empty(self) -> bool:
        return not self.all_matching and not self.ids

    def as_data(self) -> dict:
        """For the session (and a job's record of what was selected)."""
        return {"filters": {k: self.filters.get(k) or "" for k in FILTER_KEYS},
                "all": self.all_matching, "ids": sorted(self.ids)}

    @classmethod
    def from_data(cls, data) -> Selection:
        if not isinstance(data, dict):
            return cls()
        filters = data.get("filters") if isinstance(data.get("filters"), dict) else {}
        ids = data.get("ids") if isinstance(data.get("ids"), list) else []
        return cls(filters={k: str(filters.get(k) or "") for k in FILTER_KEYS},
                   all_matching=bool(data.get("all")),
                   ids=frozenset(str(i) for i in ids[:MAX_PICKED]))


def selection_queryset(*, selection: Selection, scope: Scope):
    """The cached endpoints ``selection`` covers, within ``scope`` (nothing when empty)."""
    endpoints = selectors.endpoints_in_scope(scope)
    if selection.all_matching:
        return endpoints.filter(selectors.endpoint_filter_q(selection.filters))
    return endpoints.filter(endpoint_id__in=sorted(selection.ids))


def selection_count(*, selection: Selection, scope: Scope) -> int:
    """How many endpoints the selection covers now (a filter is counted from the cache's
    cached counts)."""
    if selection.empty:
        return 0
    if selection.all_matching:
        return selectors.endpoint_matching(filters=selection.filters, scope=scope).count
    return selection_queryset(selection=selection, scope=scope).count()


def actions_for(user) -> list[tuple[str, str]]:
    """The bulk actions ``user``'s role may run, as (value, label)."""
    return [(action.value, action.label) for action in BULK_ACTIONS
            if user.has_perm(ACTION_PERMISSION[action])]


# --- actions and their parameters ---------------------------------------------------------


class ActionError(ValueError):
    """The action's parameters are not usable; ``field`` names the control at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def action_params(action: str, data) -> dict:
    """The cleaned parameters of ``action`` from submitted ``data``; raises ActionError."""
    if action == Job.Action.SET_APPLICATION:
        app_id = str(data.get("app_id") or "").strip()
        if not app_id:
            raise ActionError("app_id", "Choose the application to attach.")
        app = Application.objects.filter(app_id=app_id).first()
        if app is None:
            raise ActionError("app_id", "That application is not in the list. Refresh from "
                                        "Vobiz if it was created recently.")
        return {"app_id": app.app_id, "app_name": app.name}
    if action == Job.Action.SET_PERMISSIONS:
        values = {}
        for name in EDITABLE_PERMISSIONS:
            choice = str(data.get(name) or "")
            if choice in PERMISSION_CHOICES:
                values[name] = PERMISSION_CHOICES[choice]
            elif choice not in ("", "unchanged"):
                raise ActionError(name, f"Choose on, off or unchanged for "
                                        f"{PERMISSION_LABELS[name].lower()}.")
        if not values:
            raise ActionError("allow_voice", "Choose at least one permission to turn on or off.")
        return {"permissions": values}
    if action in BULK_ACTIONS:
        return {}
    raise ActionError("action", "Choose a bulk action.")


def action_summary(action: str, params: dict) -> str:
    """ "Change application to Main IVR (12345678901234567)", "Turn video off", ..."""
    if action == Job.Action.SET_APPLICATION:
        name = params.get("app_name") or ""
        return f"Change application to {name} ({params['app_id']})" if name else \
            f"Change application to {params['app_id']}"
    if action == Job.Action.SET_PERMISSIONS:
        parts = [f"{PERMISSION_LABELS[name].lower()} {'on' if value else 'off'}"
                 for name, value in params["permissions"].items()]
        return "Turn " + ", ".join(parts)
    return Job.Action(action).label


# --- the preview --------------------------------------------------------------------------


def _skip_q(action: str, params: dict) -> Q | None:
    """The endpoints the action would leave as they are (None: it changes every one)."""
    if action == Job.Action.SET_APPLICATION:
        return Q(app_id=params["app_id"])
    if action == Job.Action.DETACH_APPLICATION:
        return Q(app_id="")
    if action == Job.Action.SET_PERMISSIONS:
        where = Q()
        for name, value in params["permissions"].items():
            where &= Q(**{name: value})
        return where
    return None


SKIP_REASONS = {
    Job.Action.SET_APPLICATION: "Already on that application",
    Job.Action.DETACH_APPLICATION: "No application to detach",
    Job.Action.SET_PERMISSIONS: "Nothing to change",
}


def _registered_q() -> Q:
    now = timezone.now()
    return Q(sip_registered=True) & (Q(sip_expires__isnull=True) | Q(sip_expires__gt=now))


def _shown(value) -> str:
    if value is None:
        return "Not reported"
    if isinstance(value, bool):
        return "On" if value else "Off"
    return value


def preview_row(endpoint: Endpoint, action: str, params: dict) -> dict:
    """What the action would do to one cached endpoint: the changes (label, from, to), or
    why it is skipped; and the device a reset or delete would sign out."""
    changes, skip = [], ""
    if action == Job.Action.SET_APPLICATION:
        if endpoint.app_id == params["app_id"]:
            skip = SKIP_REASONS[action]
        else:
            before = (endpoint.app_name or endpoint.app_id) if endpoint.app_id else "None"
            changes.append(("Application", before, params.get("app_name") or params["app_id"]))
    elif action == Job.Action.DETACH_APPLICATION:
        if not endpoint.app_id:
            skip = SKIP_REASONS[action]
        else:
            changes.append(("Application", endpoint.app_name or endpoint.app_id, "None"))
    elif action == Job.Action.SET_PERMISSIONS:
        for name, value in params["permissions"].items():
            if getattr(endpoint, name) != value:
                changes.append((PERMISSION_LABELS[name], _shown(getattr(endpoint, name)),
                                _shown(value)))
        if not changes:
            skip = SKIP_REASONS[action]
    elif action == Job.Action.RESET_PASSWORD:
        changes.append(("Password", "current", "new, generated"))
    elif action == Job.Action.DELETE:
        changes.append(("Endpoint", "exists", "deleted"))
    device = ""
    if action in (Job.Action.RESET_PASSWORD, Job.Action.DELETE) and endpoint.registration_status \
            in ("registered", "expiring"):
        device = " ".join(part for part in (endpoint.sip_user_agent, endpoint.sip_contact)
                          if part) or "A registered device"
    return {"endpoint": endpoint, "changes": changes, "skip": skip, "device": device}


@dataclass
class Preview:
    total: int
    will_change: int
    skipped: int
    skip_reason: str
    devices: int  # registered devices a reset or delete signs out
    rows: list
    offset: int


PREVIEW_FIELDS = ("id", "endpoint_id", "username", "alias", "app_id", "app_name",
                  "sub_account", "sip_registered", "sip_contact", "sip_user_agent",
                  "sip_expires", *EDITABLE_PERMISSIONS)


def preview(*, selection: Selection, scope: Scope, action: str, params: dict,
            offset: int = 0, limit: int = PREVIEW_PAGE) -> Preview:
    """The dry run: totals for the whole selection (counted by the database) and one page of
    rows, by username. Reads the cache only: nothing reaches Vobiz."""
    qs = selection_queryset(selection=selection, scope=scope)
    total = selection_count(selection=selection, scope=scope)
    skip_q = _skip_q(action, params)
    skipped = qs.filter(skip_q).count() if skip_q is not None and total else 0
    devices = (qs.filter(_registered_q()).count()
               if action in (Job.Action.RESET_PASSWORD, Job.Action.DELETE) and total else 0)
    offset = max(0, min(offset, max(0, total - 1)))
    page = list(qs.only(*PREVIEW_FIELDS).order_by(*selectors.endpoint_ordering("username"))
                [offset:offset + limit]) if total else []
    return Preview(total=total, will_change=total - skipped, skipped=skipped,
                   skip_reason=SKIP_REASONS.get(action, ""), devices=devices,
                   rows=[preview_row(e, action, params) for e in page], offset=offset)


def preview_fingerprint(*, selection: Selection, action: str, params: dict,
                        will_change: int) -> str:
    """Ties a Run button to the preview it was shown with: if the selection, the action or
    the number it would touch changed since, the preview is shown again."""
    raw = json.dumps([selection.as_data(), action, params, will_change], sort_keys=True,
                     default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]
