"""Login everywhere, HTMX-aware; and the security headers Django does not set itself."""

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.http import HttpResponse
from django.shortcuts import resolve_url
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
