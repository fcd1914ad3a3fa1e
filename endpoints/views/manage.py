"""One endpoint's page and every write: create, edit, reset password, application, delete.

Pages read the endpoint live from Vobiz (falling back to the cached copy with a notice) and
writes go through ``services``. A SIP password lives only in the request that set it: it is
rendered once, in a response marked ``Cache-Control: no-store``, and stored nowhere.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.cache import cache
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh

from .. import display, history, links, roles, selectors, services
from ..forms import (
    ApplicationForm,
    EndpointCreateForm,
    EndpointEditForm,
    PasswordResetForm,
)
from ..htmx import wants_fragment
from ..scopes import request_scope, sub_account_label
from ..vobiz import PERMISSION_LABELS, VobizError, VobizNotFound
from .common import form_add_vobiz_error

GONE_MESSAGE = "This endpoint no longer exists at Vobiz; it was removed from the list."
UNCERTAIN_CREATE = (
    "Vobiz did not confirm whether the endpoint was created. "
    "Check the list before trying again."
)
NONCE_SESSION_KEY = "endpoint_create_nonces"
NONCE_KEEP = 20  # open create forms per session that can still be submitted


# --- reading the endpoint -----------------------------------------------------------------


@dataclass
class Loaded:
    endpoint: object | None = None
    notice: str = ""  # set when showing the cached copy because Vobiz failed
    response: object | None = None  # an error page to return instead


def _problem_page(request, *, status: int, title: str, message: str, endpoint_id: str):
    if wants_fragment(request):
        # htmx does not swap error statuses: reload the whole page, which shows the problem.
        return HttpResponseClientRefresh()
    return render(
        request,
        "endpoints/detail.html",
        {"problem": {"title": title, "message": message}, "endpoint_id": endpoint_id},
        status=status,
    )


def _gone(request, endpoint_id: str):
    return _problem_page(request, status=404, title="Endpoint not found", message=GONE_MESSAGE,
                         endpoint_id=endpoint_id)


def _load(request, endpoint_id: str) -> Loaded:
    """The endpoint as Vobiz has it now, else the cached copy with a notice, else an error
    page (404 when Vobiz says it is gone, 503 when Vobiz fails and nothing is cached)."""
    try:
        return Loaded(endpoint=services.endpoint_fetch(endpoint_id=endpoint_id,
                                                                scope=request_scope(request)))
    except VobizNotFound:
        return Loaded(response=_gone(request, endpoint_id))
    except VobizError as exc:
        cached = _cached(request, endpoint_id)
        if cached is None:
            return Loaded(response=_problem_page(
                request, status=503, title="Vobiz is unreachable",
                message=f"Vobiz could not be reached and this endpoint is not in the local "
                        f"copy, so there is nothing to show. {exc.message}",
                endpoint_id=endpoint_id,
            ))
        when = date_format(localtime(cached.synced_at), "Y-m-d H:i:s T")
        return Loaded(
            endpoint=cached,
            notice=f"Showing the copy from {when}; Vobiz unreachable: {exc.message}",
        )


def _cached(request, endpoint_id: str):
    """The cached endpoint if the user's scope may see it (outside it: as if not there)."""
    return selectors.endpoint_get(endpoint_id=endpoint_id, scope=request_scope(request))


def _cached_or_gone(request, endpoint_id: str):
    endpoint = _cached(request, endpoint_id)
    return endpoint, (None if endpoint else _gone(request, endpoint_id))


# --- what the pages show -----------------------------------------------------------------


def _audit_events(request, endpoint_id: str):
    if not request.user.has_perm(roles.VIEW_AUDIT):
        return None
    return selectors.audit_list_for_endpoint(endpoint_id=endpoint_id,
                                            scope=request_scope(request), limit=50)


def _detail_context(request, endpoint, *, notice: str = "", reveal: dict | None = None) -> dict:
    return {
        "endpoint": endpoint,
        "endpoint_id": endpoint.endpoint_id,
        "notice": notice,
        "registration": display.registration(endpoint),
        "timeline": history.registration_timeline(endpoint),
        "sip": display.sip_settings(endpoint),
        "permissions": display.permission_rows(endpoint),
        "vobiz_sip_registered": display.vobiz_sip_registered(endpoint),
        "sub_account_label": sub_account_label(endpoint.sub_account,
                                               selectors.sub_account_names()),
        "events": _audit_events(request, endpoint.endpoint_id),
        "links": links.links_for_endpoint(endpoint_id=endpoint.endpoint_id),
        "reveal": reveal,
    }


class RevealedPassword(str):
    """The password for the one-time reveal: it renders as itself, but its repr() (what a
    DEBUG log of a template variable lookup prints of the whole context) is masked."""

    def __repr__(self):
        return "'********'"


def _no_store(response):
    patch_cache_control(response, no_store=True, no_cache=True, must_revalidate=True,
                        private=True, max_age=0)
    return response


# --- endpoint page ------------------------------------------------------------------------


@require_GET
@permission_required(roles.VIEW, raise_exception=True)
@vary_on_headers("HX-Request")
def endpoint_detail(request, endpoint_id):
    """The endpoint read live from Vobiz; htmx requests get just the endpoint card."""
    loaded = _load(request, endpoint_id)
    if loaded.response is not None:
        return loaded.response
    context = _detail_context(request, loaded.endpoint, notice=loaded.notice)
    fragment = "#endpoint" if wants_fragment(request) else ""
    return render(request, f"endpoints/detail.html{fragment}", context)


# --- create -------------------------------------------------------------------------------


def _issue_nonce(request) -> str:
    nonce = secrets.token_urlsafe(18)
    issued = [n for n in request.session.get(NONCE_SESSION_KEY, []) if isinstance(n, str)]
    request.session[NONCE_SESSION_KEY] = [*issued, nonce][-NONCE_KEEP:]
    return nonce


def _claim_nonce(request, nonce: str) -> bool:
    """Use up a create form's nonce; False if it was never issued or was already used."""
    issued = request.session.get(NONCE_SESSION_KEY, [])
    if not nonce or nonce not in issued:
        return False
    # The cache claim is atomic, so two racing submits of one form cannot both pass.
    if not cache.add(f"endpoint-create-nonce:{nonce}", 1, timeout=24 * 3600):
        return False
    request.session[NONCE_SESSION_KEY] = [n for n in issued if n != nonce]
    request.session.save()
    return True


def _create_page(request, form, *, nonce: str, status: int = 200):
    return render(request, "endpoints/create.html", {"form": form, "nonce": nonce}, status=status)


@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "POST"])
@permission_required(roles.CREATE, raise_exception=True)
@sensitive_variables()  # innermost: it hides the locals of the view's own frame
def endpoint_create(request):
    """Create form; on success the endpoint page with the one-time password reveal (no
    redirect, no-store). A replayed POST (refresh, double submit) creates nothing."""
    applications = selectors.application_list()
    scope = request_scope(request)
    where = {"sub_accounts": selectors.sub_account_choices_for_create(scope=scope),
             "sub_account_names": selectors.sub_account_names()}
    if not where["sub_accounts"]:
        return render(request, "endpoints/create.html", {"no_scope": True}, status=403)
    if request.method == "GET":
        form = EndpointCreateForm(applications=applications, **where,
                                  default_app_id=selectors.application_default_id_get())
        return _create_page(request, form, nonce=_issue_nonce(request))

    form = EndpointCreateForm(request.POST, applications=applications, **where)
    nonce = request.POST.get("nonce", "")
    if not form.is_valid():
        form.note_password_not_kept()
        if nonce not in request.session.get(NONCE_SESSION_KEY, []):
            nonce = _issue_nonce(request)
        return _create_page(request, form, nonce=nonce)
    if not _claim_nonce(request, nonce):
        return render(request, "endpoints/create.html", {"replayed": True}, status=409)

    try:
        outcome = services.endpoint_create(user=request.user, data=form.service_data(),
                                           scope=scope)
    except VobizError as exc:
        form_add_vobiz_error(form, exc, uncertain=UNCERTAIN_CREATE)
        form.note_password_not_kept()
        return _create_page(request, form, nonce=_issue_nonce(request))

    reveal = {
        "kind": "create",
        "password": RevealedPassword(form.cleaned_data["password"]),
        "typed_username": outcome.typed_username,
        "username_rewritten": outcome.username_rewritten,
        "not_kept": outcome.not_kept,
    }
    context = _detail_context(request, outcome.endpoint, reveal=reveal, notice=outcome.unverified)
    return _no_store(render(request, "endpoints/detail.html", context))


# --- edit ---------------------------------------------------------------------------------


def _edit_response(request, endpoint, form, *, notice: str = "", conflict=None, status=200):
    context = {
        "endpoint": endpoint,
        "form": form,
        "notice": notice,
        "conflict": conflict,
        "sip": display.sip_settings(endpoint),
    }
    if wants_fragment(request):
        # 422 so htmx swaps the form with its errors in place.
        return render(request, "endpoints/edit.html#form", context,
                      status=422 if status == 200 and (form.errors or conflict) else status)
    return render(request, "endpoints/edit.html", context, status=status)


@require_http_methods(["GET", "POST"])
@permission_required(roles.EDIT, raise_exception=True)
@vary_on_headers("HX-Request")
def endpoint_edit(request, endpoint_id):
    """Alias and editable permissions; PRG to the endpoint page on success."""
    if request.method == "GET":
        loaded = _load(request, endpoint_id)
        if loaded.response is not None:
            return loaded.response
        endpoint = loaded.endpoint
        form = EndpointEditForm(endpoint=endpoint, domain=display.sip_domain())
        return _edit_response(request, endpoint, form, notice=loaded.notice)

    endpoint, gone = _cached_or_gone(request, endpoint_id)
    if gone:
        return gone
    domain = display.sip_domain()
    form = EndpointEditForm(request.POST, endpoint=endpoint, domain=domain)
    if not form.is_valid():
        return _edit_response(request, endpoint, form)
    changes = form.changes()
    if not changes:
        messages.info(request, "Nothing to save: no field was changed.")
        return _after_write(request, endpoint_id)
    try:
        services.endpoint_update(user=request.user, endpoint_id=endpoint_id, changes=changes,
                                 seen=form.seen(), scope=request_scope(request))
    except VobizNotFound:
        return _gone(request, endpoint_id)
    except services.EditConflict as exc:
        current = _cached(request, endpoint_id) or endpoint
        fresh = EndpointEditForm(endpoint=current, domain=display.sip_domain())
        return _edit_response(request, current, fresh,
                              conflict={"message": exc.message,
                                        "lines": display.conflict_lines(exc.changes, changes)})
    except VobizError as exc:
        current = endpoint
        data = request.POST.copy()
        if exc.uncertain:
            # The service re-read the endpoint: start the next attempt from what Vobiz has.
            current = _cached(request, endpoint_id)
            if current is None:
                return _gone(request, endpoint_id)
            data["seen_alias"] = current.alias
            for name in ("allow_voice", "allow_message", "allow_video"):
                data[f"seen_{name}"] = "true" if getattr(current, name) else "false"
        form = EndpointEditForm(data, endpoint=current, domain=display.sip_domain())
        form.is_valid()
        form_add_vobiz_error(form, exc, uncertain=(
            f"{exc.message} The endpoint was re-read from Vobiz: check the values on its "
            "page before trying again."))
        return _edit_response(request, current, form)
    names = ", ".join("alias" if n == "alias" else PERMISSION_LABELS[n] for n in changes)
    messages.success(request, f"Saved {endpoint.username}: changed {names}.")
    return _after_write(request, endpoint_id)


def _after_write(request, endpoint_id):
    url = reverse("endpoints:detail", args=[endpoint_id])
    if wants_fragment(request):
        return HttpResponseClientRedirect(url)
    return redirect(url)


# --- reset password -----------------------------------------------------------------------


@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "POST"])
@permission_required(roles.RESET_PASSWORD, raise_exception=True)
@sensitive_variables()  # innermost: it hides the locals of the view's own frame
def endpoint_password(request, endpoint_id):
    """Says which devices will be signed out; on success the one-time reveal (no-store)."""
    if request.method == "GET":
        loaded = _load(request, endpoint_id)
        if loaded.response is not None:
            return loaded.response
        return _password_page(request, loaded.endpoint, PasswordResetForm(), notice=loaded.notice)

    endpoint, gone = _cached_or_gone(request, endpoint_id)
    if gone:
        return gone
    form = PasswordResetForm(request.POST)
    if not form.is_valid():
        form.note_password_not_kept()
        return _password_page(request, endpoint, form)
    try:
        outcome = services.endpoint_password_reset(
            user=request.user, endpoint_id=endpoint_id, password=form.cleaned_data["password"],
            scope=request_scope(request),
        )
    except VobizNotFound:
        return _gone(request, endpoint_id)
    except VobizError as exc:
        form_add_vobiz_error(form, exc, uncertain=(
            f"{exc.message} The password may or may not have been changed; the endpoint was "
            "re-read. If devices cannot register, reset the password again."))
        form.note_password_not_kept()
        endpoint = _cached(request, endpoint_id) or endpoint
        return _password_page(request, endpoint, form)

    signed_out = [display.device_label(r.user_agent, r.received, r.contact)
                  for r in outcome.signed_out]
    reveal = {"kind": "password", "password": RevealedPassword(form.cleaned_data["password"]),
              "signed_out": signed_out}
    context = _detail_context(request, outcome.endpoint, reveal=reveal)
    return _no_store(render(request, "endpoints/detail.html", context))


def _password_page(request, endpoint, form, *, notice: str = ""):
    return render(request, "endpoints/password.html", {
        "endpoint": endpoint,
        "form": form,
        "notice": notice,
        "devices": display.registered_devices(endpoint),
    })


# --- application --------------------------------------------------------------------------


def _application_page(request, endpoint, form, *, notice: str = ""):
    return render(request, "endpoints/application.html", {
        "endpoint": endpoint,
        "form": form,
        "notice": notice,
    })


@require_http_methods(["GET", "POST"])
@permission_required(roles.MANAGE_APPLICATION, raise_exception=True)
def endpoint_application(request, endpoint_id):
    """Attach, change or detach the call-routing application; verified by a re-read."""
    applications = selectors.application_list()
    if request.method == "GET":
        loaded = _load(request, endpoint_id)
        if loaded.response is not None:
            return loaded.response
        endpoint = loaded.endpoint
        form = ApplicationForm(applications=applications, current=endpoint.app_id)
        return _application_page(request, endpoint, form, notice=loaded.notice)

    endpoint, gone = _cached_or_gone(request, endpoint_id)
    if gone:
        return gone
    form = ApplicationForm(request.POST, applications=applications, current=endpoint.app_id)
    if not form.is_valid():
        return _application_page(request, endpoint, form)
    app_id = form.target_app_id()
    before = endpoint.app_id
    try:
        updated = services.endpoint_application_set(
            user=request.user, endpoint_id=endpoint_id, app_id=app_id, scope=request_scope(request)
        )
    except VobizNotFound:
        return _gone(request, endpoint_id)
    except services.WriteNotApplied as exc:
        messages.warning(request, f"Vobiz did not take the change. {exc.message}")
        current = _cached(request, endpoint_id) or endpoint
        return _application_page(request, current, form)
    except VobizError as exc:
        form_add_vobiz_error(form, exc, uncertain=(
            f"{exc.message} The application may or may not have been changed; the endpoint "
            "was re-read."))
        current = _cached(request, endpoint_id) or endpoint
        return _application_page(request, current, form)

    label = display.application_label(updated)
    if not app_id:
        text = (f"Detached the application from {updated.username}." if before
                else f"{updated.username} has no application.")
    elif before == app_id:
        text = f"{updated.username} was already linked to {label}."
    elif before:
        text = f"Changed the application of {updated.username} to {label}."
    else:
        text = f"Attached {label} to {updated.username}."
    messages.success(request, text)
    return redirect("endpoints:detail", endpoint_id=endpoint_id)


# --- delete -------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@permission_required(roles.DELETE, raise_exception=True)
def endpoint_delete(request, endpoint_id):
    """Confirmation page naming the endpoint and its devices; POST deletes (404 = gone)."""
    if request.method == "GET":
        loaded = _load(request, endpoint_id)
        if loaded.response is not None:
            return loaded.response
        return _delete_page(request, loaded.endpoint, notice=loaded.notice)

    endpoint = _cached(request, endpoint_id)
    label = endpoint.username if endpoint else endpoint_id
    try:
        services.endpoint_delete(user=request.user, endpoint_id=endpoint_id,
                                 scope=request_scope(request))
    except VobizError as exc:
        current = _cached(request, endpoint_id)
        if current is None:
            return _gone(request, endpoint_id)
        error = exc.message
        if exc.uncertain:
            error += " The endpoint was re-read: it is still listed, so check before retrying."
        return _delete_page(request, current, error=error)
    messages.success(request, f"Deleted endpoint {label}.")
    return redirect("endpoints:list")


def _delete_page(request, endpoint, *, notice: str = "", error: str = ""):
    return render(request, "endpoints/delete.html", {
        "endpoint": endpoint,
        "notice": notice,
        "error": error,
        "devices": display.registered_devices(endpoint),
    })
