"""Start the periodic chain (syncs, the job watchdog, password expiry); run it when a worker
starts. Running it again retires the previous chain."""

from django.core.management.base import BaseCommand

from endpoints import periodic


class Command(BaseCommand):
    help = "Start the periodic task chain that keeps syncs and jobs going (retires any older)."

    def handle(self, *args, **options):
        periodic.schedule_start()
        self.stdout.write(f"Periodic tasks scheduled: a tick every "
                          f"{periodic.tick_seconds():g} s.")
