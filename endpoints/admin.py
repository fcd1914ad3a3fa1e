"""Django admin over the cache: read-only (Vobiz is the source of truth; writes go through
the dashboard's services so they are verified and audited)."""

from django.contrib import admin

from .models import Application, AuditEvent, Endpoint, StaffScope, SubAccount, SyncState


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Endpoint)
class EndpointAdmin(ReadOnlyAdmin):
    list_display = ("username", "alias", "sip_registered", "sip_contact", "sip_expires",
                    "app_name", "sub_account", "updated_at", "last_seen_at")
    list_filter = ("sip_registered", "app_name", "sub_account", "last_seen_at", "last_drop_at")
    search_fields = ("username", "alias")
    list_per_page = 20
    exclude = ("raw",)


@admin.register(Application)
class ApplicationAdmin(ReadOnlyAdmin):
    list_display = ("name", "app_id", "default_endpoint_app", "synced_at")
    search_fields = ("name", "app_id")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "username", "action", "endpoint_username", "sub_account", "outcome",
                    "message")
    list_filter = ("action", "outcome")
    search_fields = ("endpoint_username", "endpoint_id", "username")
    date_hierarchy = "at"


@admin.register(SyncState)
class SyncStateAdmin(ReadOnlyAdmin):
    list_display = ("name", "status", "triggered_by", "started_at", "finished_at", "total_remote",
                    "last_error")


@admin.register(StaffScope)
class StaffScopeAdmin(ReadOnlyAdmin):
    """Scopes are set on the dashboard's Staff page, where every change is audited."""

    list_display = ("user", "all_endpoints", "sub_accounts", "changed_at")
    search_fields = ("user__username",)


@admin.register(SubAccount)
class SubAccountAdmin(ReadOnlyAdmin):
    list_display = ("sub_account", "name")
    search_fields = ("sub_account", "name")
