"""What every page's frame shows: the account (masked), the sync badge, the user's role."""

from django.conf import settings
from django.utils.functional import SimpleLazyObject

from . import roles, selectors


def dashboard(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    auth_id = settings.VOBIZ_AUTH_ID or ""
    masked = (auth_id[:5] + "…" + auth_id[-3:]) if len(auth_id) > 10 else auth_id
    return {
        "vobiz_account": masked,
        # Lazy: a view that already read the sync state passes its own and saves the query.
        "sync": SimpleLazyObject(selectors.sync_status_get),
        "role": roles.role_name(request.user),
        "can": roles.capabilities(request.user),
    }
