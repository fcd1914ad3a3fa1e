"""``manage.py runsandbox [ADDR:PORT]``: serve the Vobiz API sandbox until Ctrl-C or SIGTERM.

Development and tests only: it refuses to run unless Django's DEBUG is on, and it never prints
the auth token it accepts in full.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from vobizadmin.sandbox.errors import ApiError
from vobizadmin.sandbox.server import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxServer
from vobizadmin.sandbox.state import CONFIG_CHOICES, CONFIG_RANGES, DEFAULT_CONFIG

DEFAULT_ADDR = "127.0.0.1"
DEFAULT_PORT = 8765
ADDRPORT_RE = re.compile(r"(?:(?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[^:\[\]]+)):)?(?P<port>\d+)")


def mask_token(token: str) -> str:
    """The token as the startup line shows it: its first 3 characters and an ellipsis (only the
    ellipsis for a token shorter than 9 characters, where 3 would give too much away)."""
    return f"{token[:3]}…" if len(token) >= 9 else "…"


def parse_addrport(value: str | None) -> tuple[str, int]:
    """Split ``ADDR:PORT``, ``PORT`` or ``[IPv6]:PORT``. Raises CommandError when malformed."""
    if not value:
        return DEFAULT_ADDR, DEFAULT_PORT
    match = ADDRPORT_RE.fullmatch(value)
    if not match or not 0 <= int(match["port"]) <= 65535:
        raise CommandError(f"{value!r} is not a valid ADDR:PORT or PORT.")
    return match["ipv6"] or match["host"] or DEFAULT_ADDR, int(match["port"])


class Command(BaseCommand):
    help = (
        "Serve the Vobiz API sandbox (in-memory fake of the Endpoint/Application API) with "
        "loopback-only control routes under /_sandbox/."
    )
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "addrport", nargs="?", help="ADDR:PORT or PORT (default 127.0.0.1:8765)"
        )
        parser.add_argument("--endpoints", type=int, default=200, help="endpoints to seed")
        parser.add_argument("--applications", type=int, default=8, help="applications to seed")
        parser.add_argument("--seed", type=int, default=1, help="seed for the demo data")
        parser.add_argument(
            "--sub-accounts", type=int, default=0,
            help="sub-accounts sharing ~30%% of the endpoints (default: two or three)",
        )
        parser.add_argument(
            "--auth-id", default=None, help="default: $VOBIZ_AUTH_ID or " + DEFAULT_AUTH_ID
        )
        parser.add_argument(
            "--auth-token", default=None, help="default: $VOBIZ_AUTH_TOKEN or the demo token"
        )
        parser.add_argument("--hostile", action="store_true", help="also seed XSS payloads")
        parser.add_argument(
            "--no-username-suffix",
            action="store_true",
            help="store usernames as typed (the API normally appends a long numeric suffix)",
        )
        shape = parser.add_mutually_exclusive_group()
        shape.add_argument(
            "--application-object",
            action="store_true",
            help="render `application` as {app_id, app_name, answer_url, answer_method}",
        )
        shape.add_argument(
            "--application-empty-string",
            action="store_true",
            help='render a missing `application` as "" instead of null',
        )
        parser.add_argument(
            "--honour-application-on-update",
            action="store_true",
            help="let updates change the link through `application` (live API ignores it)",
        )
        parser.add_argument(
            "--error-envelope", choices=CONFIG_CHOICES["error_envelope"], default="flat"
        )
        parser.add_argument("--create-body", choices=CONFIG_CHOICES["create_body"], default="short")
        parser.add_argument("--update-body", choices=CONFIG_CHOICES["update_body"], default="empty")
        parser.add_argument(
            "--object-shape",
            choices=CONFIG_CHOICES["object_shape"],
            default="full",
            help="minimal: list and retrieve serve only the docs' eight-key endpoint object",
        )
        parser.add_argument(
            "--strict-types",
            action="store_true",
            help="refuse a string application id on create/update (the docs say integer)",
        )
        parser.add_argument(
            "--no-churn",
            action="store_true",
            help="keep seeded registrations fixed (by default devices come and go over the day: "
            "desk phones, office softphones, flappers, roaming mobiles)",
        )
        low, high = CONFIG_RANGES["max_limit"]
        parser.add_argument(
            "--max-limit",
            type=int,
            default=DEFAULT_CONFIG["max_limit"],
            help=f"serve at most this many objects a page ({low}-{high}; limit<=100 is accepted)",
        )

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "runsandbox serves a fake Vobiz API for development and tests only; it refuses "
                "to run with DEBUG off (set DJANGO_DEBUG=true).",
                returncode=2,
            )
        host, port = parse_addrport(options["addrport"])
        auth_id = options["auth_id"] or os.environ.get("VOBIZ_AUTH_ID") or DEFAULT_AUTH_ID
        auth_token = (
            options["auth_token"] or os.environ.get("VOBIZ_AUTH_TOKEN") or DEFAULT_AUTH_TOKEN
        )
        shape = "uri"
        if options["application_object"]:
            shape = "object"
        elif options["application_empty_string"]:
            shape = "empty"
        started = time.perf_counter()
        try:
            sandbox = SandboxServer(
                host=host,
                port=port,
                auth_id=auth_id,
                auth_token=auth_token,
                endpoints=options["endpoints"],
                applications=options["applications"],
                seed=options["seed"],
                hostile=options["hostile"],
                sub_accounts=options["sub_accounts"],
                username_suffix=not options["no_username_suffix"],
                application_shape=shape,
                honour_application_on_update=options["honour_application_on_update"],
                error_envelope=options["error_envelope"],
                create_body=options["create_body"],
                update_body=options["update_body"],
                object_shape=options["object_shape"],
                strict_types=options["strict_types"],
                max_limit=options["max_limit"],
                churn=not options["no_churn"],
                verbose=options["verbosity"] >= 2,
            )
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}:{port}: {exc}") from exc
        except ApiError as exc:  # out-of-range seed sizes or switch values
            raise CommandError(f"{exc.payload['error']}: {exc.payload.get('details')}") from exc
        seconds = time.perf_counter() - started

        stop = threading.Event()

        def request_stop(signum, frame) -> None:
            stop.set()

        # SIGTERM (docker stop, make's process group) must end the process as cleanly as Ctrl-C.
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        sandbox.start()
        summary = sandbox.state.summary()
        self.stdout.write(
            f"Vobiz sandbox: VOBIZ_API_URL={sandbox.api_url} VOBIZ_AUTH_ID={auth_id} "
            f"VOBIZ_AUTH_TOKEN={mask_token(auth_token)} ({summary['endpoints']} endpoints, "
            f"{summary['applications']} applications, seeded in {seconds:.2f}s; "
            f"device churn {'off' if options['no_churn'] else 'on'}; "
            f"control: {sandbox.base_url}/_sandbox/)"
        )
        self.stdout.flush()
        try:
            while not stop.wait(0.5):
                pass
        finally:
            sandbox.stop()
            self.stdout.write("Vobiz sandbox stopped.")
