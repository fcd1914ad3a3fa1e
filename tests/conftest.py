"""Shared fixtures: the Vobiz sandbox over real loopback HTTP, settings pointing at it,
users for each role, and Chromium for the browser tests."""

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import time_machine

from vobizadmin.sandbox.server import SandboxServer

SANDBOX_AUTH_ID = "MA_SANDBOX01"
SANDBOX_TOKEN = "sandbox-token"  # noqa: S105


class SandboxControl:
    """Drives the sandbox's /_sandbox/ control routes from tests."""

    def __init__(self, server: SandboxServer):
        self.server = server
        self.http = requests.Session()

    def _call(self, method, path, payload=None):
        response = self.http.request(method, f"{self.server.base_url}/_sandbox/{path}",
                                     json=payload, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self, endpoints=30, applications=4, seed=1, hostile=False, sub_accounts=0,
              **extra):
        return self._call("POST", "reset", {"endpoints": endpoints, "applications": applications,
                                            "seed": seed, "hostile": hostile,
                                            "sub_accounts": sub_accounts, **extra})

    def fault(self, **fault):
        return self._call("POST", "faults", fault)

    def clear_faults(self):
        return self._call("DELETE", "faults")

    def config(self, **variants):
        return self._call("POST", "config", variants)

    def register(self, endpoint_id, **device):
        return self._call("POST", f"registrations/{endpoint_id}", device)

    def unregister(self, endpoint_id):
        return self._call("DELETE", f"registrations/{endpoint_id}")

    def plant(self, record):
        return self._call("POST", "endpoints", record)

    def stats(self):
        return self._call("GET", "stats")

    def reset_stats(self):
        return self._call("DELETE", "stats")

    def current_config(self):
        return self._call("GET", "config")

    def request(self, method, path, **kwargs):
        """A raw control-route request, answer unchecked (for the routes' own guards)."""
        kwargs.setdefault("timeout", 10)
        return self.http.request(method, f"{self.server.base_url}/_sandbox/{path}", **kwargs)

    def api(self, method, path, **kwargs):
        """A raw API call as Vobiz's own clients would make it (for checking state)."""
        url = f"{self.server.api_url}/Account/{SANDBOX_AUTH_ID}/{path.lstrip('/')}"
        headers = {"X-Auth-ID": SANDBOX_AUTH_ID, "X-Auth-Token": SANDBOX_TOKEN}
        return self.http.request(method, url, headers=headers, timeout=10, **kwargs)


DEFAULT_VARIANTS = {
    "username_suffix": True,
    "application_shape": "uri",
    "honour_application_on_update": False,
    "error_envelope": "flat",
    "create_body": "short",
    "update_body": "empty",
    "object_shape": "full",
    "strict_types": False,
    "max_limit": 100,
    "ignore_on_create": [],
    "churn": False,
}


FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing(django_test_environment):
    """Users are created and logged in hundreds of times: hash their passwords with MD5
    instead of PBKDF2 (~0.4 s a hash on the CI machine). Production keeps Django's default,
    and tests/test_security.py checks that one login on the real hasher still works."""
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=FAST_HASHERS):
        yield


# Production's cache is shared by every process (Redis, or Django's database cache by default;
# vobizadmin/settings.py). The suite uses a process-local one: one process runs the tests, and
# the query-count tests count only the SQL of the code under test. tests/test_login_throttle.py
# runs the throttle on the database cache as well.
TEST_CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture(scope="session", autouse=True)
def _process_local_cache(django_test_environment):
    from django.test.utils import override_settings

    with override_settings(CACHES=TEST_CACHES):
        yield


@pytest.fixture(autouse=True)
def retry_waits(monkeypatch):
    """The Vobiz client's waits between retries, recorded instead of slept: a retry test
    counts attempts (at the sandbox) and waits (here) without spending them."""
    from endpoints import vobiz

    waits: list[float] = []
    monkeypatch.setattr(vobiz, "retry_pause", waits.append)
    return waits


@pytest.fixture
def enqueued_tasks():
    """The names of the tasks enqueued during the test, in order (the task framework's own
    task_enqueued signal; with the suite's immediate backend each has also run)."""
    from django_tasks.signals import task_enqueued

    names: list[str] = []

    def record(sender, task_result, **kwargs):
        names.append(task_result.task.name)

    task_enqueued.connect(record)
    yield names
    task_enqueued.disconnect(record)


# When the tests that take the ``clock`` fixture run: a fixed instant, not the machine's.
CLOCK_START = datetime(2026, 12, 3, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    """Time that stands still until the test moves it (``clock.shift(seconds)``).

    time-machine patches the clock process-wide: ``timezone.now()``, ``time.time()`` (the
    local-memory cache's expiry), and the sandbox's own clock all read it, so a count window,
    a registration's expiry or a session's age never depends on how fast the machine runs.
    Timeouts (``time.monotonic``) still run on real time."""
    with time_machine.travel(CLOCK_START, tick=False) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def _fresh_django_cache():
    """Each test starts with an empty Django cache: login-failure counters (per username and
    per address, and every test client comes from 127.0.0.1) must not leak between tests."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def sandbox_server():
    server = SandboxServer(host="127.0.0.1", port=0, auth_id=SANDBOX_AUTH_ID,
                           auth_token=SANDBOX_TOKEN, endpoints=0, applications=0, seed=1)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server, settings):
    """A freshly seeded sandbox (30 endpoints, 4 applications) with default variants and no
    faults, and Django settings pointing the dashboard at it with short timeouts."""
    control = SandboxControl(sandbox_server)
    control.clear_faults()
    control.config(**DEFAULT_VARIANTS)
    control.reset()
    control.reset_stats()
    settings.VOBIZ_API_URL = sandbox_server.api_url
    settings.VOBIZ_AUTH_ID = SANDBOX_AUTH_ID
    settings.VOBIZ_AUTH_TOKEN = SANDBOX_TOKEN
    settings.VOBIZ_CONNECT_TIMEOUT = 1.0
    settings.VOBIZ_READ_TIMEOUT = 1.0
    settings.VOBIZ_MAX_RETRIES = 2
    settings.VOBIZ_MAX_RETRY_WAIT = 2.0
    yield control
    control.clear_faults()


@pytest.fixture
def client_vobiz(sandbox):
    from endpoints import vobiz

    return vobiz.get_client()


def _make_user(django_user_model, username, group=None, **extra):
    from django.contrib.auth.models import Group

    from endpoints import roles

    roles.ensure_roles()
    user = django_user_model.objects.create_user(username=username, password="pw-for-tests-1",
                                                 **extra)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def support_user(db, django_user_model):
    return _make_user(django_user_model, "sam", "Support")


@pytest.fixture
def admin_user_role(db, django_user_model):
    return _make_user(django_user_model, "ada", "Endpoint admin")


@pytest.fixture
def superuser(db, django_user_model):
    return _make_user(django_user_model, "root", is_superuser=True, is_staff=True)


@pytest.fixture
def synced(sandbox, db):
    """The cache filled by one real sync from the sandbox."""
    from endpoints import sync

    return sync.endpoint_sync_all(triggered_by="tests")


# --- task workers -------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


def database_url() -> str:
    """The test database, as a DATABASE_URL for another process."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:"
            f"{db.get('PORT') or 5432}/{db['NAME']}")


class Workers:
    """Starts and stops `manage.py db_worker` processes pointed at this test's database and
    sandbox."""

    def __init__(self, sandbox, log_dir: Path):
        self.procs: list[subprocess.Popen] = []
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "TASKS_BACKEND": "database",
            "VOBIZ_API_URL": sandbox.server.api_url,
            "VOBIZ_AUTH_ID": "MA_SANDBOX01",
            "VOBIZ_AUTH_TOKEN": "sandbox-token",
            "VOBIZ_READ_TIMEOUT": "5",
            "VOBIZ_MAX_RETRY_WAIT": "2",
            "JOB_CONCURRENCY": "4",
            "JOB_STALE_SECONDS": "2",
            "PERIODIC_TICK_SECONDS": "1",
            "VOBIZ_SYNC_INTERVAL": "3600",
        }

    def start(self) -> subprocess.Popen:
        # Logs go to a file: a pipe nobody reads fills up and blocks the worker's logging.
        log = open(self.log_dir / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", "db_worker", "--interval", "0.1",
             "--no-startup-delay"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        return proc

    def kill(self, proc, sig=signal.SIGKILL) -> None:
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def output(self) -> str:
        """Everything the workers logged."""
        return "\n".join(p.read_text(errors="replace")
                         for p in sorted(self.log_dir.glob("worker-*.log")))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def workers(sandbox, settings, tmp_path):
    settings.TASKS = DB_TASKS  # what the dashboard enqueues goes to the database queue
    settings.JOB_CONCURRENCY = 4
    pool = Workers(sandbox, tmp_path)
    yield pool
    pool.stop()


# --- browser ------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }
