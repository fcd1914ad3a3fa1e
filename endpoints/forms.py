"""Forms for the endpoint pages: they shape and validate what staff type, nothing more.

The documented rules live in ``validators``; the browser gets the same rules as HTML
attributes (required, pattern, minlength, maxlength) but the server is the authority.
Locked fields are ``disabled`` so Django ignores whatever is posted for them.
"""

from __future__ import annotations

from django import forms

from .scopes import sub_account_label
from .validators import (
    ALIAS_HINT,
    ALIAS_MAX,
    PASSWORD_HINT,
    PASSWORD_MAX,
    PASSWORD_MIN,
    USERNAME_HINT,
    USERNAME_MAX,
    validate_alias,
    validate_password,
    validate_username,
)
from .vobiz import (
    EDITABLE_PERMISSIONS,
    LOCKED_PERMISSIONS,
    PERMISSION_DEFAULTS,
    PERMISSION_LABELS,
    PERMISSIONS,
)

# The HTML pattern attribute is matched against the whole value; written to be valid with
# the "v" regex flag Chromium uses for patterns (hence the escaped hyphen).
USERNAME_PATTERN = "[A-Za-z0-9]+"
ALIAS_PATTERN = r"[A-Za-z0-9_\-]+"
PASSWORD_NOT_KEPT = "Enter the password again: it is not kept when the form has a problem."


def _password_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        help_text=PASSWORD_HINT,
        strip=False,
        max_length=PASSWORD_MAX,
        validators=[validate_password],
        widget=forms.PasswordInput(
            render_value=False,
            attrs={
                "minlength": PASSWORD_MIN,
                "autocomplete": "new-password",
                "spellcheck": "false",
                "autocapitalize": "off",
                "class": "password-input",
            },
        ),
    )


def application_options(applications, *, empty_label: str, current: str = "") -> list:
    """(value, label) pairs for an application select; ``current`` is kept as an option even
    when the cache does not know it, so the form never silently changes a link."""
    choices = [("", empty_label)]
    known = set()
    for app in applications:
        known.add(app.app_id)
        choices.append((app.app_id, f"{app.name} ({app.app_id})" if app.name else app.app_id))
    if current and current not in known:
        choices.append((current, f"Application {current} (not in the local copy)"))
    return choices


class PasswordNotKeptMixin:
    """After any error the password box is empty (never re-rendered); say so on the field."""

    password_field = "password"

    def note_password_not_kept(self) -> None:
        name = self.password_field
        if self.is_bound and self.data.get(name) and name not in self.errors:
            self.add_error(name, PASSWORD_NOT_KEPT)


class EndpointCreateForm(PasswordNotKeptMixin, forms.Form):
    """Everything a new endpoint needs. ``applications`` are the synced Application rows;
    ``default_app_id`` preselects the account's default endpoint application."""

    username = forms.CharField(
        label="Username",
        help_text=USERNAME_HINT,
        max_length=USERNAME_MAX,
        validators=[validate_username],
        widget=forms.TextInput(
            attrs={
                "pattern": USERNAME_PATTERN,
                "autocomplete": "off",
                "spellcheck": "false",
                "autocapitalize": "off",
                "title": USERNAME_HINT,
                "class": "mono",
            }
        ),
    )
    password = _password_field("Password")
    alias = forms.CharField(
        label="Alias",
        help_text=ALIAS_HINT + " Optional.",
        required=False,
        max_length=ALIAS_MAX,
        validators=[validate_alias],
        widget=forms.TextInput(
            attrs={"pattern": ALIAS_PATTERN, "autocomplete": "off", "title": ALIAS_HINT}
        ),
    )
    application = forms.ChoiceField(
        label="Application",
        required=False,
        help_text="Routes the endpoint's calls. Without one, Vobiz uses the account's default "
        "endpoint application, if one is set.",
    )

    sub_account = forms.ChoiceField(
        label="Sub-account",
        required=False,
        help_text="Who the endpoint belongs to: the main account, or one of its sub-accounts.",
    )

    def __init__(self, *args, applications=(), default_app_id: str = "", sub_accounts=("",),
                 sub_account_names=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["application"].choices = application_options(applications, empty_label="None")
        self.fields["application"].initial = default_app_id or ""
        # ``sub_accounts``: where the user may create ("" is the main account). A value
        # outside them is refused next to the field ("Select a valid choice").
        names = sub_account_names or {}
        self.fields["sub_account"].choices = [(sub, sub_account_label(sub, names))
                                              for sub in sub_accounts]
        self.fields["sub_account"].initial = sub_accounts[0] if sub_accounts else ""
        for name in PERMISSIONS:
            self.fields[name] = forms.BooleanField(
                label=PERMISSION_LABELS[name], required=False, initial=PERMISSION_DEFAULTS[name]
            )

    def permission_fields(self):
        return [self[name] for name in PERMISSIONS]

    def service_data(self) -> dict:
        """The cleaned values in the shape services.endpoint_create expects."""
        data = self.cleaned_data
        out = {
            "username": data["username"],
            "password": data["password"],
            "alias": data.get("alias") or "",
            "application": data.get("application") or "",
            "sub_account": data.get("sub_account") or "",
        }
        out.update({name: bool(data.get(name)) for name in PERMISSIONS})
        return out


NOT_REPORTED = "Not reported by Vobiz"


class UnknownPermissionSelect(forms.NullBooleanSelect):
    """For a permission Vobiz did not report: leave it unknown (never sent), or set it."""

    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.choices = [("unknown", f"{NOT_REPORTED}: leave as it is"), ("true", "Yes"),
                        ("false", "No")]


class EndpointEditForm(forms.Form):
    """Alias and the three editable permissions. ``seen_*`` hidden fields carry the values the
    form started from, so the service can detect that Vobiz changed meanwhile and only the
    fields the user changed are sent. Locked values are shown disabled and never read.

    A permission Vobiz did not report is unknown (None): an editable one is a choice that
    starts at "leave as it is", a locked one says "Not reported by Vobiz"."""

    alias = forms.CharField(
        label="Alias",
        help_text=ALIAS_HINT,
        required=False,
        strip=False,
        # No max_length here: an unchanged legacy value is never re-checked (see clean).
        widget=forms.TextInput(attrs={"autocomplete": "off", "maxlength": ALIAS_MAX}),
    )
    seen_alias = forms.CharField(required=False, strip=False, widget=forms.HiddenInput)

    username = forms.CharField(label="Username", required=False, disabled=True)
    endpoint_id = forms.CharField(label="Endpoint ID", required=False, disabled=True)
    domain = forms.CharField(label="SIP domain", required=False, disabled=True)

    def __init__(self, *args, endpoint=None, domain: str = "", **kwargs):
        initial = dict(kwargs.pop("initial", None) or {})
        if endpoint is not None:
            initial.setdefault("alias", endpoint.alias)
            initial.setdefault("seen_alias", endpoint.alias)
            initial.setdefault("username", endpoint.username)
            initial.setdefault("endpoint_id", endpoint.endpoint_id)
            initial.setdefault("domain", domain)
            for name in PERMISSIONS:
                initial.setdefault(name, getattr(endpoint, name))
            for name in EDITABLE_PERMISSIONS:
                initial.setdefault(f"seen_{name}", getattr(endpoint, name))
        super().__init__(*args, initial=initial, **kwargs)
        unknown = {name for name in PERMISSIONS
                   if endpoint is not None and getattr(endpoint, name) is None}
        for name in EDITABLE_PERMISSIONS:
            label = PERMISSION_LABELS[name]
            self.fields[name] = (
                forms.NullBooleanField(label=label, required=False,
                                       widget=UnknownPermissionSelect)
                if name in unknown else forms.BooleanField(label=label, required=False))
            # "True", "False" or "" (not reported): what the form started from.
            self.fields[f"seen_{name}"] = forms.NullBooleanField(
                required=False, widget=forms.HiddenInput
            )
        for name in LOCKED_PERMISSIONS:
            label = PERMISSION_LABELS[name]
            self.fields[name] = (
                forms.CharField(label=label, required=False, disabled=True,
                                initial=NOT_REPORTED)
                if name in unknown else
                forms.BooleanField(label=label, required=False, disabled=True))
            if name in unknown:
                self.initial[name] = NOT_REPORTED
        # A legacy alias that breaks the rules shows as it is; the browser only checks the
        # pattern once the user edits it (endpoint.js adds the attribute on input).
        self.fields["alias"].widget.attrs["data-pattern"] = ALIAS_PATTERN
        self.fields["alias"].widget.attrs["title"] = ALIAS_HINT

    def clean(self):
        cleaned = super().clean()
        if "alias" in cleaned and cleaned["alias"] != cleaned.get("seen_alias", ""):
            alias = cleaned["alias"]
            if len(alias) > ALIAS_MAX:
                self.add_error(
                    "alias", f"Enter an alias of at most {ALIAS_MAX} characters."
                )
            else:
                try:
                    validate_alias(alias)
                except forms.ValidationError as exc:
                    self.add_error("alias", exc)
        return cleaned

    def editable_fields(self):
        return [self["alias"], *(self[name] for name in EDITABLE_PERMISSIONS)]

    def locked_fields(self):
        return [self[name] for name in ("username", "endpoint_id", "domain", *LOCKED_PERMISSIONS)]

    def seen(self) -> dict:
        """The values the form started from (None: a permission Vobiz did not report)."""
        return {
            "alias": self.cleaned_data.get("seen_alias", ""),
            **{name: self.cleaned_data.get(f"seen_{name}") for name in EDITABLE_PERMISSIONS},
        }

    def changes(self) -> dict:
        """Only the editable fields whose value differs from what the form started with; an
        unknown permission left unknown is not a change."""
        seen = self.seen()
        current = {"alias": self.cleaned_data.get("alias", "")}
        for name in EDITABLE_PERMISSIONS:
            value = self.cleaned_data.get(name)
            if isinstance(self.fields[name], forms.NullBooleanField):
                if value is None:
                    continue
            else:
                value = bool(value)
            current[name] = value
        return {name: value for name, value in current.items() if value != seen[name]}


class PasswordResetForm(PasswordNotKeptMixin, forms.Form):
    password = _password_field("New password")


class ApplicationForm(forms.Form):
    """Pick the application to attach; "" (No application) detaches. The submit button named
    ``action`` with value ``detach`` detaches whatever is selected."""

    application = forms.ChoiceField(
        label="Application",
        required=False,
        help_text="Decides what happens to the endpoint's calls. Vobiz is asked for the change "
        "and the endpoint is read back to check it took.",
    )
    action = forms.ChoiceField(
        required=False, choices=[("attach", "attach"), ("detach", "detach")]
    )

    def __init__(self, *args, applications=(), current: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["application"].choices = application_options(
            applications, empty_label="No application (detach)", current=current
        )
        self.fields["application"].initial = current

    def target_app_id(self) -> str:
        if self.cleaned_data.get("action") == "detach":
            return ""
        return self.cleaned_data.get("application") or ""


class AliasForm(forms.Form):
    """Inline alias edit. ``seen_alias`` is the alias the form started from, so a change made
    at Vobiz meanwhile is reported instead of silently overwritten."""

    alias = forms.CharField(
        label="Alias",
        required=False,
        max_length=ALIAS_MAX,
        validators=[validate_alias],
        help_text=ALIAS_HINT,
    )
    seen_alias = forms.CharField(required=False, widget=forms.HiddenInput, strip=False)

    def clean(self):
        # The row shows only the alias and form-wide errors: say when the hidden field is bad.
        if "seen_alias" in self.errors:
            self.add_error(None, "This form is out of date. Reload the page and try again.")
        return super().clean()


class StaffScopeForm(forms.Form):
    """A staff member's scope: every endpoint, or the endpoints of chosen sub-accounts (the
    main account being one choice). Choosing none means nothing, never everything."""

    mode = forms.ChoiceField(
        label="Can see and change",
        widget=forms.RadioSelect,
        choices=[("all", "All endpoints"), ("some", "Only the sub-accounts ticked below")],
    )
    sub_accounts = forms.MultipleChoiceField(
        label="Sub-accounts",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Ticking none leaves the person with no endpoints at all.",
    )

    def __init__(self, *args, choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sub_accounts"].choices = list(choices)

    def scope_values(self) -> tuple[bool, list[str]]:
        """(all endpoints?, sub-account ids) for services.staff_scope_set."""
        everything = self.cleaned_data["mode"] == "all"
        return everything, [] if everything else list(self.cleaned_data["sub_accounts"])


class SubAccountNameForm(forms.Form):
    """A local display name for one sub-account ("" removes it)."""

    sub_account = forms.ChoiceField(widget=forms.HiddenInput)
    name = forms.CharField(label="Name", required=False, max_length=100, strip=True)

    def __init__(self, *args, sub_accounts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sub_account"].choices = [(s, s) for s in sub_accounts]
