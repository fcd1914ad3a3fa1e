"""Sync from the sandbox into the local cache, over real HTTP."""

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from endpoints import sync
from endpoints.models import Application, Endpoint, SyncState
from endpoints.scopes import EVERYTHING
from endpoints.vobiz import VobizUnavailable


def _remote_ids(sandbox):
    ids, offset = [], 0
    while True:
        body = sandbox.api("GET", "Endpoint/", params={"limit": 100, "offset": offset}).json()
        ids += [o["endpoint_id"] for o in body["objects"]]
        if not body["meta"]["next"]:
            return ids
        offset += 100


def test_sync_fills_the_cache_with_every_remote_endpoint(sandbox, db):
    sandbox.reset(endpoints=250, applications=5)
    result = sync.endpoint_sync_all(triggered_by="test")
    assert result.total_remote == 250
    assert result.created == 250
    assert result.pages == 3
    assert set(Endpoint.objects.values_list("endpoint_id", flat=True)) == set(_remote_ids(sandbox))
    assert Application.objects.count() == 5
    state = SyncState.objects.get(name="endpoints")
    assert state.status == SyncState.Status.OK
    assert state.created == 250 and state.last_success_at is not None


def test_sync_rows_match_the_remote_records(sandbox, db):
    sync.endpoint_sync_all()
    remote = sandbox.api("GET", "Endpoint/", params={"limit": 100}).json()["objects"]
    apps = dict(Application.objects.values_list("app_id", "name"))
    for record in remote:
        row = Endpoint.objects.get(endpoint_id=record["endpoint_id"])
        assert row.username == record["username"]
        assert row.alias == (record["alias"] or "")
        assert row.sub_account == (record["sub_account"] or "")
        if record["application"]:
            assert row.app_id == record["application"].rstrip("/").rsplit("/", 1)[1]
            assert row.app_name == apps[row.app_id]
        else:
            assert row.app_id == "" and row.app_name == ""
        assert row.raw == record
        assert "password" not in row.raw


def test_resync_creates_updates_and_deletes_cache_rows(sandbox, db):
    sync.endpoint_sync_all()
    ids = _remote_ids(sandbox)
    changed, deleted = ids[0], ids[1]
    sandbox.api("POST", f"Endpoint/{changed}/", json={"alias": "Renamed-Desk"})
    sandbox.api("DELETE", f"Endpoint/{deleted}/")
    sandbox.config(username_suffix=False)
    sandbox.api("POST", "Endpoint/", json={"username": "brandnew1", "password": "longenough1"})

    result = sync.endpoint_sync_all()

    assert (result.created, result.updated, result.deleted) == (1, 1, 1)
    assert result.unchanged == 28
    assert Endpoint.objects.get(endpoint_id=changed).alias == "Renamed-Desk"
    assert not Endpoint.objects.filter(endpoint_id=deleted).exists()
    assert Endpoint.objects.filter(username="brandnew1").exists()
    assert Endpoint.objects.count() == 30


def test_incremental_sync_writes_nothing_when_nothing_changed(sandbox, db):
    sync.endpoint_sync_all()
    before = dict(Endpoint.objects.values_list("endpoint_id", "fingerprint"))
    result = sync.endpoint_sync_all()
    assert result.created == result.updated == result.deleted == 0
    assert result.unchanged == 30
    assert dict(Endpoint.objects.values_list("endpoint_id", "fingerprint")) == before


def test_interrupted_sync_keeps_the_previous_cache_and_records_the_error(sandbox, db):
    sandbox.reset(endpoints=250)
    sync.endpoint_sync_all()
    before = set(Endpoint.objects.values_list("endpoint_id", flat=True))
    for endpoint_id in _remote_ids(sandbox)[:5]:
        sandbox.api("DELETE", f"Endpoint/{endpoint_id}/")

    def fail_after_first_page(pages, seen, total):
        if pages == 1:
            sandbox.fault(method="GET", path="/Endpoint/", status=500, times=5)

    with pytest.raises(VobizUnavailable):
        sync.endpoint_sync_all(concurrency=1, progress=fail_after_first_page)

    assert set(Endpoint.objects.values_list("endpoint_id", flat=True)) == before
    state = SyncState.objects.get(name="endpoints")
    assert state.status == SyncState.Status.FAILED
    assert "HTTP 500" in state.last_error
    assert state.last_success_at is not None  # the previous success is still known


def test_sync_failing_on_applications_changes_nothing(sandbox, db):
    sync.endpoint_sync_all()
    before = list(Endpoint.objects.order_by("id").values_list("endpoint_id", "fingerprint"))
    sandbox.fault(path="/Application/", status=503, times=10)
    with pytest.raises(VobizUnavailable):
        sync.endpoint_sync_all()
    assert list(Endpoint.objects.order_by("id").values_list("endpoint_id", "fingerprint")) == before
    assert Application.objects.count() == 4


def test_a_second_sync_is_refused_while_one_runs(sandbox, db):
    SyncState.objects.create(name="endpoints", status=SyncState.Status.RUNNING,
                             started_at=timezone.now(), heartbeat_at=timezone.now())
    with pytest.raises(sync.SyncAlreadyRunning):
        sync.endpoint_sync_all()
    assert sandbox.stats()["total"] == 0


def test_a_stale_running_sync_is_taken_over(sandbox, db):
    long_ago = timezone.now() - sync.SYNC_STALE_AFTER * 2
    SyncState.objects.create(name="endpoints", status=SyncState.Status.RUNNING,
                             started_at=long_ago, heartbeat_at=long_ago)
    result = sync.endpoint_sync_all()
    assert result.total_remote == 30


@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_in_two_threads_run_once(sandbox):
    sandbox.fault(method="GET", path="/Application/", delay=0.8, times=1)
    outcomes = []

    def run():
        try:
            sync.endpoint_sync_all()
            outcomes.append("ran")
        except sync.SyncAlreadyRunning:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["ran", "refused"]
    assert Endpoint.objects.count() == 30


def test_unreadable_records_are_skipped_reported_and_the_rest_synced(sandbox, db):
    sync.endpoint_sync_all()
    sandbox.plant({"endpoint_id": "999000000000002", "username": "broken",
                   "allow_voice": "sometimes"})
    some_id = _remote_ids(sandbox)[0]
    sandbox.api("DELETE", f"Endpoint/{some_id}/")

    result = sync.endpoint_sync_all()

    assert result.skipped == [("999000000000002", "expected a boolean, got 'sometimes'")]
    assert not Endpoint.objects.filter(endpoint_id="999000000000002").exists()
    # Deletions wait for a clean walk: the skipped record might be why the count differs.
    assert result.deletions_postponed
    assert Endpoint.objects.filter(endpoint_id=some_id).exists()
    state = SyncState.objects.get(name="endpoints")
    assert state.status == SyncState.Status.OK and state.skipped == 1
    assert "could not be read" in state.last_error


def test_application_rename_reaches_cached_endpoints(sandbox, db):
    sync.endpoint_sync_all()
    row = Endpoint.objects.exclude(app_id="").first()
    app = Application.objects.get(app_id=row.app_id)
    Application.objects.filter(pk=app.pk).update(name="Old name")
    Endpoint.objects.filter(app_id=app.app_id).update(app_name="Old name")
    sync.endpoint_sync_all()
    assert Endpoint.objects.get(pk=row.pk).app_name == app.name


def test_sync_command_prints_a_summary(sandbox, db, capsys):
    call_command("sync_endpoints")
    out = capsys.readouterr().out
    assert "Synced 30 endpoints and 4 applications" in out


def test_sync_command_fails_loudly_when_vobiz_is_down(sandbox, db, capsys):
    sandbox.fault(path="/Application/", status=500, times=5)
    with pytest.raises(CommandError):
        call_command("sync_endpoints")
    assert "Vobiz is having problems" in capsys.readouterr().err


def test_sync_command_refuses_to_run_twice(sandbox, db, capsys):
    SyncState.objects.create(name="endpoints", status=SyncState.Status.RUNNING,
                             heartbeat_at=timezone.now())
    with pytest.raises(CommandError):
        call_command("sync_endpoints")
    assert "Another sync is running" in capsys.readouterr().err


def test_a_sync_that_changes_the_cache_shows_in_the_list_counts_at_once(sandbox, db):
    from endpoints import selectors

    sandbox.reset(endpoints=40)
    sync.endpoint_sync_all()
    # now cached for this version
    assert selectors.endpoint_counts(scope=EVERYTHING)["total"] == 40
    version = SyncState.objects.get(name="endpoints").data_version
    sync.endpoint_sync_all()  # nothing changed: the cached counts stay valid
    assert SyncState.objects.get(name="endpoints").data_version == version
    sandbox.reset(endpoints=55, seed=2)
    sync.endpoint_sync_all()
    assert SyncState.objects.get(name="endpoints").data_version > version
    assert selectors.endpoint_counts(scope=EVERYTHING)["total"] == 55


def test_a_sync_that_changes_the_applications_shows_in_the_filter_choices(sandbox, db):
    from endpoints import selectors

    sandbox.reset(endpoints=10, applications=2)
    sync.endpoint_sync_all()
    version = SyncState.objects.get(name="endpoints").data_version
    assert len(selectors.application_list(version=version)) == 2  # cached
    sandbox.reset(endpoints=10, applications=5)
    sync.endpoint_sync_all()
    version = SyncState.objects.get(name="endpoints").data_version
    names = {a.name for a in selectors.application_list(version=version)}
    assert names == set(Application.objects.values_list("name", flat=True)) and len(names) == 5
