"""Login with a throttle against password guessing.

Failures are counted in Django's cache (Redis when several web processes share it) per
username and per client address; past the limit, logins for that key are refused for a
cool-down period without checking the password, and the form says how long to wait.
"""

import hashlib

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

LOCK_MESSAGE = "Too many failed attempts. Wait {minutes} minutes, then try again."


def _keys(username: str, address: str) -> list[str]:
    def digest(value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()[:32]

    return [f"login-fail:user:{digest(username.lower())}", f"login-fail:addr:{digest(address)}"]


class ThrottledAuthenticationForm(AuthenticationForm):
    def clean(self):
        username = (self.data.get("username") or "")[:150]
        address = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        keys = _keys(username, address)
        limit = settings.LOGIN_FAILURE_LIMIT
        if any(cache.get(key, 0) >= limit for key in keys):
            raise ValidationError(
                LOCK_MESSAGE.format(minutes=settings.LOGIN_LOCKOUT_SECONDS // 60),
                code="throttled",
            )
        try:
            return super().clean()
        except ValidationError:
            for key in keys:
                cache.add(key, 0, settings.LOGIN_LOCKOUT_SECONDS)
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.set(key, 1, settings.LOGIN_LOCKOUT_SECONDS)
            raise


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
