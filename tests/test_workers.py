"""Bulk jobs on real workers: `manage.py db_worker` processes (django-tasks-db) against the
test database, on SQLite and PostgreSQL alike, with the sandbox's request counters as the
witness of what reached Vobiz.

The crash test kills a worker with SIGKILL mid-job and starts another: the job finishes and
every endpoint was written at most once. The others: cancel, a storm of 429s, Vobiz down
mid-job (paused, resumed), an endpoint deleted elsewhere while the job runs, the password
file of a bulk reset handed over once.
"""

import time

import pytest

from endpoints import bulk, jobs, periodic, sync
from endpoints.models import Endpoint, Job, JobItem
from endpoints.scopes import EVERYTHING

pytestmark = pytest.mark.django_db(transaction=True)  # the workers must see committed rows


def wait_until(condition, timeout=90.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)  # polling a real process, not timing the code under test
    raise AssertionError(f"timed out waiting for {what}")


def settled(job_id) -> int:
    return JobItem.objects.filter(job_id=job_id).exclude(
        state__in=[JobItem.State.PENDING, JobItem.State.RUNNING]).count()


def make_job(user, action, params, *, filters=None):
    selection = bulk.Selection(filters=filters or {}, all_matching=True)
    result = bulk.preview(selection=selection, scope=EVERYTHING, action=action, params=params,
                          limit=0)
    fingerprint = bulk.preview_fingerprint(selection=selection, action=action, params=params,
                                           will_change=result.will_change)
    return jobs.job_create(user=user, scope=EVERYTHING, selection=selection, action=action,
                           params=params, fingerprint=fingerprint)


@pytest.fixture
def many(sandbox, admin_user_role):
    """200 endpoints in the cache; permissions that a job turns video on for."""
    sandbox.reset(endpoints=200, applications=3)
    sync.endpoint_sync_all()
    Endpoint.objects.update(allow_video=False)  # the preview's view: every one will change
    for endpoint_id in Endpoint.objects.values_list("endpoint_id", flat=True):
        sandbox.api("POST", f"Endpoint/{endpoint_id}/", json={"allow_video": False})
    sync.endpoint_sync_all()
    sandbox.reset_stats()
    return admin_user_role


def test_killing_the_worker_mid_job_and_starting_another_writes_each_endpoint_once(
        sandbox, workers, many):
    sandbox.fault(method="POST", path="/Endpoint/", delay=0.05, times=10_000)  # slow writes
    job = make_job(many, "set_permissions", {"permissions": {"allow_video": True}})
    first = workers.start()
    wait_until(lambda: settled(job.pk) >= 30, what="30 endpoints done")
    workers.kill(first)  # SIGKILL: no goodbye, items in flight
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING
    in_flight = set(JobItem.objects.filter(job=job, state=JobItem.State.RUNNING)
                    .values_list("pk", flat=True))
    assert in_flight  # the slow writes keep four endpoints in flight at any moment
    workers.start()
    periodic.schedule_start()  # what a worker's start does: the watchdog tick chain
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.DONE, timeout=120,
               what="the job to finish on the second worker")
    items = JobItem.objects.filter(job=job)
    assert items.filter(state=JobItem.State.DONE).count() == 200
    # The ones in flight were taken up again by the second worker, re-read before anything.
    assert set(items.filter(attempts=2).values_list("pk", flat=True)) == in_flight
    writes = sandbox.stats()["writes_by_endpoint"]
    assert set(writes.values()) == {1}, {k: v for k, v in writes.items() if v != 1}
    assert len(writes) == 200
    sandbox.clear_faults()
    sample = Endpoint.objects.order_by("?").values_list("endpoint_id", flat=True)[:10]
    for endpoint_id in sample:
        assert sandbox.api("GET", f"Endpoint/{endpoint_id}/").json()["allow_video"] is True


def test_cancel_stops_a_running_job_after_the_endpoints_in_flight(sandbox, workers, many):
    sandbox.fault(method="POST", path="/Endpoint/", delay=0.05, times=10_000)
    job = make_job(many, "set_permissions", {"permissions": {"allow_video": True}})
    workers.start()
    wait_until(lambda: settled(job.pk) >= 10, what="10 endpoints done")
    assert jobs.job_cancel(job=Job.objects.get(pk=job.pk))
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED,
               what="the job to stop")
    done = JobItem.objects.filter(job=job, state=JobItem.State.DONE).count()
    cancelled = JobItem.objects.filter(job=job, message=jobs.CANCELLED).count()
    assert 10 <= done < 200 and done + cancelled == 200
    assert len(sandbox.stats()["writes_by_endpoint"]) == done  # nothing after the cancel


def test_a_storm_of_429s_pauses_the_whole_job_then_it_finishes(sandbox, workers, many):
    sandbox.fault(method="POST", path="/Endpoint/", status=429, retry_after=1, times=8)
    job = make_job(many, "set_permissions", {"permissions": {"allow_video": True}})
    workers.start()
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.DONE, timeout=120,
               what="the job to finish")
    counts = jobs.job_counts(Job.objects.get(pk=job.pk))
    assert counts["done"] == 200 and counts["failed"] == 0
    requests = sandbox.stats()["requests"]["POST /Endpoint/{id}/"]
    assert requests == 200 + 8  # each 429 was sent again once, after the wait


def test_vobiz_down_mid_job_pauses_it_and_resume_finishes_it(sandbox, workers, many, settings):
    job = make_job(many, "set_permissions", {"permissions": {"allow_video": True}})
    sandbox.fault(method="POST", path="/Endpoint/", status=503, times=100)
    workers.start()
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.PAUSED,
               what="the job to pause itself")
    paused = Job.objects.get(pk=job.pk)
    assert "Vobiz appears to be down" in paused.pause_reason
    wait_until(lambda: Job.objects.get(pk=job.pk).runner == "", what="the runner to wind down")
    failed = JobItem.objects.filter(job=job, state=JobItem.State.FAILED).count()
    assert 20 <= failed < 24  # the streak, plus what was in flight when it paused
    assert JobItem.objects.filter(job=job, state=JobItem.State.PENDING).count() == 200 - failed
    sandbox.clear_faults()
    assert jobs.job_resume(job=paused)
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.DONE, timeout=120,
               what="the resumed job to finish")
    assert jobs.job_retry_failed(job=Job.objects.get(pk=job.pk)) == failed
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.DONE
               and not JobItem.objects.filter(job=job, state__in=["pending", "running",
                                                                  "failed"]).exists(),
               timeout=120, what="the failed ones to be retried")
    assert JobItem.objects.filter(job=job, state=JobItem.State.DONE).count() == 200


def test_an_endpoint_deleted_elsewhere_while_the_job_runs_is_skipped(sandbox, workers, many):
    sandbox.fault(method="POST", path="/Endpoint/", delay=0.05, times=10_000)
    job = make_job(many, "set_permissions", {"permissions": {"allow_video": True}})
    last = JobItem.objects.filter(job=job).order_by("-position").first()
    workers.start()
    wait_until(lambda: settled(job.pk) >= 5, what="the job to start")
    sandbox.api("DELETE", f"Endpoint/{last.endpoint_id}/")
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.DONE, timeout=120,
               what="the job to finish")
    last.refresh_from_db()
    assert (last.state, last.message) == (JobItem.State.SKIPPED, jobs.DELETED_ELSEWHERE)
    assert f"POST {last.endpoint_id}" not in sandbox.stats()["writes_by_endpoint"]


def test_a_bulk_reset_on_a_worker_hands_the_passwords_over_once(sandbox, workers, many,
                                                                caplog):
    job = make_job(many, "reset_password", {}, filters={"q": "a"})
    workers.start()
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.DONE, timeout=120,
               what="the resets")
    job.refresh_from_db()
    text = jobs.credentials_take(job=job, user=many)
    lines = text.strip().splitlines()
    assert len(lines) == 1 + job.total
    with pytest.raises(jobs.CredentialsRefused):
        jobs.credentials_take(job=job, user=many)
    from django_tasks_db.models import DBTaskResult

    stored = repr(list(DBTaskResult.objects.values())) + repr(list(JobItem.objects.values()))
    for line in lines[1:]:
        password = line.split(",")[1]
        assert password not in stored and password not in caplog.text
    logged = workers.output()
    assert "vobiz POST" in logged  # the workers' logs were read
    assert all(line.split(",")[1] not in logged for line in lines[1:])
