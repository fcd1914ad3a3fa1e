"""The project's own app config: `migrate` also creates the database cache table, and a login
starts the session's idle and age clocks."""

from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


def create_cache_table(sender, using="default", verbosity=1, **kwargs):
    """After migrate, run ``createcachetable`` (a no-op when the table exists or when the cache
    is not Django's database cache), so every way of setting up a database (make run, the
    container, the bench, a fresh deploy) gets the cache table the settings default to."""
    if sender.label == "auth":  # post_migrate is sent once per app; act once per migrate
        call_command("createcachetable", database=using, verbosity=verbosity)


class VobizAdminConfig(AppConfig):
    name = "vobizadmin"
    verbose_name = "Vobiz Endpoints Admin"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from endpoints.middleware import start_session_clock

        post_migrate.connect(create_cache_table, dispatch_uid="vobizadmin.create_cache_table")
        user_logged_in.connect(start_session_clock, dispatch_uid="vobizadmin.session_clock")
