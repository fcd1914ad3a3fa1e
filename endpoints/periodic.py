"""Work that repeats, kept alive by the workers themselves: each tick enqueues the next one
(``run_after``), then hands dead jobs to a live worker, wipes bulk-reset passwords whose
hand-over window passed, and queues a sync when the last one is older than the interval.

Also: expired view-once links' passwords wiped, import previews nobody ran forgotten, and
once an hour the prune of registration history older than REGISTRATION_HISTORY_DAYS queued.
``schedule_start`` (``manage.py start_periodic``, run when a worker starts) begins a new
chain and retires any older one: a tick whose token is not the Schedule row's ends at once,
so two workers starting at the same time still tick once.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from . import history, jobs, links, sync
from .models import Schedule

logger = logging.getLogger(__name__)

TICK = "tick"


def tick_seconds() -> float:
    return float(getattr(settings, "PERIODIC_TICK_SECONDS", 15))


def schedule_start() -> str:
    """Start a new tick chain (retiring any other) and run its first tick now."""
    from .tasks import periodic_tick

    token = secrets.token_hex(8)
    Schedule.objects.update_or_create(name=TICK, defaults={"token": token,
                                                           "next_run_at": timezone.now()})
    periodic_tick.enqueue(token)
    return token


def _enqueue_next(token: str) -> None:
    from .tasks import periodic_tick

    if not periodic_tick.get_backend().supports_defer:
        return  # a backend without run_after (the immediate one, in tests) has no chain
    when = timezone.now() + timedelta(seconds=tick_seconds())
    Schedule.objects.filter(name=TICK, token=token).update(next_run_at=when)
    periodic_tick.using(run_after=when).enqueue(token)


def tick(*, token: str) -> None:
    """One tick of the chain named by ``token`` (a retired chain's tick does nothing)."""
    if not Schedule.objects.filter(name=TICK, token=token).update(last_run_at=timezone.now()):
        return
    # The next tick first: if this worker dies during the work below, the chain lives on.
    _enqueue_next(token)
    resumed = jobs.job_watchdog()
    if resumed:
        logger.info("periodic: handed jobs %s to a live worker", resumed)
    jobs.credentials_expire()
    links.links_expire()
    jobs.drafts_forget()
    history.history_prune_enqueue_if_due()
    sync.sync_enqueue_if_due()
