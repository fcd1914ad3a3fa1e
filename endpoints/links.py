"""View-once links: one new endpoint's SIP settings and password, for the person who sets up
the device, without pasting a password into an email.

A link's token carries 192 random bits and is stored only as its SHA-256; the password is
kept only encrypted (``endpoints.secrets``) until the link is opened, expires or is revoked,
then wiped. Opening, expiry and revocation are audited. A spent, expired, revoked or unknown
link answers the same way, so a guesser learns nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import display
from .models import AuditEvent, CredentialLink
from .secrets import seal, unseal

TOKEN_BYTES = 24  # 192 bits


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _lifetime() -> timedelta:
    return timedelta(hours=getattr(settings, "CREDENTIAL_LINK_HOURS", 72))


def _audit(**kwargs) -> None:
    from .services import _audit

    _audit(outcome=AuditEvent.Outcome.DONE, **kwargs)


@sensitive_variables("password")
def link_create(*, endpoint, password: str, job=None, user=None) -> str:
    """Make a link for ``endpoint`` and return its token (shown to its maker once)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    CredentialLink.objects.create(
        token_hash=_hash(token), endpoint_id=endpoint.endpoint_id,
        endpoint_username=endpoint.username[:255], sub_account=endpoint.sub_account,
        secret=seal(password), job=job, created_by=user,
        expires_at=timezone.now() + _lifetime())
    return token


def _usable():
    return CredentialLink.objects.filter(opened_at__isnull=True, revoked_at__isnull=True,
                                         expires_at__gt=timezone.now())


def link_waiting(*, token: str) -> CredentialLink | None:
    """The link, if it can still be opened (the page before the one-time reveal)."""
    if not token or len(token) > 200:
        return None
    return _usable().filter(token_hash=_hash(token)).first()


def link_open(*, token: str) -> dict | None:
    """Spend the link: its settings and password, once. None for a spent, expired, revoked
    or unknown link. The password is wiped as it is read; the opening is audited."""
    if not token or len(token) > 200:
        return None
    now = timezone.now()
    link = _usable().filter(token_hash=_hash(token)).first()
    if link is None or not _usable().filter(pk=link.pk).update(opened_at=now):
        return None  # a second opener loses the race: the update is the claim
    password = unseal(link.secret)
    CredentialLink.objects.filter(pk=link.pk).update(secret="")
    _audit(user=None, action="link_opened", endpoint_id=link.endpoint_id,
           endpoint_username=link.endpoint_username, sub_account=link.sub_account,
           job=link.job, message="The view-once setup link was opened; the password it held "
                                 "is no longer kept.")
    if password is None:
        return None
    endpoint = _Shown(link.endpoint_username)
    return {"username": link.endpoint_username, "password": password,
            "sip": display.sip_settings(endpoint)}


class _Shown:
    """What display.sip_settings needs of an endpoint (the link keeps only the username)."""

    def __init__(self, username: str):
        self.username = username
        self.alias = ""
        self.sip_uri = ""


def link_revoke(*, link: CredentialLink, user) -> bool:
    """Spend a link that was not opened yet (a lost email, a device set up otherwise)."""
    if not _usable().filter(pk=link.pk).update(revoked_at=timezone.now(), secret="",
                                               revoked_by_username=user.get_username()):
        return False
    _audit(user=user, action="link_revoked", endpoint_id=link.endpoint_id,
           endpoint_username=link.endpoint_username, sub_account=link.sub_account,
           job=link.job, message="A view-once setup link was revoked before it was opened.")
    return True


def links_expire() -> int:
    """Wipe the passwords of links that expired unopened, and audit each; returns how many."""
    expired = list(CredentialLink.objects.filter(expires_at__lte=timezone.now()).exclude(
        secret=""))
    for link in expired:
        if CredentialLink.objects.filter(pk=link.pk).exclude(secret="").update(secret=""):
            _audit(user=None, action="link_expired", endpoint_id=link.endpoint_id,
                   endpoint_username=link.endpoint_username, sub_account=link.sub_account,
                   job=link.job, message="A view-once setup link expired unopened; its "
                                         "password is no longer kept.")
    return len(expired)


def links_for_endpoint(*, endpoint_id: str) -> list[CredentialLink]:
    """The endpoint's links, newest first (for its page: who may still open one)."""
    return list(CredentialLink.objects.filter(endpoint_id=endpoint_id)[:20])
