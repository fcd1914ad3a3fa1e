"""Login everywhere, HTMX-aware; session time limits; and the security headers Django does
not set itself."""

import time

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.http import HttpResponse
from django.shortcuts import resolve_url
from django.utils.cache import patch_cache_control
from django.utils.http import urlencode

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Django's login-everywhere middleware, except that an htmx request is told to load
    the login page as a whole page (HX-Redirect) instead of swapping it into a table cell."""

    def handle_no_permission(self, request, view_func):
        if getattr(request, "htmx", False):
            response = HttpResponse(status=204)
            path = request.htmx.current_url_abs_path or request.get_full_path()
            login = resolve_url(settings.LOGIN_URL)
            response["HX-Redirect"] = f"{login}?{urlencode({'next': path})}"
            return response
        return super().handle_no_permission(request, view_func)


class SecurityHeadersMiddleware:
    """A strict CSP (no inline script or style) and a restrictive Permissions-Policy."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


# Session keys of SessionTimeoutMiddleware: epoch seconds of the login and of the last request.
LOGIN_AT_KEY = "_vobiz_login_at"
LAST_SEEN_KEY = "_vobiz_last_seen"
# The last-request time is written at most this often (a session save per minute, not per
# request), so the idle limit holds to within a minute.
LAST_SEEN_RESOLUTION = 60


def start_session_clock(sender, request, user, **kwargs):
    """On login (``user_logged_in``, connected in vobizadmin/apps.py): both clocks start now,
    so the first requests of a session do not each have to save it."""
    if request is not None and hasattr(request, "session"):
        now = int(SessionTimeoutMiddleware.clock())
        request.session[LOGIN_AT_KEY] = now
        request.session[LAST_SEEN_KEY] = now


class SessionTimeoutMiddleware:
    """Log out a session idle for ``SESSION_IDLE_SECONDS`` or older than ``SESSION_COOKIE_AGE``
    since login, on the server (the cookie's own expiry is the browser's to honour). Runs after
    AuthenticationMiddleware and before LoginRequiredMiddleware, which then sends the user to
    the login page. ``clock`` is for tests."""

    clock = staticmethod(time.time)

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = int(self.clock())
            session = request.session
            login_at = session.setdefault(LOGIN_AT_KEY, now)
            last_seen = session.get(LAST_SEEN_KEY, now)
            if (now - last_seen > settings.SESSION_IDLE_SECONDS
                    or now - login_at > settings.SESSION_COOKIE_AGE):
                logout(request)
            elif LAST_SEEN_KEY not in session or now - last_seen >= LAST_SEEN_RESOLUTION:
                session[LAST_SEEN_KEY] = now
        return self.get_response(request)


class NoStoreForLoggedInMiddleware:
    """Every response to a logged-in user says ``Cache-Control: private, no-store``, so the
    browser keeps no copy (Back after logout on a shared desk shows nothing). Static files are
    served before this runs (WhiteNoise); a response that already says no-store keeps its
    header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        was_logged_in = self._logged_in(request)
        response = self.get_response(request)
        logged_in = was_logged_in or self._logged_in(request)
        if logged_in and "no-store" not in response.get("Cache-Control", ""):
            patch_cache_control(response, private=True, no_store=True)
        return response

    @staticmethod
    def _logged_in(request) -> bool:
        user = getattr(request, "user", None)
        return user is not None and user.is_authenticated
