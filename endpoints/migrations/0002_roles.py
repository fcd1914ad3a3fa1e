"""Create the two roles as groups with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

SUPPORT = [
    "view_endpoint",
    "change_endpoint",
    "reset_endpoint_password",
    "manage_endpoint_application",
    "view_auditevent",
    "view_application",
]
ADMIN = [*SUPPORT, "add_endpoint", "delete_endpoint", "run_sync"]


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrations; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in (("Support", SUPPORT), ("Endpoint admin", ADMIN)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="endpoints", codename__in=codenames)
        )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Support", "Endpoint admin"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("endpoints", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
