"""Sync Vobiz applications and endpoints into the local cache, once or as a worker."""

import signal
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from endpoints import sync
from endpoints.vobiz import VobizError


class Command(BaseCommand):
    help = "Sync applications and endpoints from Vobiz into the local cache."

    def add_arguments(self, parser):
        parser.add_argument(
            "--every",
            type=float,
            metavar="SECONDS",
            help="Keep running as a worker, starting a sync every SECONDS.",
        )
        parser.add_argument(
            "--iterations", type=int, default=None, help="With --every: stop after N syncs."
        )
        parser.add_argument(
            "--concurrency", type=int, default=None, help="Pages fetched at once (default 4)."
        )

    def handle(self, *args, every=None, iterations=None, concurrency=None, **options):
        if every is not None and every <= 0:
            raise CommandError("--every must be a positive number of seconds.")
        if every is None:
            failure = self._sync_once(concurrency)
            if failure:
                raise CommandError(failure)
            return
        stop = {"now": False}

        def request_stop(signum, frame):
            stop["now"] = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        self.stdout.write(f"Sync worker: every {every:g} s. Ctrl-C or SIGTERM stops it.")
        runs = 0
        while not stop["now"] and (iterations is None or runs < iterations):
            started = time.monotonic()
            close_old_connections()
            self._sync_once(concurrency)
            runs += 1
            if iterations is not None and runs >= iterations:
                break
            while not stop["now"] and time.monotonic() - started < every:
                time.sleep(0.2)
        self.stdout.write("Sync worker stopped.")

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
