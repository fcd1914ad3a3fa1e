"""The background work, as tasks of Django's task framework (the django-tasks backport:
``django.tasks`` in Django 6). Any backend runs them: django-tasks-db (``manage.py
db_worker``) by default; nothing here depends on which.

A task takes ids and plain values and calls a service; the services enqueue. Each task is
safe to run twice or after a crash: the rows it works from (sync state, job items,
schedules) say what is left to do.
"""

from django_tasks import task


@task()
def run_sync(triggered_by: str = "") -> None:
    """Sync applications and endpoints into the cache (the sync lock keeps it to one)."""
    from . import sync

    sync.sync_run(triggered_by=triggered_by)


@task()
def run_job(job_id: int) -> None:
    """Run (or carry on with) a bulk job."""
    from . import jobs

    jobs.job_execute(job_id=job_id)


@task()
def periodic_tick(token: str) -> None:
    """The periodic chain: the next tick, the watchdog, expired passwords, a due sync."""
    from . import periodic

    periodic.tick(token=token)


@task()
def prune_history() -> None:
    """Forget registration history older than REGISTRATION_HISTORY_DAYS."""
    from . import history

    history.history_prune()
