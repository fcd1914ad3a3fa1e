"""The two roles, as Django groups with permissions (created by a migration).

Support: view, edit alias/permissions, reset passwords, attach/detach applications.
Endpoint admin: all of that plus create, delete, start a sync, and set staff scopes.
Superusers: everything. What a role may do, it may do only within the user's sub-account
scope (``endpoints.scopes``).
Views check these permissions on the server; templates read ``can`` to hide what a role
cannot do.
"""

SUPPORT = "Support"
ENDPOINT_ADMIN = "Endpoint admin"

VIEW = "endpoints.view_endpoint"
EDIT = "endpoints.change_endpoint"
RESET_PASSWORD = "endpoints.reset_endpoint_password"
MANAGE_APPLICATION = "endpoints.manage_endpoint_application"
CREATE = "endpoints.add_endpoint"
DELETE = "endpoints.delete_endpoint"
SYNC = "endpoints.run_sync"
MANAGE_STAFF = "endpoints.manage_staff"
VIEW_AUDIT = "endpoints.view_auditevent"

SUPPORT_PERMISSIONS = [VIEW, EDIT, RESET_PASSWORD, MANAGE_APPLICATION, VIEW_AUDIT,
                       "endpoints.view_application"]
ADMIN_PERMISSIONS = [*SUPPORT_PERMISSIONS, CREATE, DELETE, SYNC, MANAGE_STAFF]


def role_name(user) -> str:
    """The role a user's permissions amount to (read from the permissions Django already
    loaded for the request's checks: no query of its own)."""
    if user.is_superuser:
        return "Superuser"
    granted = user.get_all_permissions()
    if set(ADMIN_PERMISSIONS) <= granted:
        return ENDPOINT_ADMIN
    if set(SUPPORT_PERMISSIONS) <= granted:
        return SUPPORT
    return "No role"


def capabilities(user) -> dict[str, bool]:
    return {
        "view": user.has_perm(VIEW),
        "edit": user.has_perm(EDIT),
        "reset_password": user.has_perm(RESET_PASSWORD),
        "manage_application": user.has_perm(MANAGE_APPLICATION),
        "create": user.has_perm(CREATE),
        "delete": user.has_perm(DELETE),
        "sync": user.has_perm(SYNC),
        "audit": user.has_perm(VIEW_AUDIT),
        "staff": user.has_perm(MANAGE_STAFF),
    }


def ensure_roles() -> None:
    """Create or repair the two groups (the migration does this once; tests that flush the
    database call it again)."""
    from django.contrib.auth.models import Group, Permission

    for name, perms in ((SUPPORT, SUPPORT_PERMISSIONS), (ENDPOINT_ADMIN, ADMIN_PERMISSIONS)):
        group, _ = Group.objects.get_or_create(name=name)
        codenames = [p.split(".", 1)[1] for p in perms]
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="endpoints", codename__in=codenames)
        )
