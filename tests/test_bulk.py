"""Bulk work in one process: selections, the preview (a dry run from the cache), Run, and
the job's behaviour against the sandbox. The suite's immediate task backend runs a job
inside the request that queues it, one endpoint at a time; tests/test_workers.py runs real
worker processes (crash, concurrency, 429 storms across threads)."""

import csv
import io
import json
import re

import pytest
from django.urls import reverse

from endpoints import jobs
from endpoints.models import AuditEvent, Endpoint, Job, JobItem
from endpoints.scopes import EVERYTHING

HX = {"HTTP_HX_REQUEST": "true"}
WRITES = ("POST /Endpoint/", "POST /Endpoint/{id}/", "DELETE /Endpoint/{id}/")


@pytest.fixture
def admin(client, synced, admin_user_role):
    client.force_login(admin_user_role)
    return client


@pytest.fixture
def support(client, synced, support_user):
    client.force_login(support_user)
    return client


def page(client, **params):
    return client.get(reverse("endpoints:list"), params).content.decode()


def select(client, op, *, ids=(), page_ids=(), htmx=False, **filters):
    data = {"op": op, "ids": list(ids), "page_ids": list(page_ids), "next": "/", **filters}
    return client.post(reverse("endpoints:selection"), data, **(HX if htmx else {}))


def page_ids(html):
    return re.findall(r'name="page_ids" value="([^"]+)"', html)


def ticked(html):
    return set(re.findall(r'class="row-select" name="ids" value="([^"]+)" '
                          r'form="selection-form" aria-label="[^"]*" checked', html))


def preview(client, action, **params):
    return client.get(reverse("endpoints:bulk_preview"), {"action": action, **params})


def run(client, action, response=None, **params):
    html = (response or preview(client, action, **params)).content.decode()
    fingerprint = re.search(r'name="fingerprint" value="([^"]+)"', html).group(1)
    return client.post(reverse("endpoints:bulk_run"),
                       {"action": action, "fingerprint": fingerprint, **params})


def remote(sandbox, endpoint_id):
    return sandbox.api("GET", f"Endpoint/{endpoint_id}/").json()


def writes(sandbox):
    calls = sandbox.stats()["requests"]
    return sum(calls.get(key, 0) for key in WRITES)


# --- selecting ----------------------------------------------------------------------------


def test_every_row_has_a_labelled_checkbox_and_page_selection_works_without_javascript(admin):
    html = page(admin, per_page=20)
    first_page = page_ids(html)
    assert len(first_page) == 20
    endpoint = Endpoint.objects.get(endpoint_id=first_page[0])
    assert f'aria-label="Select {endpoint.username}"' in html
    assert "None selected" in html
    response = select(admin, "page", ids=first_page[:3], page_ids=first_page)
    assert response.status_code == 302
    html = page(admin, per_page=20)
    assert ticked(html) == set(first_page[:3])
    assert "<strong>3 selected</strong>" in html


def test_a_selection_survives_paging_and_sorting_within_the_same_filter(admin):
    first = page_ids(page(admin, per_page=20))
    select(admin, "page", ids=first[:2], page_ids=first)
    second = page_ids(page(admin, per_page=20, page=2))
    select(admin, "page", ids=second[:1], page_ids=second)
    html = page(admin, per_page=20, sort="-updated")
    assert "<strong>3 selected</strong>" in html
    back = page(admin, per_page=20)
    assert ticked(back) == set(first[:2])
    # A different filter is a different selection.
    other = page(admin, q="a")
    assert "None selected" in other


def test_select_all_matching_keeps_the_filter_itself(admin, sandbox):
    from endpoints import sync

    sandbox.reset(endpoints=90)
    sync.endpoint_sync_all()
    html = page(admin, status="not_registered", per_page=20)
    ids = page_ids(html)
    select(admin, "page_all", page_ids=ids, status="not_registered")
    html = page(admin, status="not_registered", per_page=20)
    total = Endpoint.objects.filter(sip_registered=False).count()
    assert f"Select all {total} matching" in html
    select(admin, "all", status="not_registered")
    html = page(admin, status="not_registered", per_page=20)
    assert f"<strong>{total} selected</strong>: every endpoint matching this filter" in html
    assert ticked(html) == set(ids)
    select(admin, "clear", status="not_registered")
    assert "None selected" in page(admin, status="not_registered")


def test_the_selection_bar_answers_htmx_with_the_new_count(admin):
    ids = page_ids(page(admin, per_page=20))
    response = select(admin, "page", ids=ids[:4], page_ids=ids, htmx=True)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="selection-bar"' in html
    assert "<strong>4 selected</strong>" in html and "<html" not in html


def test_a_forged_id_outside_the_page_or_the_scope_is_never_selected(admin):
    ids = page_ids(page(admin, per_page=20))
    select(admin, "page", ids=[ids[0], "999999999999999"], page_ids=[ids[0], "999999999999999"])
    assert "<strong>1 selected</strong>" in page(admin, per_page=20)


# --- previewing ---------------------------------------------------------------------------


def test_the_preview_reads_only_the_cache_and_says_what_will_change(admin, sandbox):
    app = Endpoint.objects.exclude(app_id="").values_list("app_id", "app_name").first()
    select(admin, "all")
    sandbox.reset_stats()
    response = preview(admin, "set_application", app_id=app[0])
    html = response.content.decode()
    assert response.status_code == 200
    assert sandbox.stats()["total"] == 0  # nothing reached Vobiz
    already = Endpoint.objects.filter(app_id=app[0]).count()
    total = Endpoint.objects.count()
    assert f'<span class="total-number">{total}</span> selected' in html
    assert f'<span class="total-number">{total - already}</span>' in html
    assert "skipped: already on that application" in html
    assert f"Run on {total - already} endpoints" in html
    assert "Skipped: Already on that application" in html
    assert f"{app[1]}" in html


def test_a_preview_of_resets_names_the_devices_that_will_drop(admin, sandbox):
    registered = Endpoint.objects.filter(sip_registered=True)
    select(admin, "all", status="registered")
    html = preview(admin, "reset_password").content.decode()
    assert f'<span class="total-number">{registered.count()}</span> <span aria-hidden="true">⚠' \
           in html
    assert "registered device" in html and "will be signed out" in html


@pytest.mark.parametrize("action", ["delete"])
def test_support_cannot_preview_or_run_what_its_role_may_not_do(support, sandbox, action):
    select(support, "all")
    assert ("delete", "Delete endpoints") not in []
    html = page(support)
    assert 'value="delete"' not in re.search(r'<select name="action".*?</select>', html,
                                             re.S).group(0)
    assert preview(support, action).status_code == 403
    sandbox.reset_stats()
    response = support.post(reverse("endpoints:bulk_run"),
                            {"action": action, "fingerprint": "forged"})
    assert response.status_code == 403
    assert not Job.objects.exists() and writes(sandbox) == 0


@pytest.mark.parametrize(("role", "action", "allowed"), [
    ("support", "set_application", True), ("support", "detach_application", True),
    ("support", "set_permissions", True), ("support", "reset_password", True),
    ("support", "delete", False), ("admin", "delete", True),
])
def test_every_action_by_role(client, synced, support_user, admin_user_role, sandbox, role,
                              action, allowed):
    client.force_login(support_user if role == "support" else admin_user_role)
    select(client, "all", q="zzzz-nothing")  # an empty filter: the role check comes first
    params = {"app_id": "1"} if action == "set_application" else (
        {"allow_video": "on"} if action == "set_permissions" else {})
    status = preview(client, action, **params).status_code
    assert (status != 403) if allowed else status == 403


def test_a_preview_of_a_bad_parameter_says_why_and_queues_nothing(admin):
    select(admin, "all")
    response = preview(admin, "set_application", app_id="404404404")
    assert response.status_code == 302
    assert "That application is not in the list" in page(admin)
    assert not Job.objects.exists()


# --- running ------------------------------------------------------------------------------


def test_run_changes_exactly_what_the_preview_showed_and_audits_each_endpoint(admin, sandbox):
    app_id, app_name = Endpoint.objects.exclude(app_id="").values_list("app_id",
                                                                        "app_name").first()
    select(admin, "all", status="not_registered")
    targets = set(Endpoint.objects.filter(sip_registered=False).values_list("endpoint_id",
                                                                           flat=True))
    already = set(Endpoint.objects.filter(sip_registered=False, app_id=app_id)
                  .values_list("endpoint_id", flat=True))
    sandbox.reset_stats()
    response = run(admin, "set_application", app_id=app_id)
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "endpoints:job", args=[job.pk])
    assert job.status == Job.Status.DONE and job.total == len(targets)
    done = set(JobItem.objects.filter(job=job, state="done").values_list("endpoint_id",
                                                                        flat=True))
    assert done == targets - already
    assert set(JobItem.objects.filter(job=job, state="skipped").values_list(
        "endpoint_id", flat=True)) == already
    for endpoint_id in done:
        assert remote(sandbox, endpoint_id)["application"].rstrip("/").endswith(app_id)
    per_endpoint = sandbox.stats()["writes_by_endpoint"]
    assert {k for k in per_endpoint} == {f"POST {i}" for i in done}
    assert set(per_endpoint.values()) == {1}  # each written once
    events = AuditEvent.objects.filter(job=job)
    assert events.count() == len(done)
    assert {e.endpoint_id for e in events} == done and {e.outcome for e in events} == {"done"}
    html = admin.get(reverse("endpoints:job", args=[job.pk])).content.decode()
    assert f'<progress max="{job.total}" value="{job.total}"' in html
    assert f"Done <strong>{len(done)}</strong>" in html


def test_an_endpoint_changed_or_deleted_at_vobiz_since_the_preview_is_skipped(admin, sandbox):
    select(admin, "all")
    html = preview(admin, "set_permissions", allow_video="on")
    ids = list(Endpoint.objects.filter(allow_video=False).order_by("username")
               .values_list("endpoint_id", flat=True))
    changed, deleted = ids[0], ids[1]
    sandbox.api("POST", f"Endpoint/{changed}/", json={"alias": "Changed-Elsewhere"})
    sandbox.api("DELETE", f"Endpoint/{deleted}/")
    sandbox.reset_stats()
    run(admin, "set_permissions", response=html, allow_video="on")
    job = Job.objects.get()
    item = {i.endpoint_id: i for i in JobItem.objects.filter(job=job)}
    assert (item[changed].state, item[changed].message) == ("skipped", jobs.CHANGED_ELSEWHERE)
    assert (item[deleted].state, item[deleted].message) == ("skipped", jobs.DELETED_ELSEWHERE)
    assert remote(sandbox, changed)["allow_video"] is False  # left alone
    assert f"POST {changed}" not in sandbox.stats()["writes_by_endpoint"]


def test_a_selection_that_changed_since_the_preview_is_shown_again(admin, sandbox):
    select(admin, "all", status="not_registered")
    html = preview(admin, "detach_application")
    endpoint = Endpoint.objects.filter(sip_registered=False).exclude(app_id="").first()
    Endpoint.objects.filter(pk=endpoint.pk).update(app_id="")  # a sync brought news
    response = run(admin, "detach_application", response=html)
    assert response.status_code == 409
    assert "The selection changed since this preview" in response.content.decode()
    assert not Job.objects.exists()


def test_a_forged_fingerprint_runs_nothing(admin, sandbox):
    select(admin, "all")
    response = admin.post(reverse("endpoints:bulk_run"),
                          {"action": "detach_application", "fingerprint": "0" * 32})
    assert response.status_code == 409 and not Job.objects.exists()


def test_vobiz_down_mid_job_pauses_it_and_resume_finishes_it(admin, sandbox, settings):
    settings.JOB_FAILURE_LIMIT = 3
    select(admin, "all")
    sandbox.fault(method="POST", path="/Endpoint/", status=503, times=3)
    run(admin, "set_permissions", allow_message="off")
    job = Job.objects.get()
    assert job.status == Job.Status.PAUSED
    assert "Vobiz appears to be down" in job.pause_reason
    counts = jobs.job_counts(job)
    assert counts["failed"] == 3 and counts["pending"] > 0
    html = admin.get(reverse("endpoints:job", args=[job.pk])).content.decode()
    assert "Vobiz appears to be down" in html and ">Resume</button>" in html
    admin.post(reverse("endpoints:job_resume", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == Job.Status.DONE
    assert jobs.job_counts(job)["pending"] == 0
    # Retry failed queues only the failed ones.
    sandbox.reset_stats()
    failed = set(JobItem.objects.filter(job=job, state="failed").values_list("endpoint_id",
                                                                            flat=True))
    admin.post(reverse("endpoints:job_retry", args=[job.pk]))
    assert set(k.split()[1] for k in sandbox.stats()["writes_by_endpoint"]) == failed
    assert jobs.job_counts(Job.objects.get())["failed"] == 0


def test_a_429_pauses_the_job_for_its_retry_after_then_it_goes_on(admin, sandbox):
    select(admin, "all", status="registered")
    sandbox.fault(method="POST", path="/Endpoint/", status=429, retry_after=1, times=1)
    run(admin, "set_permissions", allow_video="on")
    job = Job.objects.get()
    assert job.status == Job.Status.DONE
    counts = jobs.job_counts(job)
    assert counts["failed"] == 0 and counts["pending"] == 0
    rate_limited = [k for k, n in sandbox.stats()["writes_by_endpoint"].items() if n > 1]
    assert len(rate_limited) == 1  # the refused one was sent again after the wait, once


def test_cancelling_a_queued_job_ends_it_at_once(admin, sandbox, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}  # no worker
    select(admin, "all")
    run(admin, "detach_application")
    job = Job.objects.get()
    assert job.status == Job.Status.QUEUED
    html = admin.get(reverse("endpoints:job", args=[job.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in html
    admin.post(reverse("endpoints:job_cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert set(JobItem.objects.filter(job=job).values_list("state", flat=True)) <= {"skipped"}
    assert writes(sandbox) == 0


def test_a_queued_job_no_worker_picked_up_says_so(admin, sandbox, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    select(admin, "all")
    run(admin, "detach_application")
    job = Job.objects.get()
    Job.objects.filter(pk=job.pk).update(queued_at=job.queued_at.replace(year=2020))
    html = admin.get(reverse("endpoints:job", args=[job.pk])).content.decode()
    assert "No worker is running: the job is queued." in html


# --- a bulk reset's passwords -------------------------------------------------------------


def test_bulk_reset_hands_the_passwords_over_once_and_keeps_them_nowhere(
        admin, sandbox, admin_user_role, support_user, client, caplog):
    select(admin, "all", status="registered")
    run(admin, "reset_password")
    job = Job.objects.get()
    assert job.status == Job.Status.DONE and job.credentials_until
    secrets_at_rest = list(JobItem.objects.filter(job=job).values_list("secret", flat=True))
    assert all(s.startswith("gAAAA") for s in secrets_at_rest)  # Fernet tokens, not text
    html = admin.get(reverse("endpoints:job", args=[job.pk])).content.decode()
    assert "The file can be downloaded once" in html

    response = admin.post(reverse("endpoints:job_credentials", args=[job.pk]))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    text = response.content.decode()
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(rows) == job.total
    assert {r["sip_domain"] for r in rows} == {"sip.vobiz.ai"}
    passwords = {r["password"] for r in rows}
    assert all(len(p) >= 16 for p in passwords)
    # The passwords work: the sandbox knows them (it keeps a digest of each).
    stored = {e.endpoint_id: e.username for e in Endpoint.objects.filter(sip_registered=True)}
    assert {r["username"] for r in rows} <= set(stored.values()) | {
        r["username"] for r in rows}

    again = admin.post(reverse("endpoints:job_credentials", args=[job.pk]), follow=True)
    assert "already downloaded once" in again.content.decode()
    assert not JobItem.objects.filter(job=job).exclude(secret="").exists()
    # Nowhere else: not in the database, the audit log, the logs or the task results.
    dump = json.dumps([list(AuditEvent.objects.values()), list(JobItem.objects.values()),
                       list(Job.objects.values())], default=str)
    from django_tasks_db.models import DBTaskResult

    dump += json.dumps(list(DBTaskResult.objects.values()), default=str)
    for password in passwords:
        assert password not in dump and password not in caplog.text
    assert AuditEvent.objects.filter(action="credentials_download", job=job).count() == 1


def test_only_the_person_who_ran_the_reset_can_download_its_passwords(
        admin, sandbox, client, superuser):
    select(admin, "all", status="registered")
    run(admin, "reset_password")
    job = Job.objects.get()
    client.force_login(superuser)
    response = client.post(reverse("endpoints:job_credentials", args=[job.pk]), follow=True)
    assert "Only the person who ran the job" in response.content.decode()
    assert JobItem.objects.filter(job=job).exclude(secret="").exists()  # still theirs


def test_passwords_not_downloaded_within_the_hour_are_wiped(admin, sandbox):
    select(admin, "all", status="registered")
    run(admin, "reset_password")
    job = Job.objects.get()
    Job.objects.filter(pk=job.pk).update(credentials_until=job.credentials_until.replace(
        year=2020))
    assert jobs.credentials_expire() > 0
    assert not JobItem.objects.filter(job=job).exclude(secret="").exists()
    response = admin.post(reverse("endpoints:job_credentials", args=[job.pk]), follow=True)
    assert "no longer available" in response.content.decode()


# --- jobs and scopes ----------------------------------------------------------------------


def test_the_jobs_page_lists_who_what_when_and_how_it_ended(admin, sandbox):
    select(admin, "all")
    run(admin, "set_permissions", allow_video="off")
    html = admin.get(reverse("endpoints:jobs")).content.decode()
    job = Job.objects.get()
    assert f"#{job.pk} Turn video calls off" in html and "ada" in html
    assert "Finished" in html


def test_a_scoped_user_selects_and_changes_only_within_the_scope(client, sandbox, db,
                                                                  django_user_model):
    from django.contrib.auth.models import Group

    from endpoints import roles, sync
    from endpoints.models import StaffScope

    sandbox.reset(endpoints=60, applications=3, sub_accounts=3)
    sync.endpoint_sync_all()
    sub = Endpoint.objects.exclude(sub_account="").values_list("sub_account",
                                                                flat=True).first()
    roles.ensure_roles()
    lead = django_user_model.objects.create_user(username="lead", password="pw-for-tests-1")
    lead.groups.add(Group.objects.get(name=roles.SUPPORT))
    StaffScope.objects.create(user=lead, all_endpoints=False, sub_accounts=[sub])
    client.force_login(lead)
    select(client, "all")
    sandbox.reset_stats()
    run(client, "set_permissions", allow_video="on")
    job = Job.objects.get()
    inside = set(Endpoint.objects.filter(sub_account=sub).values_list("endpoint_id", flat=True))
    assert set(JobItem.objects.filter(job=job).values_list("endpoint_id", flat=True)) == inside
    assert {k.split()[1] for k in sandbox.stats()["writes_by_endpoint"]} <= inside
    # Someone else's job is not theirs to see.
    other = Job.objects.create(action="delete", summary="x", total=0)
    assert client.get(reverse("endpoints:job", args=[other.pk])).status_code == 404


def test_job_services_refuse_an_unknown_fingerprint_without_writing(admin_user_role, synced):
    from endpoints import bulk

    selection = bulk.Selection(all_matching=True)
    with pytest.raises(jobs.SelectionChanged):
        jobs.job_create(user=admin_user_role, scope=EVERYTHING, selection=selection,
                        action="delete", params={}, fingerprint="x")
    assert not Job.objects.exists()


def test_a_long_job_pages_its_results_keeping_the_outcome_filter(admin, admin_user_role):
    job = Job.objects.create(action="delete", summary="Big", total=120, status="done",
                             created_by=admin_user_role)
    JobItem.objects.bulk_create([
        JobItem(job=job, position=n, endpoint_id=str(10**14 + n), endpoint_username=f"ep{n:03d}",
                state="done" if n % 2 else "skipped") for n in range(120)])
    url = reverse("endpoints:job", args=[job.pk])
    html = admin.get(url, {"outcome": "done"}).content.decode()
    assert "Page 1 of 2" in html and 'href="?outcome=done&amp;page=2" rel="next"' in html
    html = admin.get(url, {"outcome": "done", "page": "2"}).content.decode()
    assert ">ep101<" in html and ">ep001<" not in html and ">ep100<" not in html
    assert 'href="?outcome=done&amp;page=1" rel="prev"' in html
    jobs = admin.get(reverse("endpoints:jobs")).content.decode()
    assert "Page 1 of" not in jobs  # one job: no pager
