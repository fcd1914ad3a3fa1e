from django.urls import path, register_converter

from .views import browse, bulk, manage, overview, spreadsheets, staff


class EndpointIdConverter:
    """An id Vobiz can have (what vobiz.parse_endpoint accepts): 1-32 characters, no "/"
    and no NUL. Anything else is a 404 here, before it reaches a query (PostgreSQL refuses
    NUL in text; the id columns hold 32 characters) or Vobiz."""

    regex = r"[^/\x00]{1,32}"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(EndpointIdConverter, "eid")

app_name = "endpoints"

urlpatterns = [
    path("", browse.endpoint_list, name="list"),
    path("sync/", browse.sync_start, name="sync"),
    path("sync/status/", browse.sync_status, name="sync_status"),
    path("audit/", browse.audit_list, name="audit"),
    path("overview/", overview.overview_page, name="overview"),
    path("overview/registrations.json", overview.overview_data, name="overview_data"),
    path("selection/", bulk.selection_update, name="selection"),
    path("bulk/preview/", bulk.bulk_preview, name="bulk_preview"),
    path("bulk/run/", bulk.bulk_run, name="bulk_run"),
    path("jobs/", bulk.job_list, name="jobs"),
    path("jobs/<int:job_id>/", bulk.job_detail, name="job"),
    path("jobs/<int:job_id>/cancel/", bulk.job_cancel, name="job_cancel"),
    path("jobs/<int:job_id>/retry/", bulk.job_retry, name="job_retry"),
    path("jobs/<int:job_id>/resume/", bulk.job_resume, name="job_resume"),
    path("jobs/<int:job_id>/passwords/", bulk.job_credentials, name="job_credentials"),
    path("export.csv", spreadsheets.export_csv, name="export"),
    path("imports/update/", spreadsheets.import_update, name="import_update"),
    path("imports/create/", spreadsheets.import_create, name="import_create"),
    path("imports/<int:job_id>/", spreadsheets.import_preview, name="import_preview"),
    path("imports/<int:job_id>/run/", spreadsheets.import_run, name="import_run"),
    path("setup/<str:token>/", spreadsheets.setup_link, name="setup_link"),
    path("staff/", staff.staff_list, name="staff"),
    path("staff/<int:user_id>/scope/", staff.staff_scope_edit, name="staff_scope"),
    path("staff/sub-accounts/", staff.sub_account_name_edit, name="sub_account_name"),
    path("endpoints/new/", manage.endpoint_create, name="create"),
    path("endpoints/<eid:endpoint_id>/", manage.endpoint_detail, name="detail"),
    path("endpoints/<eid:endpoint_id>/row/", browse.endpoint_list_row, name="row"),
    path("endpoints/<eid:endpoint_id>/alias/", browse.endpoint_alias_edit, name="alias"),
    path("endpoints/<eid:endpoint_id>/edit/", manage.endpoint_edit, name="edit"),
    path("endpoints/<eid:endpoint_id>/password/", manage.endpoint_password, name="password"),
    path("endpoints/<eid:endpoint_id>/application/", manage.endpoint_application,
         name="application"),
    path("endpoints/<eid:endpoint_id>/delete/", manage.endpoint_delete, name="delete"),
    path("endpoints/<eid:endpoint_id>/links/<int:link_id>/revoke/", spreadsheets.link_revoke,
         name="link_revoke"),
]
