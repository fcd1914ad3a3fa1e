"""The sync's fast write path (raw upserts, COPY on PostgreSQL) stores exactly what the ORM
path stores, never overwrites a row written after the sync started, and leaves unchanged
rows alone."""

import json
from datetime import UTC, datetime, timedelta, timezone

from django.forms.models import model_to_dict
from hypothesis import given, settings
from hypothesis import strategies as st

from endpoints import cache, services, sync
from endpoints.models import Endpoint, SyncState
from endpoints.scopes import EVERYTHING


def _row(endpoint_id):
    row = model_to_dict(Endpoint.objects.get(endpoint_id=endpoint_id))
    row.pop("id")
    row.pop("synced_at")
    return row


def test_a_synced_row_equals_the_row_the_orm_path_stores(sandbox, client_vobiz, db):
    sandbox.reset(endpoints=40, applications=4, hostile=True)
    try:
        sync.endpoint_sync_all()
        page = client_vobiz.list_endpoints(limit=100)
    finally:
        sandbox.reset(hostile=False)  # the fixture's reset keeps the flag otherwise
    assert len(page.objects) == 44
    for remote in page.objects:
        from_sync = _row(remote.endpoint_id)
        cache.endpoint_cache_put(remote)  # model instance + bulk_create(update_conflicts=True)
        assert _row(remote.endpoint_id) == from_sync


def test_sync_does_not_overwrite_a_row_written_after_it_started(sandbox, db):
    sandbox.reset(endpoints=30)
    sync.endpoint_sync_all()
    target = Endpoint.objects.order_by("id").first().endpoint_id

    def edit_meanwhile(pages, seen, total):
        # The page with the old alias is fetched; before it is written, someone saves a new
        # alias through the dashboard (which re-reads the endpoint from Vobiz).
        sandbox.api("POST", f"Endpoint/{target}/", json={"alias": "Edited-Meanwhile"})
        services.endpoint_fetch(scope=EVERYTHING, endpoint_id=target)

    sandbox.api("POST", f"Endpoint/{target}/", json={"alias": "Seen-By-The-Sync"})
    sync.endpoint_sync_all(concurrency=1, progress=edit_meanwhile)

    assert Endpoint.objects.get(endpoint_id=target).alias == "Edited-Meanwhile"


def test_an_incremental_sync_rewrites_only_changed_rows(sandbox, db):
    sync.endpoint_sync_all()
    before = dict(Endpoint.objects.values_list("endpoint_id", "synced_at"))
    changed = next(iter(before))
    sandbox.api("POST", f"Endpoint/{changed}/", json={"alias": "Changed-Once"})

    result = sync.endpoint_sync_all()

    after = dict(Endpoint.objects.values_list("endpoint_id", "synced_at"))
    assert (result.updated, result.unchanged) == (1, len(before) - 1)
    assert after[changed] > before[changed]
    assert {k: v for k, v in after.items() if k != changed} == {
        k: v for k, v in before.items() if k != changed
    }
    # Every row left was confirmed by this sync, which the sync state records.
    assert SyncState.objects.get(name="endpoints").last_success_at > before[changed]


def test_sync_deletes_rows_gone_remotely_but_keeps_rows_added_during_the_walk(sandbox, db):
    sync.endpoint_sync_all()
    gone = Endpoint.objects.order_by("id").first().endpoint_id
    sandbox.api("DELETE", f"Endpoint/{gone}/")
    sandbox.config(username_suffix=False)
    new_id = {}

    def create_meanwhile(pages, seen, total):
        if not new_id:  # created after the walk passed its position in the list
            created = sandbox.api("POST", "Endpoint/", json={"username": "latecomer1",
                                                             "password": "longenough1"})
            new_id["id"] = created.json()["endpoint_id"]
            services.endpoint_fetch(scope=EVERYTHING, endpoint_id=new_id["id"])

    result = sync.endpoint_sync_all(concurrency=1, progress=create_meanwhile)

    assert result.deleted == 1
    assert not Endpoint.objects.filter(endpoint_id=gone).exists()
    assert Endpoint.objects.filter(endpoint_id=new_id["id"]).exists()


def test_very_long_contacts_are_cut_to_fit_the_sort_index():
    ascii_contact = "sip:" + "a" * 1200
    assert cache._contact(ascii_contact) == ascii_contact[:1000]
    wide = "sip:" + "界" * 900  # 3 bytes a character
    cut = cache._contact(wide)
    assert wide.startswith(cut) and len(cut.encode()) <= 2000
    assert cache._contact("sip:jane@198.51.100.7:5060") == "sip:jane@198.51.100.7:5060"


def _remote(raw):
    from endpoints import vobiz

    return vobiz.parse_endpoint({"endpoint_id": "1", "username": "u", **raw})


def test_canonical_json_sorts_keys_and_is_the_same_whatever_the_order_vobiz_sends():
    a = cache._raw_json(_remote({"alias": "Désk", "b": [1, {"y": 2, "x": None}]}))
    b = cache._raw_json(_remote({"b": [1, {"x": None, "y": 2}], "alias": "Désk"}))
    assert a == b == '{"alias":"Désk","b":[1,{"x":null,"y":2}],"endpoint_id":"1","username":"u"}'


def test_canonical_json_takes_what_orjson_refuses():
    # Integers beyond 64 bits and lone surrogates (json.loads makes both from valid JSON).
    huge = cache._raw_json(_remote({"n": 10**30}))
    assert json.loads(huge)["n"] == 10**30
    lone = cache._raw_json(_remote({"alias": "\ud800"}))
    assert json.loads(lone)["alias"] == "\ud800"


@settings(max_examples=200, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9998, 12, 31),
                           timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                                      timezone(timedelta(hours=-8))])))
def test_the_fast_datetime_adapter_writes_what_django_writes(moment):
    from django.db import connection

    adapt = cache._datetime_adapter(connection.ops)
    assert adapt(moment) == connection.ops.adapt_datetimefield_value(moment)
    assert adapt(None) is None
