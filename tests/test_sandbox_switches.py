"""The sandbox's newer switches over real loopback HTTP: the docs' minimal endpoint object,
strict integer application ids, a page-size cap below the documented 100, and no invented alias.

Each test flips a switch through POST /_sandbox/config (the ``sandbox`` fixture puts every switch
back to its default before the next test) and checks what an API client sees.
"""

import re

import pytest
import requests

MINIMAL_KEYS = {
    "alias",
    "application",
    "endpoint_id",
    "resource_uri",
    "sip_registered",
    "sip_uri",
    "sub_account",
    "username",
}


def _uri(sandbox, kind):
    return f"/v1/Account/{sandbox.server.auth_id}/{kind}/"


def _page(sandbox, **params):
    response = sandbox.api("GET", "Endpoint/", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _get(sandbox, endpoint_id):
    response = sandbox.api("GET", f"Endpoint/{endpoint_id}/")
    assert response.status_code == 200, response.text
    return response.json()


def _apps(sandbox):
    return sandbox.api("GET", "Application/", params={"limit": 100}).json()["objects"]


def _create(sandbox, **body):
    body.setdefault("password", "Secret-pass-1")
    return sandbox.api("POST", "Endpoint/", json=body)


def _linked_endpoint_id(sandbox):
    return _page(sandbox, application_id__isnull="false")["objects"][0]["endpoint_id"]


# --- object_shape ----------------------------------------------------------------------------


def test_minimal_object_shape_serves_only_the_docs_eight_keys_in_list_and_retrieve(sandbox):
    sandbox.config(object_shape="minimal")
    endpoint_uri = _uri(sandbox, "Endpoint")
    objects = _page(sandbox, limit=100)["objects"]
    assert len(objects) == 30
    for obj in objects:
        assert set(obj) == MINIMAL_KEYS
        assert obj["sip_registered"] in ("true", "false")
        assert obj["resource_uri"] == f"{endpoint_uri}{obj['endpoint_id']}/"
    # The seeded copy of the docs' registered example: still "true", but no registration fields.
    registered = _page(sandbox, username__exact="john_doe")["objects"][0]
    detail = _get(sandbox, registered["endpoint_id"])
    assert set(detail) == MINIMAL_KEYS
    assert detail["sip_registered"] == "true"
    assert detail == registered
    assert list(detail) == sorted(MINIMAL_KEYS)  # the docs' examples list the keys A-Z


def test_minimal_object_shape_also_shapes_a_full_create_body(sandbox):
    sandbox.config(object_shape="minimal", create_body="full")
    response = _create(sandbox, username="shaped", alias="Shaped")
    assert response.status_code == 201
    assert set(response.json()) == MINIMAL_KEYS


def test_full_object_shape_keeps_permissions_timestamps_and_registration(sandbox):
    registered = _page(sandbox, username__exact="john_doe")["objects"][0]
    assert {"allow_voice", "created_at", "updated_at", "sip_contact"} <= set(registered)
    detail = _get(sandbox, registered["endpoint_id"])
    assert "api_id" in detail and "sip_registration" in detail


# --- strict_types ----------------------------------------------------------------------------


def test_strict_types_refuses_a_string_application_id_on_create(sandbox):
    sandbox.config(strict_types=True)
    app_id = _apps(sandbox)[2]["app_id"]
    refused = _create(sandbox, username="stringy", application=app_id)
    assert refused.status_code == 400
    body = refused.json()
    assert body["error"] == "invalid request parameters"
    assert list(body["details"]) == ["application"]
    assert _page(sandbox)["meta"]["total_count"] == 30  # nothing was created

    created = _create(sandbox, username="inty", application=int(app_id))
    assert created.status_code == 201
    stored = _get(sandbox, created.json()["endpoint_id"])
    assert stored["application"] == f"{_uri(sandbox, 'Application')}{app_id}/"


@pytest.mark.parametrize("field", ["app_id", "application"])
def test_strict_types_refuses_a_string_id_on_update_even_in_the_ignored_field(sandbox, field):
    sandbox.config(strict_types=True)
    eid = _linked_endpoint_id(sandbox)
    before = _get(sandbox, eid)
    target = next(a for a in _apps(sandbox) if a["resource_uri"] != before["application"])
    refused = sandbox.api("POST", f"Endpoint/{eid}/", json={field: target["app_id"]})
    assert refused.status_code == 400
    assert list(refused.json()["details"]) == [field]
    assert _get(sandbox, eid)["application"] == before["application"]

    taken = sandbox.api("POST", f"Endpoint/{eid}/", json={"app_id": int(target["app_id"])})
    assert taken.status_code == 202
    assert _get(sandbox, eid)["application"] == target["resource_uri"]


@pytest.mark.parametrize("detach", ["", None])
def test_strict_types_still_detaches_with_empty_or_null(sandbox, detach):
    sandbox.config(strict_types=True)
    eid = _linked_endpoint_id(sandbox)
    response = sandbox.api("POST", f"Endpoint/{eid}/", json={"app_id": detach, "application": None})
    assert response.status_code == 202
    assert _get(sandbox, eid)["application"] is None


@pytest.mark.parametrize("as_int", [True, False])
def test_without_strict_types_string_and_integer_ids_both_link(sandbox, as_int):
    apps = _apps(sandbox)
    first, second = apps[2]["app_id"], apps[3]["app_id"]
    created = _create(sandbox, username="either", application=int(first) if as_int else first)
    assert created.status_code == 201
    eid = created.json()["endpoint_id"]
    assert _get(sandbox, eid)["application"] == apps[2]["resource_uri"]
    update = {"app_id": int(second) if as_int else second}
    assert sandbox.api("POST", f"Endpoint/{eid}/", json=update).status_code == 202
    assert _get(sandbox, eid)["application"] == apps[3]["resource_uri"]


# --- max_limit -------------------------------------------------------------------------------


def test_max_limit_caps_pages_and_the_meta_links_step_by_the_cap(sandbox):
    sandbox.config(max_limit=20)
    endpoint_uri = _uri(sandbox, "Endpoint")
    first = _page(sandbox, limit=100)
    assert len(first["objects"]) == 20
    assert first["meta"]["limit"] == 20
    assert first["meta"]["next"] == f"{endpoint_uri}?limit=20&offset=20"
    assert first["meta"]["previous"] is None
    second = _page(sandbox, limit=100, offset=20)
    assert len(second["objects"]) == 10
    assert second["meta"]["next"] is None
    assert second["meta"]["previous"] == f"{endpoint_uri}?limit=20&offset=0"
    ids = [o["endpoint_id"] for o in first["objects"] + second["objects"]]
    assert len(set(ids)) == 30
    # Below the cap a limit is served as asked; above 100 it is still refused.
    assert len(_page(sandbox, limit=7)["objects"]) == 7
    assert _page(sandbox, limit=7)["meta"]["limit"] == 7
    assert sandbox.api("GET", "Endpoint/", params={"limit": 101}).status_code == 400


def test_max_limit_also_caps_the_default_page_and_the_application_list(sandbox):
    sandbox.config(max_limit=3)
    page = _page(sandbox)
    assert (len(page["objects"]), page["meta"]["limit"]) == (3, 3)
    assert re.search(r"limit=3&offset=3$", page["meta"]["next"])
    apps = sandbox.api("GET", "Application/", params={"limit": 50}).json()
    assert (len(apps["objects"]), apps["meta"]["limit"], apps["meta"]["total_count"]) == (3, 3, 4)


# --- alias on create -------------------------------------------------------------------------


def test_create_without_alias_leaves_the_alias_empty(sandbox):
    response = _create(sandbox, username="noalias")
    assert response.status_code == 201
    assert response.json()["alias"] == ""
    stored = _get(sandbox, response.json()["endpoint_id"])
    assert stored["alias"] == ""
    assert stored["username"].startswith("noalias")
    assert _page(sandbox, alias__exact="noalias")["meta"]["total_count"] == 0


def test_ignore_on_create_answers_201_and_keeps_the_defaults(sandbox):
    """A create that silently does not keep fields: the dashboard must notice on read-back."""
    sandbox.config(ignore_on_create=["allow_video", "allow_other_domains"])
    created = sandbox.api("POST", "Endpoint/", json={
        "username": "dropdesk", "password": "longenough1", "allow_video": True,
        "allow_other_domains": True, "allow_voice": False})
    assert created.status_code == 201
    stored = sandbox.api("GET", f"Endpoint/{created.json()['endpoint_id']}/").json()
    assert stored["allow_video"] is False and stored["allow_other_domains"] is False
    assert stored["allow_voice"] is False  # not listed: kept


def test_reset_spreads_endpoints_over_the_asked_number_of_sub_accounts(sandbox):
    sandbox.reset(endpoints=400, applications=3, sub_accounts=6)
    objects = []
    for offset in range(0, 400, 100):
        objects += sandbox.api("GET", "Endpoint/", params={"limit": 100, "offset": offset}
                               ).json()["objects"]
    subs = {o["sub_account"] for o in objects if o["sub_account"]}
    assert len(subs) == 6 and all(s.startswith("SA_") for s in subs)
    in_subs = sum(1 for o in objects if o["sub_account"])
    assert 0.2 * 400 < in_subs < 0.4 * 400  # about 30%, the rest in the main account
    with pytest.raises(requests.HTTPError):
        sandbox.reset(sub_accounts=-1)
