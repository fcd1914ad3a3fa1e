"""Sync Vobiz applications and endpoints into the local cache, once, in this process.

The dashboard's own syncs (the periodic one and "Refresh from Vobiz") run on the task
workers (`manage.py db_worker`); this command is for a first fill and for scripts."""

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from endpoints import sync
from endpoints.vobiz import VobizError


class Command(BaseCommand):
    help = "Sync applications and endpoints from Vobiz into the local cache, once."

    def add_arguments(self, parser):
        parser.add_argument(
            "--concurrency", type=int, default=None, help="Pages fetched at once (default 4)."
        )

    def handle(self, *args, concurrency=None, **options):
        failure = self._sync_once(concurrency)
        if failure:
            raise CommandError(failure)

    def _sync_once(self, concurrency) -> str:
        """Run one sync; returns "" on success, else why it did not happen."""
        tty = self.stdout.isatty()

        def progress(pages, seen, total):
            if tty:
                sys.stdout.write(f"\rSyncing: page {pages}, {seen:,} of {total:,} endpoints")
                sys.stdout.flush()

        started = time.monotonic()
        try:
            result = sync.endpoint_sync_all(
                triggered_by="sync_endpoints", concurrency=concurrency, progress=progress
            )
        except sync.SyncAlreadyRunning:
            self.stderr.write("Another sync is running; not starting a second one.")
            return "Another sync is running."
        except VobizError as exc:
            if tty:
                self.stdout.write("")
            self.stderr.write(f"Sync failed: {exc.message} The previous cache was kept.")
            return "Sync failed; the previous cache was kept."
        if tty:
            self.stdout.write("")
        elapsed = time.monotonic() - started
        note = (" Deletions postponed: the walk did not add up."
                if result.deletions_postponed else "")
        self.stdout.write(
            self.style.SUCCESS(
                f"Synced {result.total_remote:,} endpoints and {result.applications} applications "
                f"in {elapsed:.1f} s ({result.pages} pages): {result.created} new, "
                f"{result.updated} changed, {result.unchanged} unchanged, {result.deleted} "
                f"deleted, {len(result.skipped)} skipped.{note}"
            )
        )
        return ""
