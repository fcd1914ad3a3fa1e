"""Small pieces every view module uses: redirect targets, page numbers, and Vobiz errors on
forms."""

from __future__ import annotations

from django.utils.http import url_has_allowed_host_and_scheme

from ..vobiz import VobizError, VobizRequestError


def safe_next(request, fallback: str) -> str:
    """The ``next`` parameter when it is a path on this site, else ``fallback``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    # Only a path: redirect() would take any other bare word for a URL name (a 500).
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def page_number(value) -> int:
    """A 1-based page number from the query string: anything but ASCII digits is page 1, and
    a huge number becomes a big one that the caller clamps to the last page."""
    value = (value or "").strip()
    if not (value.isascii() and value.isdigit()):
        return 1
    return max(1, int(value[:12]))


def pager(page: int, last_page: int) -> dict:
    return {
        "page": page,
        "last": last_page,
        "previous": page - 1 if page > 1 else None,
        "next": page + 1 if page < last_page else None,
        "has_other_pages": last_page > 1,
    }


def form_add_vobiz_error(form, exc: VobizError, *, uncertain: str, failed_prefix: str = "",
                         ) -> None:
    """Put what Vobiz answered onto ``form``: for a write that may or may not have happened,
    ``uncertain`` (a whole sentence for the top of the form); for a refusal, each message
    next to the field it names (the top of the form for a field the form does not edit);
    anything else at the top, after ``failed_prefix``. The user's input stays in the form."""
    if exc.uncertain:
        form.add_error(None, uncertain)
        return
    placed = False
    if isinstance(exc, VobizRequestError):
        for name, message in exc.field_errors.items():
            if name in form.fields and not form.fields[name].disabled:
                form.add_error(name, message)
                placed = True
            else:
                form.add_error(None, f"{name}: {message}")
    if not placed:
        form.add_error(None, failed_prefix + exc.message)

