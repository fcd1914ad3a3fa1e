"""Load test: logged-in users browse, filter and edit while syncs run (``make loadtest``).

Eight virtual users (half Endpoint admins, half Support), each a thread with its own HTTP
session, log in through the real login form of a live server and then browse the list (whole
pages and htmx fragments with random filters, sorts and pages), open endpoint pages (one live
Vobiz read each), save the alias of their own endpoint inline, and two admins now and then
press "Refresh from Vobiz". Meanwhile a thread runs full syncs back to back.

Afterwards: no answer >= 500 and no transport error, every alias save answered 200, no lost
update (Vobiz and the cache both hold each user's last saved alias, and the audit log holds
every save as an unbroken chain old -> new), no duplicate cache rows, and the cache equals
Vobiz endpoint for endpoint.

Bounded in count (USERS x REQUESTS_PER_USER) and in time (the load stops after LOAD_SECONDS
whatever happens). Loopback only: the live server and the sandbox listen on 127.0.0.1 and the
HTTP sessions ignore proxy settings. Prints a figures table (markdown) and records it in
load-results.json, one entry per database, so a SQLite run and a PostgreSQL run sit side by
side. Knobs: LOAD_USERS, LOAD_REQUESTS, LOAD_SECONDS, LOAD_ENDPOINTS, LOAD_RESULTS.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import statistics
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Count

from endpoints import filters, roles, selectors, sync
from endpoints.models import Application, AuditEvent, Endpoint

USERS = int(os.environ.get("LOAD_USERS", "8"))
REQUESTS_PER_USER = int(os.environ.get("LOAD_REQUESTS", "60"))
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "45"))
ENDPOINTS = int(os.environ.get("LOAD_ENDPOINTS", "2000"))
APPLICATIONS = 8
RESULTS_FILE = Path(os.environ.get("LOAD_RESULTS", "load-results.json"))
PASSWORD = "pw-for-tests-1"
HTTP_TIMEOUT = 30  # seconds; a slower answer is a transport error
SYNC_POSTERS = 2  # users 0 and 1 (admins) sometimes press "Refresh from Vobiz"
SYNC_PAUSE = 0.25  # seconds between the loop's syncs, so a press now and then starts one

# Action -> weight in a user's random mix (sync only for SYNC_POSTERS).
MIX = {"list_page": 25, "list_fragment": 35, "endpoint_page": 15, "alias_save": 20, "sync": 5}
KINDS = ["login_page", "login", *MIX, "read_own_write"]


@dataclass
class Sample:
    kind: str
    status: int | None  # None: transport error (no HTTP answer)
    ms: float
    expected: int
    note: str = ""


@dataclass
class VirtualUser:
    index: int
    username: str
    base: str
    endpoint_id: str  # the endpoint this user owns (and alone edits)
    saved: str  # the last alias this user saved (initially what the cache showed)
    all_ids: list[str]
    app_ids: list[str]
    deadline: float
    can_sync: bool
    samples: list[Sample] = field(default_factory=list)
    alias_posts: int = 0
    alias_failures: list[str] = field(default_factory=list)
    stale_reads: list[str] = field(default_factory=list)
    syncs_started: int = 0
    logged_in: bool = False
    crash: str = ""

    def __post_init__(self):
        self.rng = random.Random(1000 + self.index)  # noqa: S311 - a reproducible mix
        self.http = requests.Session()
        self.http.trust_env = False  # never through a proxy: loopback only

    # --- plumbing ----------------------------------------------------------------------

    def call(self, kind, method, path, *, expected=200, **kwargs):
        start = time.perf_counter()
        try:
            response = self.http.request(method, self.base + path, timeout=HTTP_TIMEOUT,
                                         allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            self.samples.append(Sample(kind, None, (time.perf_counter() - start) * 1000,
                                       expected, f"{method} {path}: {exc!r}"))
            return None
        ms = (time.perf_counter() - start) * 1000
        # The settings under test are production's: Secure session and CSRF cookies. Browsers
        # send those to http://127.0.0.1 (loopback is a secure context); requests would not.
        for cookie in self.http.cookies:
            cookie.secure = False
        note = "" if response.status_code == expected else (
            f"{method} {path} -> {response.status_code}: {response.text[:400]}")
        self.samples.append(Sample(kind, response.status_code, ms, expected, note))
        return response

    def htmx_headers(self, **extra):
        return {"HX-Request": "true", "HX-Current-URL": f"{self.base}/",
                "X-CSRFToken": self.http.cookies.get("csrftoken", ""), **extra}

    # --- actions -----------------------------------------------------------------------

    def login(self) -> bool:
        page = self.call("login_page", "GET", "/accounts/login/")
        if page is None or page.status_code != 200:
            return False
        answer = self.call("login", "POST", "/accounts/login/", expected=302, data={
            "csrfmiddlewaretoken": self.http.cookies.get("csrftoken", ""),
            "username": self.username, "password": PASSWORD, "next": "",
        })
        return answer is not None and answer.status_code == 302 and "sessionid" in self.http.cookies

    def random_query(self) -> str:
        rng = self.rng
        choices = {
            "q": ["", "a", "1", "desk", "load", "sip", "ZZ-nothing", "Load-u"],
            "match": [m for m, _ in filters.MATCH_CHOICES],
            "alias_match": [m for m, _ in filters.ALIAS_MATCH_CHOICES],
            "app": ["", selectors.APP_NONE, *self.app_ids],
            "sub": ["", selectors.SUB_MAIN],
            "status": [s for s, _ in filters.STATUS_CHOICES],
            "sort": [f"{d}{k}" for k in selectors.ENDPOINT_SORTS for d in ("", "-")],
            "per_page": [str(n) for n in filters.PAGE_SIZES],
            "page": ["1", "2", "3", "7", "40"],
        }
        params = {name: rng.choice(values) for name, values in choices.items()
                  if rng.random() < 0.4}
        return f"/?{urlencode(params)}" if params else "/"

    def list_page(self):
        self.call("list_page", "GET", self.random_query())

    def list_fragment(self):
        target = self.rng.choice(["results", "list-body"])
        self.call("list_fragment", "GET", self.random_query(),
                  headers=self.htmx_headers(**{"HX-Target": target}))

    def endpoint_page(self):
        endpoint_id = self.rng.choice(self.all_ids)
        self.call("endpoint_page", "GET", f"/endpoints/{endpoint_id}/")

    def alias_save(self):
        self.alias_posts += 1
        alias = f"Load-u{self.index}-{self.alias_posts}"
        response = self.call(
            "alias_save", "POST", f"/endpoints/{self.endpoint_id}/alias/",
            data={"alias": alias, "seen_alias": self.saved, "next": "/"},
            headers=self.htmx_headers(),
        )
        if response is not None and response.status_code == 200 and alias in response.text:
            self.saved = alias
            self.read_own_write(alias)
        else:
            status = response.status_code if response is not None else "no answer"
            body = response.text[:600] if response is not None else ""
            self.alias_failures.append(f"{self.username} {alias!r}: {status} {body}")

    def read_own_write(self, alias):
        """Right after a save, the list searched for the new alias shows the row: a sync
        that fetched its page before the save must not put the old alias back."""
        query = urlencode({"q": alias, "match": "exact", "alias_match": "exact"})
        response = self.call("read_own_write", "GET", f"/?{query}",
                             headers=self.htmx_headers(**{"HX-Target": "results"}))
        if response is not None and response.status_code == 200 and (
                f"/endpoints/{self.endpoint_id}/" not in response.text):
            self.stale_reads.append(f"{self.username}: {alias!r} not in the list right after "
                                    "saving it")

    def sync(self):
        response = self.call("sync", "POST", "/sync/", data={"next": "/"},
                             headers=self.htmx_headers(**{"HX-Target": "sync-state"}))
        if response is not None and "Sync with Vobiz started" in response.text:
            self.syncs_started += 1

    # --- the loop ----------------------------------------------------------------------

    def run(self):
        try:
            self.logged_in = self.login()
            if not self.logged_in:
                return
            kinds = [k for k in MIX if k != "sync" or self.can_sync]
            weights = [MIX[k] for k in kinds]
            for _ in range(REQUESTS_PER_USER):
                if time.monotonic() >= self.deadline:
                    break
                getattr(self, self.rng.choices(kinds, weights)[0])()
        except Exception:
            self.crash = traceback.format_exc()
        finally:
            self.http.close()


class SyncLoop(threading.Thread):
    """Full syncs back to back until stopped (a sync started from the UI may hold the lock:
    then wait a moment and try again)."""

    def __init__(self):
        super().__init__(name="load-sync-loop", daemon=True)
        self.stop = threading.Event()
        self.durations: list[float] = []
        self.busy = 0
        self.failures: list[str] = []

    def run(self):
        try:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    sync.endpoint_sync_all(triggered_by="loadtest")
                except sync.SyncAlreadyRunning:
                    self.busy += 1
                    self.stop.wait(0.2)
                    continue
                except Exception:
                    self.failures.append(traceback.format_exc())
                    self.stop.wait(0.2)
                    continue
                self.durations.append(time.perf_counter() - start)
                self.stop.wait(SYNC_PAUSE)
        finally:
            connection.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else 0.0


def _remote_endpoints(sandbox) -> dict[str, str]:
    """Every endpoint at Vobiz: id -> alias (paged like Vobiz's own clients)."""
    aliases, offset = {}, 0
    while True:
        page = sandbox.api("GET", "Endpoint/", params={"limit": 100, "offset": offset}).json()
        for record in page["objects"]:
            aliases[str(record["endpoint_id"])] = record.get("alias") or ""
        offset += 100
        if offset >= page["meta"]["total_count"]:
            return aliases


def _make_users() -> list:
    roles.ensure_roles()
    admin_group = Group.objects.get(name=roles.ENDPOINT_ADMIN)
    support_group = Group.objects.get(name=roles.SUPPORT)
    hashed = make_password(PASSWORD)  # hashed once; every login still checks it for real
    users = []
    for index in range(USERS):
        user = get_user_model().objects.create(username=f"load{index}", password=hashed)
        user.groups.add(admin_group if index < max(SYNC_POSTERS, USERS // 2) else support_group)
        users.append(user)
    return users


def _figures(vendor, users, loop, elapsed, started_from_ui, checks) -> dict:
    samples = [s for u in users for s in u.samples]
    actions = {}
    for kind in KINDS:
        mine = [s for s in samples if s.kind == kind]
        if not mine:
            continue
        times = [s.ms for s in mine]
        actions[kind] = {
            "requests": len(mine),
            "errors": sum(1 for s in mine if s.status is None or s.status >= 500),
            "unexpected": sum(1 for s in mine if s.status != s.expected),
            "p50_ms": round(percentile(times, 0.50), 1),
            "p95_ms": round(percentile(times, 0.95), 1),
            "max_ms": round(max(times), 1),
        }
    return {
        "database": vendor,
        "users": USERS,
        "requests_per_user": REQUESTS_PER_USER,
        "endpoints": ENDPOINTS,
        "duration_s": round(elapsed, 1),
        "requests": len(samples),
        "errors": sum(a["errors"] for a in actions.values()),
        "unexpected": sum(a["unexpected"] for a in actions.values()),
        "req_per_s": round(len(samples) / elapsed, 1) if elapsed else 0.0,
        "actions": actions,
        "syncs": {
            "completed_by_loop": len(loop.durations),
            "started_from_ui": started_from_ui,
            "failed": len(loop.failures),
            "lock_busy_retries": loop.busy,
            "median_s": round(statistics.median(loop.durations), 2) if loop.durations else None,
        },
        "checks": checks,
    }


def _table(fig: dict) -> str:
    lines = [
        f"**{fig['database']}**: {fig['users']} users x {fig['requests_per_user']} requests, "
        f"{fig['endpoints']:,} endpoints, {fig['duration_s']} s: {fig['requests']} requests, "
        f"{fig['errors']} errors, {fig['req_per_s']} req/s; syncs during the load: "
        f"{fig['syncs']['completed_by_loop']} completed back to back "
        f"(median {fig['syncs']['median_s']} s) + {fig['syncs']['started_from_ui']} started "
        f"from the UI ({fig['syncs']['lock_busy_retries']} times the loop found one running), "
        f"{fig['syncs']['failed']} failed",
        "",
        "| Action | Requests | Errors | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, a in fig["actions"].items():
        lines.append(f"| {kind} | {a['requests']} | {a['errors']} | {a['p50_ms']} | "
                     f"{a['p95_ms']} | {a['max_ms']} |")
    lines += ["", "| Check | Result |", "|---|---|"]
    for name, ok in fig["checks"].items():
        lines.append(f"| {name} | {'pass' if ok else 'FAIL'} |")
    return "\n".join(lines)


def _record(fig: dict) -> None:
    try:
        results = json.loads(RESULTS_FILE.read_text())
    except (OSError, ValueError):
        results = {}
    results[fig["database"]] = fig
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")


def test_users_browse_filter_and_edit_while_syncs_run(live_server, sandbox, transactional_db,
                                                      caplog):
    caplog.set_level(logging.WARNING, logger="endpoints.vobiz")  # one line per API call
    host = urlsplit(live_server.url)
    assert host.hostname in ("localhost", "127.0.0.1")  # Django's live server binds IPv4
    base = f"http://127.0.0.1:{host.port}"
    assert urlsplit(sandbox.server.api_url).hostname == "127.0.0.1"
    sandbox.reset(endpoints=ENDPOINTS, applications=APPLICATIONS)
    sync.endpoint_sync_all(triggered_by="loadtest-setup")
    assert Endpoint.objects.count() == ENDPOINTS

    all_ids = list(Endpoint.objects.order_by("username").values_list("endpoint_id", flat=True))
    owned = all_ids[:: len(all_ids) // USERS][:USERS]
    start_alias = dict(Endpoint.objects.filter(endpoint_id__in=owned)
                       .values_list("endpoint_id", "alias"))
    app_ids = list(Application.objects.values_list("app_id", flat=True))
    accounts = _make_users()
    audit_before = AuditEvent.objects.count()

    deadline = time.monotonic() + LOAD_SECONDS
    users = [
        VirtualUser(index=i, username=accounts[i].username, base=base, endpoint_id=owned[i],
                    saved=start_alias[owned[i]], all_ids=all_ids, app_ids=app_ids,
                    deadline=deadline, can_sync=i < SYNC_POSTERS)
        for i in range(USERS)
    ]
    loop = SyncLoop()
    threads = [threading.Thread(target=u.run, name=f"load-user-{u.index}", daemon=True)
               for u in users]
    started = time.perf_counter()
    loop.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic()) + HTTP_TIMEOUT + 5)
    elapsed = time.perf_counter() - started
    loop.stop.set()
    loop.join(timeout=120)
    for thread in threading.enumerate():  # syncs started from the UI
        if thread.name == "vobiz-sync":
            thread.join(timeout=120)
    hung = [t.name for t in [*threads, loop] if t.is_alive()]

    # A last sync, then everything must agree.
    sync.endpoint_sync_all(triggered_by="loadtest-final")
    remote = _remote_endpoints(sandbox)
    cache = dict(Endpoint.objects.values_list("endpoint_id", "alias"))
    duplicates = list(Endpoint.objects.values("endpoint_id").annotate(n=Count("id"))
                      .filter(n__gt=1))
    edits = AuditEvent.objects.filter(action="update", endpoint_id__in=owned).order_by("id")
    broken_chains = []
    for user in users:
        chain = [e.changes.get("alias") for e in edits if e.endpoint_id == user.endpoint_id]
        expected = [[f"Load-u{user.index}-{n - 1}" if n > 1 else start_alias[user.endpoint_id],
                     f"Load-u{user.index}-{n}"] for n in range(1, user.alias_posts + 1)]
        if chain != expected:
            broken_chains.append((user.username, chain, expected))
    samples = [s for u in users for s in u.samples]
    failures = [s.note for s in samples if s.status is None or s.status >= 500]
    unexpected = [s.note for s in samples if s.status != s.expected]
    lost = {u.username: {"saved": u.saved, "vobiz": remote.get(u.endpoint_id),
                         "cache": cache.get(u.endpoint_id)}
            for u in users
            if not u.saved == remote.get(u.endpoint_id) == cache.get(u.endpoint_id)}
    alias_posts = sum(u.alias_posts for u in users)
    # Django logs a 500 as an error; a sync started from the UI logs its failure or crash.
    logged = [f"{r.name}: {r.getMessage()}" for r in caplog.records
              if r.levelno >= logging.ERROR
              or (r.name == "endpoints.views.browse" and "already running" not in r.getMessage())]
    checks = {
        "no answer >= 500, no transport error": not failures,
        "every answer as expected (200; login 302)": not unexpected,
        "every user logged in and finished": all(u.logged_in and not u.crash for u in users)
        and not hung,
        "every alias save answered 200 with the new alias": not any(u.alias_failures
                                                                    for u in users),
        "each save shown by the list at once": not any(u.stale_reads for u in users),
        "no lost update (Vobiz = cache = last saved)": not lost,
        "audit: one done event per save, chained old -> new": not broken_chains
        and edits.count() == alias_posts
        and not edits.exclude(outcome=AuditEvent.Outcome.DONE).exists()
        and AuditEvent.objects.count() - audit_before == alias_posts,
        "no duplicate cache rows": not duplicates,
        "cache = Vobiz (ids and aliases)": cache == remote and len(cache) == ENDPOINTS,
        "syncs ran during the load, none failed": bool(loop.durations) and not loop.failures,
        "nothing logged as an error (incl. syncs started from the UI)": not logged,
    }
    fig = _figures(connection.vendor, users, loop, elapsed,
                   sum(u.syncs_started for u in users), checks)
    _record(fig)
    print("\n" + _table(fig))

    details = {
        "failures": failures[:5], "unexpected": unexpected[:5], "hung": hung,
        "crashes": [u.crash for u in users if u.crash],
        "alias failures": [f for u in users for f in u.alias_failures][:5],
        "stale reads": [f for u in users for f in u.stale_reads][:5],
        "lost": lost, "broken chains": broken_chains[:2], "duplicates": duplicates[:5],
        "cache only": sorted(set(cache) - set(remote))[:5],
        "vobiz only": sorted(set(remote) - set(cache))[:5],
        "alias differs": [(k, cache[k], remote[k]) for k in cache
                          if k in remote and cache[k] != remote[k]][:5],
        "sync failures": loop.failures[:2],
        "logged": logged[:5],
    }
    assert all(checks.values()), json.dumps(
        {"failed checks": [k for k, ok in checks.items() if not ok], **details}, indent=2,
        default=str)
    assert all(u.alias_posts for u in users), "every user should have saved an alias"
