"""The GET filter forms of the endpoint list and the audit log.

Filter forms never raise on bad input: ``cleaned_filters()`` keeps the valid fields and drops
the rest, and the bound form carries the errors so the page can show them next to the field.
"""

from __future__ import annotations

from django import forms

from . import selectors
from .models import AuditEvent
from .scopes import MAIN_ACCOUNT_LABEL, sub_account_label

PAGE_SIZES = (20, 50, 100)
DEFAULT_PAGE_SIZE = PAGE_SIZES[0]
SEARCH_MAX = 255

MATCH_CHOICES = [("contains", "contains"), ("exact", "is exactly"),
                 ("startswith", "starts with")]
ALIAS_MATCH_CHOICES = [("contains", "contains"), ("exact", "is exactly")]
STATUS_CHOICES = [
    ("", "Any"),
    (selectors.STATUS_REGISTERED, "Registered"),
    (selectors.STATUS_NOT_REGISTERED, "Not registered"),
    (selectors.STATUS_EXPIRING, "Expiring within 5 min"),
]
SEEN_CHOICES = [
    ("", "Any"),
    ("1h", "1 hour"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    (selectors.NEVER_SEEN, "Never seen"),
]
DROPPED_CHOICES = [("", "Any time or never"), ("1h", "In the last hour")]
FILTER_DEFAULTS = {"q": "", "match": "contains", "alias_match": "contains", "app": "",
                   "sub": "", "status": "", "seen": "", "dropped": ""}


class _GetForm(forms.Form):
    """A bound GET form that degrades field by field instead of all or nothing."""

    defaults: dict = {}

    def cleaned_filters(self) -> dict:
        """Valid values, with each invalid or missing field at its default."""
        self.is_valid()
        values = dict(self.defaults)
        for name in self.defaults:
            if name not in self.errors and self.cleaned_data.get(name) not in (None, ""):
                values[name] = self.cleaned_data[name]
        return values

    def active(self) -> bool:
        """True when any filter differs from its default (offers "Clear filters")."""
        self.is_valid()
        return self.cleaned_filters() != self.defaults or any(
            name in self.errors for name in self.defaults
        )


class EndpointFilterForm(_GetForm):
    """The list's filter bar. Choices for application and sub-account come from the cache."""

    defaults = FILTER_DEFAULTS

    q = forms.CharField(label="Search", required=False, max_length=SEARCH_MAX, strip=True,
                        help_text="Username or alias.")
    match = forms.ChoiceField(label="Username match", required=False, choices=MATCH_CHOICES)
    alias_match = forms.ChoiceField(label="Alias match", required=False,
                                    choices=ALIAS_MATCH_CHOICES)
    app = forms.ChoiceField(label="Application", required=False)
    sub = forms.ChoiceField(label="Sub-account", required=False)
    status = forms.ChoiceField(label="Registration", required=False, choices=STATUS_CHOICES)
    seen = forms.ChoiceField(label="Not seen for", required=False, choices=SEEN_CHOICES,
                             help_text="Offline and not seen registered for this long.")
    dropped = forms.ChoiceField(label="Dropped", required=False, choices=DROPPED_CHOICES)
    per_page = forms.TypedChoiceField(label="Per page", required=False, coerce=int,
                                      choices=[(n, str(n)) for n in PAGE_SIZES])

    def __init__(self, *args, applications=(), sub_accounts=(), main_account: bool = True,
                 sub_account_names=None, **kwargs):
        super().__init__(*args, **kwargs)
        names = sub_account_names or {}
        self.fields["app"].choices = [
            ("", "Any"),
            (selectors.APP_NONE, "No application"),
            *[(a.app_id, a.name or a.app_id) for a in applications],
        ]
        # Only what the user's scope may see: a scope without the main account offers no
        # "Main account", and a scoped user's other sub-accounts are never named here.
        self.fields["sub"].choices = [
            ("", "Any"),
            *([(selectors.SUB_MAIN, MAIN_ACCOUNT_LABEL)] if main_account else []),
            *[(s, sub_account_label(s, names)) for s in sub_accounts],
        ]

    def page_size(self) -> int | None:
        """The page size asked for in the URL, or None if absent or not one of PAGE_SIZES."""
        self.is_valid()
        if "per_page" in self.errors:
            return None
        return self.cleaned_data.get("per_page") or None


AUDIT_FILTER_DEFAULTS = {"user": "", "action": "", "outcome": "", "endpoint": ""}


class AuditFilterForm(_GetForm):
    defaults = AUDIT_FILTER_DEFAULTS

    user = forms.CharField(label="User", required=False, max_length=150)
    action = forms.ChoiceField(label="Action", required=False)
    outcome = forms.ChoiceField(label="Outcome", required=False,
                                choices=[("", "Any"), *AuditEvent.Outcome.choices])
    endpoint = forms.CharField(label="Endpoint", required=False, max_length=255,
                               help_text="Username or id contains.")

    def __init__(self, *args, actions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [
            ("", "Any"), *[(a, a.replace("_", " ").capitalize()) for a in actions]
        ]
