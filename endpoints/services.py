"""Writes: Vobiz first, then the local cache, then the audit log.

Every write service talks to Vobiz, re-reads the endpoint to learn what Vobiz actually stored,
updates the cache from that, and records an AuditEvent whatever the outcome (``_audited``).
A failed write changes nothing locally. No password reaches the database, a log line or an
exception. The sync lives in ``sync``, cache rows in ``cache``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.core.cache import cache
from django.views.decorators.debug import sensitive_variables

from . import vobiz
from .cache import endpoint_cache_drop, endpoint_cache_put
from .models import AuditEvent, Endpoint, StaffScope, SubAccount, UserPreference
from .scopes import MAIN_ACCOUNT_LABEL, Scope
from .selectors import SUB_ACCOUNT_NAMES_KEY
from .vobiz import (
    EDITABLE_PERMISSIONS,
    PERMISSION_LABELS,
    PERMISSIONS,
    RemoteEndpoint,
    VobizError,
    VobizNotFound,
)

EDITABLE_FIELDS = ("alias", *EDITABLE_PERMISSIONS, "application")


class WriteNotApplied(VobizError):
    """Vobiz accepted a write, but re-reading the endpoint shows it did not take effect."""


class OutOfScope(VobizNotFound):
    """The endpoint is outside the user's sub-account scope. To the user it does not exist:
    views answer it exactly as they answer an endpoint Vobiz does not have (404)."""

    def __init__(self):
        super().__init__("This endpoint no longer exists at Vobiz.", status=404)


class EditConflict(VobizError):
    """The endpoint changed at Vobiz after the user opened the form; ``changes`` lists
    field -> (value the user saw, value Vobiz has now) for the fields the user edited."""

    def __init__(self, message: str, *, changes: dict):
        super().__init__(message)
        self.changes = changes


# --- audit --------------------------------------------------------------------------------


def _audit(*, user, action: str, endpoint_id: str = "", endpoint_username: str = "",
           sub_account: str | None = None, changes: dict | None = None, outcome: str,
           message: str = "", job=None) -> AuditEvent:
    return AuditEvent.objects.create(
        job=job,
        user=user if getattr(user, "is_authenticated", False) else None,
        username=getattr(user, "username", "") or "",
        action=action,
        endpoint_id=endpoint_id,
        endpoint_username=endpoint_username[:255],
        sub_account=sub_account,
        changes=changes or {},
        outcome=outcome,
        message=message[:2000],
    )


def _reread_quietly(client, endpoint_id: str) -> Endpoint | None:
    """After an uncertain write, learn what Vobiz has now; best effort."""
    try:
        return endpoint_cache_put(client.get_endpoint(endpoint_id))
    except VobizNotFound:
        endpoint_cache_drop(endpoint_id)
    except VobizError:
        pass
    return None


@dataclass
class AuditRecord:
    """What an audited write reports: filled in by the write as it learns it."""

    endpoint_id: str = ""
    label: str = ""  # the endpoint's username as best known
    sub_account: str | None = None  # the endpoint's, as best known (None: not known)
    changes: dict = field(default_factory=dict)  # field -> [old, new]
    message: str = ""

    def learn(self, remote: RemoteEndpoint) -> None:
        """What a live read told us about the endpoint."""
        self.label = remote.username
        self.sub_account = remote.sub_account


@contextmanager
def _audited(*, user, action: str, client, endpoint_id: str = "",
             changes: dict | None = None, job=None) -> Iterator[AuditRecord]:
    """Run one write and audit it whatever happens.

    The body fills in the record. A VobizError is audited as failed, or as uncertain when the
    write was sent without an answer (the endpoint is then re-read, so the cache shows what
    Vobiz has) and re-raised; otherwise the write is audited as done.
    """
    cached = Endpoint.objects.filter(endpoint_id=endpoint_id).first() if endpoint_id else None
    record = AuditRecord(endpoint_id=endpoint_id,
                         label=cached.username if cached else endpoint_id,
                         sub_account=cached.sub_account if cached else None,
                         changes=dict(changes or {}))
    try:
        yield record
    except VobizError as exc:
        if exc.uncertain and record.endpoint_id:
            _reread_quietly(client, record.endpoint_id)
        _audit(user=user, action=action, endpoint_id=record.endpoint_id,
               endpoint_username=record.label, sub_account=record.sub_account,
               changes=record.changes,
               outcome=(AuditEvent.Outcome.UNCERTAIN if exc.uncertain
                        else AuditEvent.Outcome.FAILED),
               message=exc.message, job=job)
        raise
    _audit(user=user, action=action, endpoint_id=record.endpoint_id,
           endpoint_username=record.label, sub_account=record.sub_account,
           changes=record.changes, outcome=AuditEvent.Outcome.DONE, message=record.message,
           job=job)


# --- reads --------------------------------------------------------------------------------


def endpoint_fetch(*, endpoint_id: str, scope: Scope,
                   client: vobiz.VobizClient | None = None) -> Endpoint:
    """Read one endpoint live from Vobiz and refresh its cache row.

    Raises VobizNotFound (and drops the cache row) if Vobiz no longer has it, OutOfScope
    (a VobizNotFound) if it is outside ``scope``, or another VobizError when Vobiz cannot
    answer (the cache row is left as it was).
    """
    client = client or vobiz.get_client()
    return endpoint_cache_put(_current(client, endpoint_id, scope))


def _current(client, endpoint_id: str, scope: Scope) -> RemoteEndpoint:
    """The endpoint as Vobiz has it now, if ``scope`` may see it."""
    try:
        remote = client.get_endpoint(endpoint_id)
    except VobizNotFound:
        endpoint_cache_drop(endpoint_id)
        raise
    if not scope.allows(remote.sub_account):
        raise OutOfScope()
    return remote


# --- writes -------------------------------------------------------------------------------


@dataclass
class CreateOutcome:
    endpoint: Endpoint
    typed_username: str
    # Empty when the read-back confirmed what Vobiz stored; otherwise why it could not, and
    # the row holds only what the create answer said (the next sync completes it).
    unverified: str = ""
    # What was sent but is not what Vobiz stored: "Video calls: sent Yes, Vobiz has No".
    # Four permissions can never be changed later, so this is said at once.
    not_kept: list[str] = field(default_factory=list)

    @property
    def username_rewritten(self) -> bool:
        return self.endpoint.username != self.typed_username


def _create_body(data: dict) -> dict:
    body = {"username": data["username"], "password": data["password"]}
    if data.get("alias"):
        body["alias"] = data["alias"]
    if data.get("application"):
        body["application"] = vobiz.app_id_value(data["application"])
    if data.get("sub_account"):
        body["sub_account"] = data["sub_account"]
    for perm in PERMISSIONS:
        if perm in data:
            body[perm] = bool(data[perm])
    return body


def _not_kept(body: dict, stored: RemoteEndpoint) -> list[str]:
    """The application and permissions that were sent and that the read-back shows
    otherwise. A permission the read-back does not report cannot be checked: it is said."""
    def yes(value):
        return "Yes" if value else "No"

    lines = []
    if "application" in body and str(body["application"]) != stored.app_id:
        lines.append(f"Application: sent {body['application']}, Vobiz has "
                     f"{stored.app_id or 'none'}")
    for perm in PERMISSIONS:
        if perm not in body:
            continue
        kept = stored.permissions.get(perm)
        if kept is None:
            lines.append(f"{PERMISSION_LABELS[perm]}: sent {yes(body[perm])}, Vobiz did not "
                         "report it")
        elif kept != body[perm]:
            lines.append(f"{PERMISSION_LABELS[perm]}: sent {yes(body[perm])}, Vobiz has "
                         f"{yes(kept)}")
    return lines


@sensitive_variables()  # ``data`` and ``body`` hold the SIP password
def endpoint_create(*, user, data: dict, scope: Scope,
                    client: vobiz.VobizClient | None = None) -> CreateOutcome:
    """Create an endpoint at Vobiz (never retried), then GET it to learn what Vobiz stored.

    ``data`` holds username, password, alias, application (app id or ""), the seven
    permissions and optionally sub_account. The read-back is compared with what was sent
    (the stored username; the application and permissions, in ``not_kept``). Raises
    VobizError; on an uncertain create the audit says so and the caller must tell the user
    to check the list before retrying.
    """
    client = client or vobiz.get_client()
    typed = data["username"]
    if not scope.allows(data.get("sub_account") or ""):
        raise OutOfScope()  # the form offers only the scope's sub-accounts
    body = _create_body(data)
    summary = {k: [None, v] for k, v in body.items() if k != "password"}
    with _audited(user=user, action="create", client=client, changes=summary) as record:
        record.label = typed
        record.sub_account = data.get("sub_account") or ""
        created = client.create_endpoint(body)
        record.endpoint_id = created.endpoint_id
        unverified, not_kept = "", []
        try:
            stored = client.get_endpoint(created.endpoint_id)
        except VobizError as exc:
            # The endpoint exists: the user must still get the password (it is shown only
            # now), so keep what the create answer told us instead of reporting a failure.
            stored = None
            endpoint = endpoint_cache_put(_remote_from_create(created, body))
            unverified = (f"Vobiz created the endpoint but could not be read back "
                          f"({exc.message}); the username shown is what the create answer "
                          "said. Open the endpoint page to confirm it before configuring a "
                          "device.")
        if stored is not None:
            endpoint = endpoint_cache_put(stored)
            not_kept = _not_kept(body, stored)
        record.label = endpoint.username
        record.sub_account = endpoint.sub_account
        record.changes["username"] = [None, endpoint.username]
        notes = [f"Vobiz stored the username as {endpoint.username} (typed {typed})."
                 if endpoint.username != typed else "", unverified,
                 ("Vobiz did not keep what was sent: " + "; ".join(not_kept) + ".")
                 if not_kept else ""]
        record.message = " ".join(n for n in notes if n)
    return CreateOutcome(endpoint=endpoint, typed_username=typed, unverified=unverified,
                         not_kept=not_kept)


def _remote_from_create(created: vobiz.CreateResult, body: dict) -> RemoteEndpoint:
    """A stand-in for the read-back: the create answer's fields over what we sent."""
    sip_uri = str(created.raw.get("sip_uri") or "")
    username = created.username or (sip_uri[4:].split("@", 1)[0] if sip_uri.startswith("sip:")
                                    else "") or body["username"]
    record = {k: v for k, v in body.items() if k != "password"}
    if "application" in record:
        record["application"] = str(record["application"])
    record.update({"endpoint_id": created.endpoint_id, "username": username,
                   "sip_uri": sip_uri, "sip_registered": "false"})
    return vobiz.parse_endpoint(record)


def _update_body(changes: dict) -> dict:
    """The update API's body: the application goes out as both ``app_id`` and
    ``application`` (docs/vobiz-api.md: the live API honours the first, the docs name the
    second), as an integer when it is all digits; "" detaches."""
    body = {k: v for k, v in changes.items() if k != "application"}
    if "application" in changes:
        app_id = changes["application"]
        value = vobiz.app_id_value(app_id) if app_id else None
        body.update({"app_id": value, "application": value} if app_id else
                    {"app_id": "", "application": None})
    return body


def _remote_value(remote: RemoteEndpoint, name: str):
    if name == "alias":
        return remote.alias
    if name == "application":
        return remote.app_id
    return remote.permissions[name]


def endpoint_update(
    *,
    user,
    endpoint_id: str,
    changes: dict,
    scope: Scope,
    seen: dict | None = None,
    action: str = "update",
    current: RemoteEndpoint | None = None,
    job=None,
    client: vobiz.VobizClient | None = None,
) -> Endpoint:
    """Apply the editable fields in ``changes`` (alias, the three editable permissions and,
    for an import, the application) in one update.

    ``seen`` holds the values the user's form started from; if Vobiz now has something else
    for a field the user edited, EditConflict is raised and nothing is sent. Fields the user
    did not change are never sent. Afterwards the endpoint is re-read and each sent field is
    verified (WriteNotApplied if one did not take). ``current``: the endpoint as a caller
    has just read it live, in scope (a bulk job), instead of reading it again; ``job``: the
    bulk job the write belongs to (the audit entry links to it).
    """
    client = client or vobiz.get_client()
    changes = {k: v for k, v in changes.items() if k in EDITABLE_FIELDS}
    with _audited(user=user, action=action, client=client, endpoint_id=endpoint_id,
                  changes={k: [None, v] for k, v in changes.items()}, job=job) as record:
        current = current or _current(client, endpoint_id, scope)
        record.learn(current)
        if seen:
            moved = {
                name: (seen[name], _remote_value(current, name))
                for name in changes
                if name in seen and seen[name] != _remote_value(current, name)
            }
            if moved:
                endpoint_cache_put(current)
                raise EditConflict(
                    "Someone changed this endpoint at Vobiz while you were editing it. "
                    "Nothing was saved; review the current values and try again.",
                    changes=moved,
                )
        to_send = {k: v for k, v in changes.items() if _remote_value(current, k) != v}
        record.changes = {k: [_remote_value(current, k), v] for k, v in to_send.items()}
        if not to_send:
            record.message = "Nothing changed."
            return endpoint_cache_put(current)
        client.update_endpoint(endpoint_id, _update_body(to_send))
        after = client.get_endpoint(endpoint_id)
        endpoint = endpoint_cache_put(after)
        # A field the read-back does not report cannot be checked: skipped, not failed.
        missed = [k for k, v in to_send.items()
                  if _remote_value(after, k) is not None and _remote_value(after, k) != v]
        if missed:
            raise WriteNotApplied(
                "Vobiz accepted the change but the endpoint still shows the old "
                + ", ".join(missed) + "."
            )
    return endpoint


@dataclass
class PasswordResetOutcome:
    endpoint: Endpoint
    signed_out: list  # Registration objects that were active before the reset


@sensitive_variables()  # ``password``
def endpoint_password_reset(
    *, user, endpoint_id: str, password: str, scope: Scope,
    current: RemoteEndpoint | None = None, job=None,
    client: vobiz.VobizClient | None = None,
) -> PasswordResetOutcome:
    """Set a new SIP password. Active registrations drop at Vobiz; the outcome lists them.
    ``current`` and ``job`` as for endpoint_update."""
    client = client or vobiz.get_client()
    signed_out = []
    with _audited(user=user, action="password_reset", client=client, endpoint_id=endpoint_id,
                  changes={"password": ["(hidden)", "(changed)"]}, job=job) as record:
        before = current or _current(client, endpoint_id, scope)
        record.learn(before)
        if before.registration and before.is_registered:
            signed_out.append(before.registration)
        client.update_endpoint(endpoint_id, {"password": password})
        endpoint = endpoint_cache_put(client.get_endpoint(endpoint_id))
        if signed_out:
            record.message = f"{len(signed_out)} registered device(s) signed out."
    return PasswordResetOutcome(endpoint=endpoint, signed_out=signed_out)


def endpoint_application_set(
    *, user, endpoint_id: str, app_id: str, scope: Scope,
    current: RemoteEndpoint | None = None, job=None,
    client: vobiz.VobizClient | None = None,
) -> Endpoint:
    """Attach (``app_id``) or detach (``""``) the call-routing application.

    Sends both ``app_id`` and ``application`` (the docs and the live API disagree on which
    one counts), re-reads the endpoint and raises WriteNotApplied if the link did not change.
    ``current`` and ``job`` as for endpoint_update.
    """
    client = client or vobiz.get_client()
    action = "attach_application" if app_id else "detach_application"
    cached = Endpoint.objects.filter(endpoint_id=endpoint_id).first()
    with _audited(user=user, action=action, client=client, endpoint_id=endpoint_id,
                  changes={"application": [cached.app_id if cached else None,
                                           app_id or None]}, job=job) as record:
        before = current or _current(client, endpoint_id, scope)
        record.learn(before)
        record.changes = {"application": [before.app_id or None, app_id or None]}
        if before.app_id == app_id:
            return endpoint_cache_put(before)
        client.update_endpoint(endpoint_id, _update_body({"application": app_id}))
        after = client.get_endpoint(endpoint_id)
        endpoint = endpoint_cache_put(after)
        if after.app_id != app_id:
            raise WriteNotApplied(
                "Vobiz answered OK but did not change the application: the endpoint is "
                + (f"still linked to {after.app_name or after.app_id}." if after.app_id
                   else "still without an application.")
            )
    return endpoint


def endpoint_delete(*, user, endpoint_id: str, scope: Scope,
                    current: RemoteEndpoint | None = None, job=None,
                    client: vobiz.VobizClient | None = None) -> None:
    """Delete at Vobiz, then from the cache. A 404 means it is already gone: success.

    Vobiz's DELETE needs no read first, so a scoped user's scope is checked on the cached
    row: an endpoint the cache does not have, or has outside ``scope``, is OutOfScope.
    ``current``: the endpoint as a bulk job just read it live (its scope checked there);
    ``job``: the job the delete belongs to."""
    client = client or vobiz.get_client()
    if current is not None and not scope.allows(current.sub_account):
        raise OutOfScope()
    if current is None and not scope.everything:
        cached = Endpoint.objects.filter(endpoint_id=endpoint_id).first()
        if cached is None or not scope.allows(cached.sub_account):
            raise OutOfScope()
    with _audited(user=user, action="delete", client=client, endpoint_id=endpoint_id,
                  job=job) as record:
        if current is not None:
            record.learn(current)
        try:
            client.delete_endpoint(endpoint_id)
        except VobizNotFound:
            record.message = "Vobiz no longer had this endpoint; removed it from the list."
        endpoint_cache_drop(endpoint_id)


# --- preferences --------------------------------------------------------------------------


def user_page_size_set(*, user, page_size: int) -> None:
    """Remember the list's page size for ``user`` (across browsers)."""
    UserPreference.objects.update_or_create(user=user, defaults={"page_size": page_size})


# --- staff scopes -------------------------------------------------------------------------


def _scope_text(all_endpoints: bool, sub_accounts: list[str]) -> str:
    if all_endpoints:
        return "all endpoints"
    if not sub_accounts:
        return "nothing"
    return ", ".join(MAIN_ACCOUNT_LABEL if s == "" else s
                     for s in sorted(sub_accounts, key=lambda s: (s != "", s)))


def staff_scope_set(*, actor, user, all_endpoints: bool, sub_accounts: list[str]) -> bool:
    """Give ``user`` a scope (everything, or these sub-account ids, "" being the main
    account) and audit the change. Returns False when nothing changed. The user's next
    request sees the new scope (scopes are read afresh on every request)."""
    sub_accounts = sorted({str(s) for s in sub_accounts}) if not all_endpoints else []
    row = StaffScope.objects.filter(user=user).first()
    before = (True, []) if row is None else (row.all_endpoints, sorted(row.sub_accounts or []))
    after = (all_endpoints, sub_accounts)
    if before == after:
        return False
    StaffScope.objects.update_or_create(user=user, defaults={
        "all_endpoints": all_endpoints, "sub_accounts": sub_accounts})
    _audit(user=actor, action="scope_change", outcome=AuditEvent.Outcome.DONE,
           changes={"scope": [_scope_text(*before), _scope_text(*after)]},
           message=f"Scope of {user.get_username()}: {_scope_text(*before)} -> "
                   f"{_scope_text(*after)}.")
    return True


def sub_account_name_set(*, actor, sub_account: str, name: str) -> bool:
    """Give a sub-account a local display name ("" removes it) and audit it. Returns False
    when nothing changed."""
    name = name.strip()
    row = SubAccount.objects.filter(sub_account=sub_account).first()
    before = row.name if row else ""
    if before == name:
        return False
    if name:
        SubAccount.objects.update_or_create(sub_account=sub_account, defaults={"name": name})
    elif row:
        row.delete()
    cache.delete(SUB_ACCOUNT_NAMES_KEY)
    _audit(user=actor, action="sub_account_name", outcome=AuditEvent.Outcome.DONE,
           sub_account=sub_account, changes={"name": [before or None, name or None]},
           message=f"Sub-account {sub_account} named {name!r}." if name
           else f"Sub-account {sub_account} no longer has a name.")
    return True
