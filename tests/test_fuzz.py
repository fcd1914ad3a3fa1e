"""Property-based tests: arbitrary text, unicode, NUL, huge values, wrong types (repeated
keys) and missing values thrown at every form and query parameter.

Whatever comes in, the dashboard never answers 500: it shows a clear field error (the error
summary and an ``error-message`` next to the field) or falls back to a sane default (the
whole list). Invalid input to a write form never reaches Vobiz: the sandbox records no
POST or DELETE for it. Valid-looking writes do reach the sandbox, harmlessly.

Each test shares one database and one logged-in client across its examples (the
function-scoped fixture health check is suppressed on purpose); no example leaves state that
would change what the next one may expect.
"""

import contextlib
import html
import json
import re
from urllib.parse import quote

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from endpoints import selectors, sync, vobiz
from endpoints.filters import SEARCH_MAX
from endpoints.models import Application, AuditEvent, Endpoint
from endpoints.validators import ALIAS_MAX, PASSWORD_MAX, PASSWORD_MIN, USERNAME_MAX

FUZZ = hsettings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)
FEW = hsettings(FUZZ, max_examples=8)

WRITE_CALLS = ("POST /Endpoint/", "POST /Endpoint/{id}/", "DELETE /Endpoint/{id}/")
HX = {"HTTP_HX_REQUEST": "true"}
ALIAS_RE = re.compile(r"[A-Za-z0-9_-]+")
USERNAME_RE = re.compile(r"[A-Za-z0-9]+")

# --- strategies -----------------------------------------------------------------------------

NASTY = [
    "", " ", "\x00", "a\x00b", "\t", "\r\n", "0", "-1", "1.5", "20 ", " 20", "0x14",
    str(10**30), "-" + str(10**30), "1e309", "NaN", "Infinity", "١٢", "２０",
    "none", "main", "registered", "not_registered", "expiring", "contains", "exact",
    "startswith", "username", "-username", "--username", "-", "attach", "detach", "done",
    "<script>alert(1)</script>", "\"'><img src=x onerror=alert(1)>", "' OR '1'='1", "%", "_",
    "%25", "..", ".", "\u202e\u200b", "\ufeff", "𝒰𝓃𝒾𝒸ℴ𝒹ℯ", "ß", "İ", "ﬃ", "\U0010ffff",
    "x" * 10_000, "é" * 10_000, "😀" * 3_000,
]
# What a browser can send: any code point but a lone surrogate (UTF-8 cannot carry one,
# and Django's test client refuses to encode it, so such an example tests nothing of ours).
CHARS = st.characters(exclude_categories=("Cs",))
HUGE = st.builds(lambda ch, n: ch * n, CHARS, st.integers(100, 10_000))
TEXT = st.one_of(st.sampled_from(NASTY), st.text(CHARS, max_size=30), HUGE)
# A list becomes repeated keys (?k=a&k=b); an empty list leaves the key out.
VALUE = st.one_of(TEXT, TEXT, st.lists(TEXT, max_size=3))
EXTRA = st.dictionaries(st.text(CHARS, min_size=1, max_size=8), TEXT, max_size=2)


def params_strategy(names, **special):
    """A query or form dict: any subset of ``names`` with arbitrary values (``special``
    overrides a name's strategy), plus random unknown keys."""
    optional = {name: special.get(name, VALUE) for name in names}
    return st.tuples(st.fixed_dictionaries({}, optional=optional), EXTRA).map(
        lambda pair: {**pair[1], **pair[0]}
    )


def last(data: dict, key: str):
    """What Django reads for ``key`` (QueryDict.get: the last of repeated values)."""
    value = data.get(key)
    if isinstance(value, list):
        return value[-1] if value else None
    return value


def stripped(value) -> str:
    return (value or "").strip()


def text_error(value: str, *, max_length: int) -> bool:
    """A CharField's own checks: NUL characters and length (empty values skip both)."""
    return bool(value) and ("\x00" in value or len(value) > max_length)


# --- helpers ------------------------------------------------------------------------------


def page(response) -> str:
    return response.content.decode()


def write_calls(sandbox) -> dict:
    calls = sandbox.stats()["requests"]
    return {key: calls[key] for key in WRITE_CALLS if calls.get(key)}


def shows_field_error(body: str) -> bool:
    return 'class="error-message"' in body or 'class="error-summary"' in body


def endpoint_url(endpoint_id: str, action: str = "") -> str:
    """An endpoint URL built by hand (reverse() refuses ids the routes do not accept)."""
    return f"/endpoints/{quote(endpoint_id, safe='')}/" + (f"{action}/" if action else "")


def remote(sandbox, endpoint_id):
    return sandbox.api("GET", f"Endpoint/{endpoint_id}/").json()


@pytest.fixture
def root(client, synced, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def target(synced):
    """An endpoint with a rule-abiding alias (so an untouched alias is valid)."""
    return next(
        e for e in Endpoint.objects.order_by("username")
        if ALIAS_RE.fullmatch(e.alias) and e.username.isalnum()
    )


# --- the list -----------------------------------------------------------------------------

LIST_LABELS = {"q": "Search", "match": "Username match", "alias_match": "Alias match",
               "app": "Application", "sub": "Sub-account", "status": "Registration",
               "per_page": "Per page"}


def list_errors(params: dict) -> set[str]:
    """Which filters the list must report as ignored, by the documented rules."""
    allowed = {
        "match": {"contains", "exact", "startswith"},
        "alias_match": {"contains", "exact"},
        "status": {"registered", "not_registered", "expiring"},
        "per_page": {"20", "50", "100"},
        "app": {"none", *Application.objects.values_list("app_id", flat=True)},
        "sub": {"main", *Endpoint.objects.exclude(sub_account="")
                .values_list("sub_account", flat=True)},
    }
    errors = {name for name, ok in allowed.items()
              if last(params, name) not in (None, "") and last(params, name) not in ok}
    if text_error(stripped(last(params, "q")), max_length=SEARCH_MAX):
        errors.add("q")
    return errors


def list_narrowed(params: dict, errors: set[str]) -> bool:
    """True if some valid filter may narrow the list."""
    return any(
        name not in errors and stripped(last(params, name))
        for name in ("q", "app", "sub", "status")
    )


@FUZZ
@given(params=params_strategy([*LIST_LABELS, "sort", "page"]), htmx=st.booleans())
def test_list_answers_every_query_with_the_list_or_a_clear_error(root, sandbox, params, htmx):
    sandbox.reset_stats()
    response = root.get(reverse("endpoints:list"), params, **(HX if htmx else {}))
    assert response.status_code == 200
    body = page(response)
    assert 'id="results"' in body
    errors = list_errors(params)
    for name in errors:
        if htmx:  # the aria-live status line says what was ignored
            assert f"{LIST_LABELS[name]} ignored:" in body
        else:
            assert f"{LIST_LABELS[name]}: " in body
    if not htmx:
        assert ("Some filters were ignored" in body) == bool(errors)
        assert ('class="error-message"' in body) == bool(errors)
    if not list_narrowed(params, errors):
        total = Endpoint.objects.count()
        assert f"of <strong>{total}</strong> endpoints" in body
    assert sandbox.stats()["total"] == 0  # browsing never calls Vobiz


AUDIT_LABELS = {"user": "User", "action": "Action", "outcome": "Outcome",
                "endpoint": "Endpoint"}


@FUZZ
@given(params=params_strategy([*AUDIT_LABELS, "page"]), htmx=st.booleans())
def test_audit_page_answers_every_query_with_the_log_or_a_clear_error(root, params, htmx):
    response = root.get(reverse("endpoints:audit"), params, **(HX if htmx else {}))
    assert response.status_code == 200
    if htmx:
        return
    body = page(response)
    errors = set()
    if last(params, "action") not in (None, "", *selectors.AUDIT_ACTIONS):
        errors.add("action")
    if last(params, "outcome") not in (None, "", "done", "failed", "uncertain"):
        errors.add("outcome")
    if text_error(stripped(last(params, "user")), max_length=150):
        errors.add("user")
    if text_error(stripped(last(params, "endpoint")), max_length=255):
        errors.add("endpoint")
    assert ("Some filters were ignored" in body) == bool(errors)
    for name in errors:
        assert f"{AUDIT_LABELS[name]}: " in body
    assert 'id="audit-results"' in body


# --- endpoint ids in the path ---------------------------------------------------------------

ODD_IDS = st.one_of(
    st.sampled_from(["0", "..", ".", "%", "?x=1", "#top", "a b", "\x00", "1\x00", "..%2f",
                     "Endpoint", "a/b", "99999999999999999999999999999999999", "x" * 5000]),
    st.text(CHARS, min_size=1, max_size=40),
)


@FUZZ
@given(endpoint_id=ODD_IDS,
       name=st.sampled_from(["detail", "row", "alias", "edit", "password", "application",
                             "delete"]),
       htmx=st.booleans())
def test_unknown_endpoint_ids_never_fail_a_page(root, sandbox, endpoint_id, name, htmx):
    sandbox.reset_stats()
    response = root.get(endpoint_url(endpoint_id, "" if name == "detail" else name),
                        **(HX if htmx else {}))
    assert response.status_code < 500 or response.status_code == 503
    if response.status_code == 503:  # Vobiz "failed" and nothing is cached: said clearly
        assert "Vobiz is unreachable" in page(response)
    assert not write_calls(sandbox)


@FUZZ
@example(endpoint_id="..", name="delete", data={}, htmx=False)
@example(endpoint_id=".", name="delete", data={}, htmx=True)
@example(endpoint_id="?limit=1", name="delete", data={}, htmx=False)
@given(endpoint_id=ODD_IDS,
       name=st.sampled_from(["alias", "edit", "password", "application", "delete"]),
       data=params_strategy(["alias", "seen_alias", "password", "application"]),
       htmx=st.booleans())
def test_writes_to_unknown_endpoint_ids_change_nothing(root, sandbox, endpoint_id, name, data,
                                                        htmx):
    if endpoint_id in set(Endpoint.objects.values_list("endpoint_id", flat=True)):
        return
    before = sandbox.api("GET", "Endpoint/?limit=1").json()["meta"]["total_count"]
    sandbox.reset_stats()
    response = root.post(endpoint_url(endpoint_id, name), data, **(HX if htmx else {}))
    assert response.status_code < 500
    calls = write_calls(sandbox)
    # Only a delete may ask Vobiz about an id the cache does not know (the cache may be
    # stale), and then only for that one endpoint.
    assert set(calls) <= ({"DELETE /Endpoint/{id}/"} if name == "delete" else set())
    assert sandbox.api("GET", "Endpoint/?limit=1").json()["meta"]["total_count"] == before


# --- inline alias edit --------------------------------------------------------------------


def alias_form_errors(alias, seen) -> bool:
    alias = stripped(alias)
    return text_error(alias, max_length=ALIAS_MAX) or bool(
        alias and not ALIAS_RE.fullmatch(alias)
    ) or "\x00" in (seen or "")


@FUZZ
@example(data={"alias": "Bad alias!", "next": "a b"}, seen_is_current=True, htmx=False)
@example(data={"alias": "Good-1", "seen_alias": "a\x00"}, seen_is_current=False, htmx=True)
@given(data=params_strategy(["alias", "seen_alias", "next"],
                            alias=st.one_of(VALUE, st.from_regex(ALIAS_RE, fullmatch=True))),
       seen_is_current=st.booleans(), htmx=st.booleans())
def test_inline_alias_edit_rejects_bad_input_before_vobiz(root, sandbox, target, data,
                                                          seen_is_current, htmx):
    endpoint = Endpoint.objects.get(pk=target.pk)
    if seen_is_current:
        data["seen_alias"] = endpoint.alias
    sandbox.reset_stats()
    url = reverse("endpoints:alias", args=[endpoint.endpoint_id])
    response = root.post(url, data, **(HX if htmx else {}))
    assert response.status_code < 500
    alias = last(data, "alias") or ""
    seen = last(data, "seen_alias")
    seen = endpoint.alias if seen is None else seen
    untouched = alias.strip() == seen
    if not untouched and alias_form_errors(alias, last(data, "seen_alias")):
        assert not write_calls(sandbox)
        if htmx:
            assert response.status_code == 422
            assert 'class="error-message"' in page(response)
        else:
            assert response.status_code == 302
    if untouched:
        assert not write_calls(sandbox)
    # The row fragment and the edit form still render.
    assert root.get(reverse("endpoints:row", args=[endpoint.endpoint_id]), **HX).status_code \
        == 200
    assert root.get(url, **HX).status_code == 200


# --- create -------------------------------------------------------------------------------

PERMISSION_NAMES = list(vobiz.PERMISSIONS)


def create_form_errors(data: dict) -> bool:
    username = stripped(last(data, "username"))
    password = last(data, "password") or ""
    alias = stripped(last(data, "alias"))
    application = last(data, "application")
    apps = set(Application.objects.values_list("app_id", flat=True))
    return (
        not username or text_error(username, max_length=USERNAME_MAX)
        or not USERNAME_RE.fullmatch(username)
        or not password or "\x00" in password or len(password) > PASSWORD_MAX
        or len(password) < PASSWORD_MIN
        or text_error(alias, max_length=ALIAS_MAX) or bool(alias and not ALIAS_RE.fullmatch(alias))
        or application not in (None, "", *apps)
    )


def nonce_of(response) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', page(response)).group(1)


@FUZZ
@given(
    data=params_strategy(
        ["username", "password", "alias", "application", *PERMISSION_NAMES],
        username=st.one_of(VALUE, st.from_regex(r"[a-z]{3,10}fz", fullmatch=True)),
        password=st.one_of(VALUE, st.text(CHARS, min_size=PASSWORD_MIN, max_size=24)),
        alias=st.one_of(VALUE, st.just("")),
    ),
    nonce=st.one_of(st.just("fresh"), st.none(), TEXT),
)
def test_create_rejects_bad_input_before_vobiz(root, sandbox, data, nonce):
    form = root.get(reverse("endpoints:create"))
    if nonce == "fresh":
        data["nonce"] = nonce_of(form)
    elif nonce is not None:
        data["nonce"] = nonce
    sandbox.reset_stats()
    audits = AuditEvent.objects.count()
    response = root.post(reverse("endpoints:create"), data)
    assert response.status_code < 500
    body = page(response)
    if create_form_errors(data):
        assert response.status_code == 200
        assert 'class="error-summary"' in body and 'class="error-message"' in body
        assert not write_calls(sandbox)
        assert AuditEvent.objects.count() == audits
        password_box = re.search(r'<input type="password" name="password"[^>]*>', body)
        assert password_box and "value=" not in password_box.group()  # never sent back
    elif nonce != "fresh":
        assert response.status_code == 409
        assert not write_calls(sandbox)
    elif 'id="reveal-password"' in body:
        assert "no-store" in response["Cache-Control"]
        assert html.escape(last(data, "password")) in body
    else:  # Vobiz refused it: said on the form
        assert shows_field_error(body)


# --- edit ---------------------------------------------------------------------------------

EDIT_FIELDS = ["alias", "seen_alias", "allow_voice", "allow_message", "allow_video",
               "seen_allow_voice", "seen_allow_message", "seen_allow_video",
               # Locked: disabled on the form, so whatever is posted is ignored.
               "username", "endpoint_id", "domain", "allow_same_domain",
               "allow_other_domains", "allow_phones", "allow_apps"]
LOCKED = ["username", "endpoint_id", *vobiz.LOCKED_PERMISSIONS]


def edit_form_errors(data: dict) -> bool:
    alias = last(data, "alias") or ""
    seen = last(data, "seen_alias") or ""
    if "\x00" in alias or "\x00" in seen:
        return True
    return alias != seen and (len(alias) > ALIAS_MAX or bool(alias and not
                                                              ALIAS_RE.fullmatch(alias)))


@FUZZ
@given(data=params_strategy(EDIT_FIELDS,
                            alias=st.one_of(VALUE, st.from_regex(ALIAS_RE, fullmatch=True))),
       seen_is_current=st.booleans(), htmx=st.booleans())
def test_edit_rejects_bad_input_before_vobiz_and_never_touches_locked_fields(
    root, sandbox, target, data, seen_is_current, htmx
):
    endpoint = Endpoint.objects.get(pk=target.pk)
    locked_before = {k: v for k, v in remote(sandbox, endpoint.endpoint_id).items()
                     if k in LOCKED}
    if seen_is_current:
        data["seen_alias"] = endpoint.alias
        for name in vobiz.EDITABLE_PERMISSIONS:
            data[f"seen_{name}"] = "true" if getattr(endpoint, name) else "false"
    sandbox.reset_stats()
    response = root.post(reverse("endpoints:edit", args=[endpoint.endpoint_id]), data,
                         **(HX if htmx else {}))
    assert response.status_code < 500
    if edit_form_errors(data):
        assert response.status_code == (422 if htmx else 200)
        assert shows_field_error(page(response))
        assert not write_calls(sandbox)
    locked_after = {k: v for k, v in remote(sandbox, endpoint.endpoint_id).items()
                    if k in LOCKED}
    assert locked_after == locked_before


# --- reset password -----------------------------------------------------------------------


@FUZZ
@given(data=params_strategy(["password"],
                            password=st.one_of(VALUE, st.text(CHARS, min_size=PASSWORD_MIN,
                                                              max_size=30))))
def test_password_reset_rejects_bad_input_before_vobiz(root, sandbox, target, data):
    sandbox.reset_stats()
    response = root.post(reverse("endpoints:password", args=[target.endpoint_id]), data)
    assert response.status_code < 500
    body = page(response)
    password = last(data, "password") or ""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX or "\x00" in password:
        assert response.status_code == 200
        assert 'class="error-summary"' in body and 'class="error-message"' in body
        assert 'id="reveal-password"' not in body
        assert not write_calls(sandbox)
    elif 'id="reveal-password"' in body:
        assert "no-store" in response["Cache-Control"]
        assert body.count(html.escape(password)) >= 1
    else:
        assert shows_field_error(body)


# --- application --------------------------------------------------------------------------


@FUZZ
@given(data=params_strategy(["application", "action"],
                            application=st.one_of(VALUE, st.just("real"))))
def test_application_picker_rejects_bad_input_before_vobiz(root, sandbox, target, data):
    endpoint = Endpoint.objects.get(pk=target.pk)
    apps = list(Application.objects.values_list("app_id", flat=True))
    if data.get("application") == "real":
        data["application"] = apps[0]
    sandbox.reset_stats()
    response = root.post(reverse("endpoints:application", args=[endpoint.endpoint_id]), data)
    assert response.status_code < 500
    application, action = last(data, "application"), last(data, "action")
    invalid = (application not in (None, "", endpoint.app_id, *apps)
               or action not in (None, "", "attach", "detach"))
    if invalid:
        assert response.status_code == 200
        assert shows_field_error(page(response))
        assert not write_calls(sandbox)
    else:
        assert response.status_code in (200, 302)


# --- delete -------------------------------------------------------------------------------


@FEW
@given(data=params_strategy(["confirm", "next"]), htmx=st.booleans())
def test_delete_ignores_whatever_else_is_posted(root, sandbox, data, htmx):
    victim = Endpoint.objects.order_by("?").first()
    sandbox.reset_stats()
    response = root.post(reverse("endpoints:delete", args=[victim.endpoint_id]), data,
                         **(HX if htmx else {}))
    assert response.status_code == 302
    assert response["Location"] == reverse("endpoints:list")
    assert write_calls(sandbox) == {"DELETE /Endpoint/{id}/": 1}
    assert sandbox.api("GET", f"Endpoint/{victim.endpoint_id}/").status_code == 404
    assert not Endpoint.objects.filter(pk=victim.pk).exists()


# --- the parser and sync ------------------------------------------------------------------

FIELD_NAMES = [
    "endpoint_id", "username", "alias", "sip_uri", "sip_registered", "sip_registration",
    "sip_contact", "sip_expires", "sip_user_agent", "application", "resource_uri",
    "sub_account", "created_at", "updated_at", *vobiz.PERMISSIONS,
    "contact", "expires", "user_agent", "received", "path", "app_id", "app_name", "name",
]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True), TEXT,
    st.sampled_from(["true", "false", "1", "0", "", "2025-01-01T00:00:00Z",
                     "2025-13-45T99:99:99+99:99", "9999-12-31T23:59:59-23:59",
                     "0001-01-01T00:00:00+14:00", "/v1/Account/X/Application/123/",
                     "/v1/Account/X/Application/abc/", "12345"]),
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8)),
                        children, max_size=4),
    ),
    max_leaves=12,
)
RECORDS = st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8)),
                          JSONISH, max_size=12)


@hsettings(FUZZ, max_examples=300)
@given(data=st.one_of(RECORDS, JSONISH))
def test_parse_endpoint_returns_an_endpoint_or_a_parse_error(data):
    try:
        parsed = vobiz.parse_endpoint(data)
    except vobiz.ParseError:
        return
    assert isinstance(parsed, vobiz.RemoteEndpoint)
    assert parsed.endpoint_id and parsed.username
    # Every id we accept can be linked to (a cached id without a URL would break the list).
    assert reverse("endpoints:detail", args=[parsed.endpoint_id])
    assert set(parsed.permissions) == set(vobiz.PERMISSIONS)


@hsettings(FUZZ, max_examples=200)
@given(data=st.one_of(RECORDS, JSONISH))
def test_parse_application_returns_an_application_or_a_parse_error(data):
    try:
        parsed = vobiz.parse_application(data)
    except vobiz.ParseError:
        return
    assert isinstance(parsed, vobiz.RemoteApplication)


# JSON the sandbox can carry: no floats that JSON cannot spell (NaN, infinities).
WIRE_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False), TEXT,
    st.sampled_from(["true", "false", "", "2025-13-45T99:99:99+99:99",
                     "/v1/Account/X/Application/abc/"]),
)
WIRE = st.recursive(
    WIRE_SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=8,
)
PLANTED = st.fixed_dictionaries(
    {},
    optional={name: WIRE for name in FIELD_NAMES if name not in ("endpoint_id", "username")}
    | {"endpoint_id": st.one_of(WIRE, st.integers(10**9, 10**12).map(str)),
       "username": st.one_of(WIRE, st.from_regex(r"[a-z]{4,10}", fullmatch=True))},
)


@FEW
@example(record={"endpoint_id": "700000000001", "username": "nul\x00name",
                 "alias": "a\x00", "sip_contact": "sip:x\x00@h", "extra": {"k": "\x00"}})
@example(record={"endpoint_id": "7000/0002", "username": "slashid"})
@example(record={"endpoint_id": "..", "username": "dotdot"})
@given(record=PLANTED)
def test_sync_survives_malformed_records_and_the_pages_still_render(root, sandbox, record):
    sandbox.reset()
    sandbox.plant(record)
    with contextlib.suppress(vobiz.VobizError):  # recorded on the sync state
        sync.endpoint_sync_all(triggered_by="fuzz")
    # No NUL is cached: PostgreSQL cannot hold one, and the cache is the same on SQLite.
    cached = json.dumps(list(Endpoint.objects.values()), default=str)
    assert "\\u0000" not in cached
    # Every cached row on one page (each row links to its endpoint), in two orders.
    assert root.get(reverse("endpoints:list"), {"per_page": "100"}).status_code == 200
    assert root.get(reverse("endpoints:list"), {"sort": "-contact"}, **HX).status_code == 200
    rid = record.get("endpoint_id")
    if isinstance(rid, str) and rid.strip() in set(
        Endpoint.objects.values_list("endpoint_id", flat=True)
    ):
        planted = Endpoint.objects.get(endpoint_id=rid.strip())
        for name in ("detail", "edit", "password", "application", "delete"):
            response = root.get(reverse(f"endpoints:{name}", args=[planted.endpoint_id]))
            assert response.status_code < 500
