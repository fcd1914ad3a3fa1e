"""Login with a throttle against password guessing.

The throttle lives in the authentication backend, so every login form (the dashboard's and
Django's admin) shares it: each ``authenticate()`` first reserves one attempt for the
username and one for the client address, and refuses without checking the password when
either has ``LOGIN_FAILURE_LIMIT`` failures within ``LOGIN_LOCKOUT_SECONDS``; the lock then
lasts ``LOGIN_LOCKOUT_SECONDS`` from the last counted failure.

- The username is keyed the way authentication resolves it (spaces stripped, NFKC, and
  case-folded on top), so " victim", "victim\\xa0" and a full-width "ｖictim" share one count.
- The address is the client's as the trusted proxy reports it (``client_address``), and an
  IPv6 address counts by its /64 network (one subscriber's whole prefix).
- Counts live in Django's cache, which the settings make a shared one (Redis or the database
  cache). An attempt is reserved with ``cache.add`` on one of ``LOGIN_FAILURE_LIMIT`` slot
  keys before the password is checked, so parallel guesses cannot all slip past the count;
  ``add`` is atomic on Redis, on the database cache (primary key) and on the local-memory cache.
"""

import hashlib
import ipaddress
import logging
import time
import unicodedata

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

logger = logging.getLogger(__name__)

LOCK_MESSAGE = "Too many failed attempts. Wait {minutes} minutes, then try again."
# How long an attempt waits for others from the same username or address that are still
# being checked, when they fill every slot (a password check takes well under a second).
IN_FLIGHT_WAIT_SECONDS = 3.0
_THROTTLED = "_login_throttled"  # request attribute the forms read to word the error


def normalise_username(username) -> str:
    """The username as authentication resolves it (Django's login form strips it and applies
    NFKC; stored usernames are NFKC), case-folded so that case variants share a count too."""
    text = unicodedata.normalize("NFKC", str(username or "").strip()).strip()
    return unicodedata.normalize("NFKC", text.casefold())


def _parse_address(text: str):
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.5:1234"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:  # "::ffff:192.0.2.1" from a dual-stack socket
        return address.ipv4_mapped
    return address


def _is_trusted_proxy(address) -> bool:
    return address is not None and any(
        address in network for network in settings.TRUSTED_PROXY_NETWORKS
    )


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, unless the peer is a trusted proxy
    (``FORWARDED_ALLOW_IPS``); then the ``TRUSTED_PROXY_HOPS``-th X-Forwarded-For entry from
    the right, the one our outermost proxy appended. A direct client's header is never read."""
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_HOPS
    if hops > 0 and _is_trusted_proxy(_parse_address(remote)):
        chain = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
                 if part.strip()]
        if len(chain) >= hops:
            address = _parse_address(chain[-hops])
            if address is not None:
                return str(address)
            logger.warning("Unparseable X-Forwarded-For entry from proxy %s", remote)
    return remote


def address_key(address: str) -> str:
    """What an address counts as: itself for IPv4, its /64 network for IPv6."""
    parsed = _parse_address(address)
    if parsed is None:
        return address or "unknown"
    if parsed.version == 6:
        return str(ipaddress.IPv6Network((int(parsed) >> 64 << 64, 64)))
    return str(parsed)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class LoginThrottle:
    """Failure counts for one login attempt's username and client address.

    Each key has ``LOGIN_FAILURE_LIMIT`` slots; an attempt holds one slot per key while its
    password is checked (IN_FLIGHT), a failure keeps it (FAILED) for ``LOGIN_LOCKOUT_SECONDS``,
    a success frees it. A key whose slots all hold failures is locked; a key whose slots are
    full only because attempts are still being checked makes the next attempt wait for them
    (``IN_FLIGHT_WAIT_SECONDS`` at most): colleagues behind one office address who log in at
    the same moment get in, while a burst of guesses never has more than the limit in play.
    """

    IN_FLIGHT, FAILED = 1, 2

    def __init__(self, request, username):
        self.limit = settings.LOGIN_FAILURE_LIMIT
        self.seconds = settings.LOGIN_LOCKOUT_SECONDS
        self.keys = [f"login-fail:user:{_digest(normalise_username(username))}"]
        if request is not None:
            self.keys.append(f"login-fail:addr:{_digest(address_key(client_address(request)))}")
        self.claimed: list[str] = []

    def _slots(self, key: str) -> list[str]:
        return [f"{key}:{n}" for n in range(self.limit)]

    def reserve(self) -> bool:
        """Count this attempt against every key before the password is checked. False (and
        nothing counted) when a key is locked or stays full for the whole wait."""
        deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
        for key in self.keys:
            while not self._claim(key):
                if cache.get(f"{key}:locked") or time.monotonic() >= deadline:
                    self.release()
                    return False
                time.sleep(0.05)
        return True

    def _claim(self, key: str) -> bool:
        if cache.get(f"{key}:locked"):
            return False
        for slot in self._slots(key):
            # In flight for a minute at most: a worker killed mid-check frees its slot.
            if cache.add(slot, self.IN_FLIGHT, min(60, self.seconds)):
                self.claimed.append(slot)
                return True
        return False

    def release(self) -> None:
        """The attempt succeeded (or was refused): it does not count."""
        if self.claimed:
            cache.delete_many(self.claimed)
        self.claimed = []

    def failed(self) -> None:
        """The attempt failed: it stays counted for the cool-down; a key whose slots now all
        hold failures locks for the whole cool-down from now."""
        cache.set_many(dict.fromkeys(self.claimed, self.FAILED), self.seconds)
        for key in self.keys:
            held = cache.get_many(self._slots(key))
            if all(held.get(slot) == self.FAILED for slot in self._slots(key)):
                cache.set(f"{key}:locked", 1, self.seconds)
        self.claimed = []


class ThrottledModelBackend(ModelBackend):
    """Django's model backend behind the login throttle. A locked username or address is
    refused before any password is checked (``PermissionDenied`` ends ``authenticate()``)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        if username is None or password is None:
            return None
        throttle = LoginThrottle(request, username)
        if not throttle.reserve():
            if request is not None:
                setattr(request, _THROTTLED, True)
            raise PermissionDenied("login throttled")
        try:
            user = super().authenticate(request, username=username, password=password,
                                        **kwargs)
        except BaseException:  # not an answer about the password: it does not count
            throttle.release()
            raise
        if user is None:
            throttle.failed()
        else:
            throttle.release()
        return user

    @staticmethod
    def _username_field():
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


class ThrottleMessageMixin:
    """Login forms say how long to wait instead of "wrong password" while locked."""

    def get_invalid_login_error(self):
        if getattr(self.request, _THROTTLED, False):
            return ValidationError(
                LOCK_MESSAGE.format(minutes=max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)),
                code="throttled",
            )
        return super().get_invalid_login_error()


class ThrottledAuthenticationForm(ThrottleMessageMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottleMessageMixin, AdminAuthenticationForm):
    pass


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    redirect_authenticated_user = True


def end_all_sessions(user) -> int:
    """Delete every database session of ``user`` (all browsers, this one included)."""
    from django.contrib.auth import SESSION_KEY
    from django.contrib.sessions.models import Session

    doomed = [
        s.pk for s in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if s.get_decoded().get(SESSION_KEY) == str(user.pk)
    ]
    Session.objects.filter(pk__in=doomed).delete()
    return len(doomed)


@require_POST
def logout_everywhere(request):
    """Log the user out of every browser they are logged in on."""
    user = request.user
    logout(request)
    end_all_sessions(user)
    messages.success(request, "You were logged out on every device.")
    return redirect(settings.LOGOUT_REDIRECT_URL)
