"""What every page's frame shows: the account (masked), the sync badge, the user's role and
sub-account scope."""

from django.conf import settings
from django.utils.functional import SimpleLazyObject

from . import roles, selectors
from .scopes import request_scope, scope_label


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
        "scope_badge": SimpleLazyObject(lambda: _scope_badge(request)),
    }


def _scope_badge(request) -> dict:
    scope = request_scope(request)
    return {"everything": scope.everything,
            "empty": not scope.everything and not scope.sub_accounts,
            "label": scope_label(scope, selectors.sub_account_names())}
