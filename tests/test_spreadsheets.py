"""Spreadsheets in and out: the export of a filter, update by import (round trip), onboarding
from a file, every kind of bad file, and the one-time hand-over of new credentials (the CSV
once, view-once links). Jobs run in the request here (the suite's immediate task backend)."""

import csv
import io
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from endpoints import jobs, links, spreadsheets
from endpoints.models import AuditEvent, CredentialLink, Endpoint, Job, JobItem

HEADER = spreadsheets.EXPORT_COLUMNS


@pytest.fixture
def admin(client, synced, admin_user_role):
    client.force_login(admin_user_role)
    return client


def export(client, **params) -> str:
    response = client.get(reverse("endpoints:export"), params)
    assert response.status_code == 200 and response.streaming
    return b"".join(response.streaming_content).decode("utf-8")


def parse(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def to_csv(rows: list[dict], columns=None, delimiter=",") -> bytes:
    columns = columns or list(rows[0])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, delimiter=delimiter, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def upload(client, kind: str, content: bytes, name="endpoints.csv"):
    return client.post(reverse(f"endpoints:import_{kind}"),
                       {"file": SimpleUploadedFile(name, content, "text/csv")})


def preview_of(response) -> Job:
    assert response.status_code == 302, response.content.decode()[:2000]
    job_id = int(re.search(r"/imports/(\d+)/", response["Location"]).group(1))
    return Job.objects.get(pk=job_id)


def remote(sandbox, endpoint_id):
    return sandbox.api("GET", f"Endpoint/{endpoint_id}/").json()


# --- export -------------------------------------------------------------------------------


def test_export_is_every_endpoint_matching_the_filter_as_excel_reads_it(admin, sandbox):
    response = admin.get(reverse("endpoints:export"), {"status": "not_registered"})
    assert re.fullmatch(r'attachment; filename="endpoints-MA_SANDBOX01-\d{4}-\d\d-\d\d\.csv"',
                        response["Content-Disposition"])
    assert "no-store" in response["Cache-Control"]
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")  # Excel reads the file as UTF-8
    rows = parse(text)
    assert list(rows[0]) == HEADER
    expected = set(Endpoint.objects.filter(sip_registered=False).values_list("endpoint_id",
                                                                             flat=True))
    assert {r["endpoint_id"] for r in rows} == expected and len(rows) == len(expected)
    sample = Endpoint.objects.get(endpoint_id=rows[0]["endpoint_id"])
    assert rows[0]["allow_voice"] == ("true" if sample.allow_voice else "false")
    assert rows[0]["registered"] == "false"
    assert AuditEvent.objects.get(action="export").message.startswith(
        f"Exported {len(rows)} endpoint")


def test_export_neutralises_cells_a_spreadsheet_would_run(admin, sandbox):
    from endpoints import sync

    for n, payload in enumerate(["=HYPERLINK(\"http://evil.example\")", "+1+2", "-3-4",
                                 "@SUM(A1)", "\tTAB", "\rCR"]):
        sandbox.plant({"endpoint_id": f"99900000000010{n}", "username": f"formula{n}",
                       "alias": payload})
    sync.endpoint_sync_all()
    rows = {r["username"]: r for r in parse(export(admin, q="formula"))}
    assert len(rows) == 6
    for row in rows.values():
        assert row["alias"].startswith("'"), row["alias"]
    assert rows["formula0"]["alias"] == "'=HYPERLINK(\"http://evil.example\")"


def test_a_scoped_user_exports_only_the_scope(client, sandbox, db, django_user_model):
    from endpoints import sync
    from endpoints.models import StaffScope

    sandbox.reset(endpoints=60, sub_accounts=3)
    sync.endpoint_sync_all()
    sub = Endpoint.objects.exclude(sub_account="").values_list("sub_account", flat=True).first()
    user = django_user_model.objects.create_user(username="lead", password="pw-for-tests-1")
    from django.contrib.auth.models import Group

    from endpoints import roles

    roles.ensure_roles()
    user.groups.add(Group.objects.get(name=roles.SUPPORT))
    StaffScope.objects.create(user=user, all_endpoints=False, sub_accounts=[sub])
    client.force_login(user)
    rows = parse(export(client))
    assert rows and {r["sub_account"] for r in rows} == {sub}
    assert len(rows) == Endpoint.objects.filter(sub_account=sub).count()


# --- import to update -------------------------------------------------------------------


def test_the_export_imported_unchanged_previews_zero_changes(admin, sandbox):
    text = export(admin)
    job = preview_of(upload(admin, "update", text.encode("utf-8")))
    assert job.status == Job.Status.DRAFT and job.total == 0
    assert job.params["unchanged"] == Endpoint.objects.count()
    assert job.params["problem_count"] == 0
    page = admin.get(reverse("endpoints:import_preview", args=[job.pk])).content.decode()
    assert "no row changes anything" in page
    sandbox.reset_stats()
    assert sandbox.stats()["total"] == 0


def test_three_aliases_edited_in_the_sheet_preview_and_apply_exactly_three_updates(admin,
                                                                                  sandbox):
    rows = parse(export(admin))
    edited = []
    for row in rows:
        if len(edited) < 3 and re.fullmatch(r"[A-Za-z0-9_-]*", row["alias"]):
            row["alias"] = f"Sheet-Edit-{len(edited)}"
            edited.append(row["endpoint_id"])
    job = preview_of(upload(admin, "update", to_csv(rows, HEADER)))
    assert job.total == 3
    page = admin.get(reverse("endpoints:import_preview", args=[job.pk])).content.decode()
    assert "Run on 3 endpoints" in page and "Sheet-Edit-0" in page
    sandbox.reset_stats()
    response = admin.post(reverse("endpoints:import_run", args=[job.pk]))
    assert response["Location"] == reverse("endpoints:job", args=[job.pk])
    job.refresh_from_db()
    assert job.status == Job.Status.DONE
    writes = sandbox.stats()["writes_by_endpoint"]
    assert writes == {f"POST {i}": 1 for i in edited}
    for n, endpoint_id in enumerate(edited):
        assert remote(sandbox, endpoint_id)["alias"] == f"Sheet-Edit-{n}"
    assert AuditEvent.objects.filter(job=job, action="update", outcome="done").count() == 3
    # Run again (a replayed form): nothing more.
    admin.post(reverse("endpoints:import_run", args=[job.pk]))
    assert sandbox.stats()["writes_by_endpoint"] == writes


def test_a_subset_of_columns_with_permissions_and_the_application(admin, sandbox):
    endpoint = Endpoint.objects.filter(allow_video=False).exclude(app_id="").order_by(
        "username").first()
    from endpoints.models import Application

    other = Application.objects.exclude(app_id=endpoint.app_id).first()
    content = to_csv([{"endpoint_id": endpoint.endpoint_id, "allow_video": "yes",
                       "application_id": other.app_id, "colour": "blue"}])
    job = preview_of(upload(admin, "update", content))
    assert job.total == 1 and job.params["ignored"] == ["colour"]
    page = admin.get(reverse("endpoints:import_preview", args=[job.pk])).content.decode()
    assert "Video calls: Off" in page and "<code>colour</code>" in page
    admin.post(reverse("endpoints:import_run", args=[job.pk]))
    after = remote(sandbox, endpoint.endpoint_id)
    assert after["allow_video"] is True
    assert after["application"].rstrip("/").endswith(other.app_id)
    assert sandbox.stats()["writes_by_endpoint"] == {f"POST {endpoint.endpoint_id}": 1}


def test_rows_in_error_are_named_with_row_column_and_message(admin, sandbox):
    endpoints = list(Endpoint.objects.order_by("username")[:4])
    rows = [
        {"endpoint_id": "111111111111111", "alias": "x"},                        # row 2
        {"endpoint_id": endpoints[0].endpoint_id, "alias": "bad alias!"},         # row 3
        {"endpoint_id": endpoints[1].endpoint_id, "application_id": "404404"},    # row 4
        {"endpoint_id": endpoints[2].endpoint_id, "username": "renamed1"},        # row 5
        {"endpoint_id": endpoints[3].endpoint_id, "allow_video": "maybe"},        # row 6
        {"endpoint_id": endpoints[3].endpoint_id, "alias": "Twice"},              # row 7
    ]
    job = preview_of(upload(admin, "update", to_csv(
        rows, ["endpoint_id", "alias", "application_id", "username", "allow_video"])))
    problems = {(row, column): message for row, column, message in job.params["problems"]}
    assert problems[(2, "endpoint_id")] == "Unknown endpoint (or outside your scope)."
    assert "letters, digits" in problems[(3, "alias")]
    assert "There is no application 404404" in problems[(4, "application_id")]
    assert problems[(5, "username")] == "Cannot be changed after creation."
    assert "true or false" in problems[(6, "allow_video")]
    assert "already on row 6" in problems[(7, "endpoint_id")]
    assert job.total == 0
    page = admin.get(reverse("endpoints:import_preview", args=[job.pk])).content.decode()
    assert "Rows in error" in page and "Cannot be changed after creation." in page


def test_a_locked_permission_that_differs_is_an_error_and_never_sent(admin, sandbox):
    endpoint = Endpoint.objects.filter(allow_apps=True).first()
    job = preview_of(upload(admin, "update", to_csv(
        [{"endpoint_id": endpoint.endpoint_id, "allow_apps": "false", "alias": "Also-Here"}])))
    assert job.params["problems"] == [[2, "allow_apps", "Cannot be changed after creation."]]
    assert job.total == 0


@pytest.mark.parametrize(("content", "sentence"), [
    (b"", "The file is empty."),
    (b"   \n", "The file is empty."),
    (b"alias,allow_video\nDesk,true\n", "The file has no endpoint_id column"),
    (b"endpoint_id,alias\n", "The file has no rows below its header."),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "This is not a CSV file: it holds binary data."),
])
def test_a_file_that_cannot_be_used_is_refused_in_one_sentence(admin, sandbox, content,
                                                                sentence):
    sandbox.reset_stats()
    response = upload(admin, "update", content)
    assert response.status_code == 422
    error = re.search(r'id="id_file_error"[^>]*>(.*?)</p>', response.content.decode(),
                      re.S).group(1)
    assert sentence in error
    assert not Job.objects.exists() and sandbox.stats()["total"] == 0


def test_a_file_over_the_limits_is_refused_before_anything_else(admin, sandbox, monkeypatch):
    monkeypatch.setattr(spreadsheets, "MAX_ROWS", 5)
    rows = "".join(f"{n},x\n" for n in range(6))
    response = upload(admin, "update", f"endpoint_id,alias\n{rows}".encode())
    assert "more than 5 rows" in response.content.decode()
    big = b"endpoint_id,alias\n" + b"1,x\n" * (spreadsheets.MAX_BYTES // 4 + 1)
    response = upload(admin, "update", big)
    assert "larger than 10 MB" in response.content.decode()
    assert not Job.objects.exists()


def test_what_european_excel_writes_is_read(admin, sandbox):
    """Semicolons, Windows-1252, a quoted field holding a newline, no byte-order mark."""
    endpoint = Endpoint.objects.filter(allow_video=False).order_by("username").first()
    other = Endpoint.objects.exclude(pk=endpoint.pk).order_by("username").first()
    content = (f'endpoint_id;alias;allow_video\r\n'
               f'{endpoint.endpoint_id};"Caf\u00e9\r\nDesk";ja\r\n'
               f'{other.endpoint_id};Tr\u00e8s;true\r\n').encode("cp1252")
    job = preview_of(upload(admin, "update", content))
    problems = {(r, c): m for r, c, m in job.params["problems"]}
    # Read right (cp1252, the quoted newline kept in one cell) and then judged by the rules.
    assert "letters, digits" in problems[(3, "alias")]
    assert "true or false" in problems[(3, "allow_video")]
    assert (4, "alias") in problems  # è is not allowed in an alias either


def test_the_same_file_with_a_byte_order_mark_and_commas_is_read_the_same(admin, sandbox):
    endpoint = Endpoint.objects.filter(allow_video=False).first()
    plain = f"endpoint_id,allow_video\n{endpoint.endpoint_id},true\n"
    with_bom = preview_of(upload(admin, "update", ("\ufeff" + plain).encode("utf-8")))
    without = preview_of(upload(admin, "update", plain.encode("utf-8")))
    assert with_bom.total == without.total == 1


def test_a_scoped_user_cannot_reach_endpoints_outside_the_scope_by_import(
        client, sandbox, db, django_user_model):
    from django.contrib.auth.models import Group

    from endpoints import roles, sync
    from endpoints.models import StaffScope

    sandbox.reset(endpoints=60, sub_accounts=3)
    sync.endpoint_sync_all()
    mine, other = Endpoint.objects.exclude(sub_account="").values_list(
        "sub_account", flat=True).distinct().order_by("sub_account")[:2]
    roles.ensure_roles()
    user = django_user_model.objects.create_user(username="lead", password="pw-for-tests-1")
    user.groups.add(Group.objects.get(name=roles.ENDPOINT_ADMIN))
    StaffScope.objects.create(user=user, all_endpoints=False, sub_accounts=[mine])
    client.force_login(user)
    outside = Endpoint.objects.filter(sub_account=other).first()
    job = preview_of(upload(client, "update", to_csv(
        [{"endpoint_id": outside.endpoint_id, "alias": "Not-Mine"}])))
    assert job.params["problems"] == [[2, "endpoint_id",
                                       "Unknown endpoint (or outside your scope)."]]
    created = preview_of(upload(client, "create", to_csv(
        [{"username": "scopedesk1", "sub_account": other}])))
    assert any(c == "sub_account" for _, c, _ in created.params["problems"])


# --- onboarding -------------------------------------------------------------------------


FIVE = [
    {"username": "onboard1", "alias": "Front-1", "application": "", "sub_account": "",
     "allow_video": "true", "password": ""},
    {"username": "onboard2", "alias": "Front-2", "application": "", "sub_account": "",
     "allow_video": "", "password": "Given-Password-22"},
    {"username": "bad user!", "alias": "x", "application": "", "sub_account": "",
     "allow_video": "", "password": ""},
    {"username": "onboard4", "alias": "", "application": "", "sub_account": "",
     "allow_video": "", "password": ""},
    {"username": "onboard5", "alias": "", "application": "", "sub_account": "",
     "allow_video": "false", "password": ""},
]


def onboard(client, rows=FIVE, links_wanted=False):
    job = preview_of(upload(client, "create", to_csv(rows)))
    client.post(reverse("endpoints:import_run", args=[job.pk]),
                {"links": "on"} if links_wanted else {})
    job.refresh_from_db()
    return job


def test_onboarding_with_one_bad_row_out_of_five_creates_four_and_reports_one(admin, sandbox):
    job = preview_of(upload(admin, "create", to_csv(FIVE)))
    assert job.total == 4
    assert [(r, c) for r, c, _ in job.params["problems"]] == [(4, "username")]
    page = admin.get(reverse("endpoints:import_preview", args=[job.pk])).content.decode()
    assert "Create 4 endpoints" in page and "password from the file" in page
    sandbox.reset_stats()
    admin.post(reverse("endpoints:import_run", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == Job.Status.DONE
    assert sandbox.stats()["requests"]["POST /Endpoint/"] == 4
    assert Endpoint.objects.filter(username__startswith="onboard").count() == 4
    assert not Endpoint.objects.filter(alias="x").exists()  # the bad row was not sent
    first = Endpoint.objects.get(alias="Front-1")
    assert remote(sandbox, first.endpoint_id)["allow_video"] is True
    items = JobItem.objects.filter(job=job).order_by("position")
    assert [i.state for i in items] == ["done"] * 4
    assert all(i.endpoint_id.isdigit() for i in items)  # the ids Vobiz gave


def test_duplicates_in_the_file_and_usernames_that_exist_are_refused(admin, sandbox):
    existing = next(e for e in Endpoint.objects.order_by("username") if e.username.isalnum())
    rows = [{"username": "twice1"}, {"username": "twice1"}, {"username": existing.username}]
    job = preview_of(upload(admin, "create", to_csv(rows)))
    problems = {(r, c): m for r, c, m in job.params["problems"]}
    assert "already on row 2" in problems[(3, "username")]
    assert problems[(4, "username")] == "An endpoint with this username already exists."
    assert job.total == 1


def test_the_new_credentials_are_handed_over_once(admin, sandbox, caplog):
    job = onboard(admin)
    page = admin.get(reverse("endpoints:job", args=[job.pk])).content.decode()
    assert "The file can be downloaded once" in page
    response = admin.post(reverse("endpoints:job_credentials", args=[job.pk]))
    text = response.content.decode()
    rows = parse(text)
    assert len(rows) == 4
    by_name = {r["username"]: r for r in rows}
    given = next(r for r in rows if r["password"] == "Given-Password-22")
    assert given["username"] in by_name and given["sip_domain"] == "sip.vobiz.ai"
    assert {r["udp_tcp_port"] for r in rows} == {"5060"} and {r["tls_port"] for r in rows} == {
        "5061"}
    again = admin.post(reverse("endpoints:job_credentials", args=[job.pk]), follow=True)
    assert "already downloaded once" in again.content.decode()
    dump = json.dumps([list(Job.objects.values()), list(JobItem.objects.values()),
                       list(AuditEvent.objects.values())], default=str)
    for row in rows:
        assert row["password"] not in dump and row["password"] not in caplog.text


# --- view-once links ----------------------------------------------------------------------


def _links(admin, job):
    text = admin.post(reverse("endpoints:job_credentials", args=[job.pk])).content.decode()
    return {r["username"]: r for r in parse(text)}


def test_a_view_once_link_shows_the_settings_once_then_is_spent(admin, sandbox):
    job = onboard(admin, links_wanted=True)
    rows = _links(admin, job)
    row = next(iter(rows.values()))
    url = row["setup_link"]
    assert url.startswith("http://testserver/setup/")
    path = url.replace("http://testserver", "")
    token = path.rstrip("/").rsplit("/", 1)[1]
    assert len(token) >= 32  # 192 random bits, url-safe
    assert not CredentialLink.objects.filter(token_hash=token).exists()  # only its hash
    stranger = Client()  # no login
    waiting = stranger.get(path)
    assert waiting.status_code == 200
    assert "This link works once" in waiting.content.decode()
    assert row["password"] not in waiting.content.decode()
    assert waiting["X-Robots-Tag"] == "noindex, nofollow"
    assert "no-store" in waiting["Cache-Control"]
    assert '<meta name="robots" content="noindex, nofollow">' in waiting.content.decode()
    shown = stranger.post(path)
    html = shown.content.decode()
    assert row["password"] in html and row["username"] in html and "sip.vobiz.ai:5061" in html
    assert "no-store" in shown["Cache-Control"]
    for again in (stranger.get(path), stranger.post(path)):
        assert again.status_code == 404
        assert "This link has been used or has expired" in again.content.decode()
        assert row["password"] not in again.content.decode()
    link = CredentialLink.objects.get(endpoint_username=row["username"])
    assert link.secret == "" and link.opened_at
    assert AuditEvent.objects.filter(action="link_opened",
                                     endpoint_id=link.endpoint_id).count() == 1


def test_an_unknown_link_looks_exactly_like_a_spent_one(client, db):
    gone = client.get("/setup/not-a-real-token-aaaaaaaaaaaaaaaaaaaaaaaaaa/")
    assert gone.status_code == 404
    assert "This link has been used or has expired" in gone.content.decode()


def test_a_revoked_link_cannot_be_opened(admin, sandbox):
    job = onboard(admin, links_wanted=True)
    row = next(iter(_links(admin, job).values()))
    link = CredentialLink.objects.get(endpoint_username=row["username"])
    page = admin.get(reverse("endpoints:detail", args=[link.endpoint_id])).content.decode()
    assert "Not opened yet" in page
    admin.post(reverse("endpoints:link_revoke", args=[link.endpoint_id, link.pk]))
    link.refresh_from_db()
    assert link.revoked_at and link.secret == ""
    opened = Client().post(row["setup_link"].replace("http://testserver", ""))
    assert opened.status_code == 404 and row["password"] not in opened.content.decode()
    assert AuditEvent.objects.filter(action="link_revoked").count() == 1


def test_an_expired_link_is_wiped_and_cannot_be_opened(admin, sandbox):
    job = onboard(admin, links_wanted=True)
    rows = _links(admin, job)
    CredentialLink.objects.update(expires_at=CredentialLink.objects.first().created_at)
    assert links.links_expire() == len(rows)
    assert not CredentialLink.objects.exclude(secret="").exists()
    row = next(iter(rows.values()))
    opened = Client().post(row["setup_link"].replace("http://testserver", ""))
    assert opened.status_code == 404
    assert AuditEvent.objects.filter(action="link_expired").count() == len(rows)


def test_after_the_hand_over_no_password_is_found_anywhere(admin, sandbox, caplog):
    job = onboard(admin, links_wanted=True)
    rows = _links(admin, job)
    for row in rows.values():
        Client().post(row["setup_link"].replace("http://testserver", ""))
    from django_tasks_db.models import DBTaskResult

    dump = json.dumps([list(Job.objects.values()), list(JobItem.objects.values()),
                       list(CredentialLink.objects.values()), list(AuditEvent.objects.values()),
                       list(DBTaskResult.objects.values())], default=str)
    for row in rows.values():
        assert row["password"] not in dump and row["password"] not in caplog.text
    assert jobs.credentials_expire() == 0
