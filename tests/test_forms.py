"""The write forms: documented rules, defaults, and locked fields that cannot be changed."""

from types import SimpleNamespace

import pytest

from endpoints.forms import (
    PASSWORD_NOT_KEPT,
    ApplicationForm,
    EndpointCreateForm,
    EndpointEditForm,
    PasswordResetForm,
)
from endpoints.vobiz import LOCKED_PERMISSIONS, PERMISSION_DEFAULTS

APPS = [SimpleNamespace(app_id="11111111111111111", name="Support IVR"),
        SimpleNamespace(app_id="22222222222222222", name="Sales Queue")]


def _create(**overrides):
    data = {"username": "frontdesk1", "password": "Secret-pass-1", "alias": "Front-desk_1",
            "application": "", "allow_voice": "on", "allow_message": "on"}
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}
    return EndpointCreateForm(data, applications=APPS)


def _endpoint(**overrides):
    values = {"endpoint_id": "123456789012345", "username": "jane1234", "alias": "Jane",
              "sip_uri": "sip:jane1234@registrar.vobiz.ai", **PERMISSION_DEFAULTS}
    values.update(overrides)
    return SimpleNamespace(**values)


def _edit_data(endpoint, **overrides):
    data = {"alias": endpoint.alias, "seen_alias": endpoint.alias}
    for name in ("allow_voice", "allow_message", "allow_video"):
        if getattr(endpoint, name):
            data[name] = "on"
        data[f"seen_{name}"] = "True" if getattr(endpoint, name) else "False"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- create ---------------------------------------------------------------------------------


def test_create_form_accepts_valid_input_and_shapes_service_data():
    form = _create(application=APPS[1].app_id)
    assert form.is_valid(), form.errors
    data = form.service_data()
    assert data["username"] == "frontdesk1"
    assert data["alias"] == "Front-desk_1"
    assert data["application"] == APPS[1].app_id
    assert data["allow_voice"] is True and data["allow_video"] is False
    assert data["allow_phones"] is False  # unchecked box posts nothing: off


@pytest.mark.parametrize("username", ["front desk", "front_desk", "jane-1", "jöhn", "a@b", ""])
def test_create_form_rejects_usernames_that_are_not_letters_and_digits(username):
    form = _create(username=username)
    assert not form.is_valid()
    assert "username" in form.errors


@pytest.mark.parametrize("alias", ["John's phone", "desk phone", "a/b", "<b>"])
def test_create_form_rejects_alias_with_other_characters(alias):
    form = _create(alias=alias)
    assert not form.is_valid()
    assert "alias" in form.errors
    assert "letters, digits, hyphens" in form.errors["alias"][0]


def test_create_form_alias_is_optional():
    assert _create(alias="").is_valid()


@pytest.mark.parametrize("password", ["", "short", "1234567"])
def test_create_form_rejects_passwords_under_eight_characters(password):
    form = _create(password=password)
    assert not form.is_valid()
    assert "password" in form.errors


def test_create_form_keeps_spaces_in_passwords_exactly():
    form = _create(password="  eight ch  ")
    assert form.is_valid()
    assert form.cleaned_data["password"] == "  eight ch  "


def test_create_form_rejects_an_unknown_application():
    form = _create(application="99999999999999999")
    assert not form.is_valid()
    assert "application" in form.errors


def test_create_form_defaults_match_the_documented_permission_defaults():
    form = EndpointCreateForm(applications=APPS)
    for name, default in PERMISSION_DEFAULTS.items():
        assert form[name].value() is default, name
    assert form["application"].value() == ""


def test_create_form_preselects_the_default_endpoint_app():
    form = EndpointCreateForm(applications=APPS, default_app_id=APPS[0].app_id)
    assert form["application"].value() == APPS[0].app_id
    assert form.fields["application"].choices[0] == ("", "None")


def test_create_form_renders_the_rules_as_browser_attributes():
    html = str(EndpointCreateForm(applications=APPS)["username"]) + str(
        EndpointCreateForm(applications=APPS)["password"])
    assert 'pattern="[A-Za-z0-9]+"' in html
    assert 'maxlength="64"' in html
    assert 'minlength="8"' in html
    assert "required" in html


def test_create_form_never_renders_the_password_back():
    form = _create(username="bad name", password="Secret-pass-1")
    assert not form.is_valid()
    form.note_password_not_kept()
    assert "Secret-pass-1" not in str(form["password"])
    assert form.errors["password"] == [PASSWORD_NOT_KEPT]


def test_password_not_kept_note_is_not_added_to_a_password_error():
    form = _create(password="short")
    form.is_valid()
    form.note_password_not_kept()
    assert PASSWORD_NOT_KEPT not in form.errors["password"]


# --- edit -----------------------------------------------------------------------------------


def test_edit_form_sends_only_changed_fields():
    ep = _endpoint()
    form = EndpointEditForm(_edit_data(ep, allow_video="on"), endpoint=ep)
    assert form.is_valid(), form.errors
    assert form.changes() == {"allow_video": True}
    assert form.seen() == {"alias": "Jane", "allow_voice": True, "allow_message": True,
                           "allow_video": False}


def test_edit_form_with_nothing_changed_has_no_changes():
    ep = _endpoint()
    form = EndpointEditForm(_edit_data(ep), endpoint=ep)
    assert form.is_valid()
    assert form.changes() == {}


def test_edit_form_validates_a_changed_alias():
    ep = _endpoint()
    form = EndpointEditForm(_edit_data(ep, alias="Jane's phone"), endpoint=ep)
    assert not form.is_valid()
    assert "alias" in form.errors


def test_edit_form_leaves_an_unchanged_legacy_alias_alone():
    ep = _endpoint(alias="John's Desktop Phone")
    form = EndpointEditForm(_edit_data(ep, allow_video="on"), endpoint=ep)
    assert form.is_valid(), form.errors
    assert form.changes() == {"allow_video": True}
    assert 'value="John&#x27;s Desktop Phone"' in str(form["alias"])
    assert " pattern=" not in str(form["alias"])  # the browser must not block saving


def test_edit_form_locked_fields_are_disabled_and_posted_values_ignored():
    ep = _endpoint()
    forged = _edit_data(ep, username="hijack", endpoint_id="1", domain="evil.example",
                        allow_phones="", allow_apps="", allow_other_domains="on",
                        allow_same_domain="")
    form = EndpointEditForm(forged, endpoint=ep)
    assert form.is_valid()
    for name in ("username", "endpoint_id", "domain", *LOCKED_PERMISSIONS):
        assert form.fields[name].disabled, name
        assert "disabled" in str(form[name])
    assert form.cleaned_data["username"] == "jane1234"
    assert form.cleaned_data["allow_phones"] is True
    assert form.cleaned_data["allow_other_domains"] is False
    assert form.changes() == {}


def test_edit_form_renders_locked_values_from_the_endpoint():
    ep = _endpoint(allow_phones=False)
    form = EndpointEditForm(endpoint=ep, domain="registrar.vobiz.ai")
    assert form["domain"].value() == "registrar.vobiz.ai"
    assert form["allow_phones"].value() is False
    assert form["seen_alias"].value() == "Jane"


# --- password and application ---------------------------------------------------------------


def test_password_reset_form_requires_eight_characters():
    assert not PasswordResetForm({"password": "1234567"}).is_valid()
    assert PasswordResetForm({"password": "12345678"}).is_valid()
    assert PasswordResetForm().fields["password"].label == "New password"


def test_application_form_attach_detach_and_unknown():
    form = ApplicationForm({"application": APPS[0].app_id, "action": "attach"}, applications=APPS)
    assert form.is_valid() and form.target_app_id() == APPS[0].app_id
    form = ApplicationForm({"application": APPS[0].app_id, "action": "detach"}, applications=APPS)
    assert form.is_valid() and form.target_app_id() == ""
    form = ApplicationForm({"application": "", "action": "attach"}, applications=APPS)
    assert form.is_valid() and form.target_app_id() == ""
    assert not ApplicationForm({"application": "123", "action": "attach"},
                               applications=APPS).is_valid()


def test_application_form_keeps_an_unknown_current_app_as_an_option():
    form = ApplicationForm(applications=APPS, current="33333333333333333")
    values = [value for value, _ in form.fields["application"].choices]
    assert values == ["", APPS[0].app_id, APPS[1].app_id, "33333333333333333"]
    assert form.fields["application"].choices[0][1] == "No application (detach)"
