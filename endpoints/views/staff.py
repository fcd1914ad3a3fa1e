"""The Staff page: who may see which endpoints (sub-account scopes) and the local names of
sub-accounts. Endpoint admins and superusers with an unscoped view of the account use it; a
scoped admin could otherwise widen their own scope."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import roles, selectors, services
from ..forms import StaffScopeForm, SubAccountNameForm
from ..scopes import EVERYTHING, MAIN_ACCOUNT, MAIN_ACCOUNT_LABEL, request_scope, scope_label

STAFF_TEMPLATE = "endpoints/staff.html"
SCOPE_TEMPLATE = "endpoints/staff_scope.html"


def _unscoped_admin(view):
    """Endpoint admins and superusers whose own scope is everything: a scoped admin could
    otherwise give themselves (or anyone) more than they may see."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request_scope(request).everything:
            raise PermissionDenied("Only staff who see all endpoints can change scopes.")
        return view(request, *args, **kwargs)

    return permission_required(roles.MANAGE_STAFF, raise_exception=True)(wrapped)


def _known_sub_accounts(*extra: str) -> list[str]:
    """Every sub-account the dashboard knows: in the cache, named here, or in a scope."""
    known = set(selectors.sub_account_list(scope=EVERYTHING))
    known.update(selectors.sub_account_names())
    known.update(s for s in extra if s)
    return sorted(known)


def _scope_choices(current: list[str]) -> list[tuple[str, str]]:
    names = selectors.sub_account_names()
    present = set(selectors.sub_account_list(scope=EVERYTHING))
    choices = [(MAIN_ACCOUNT, MAIN_ACCOUNT_LABEL)]
    for sub in _known_sub_accounts(*current):
        label = f"{names[sub]} ({sub})" if names.get(sub) else sub
        if sub not in present:
            label += " (no endpoints in the list)"
        choices.append((sub, label))
    return choices


@require_GET
@_unscoped_admin
def staff_list(request):
    """Staff with their role and scope, and the sub-accounts with their local names."""
    names = selectors.sub_account_names()
    people = []
    for user in get_user_model().objects.filter(is_active=True).order_by("username"):
        scope = selectors.scope_get(user=user)
        people.append({"user": user, "role": roles.role_name(user),
                       "scope": scope_label(scope, names), "everything": scope.everything,
                       "editable": not user.is_superuser})
    present = set(selectors.sub_account_list(scope=EVERYTHING))
    subs = [{"id": sub, "name": names.get(sub, ""), "present": sub in present,
             "form": SubAccountNameForm(initial={"sub_account": sub, "name": names.get(sub, "")},
                                        sub_accounts=[sub], prefix=f"n{i}")}
            for i, sub in enumerate(_known_sub_accounts())]
    return render(request, STAFF_TEMPLATE, {"people": people, "sub_accounts": subs})


@require_http_methods(["GET", "POST"])
@_unscoped_admin
def staff_scope_edit(request, user_id: int):
    """Change one person's scope (superusers always see everything)."""
    person = get_object_or_404(get_user_model(), pk=user_id, is_active=True)
    current = selectors.scope_get(user=person)
    current_list = sorted(current.sub_accounts or ())
    choices = _scope_choices(current_list)
    context = {"person": person, "role": roles.role_name(person),
               "superuser": person.is_superuser}
    if person.is_superuser:
        return render(request, SCOPE_TEMPLATE, context, status=200 if request.method == "GET"
                      else 409)
    if request.method == "GET":
        form = StaffScopeForm(choices=choices, initial={
            "mode": "all" if current.everything else "some", "sub_accounts": current_list})
        return render(request, SCOPE_TEMPLATE, {**context, "form": form})
    form = StaffScopeForm(request.POST, choices=choices)
    if not form.is_valid():
        return render(request, SCOPE_TEMPLATE, {**context, "form": form}, status=422)
    everything, sub_accounts = form.scope_values()
    changed = services.staff_scope_set(actor=request.user, user=person,
                                       all_endpoints=everything, sub_accounts=sub_accounts)
    names = selectors.sub_account_names()
    label = scope_label(selectors.scope_get(user=person), names)
    if changed:
        messages.success(request, f"{person.get_username()} now sees {label}. It applies from "
                                  "their next page.")
    else:
        messages.info(request, f"{person.get_username()}'s scope was already {label}.")
    return redirect("endpoints:staff")


@require_POST
@_unscoped_admin
def sub_account_name_edit(request):
    """Name (or unname) one sub-account; the name shows wherever its id does."""
    known = _known_sub_accounts()
    prefix = request.POST.get("prefix", "")
    form = SubAccountNameForm(request.POST, sub_accounts=known,
                              prefix=prefix if prefix.isalnum() else None)
    if not form.is_valid():
        for field, errors in form.errors.items():
            for error in errors:
                messages.error(request, f"Name not saved ({field}): {error}")
        return redirect("endpoints:staff")
    sub, name = form.cleaned_data["sub_account"], form.cleaned_data["name"]
    if services.sub_account_name_set(actor=request.user, sub_account=sub, name=name):
        messages.success(request, f"{sub} is now called {name}." if name
                         else f"{sub} no longer has a name.")
    else:
        messages.info(request, f"{sub}'s name is unchanged.")
    return redirect("endpoints:staff")
