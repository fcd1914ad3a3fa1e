"""Registration history in ``make bench``: its cost to the sync, its storage, and the overview.

* The sync with history against the same sync with ``REGISTRATION_HISTORY=false`` (each a
  full sync into an empty cache, then a sync after 1% of the endpoints changed), and the
  history rows that second sync wrote against the registrations that really changed
  (``registration_key`` before and after: a changed key is a changed registration).
* 30 days of "typical churn" written straight into the database (see ``CHURN``), so that the
  list's Last seen sort and filters and the overview are measured on a lived-in account, and
  the bytes one change takes (table and indexes).
* The overview page and its JSON for 24 hours and 30 days, warm and with Django's cache
  cleared before each request.
"""

from __future__ import annotations

import random
import time
import zlib
from datetime import timedelta
from typing import Any

# Typical churn, per day, as a share of the endpoints registered now: softphones and phones
# switched off for the night (offline in the evening, back in the morning: 2 changes), a few
# flapping for an hour (3 drops and returns: 6 changes), and now and then a device moved or
# replaced (1 change).
CHURN = {"night_off": 0.20, "flapping": 0.01, "moved": 0.005}
CHURN_TEXT = ("each day, of the endpoints registered: 20% offline for the night and back in "
              "the morning, 1% flapping for an hour (3 drops), 0.5% registering another "
              "device or address")
HISTORY_DAYS = 30
TARGET_HISTORY_OVERHEAD = 1.10
TARGET_OVERVIEW_MS = 200.0
INSERT_BATCH = 20000


def registration_keys() -> dict[str, str]:
    from endpoints.models import Endpoint

    return dict(Endpoint.objects.values_list("endpoint_id", "registration_key")
                .iterator(chunk_size=10000))


def changed_registrations(before: dict[str, str], after: dict[str, str]) -> int:
    """Endpoints whose registration changed (or that came or went registered)."""
    from endpoints.history import OFFLINE_KEY

    changed = sum(1 for eid, key in after.items() if eid in before and before[eid] != key)
    # New endpoints seen registered, and registered ones that disappeared.
    changed += sum(1 for eid, key in after.items() if eid not in before and key != OFFLINE_KEY)
    changed += sum(1 for eid, key in before.items() if eid not in after and key != OFFLINE_KEY)
    return changed


def history_rows() -> int:
    from endpoints.models import RegistrationEvent

    return RegistrationEvent.objects.count()


def _share(endpoint_id: str) -> float:
    return zlib.crc32(endpoint_id.encode()) % 100_000 / 100_000


def _events(endpoints, now, rng: random.Random):
    """Yield (endpoint_id, sub_account, at, kind, contact, user_agent, received) for
    HISTORY_DAYS of CHURN, oldest day first, never after ``now``."""
    night, flap, moved = CHURN["night_off"], CHURN["flapping"], CHURN["moved"]
    start = (now - timedelta(days=HISTORY_DAYS)).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
    for day in range(HISTORY_DAYS + 1):
        midnight = start + timedelta(days=day)
        for endpoint_id, sub_account, registered, contact, agent in endpoints:
            share = _share(endpoint_id)
            if share < night and registered:
                off = midnight + timedelta(hours=18, minutes=rng.randrange(180))
                on = off + timedelta(hours=12, minutes=rng.randrange(120))
                if on < now:
                    yield endpoint_id, sub_account, off, 2, "", "", ""
                    yield endpoint_id, sub_account, on, 1, contact, agent, ""
            elif share < night + flap and registered:
                at = midnight + timedelta(hours=rng.randrange(8, 18), minutes=rng.randrange(60))
                if at + timedelta(hours=1) < now:
                    for _ in range(3):
                        yield endpoint_id, sub_account, at, 2, "", "", ""
                        at += timedelta(minutes=rng.randrange(2, 15))
                        yield endpoint_id, sub_account, at, 1, contact, agent, ""
                        at += timedelta(minutes=rng.randrange(2, 10))
            elif share < night + flap + moved and registered:
                at = midnight + timedelta(hours=rng.randrange(24), minutes=rng.randrange(60))
                if at < now:
                    host = f"198.51.100.{rng.randrange(2, 250)}"
                    yield (endpoint_id, sub_account, at, 4, f"sip:{endpoint_id}@{host}:5060",
                           agent, f"{host}:5060")


def _storage_bytes() -> int:
    """What the history table and its indexes take on disk now."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_total_relation_size('endpoints_registrationevent')")
            return int(cursor.fetchone()[0])
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute("PRAGMA freelist_count")
        free = cursor.fetchone()[0]
        cursor.execute("PRAGMA page_size")
        return (pages - free) * cursor.fetchone()[0]


def seed_history() -> dict[str, Any]:
    """HISTORY_DAYS of CHURN as history rows and hourly tallies, and the endpoints' Last seen
    columns set to match a lived-in account: what the list and the overview are measured on.
    Returns the rows written, the time it took and the bytes a change takes."""
    from django.db import connection, transaction
    from django.utils import timezone

    from endpoints.models import Endpoint, RegistrationEvent, RegistrationTally, SyncState

    started = time.perf_counter()
    now = timezone.now()
    rng = random.Random(14)
    endpoints = list(Endpoint.objects.order_by("id").values_list(
        "endpoint_id", "sub_account", "sip_registered", "sip_contact", "sip_user_agent"))
    before = _storage_bytes()
    ops = connection.ops
    adapt = ops.adapt_datetimefield_value
    table = ops.quote_name(RegistrationEvent._meta.db_table)
    sql = (f"INSERT INTO {table} (endpoint_id, sub_account, at, kind, contact, user_agent, "  # noqa: S608
           "received) VALUES (%s, %s, %s, %s, %s, %s, %s)")
    tallies: dict[tuple, list[int]] = {}
    rows = 0
    batch = []

    def flush():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, batch)
        batch.clear()

    last_drop: dict[str, Any] = {}
    for eid, sub, at, kind, contact, agent, received in _events(endpoints, now, rng):
        batch.append((eid, sub, adapt(at), kind, contact, agent, received))
        hour = at.replace(minute=0, second=0, microsecond=0)
        tally = tallies.setdefault((hour, sub), [0, 0])
        if kind == 1:
            tally[0] += 1
        elif kind == 2:
            tally[1] += 1
            last_drop[eid] = at
        rows += 1
        if len(batch) >= INSERT_BATCH:
            flush()
    if batch:
        flush()
    RegistrationTally.objects.bulk_create(
        [RegistrationTally(hour=hour, sub_account=sub, came_online=up, went_offline=down)
         for (hour, sub), (up, down) in tallies.items()],
        update_conflicts=True, unique_fields=["hour", "sub_account"],
        update_fields=["came_online", "went_offline"], batch_size=2000)
    # The endpoints as such a month leaves them: offline ones last seen up to 40 days ago
    # (a third never seen), registered ones online for up to a month, drops as written.
    updates = []
    for eid, _sub, registered, _contact, _agent in endpoints:
        if registered:
            since = now - timedelta(minutes=rng.randrange(1, HISTORY_DAYS * 1440))
            updates.append((adapt(since), None, adapt(last_drop.get(eid)), eid))
        else:
            seen = (None if rng.random() < 0.33
                    else now - timedelta(minutes=rng.randrange(1, 40 * 1440)))
            updates.append((None, adapt(seen), adapt(seen), eid))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {ops.quote_name(Endpoint._meta.db_table)} SET online_since = %s, "  # noqa: S608
            "last_seen_at = %s, last_drop_at = %s WHERE endpoint_id = %s", updates)
    SyncState.objects.filter(name="endpoints").update(
        history_since=now - timedelta(days=HISTORY_DAYS + 1))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE endpoints_registrationevent")
            cursor.execute("ANALYZE endpoints_registrationtally")
    after = _storage_bytes()
    return {"days": HISTORY_DAYS, "churn": CHURN_TEXT, "rows": rows,
            "tallies": len(tallies), "seconds": round(time.perf_counter() - started, 1),
            "bytes_per_change": round((after - before) / rows) if rows else None,
            "bytes_total": after - before}


def measure_overview(*, runs: int) -> dict[str, Any]:
    """The overview page and its JSON, for 24 hours and 30 days: medians warm (after one
    request) and with Django's cache cleared before each request."""
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    out = {}
    for label, url in (("page, 30 days", "/overview/?period=30d"),
                       ("JSON, 30 days", "/overview/registrations.json?period=30d"),
                       ("page, 24 hours", "/overview/?period=24h"),
                       ("JSON, 24 hours", "/overview/registrations.json?period=24h")):
        warm, cold = [], []
        status = client.get(url).status_code
        for _ in range(runs):
            started = time.perf_counter()
            client.get(url)
            warm.append((time.perf_counter() - started) * 1000)
        for _ in range(3):
            cache.clear()
            started = time.perf_counter()
            client.get(url)
            cold.append((time.perf_counter() - started) * 1000)
        out[label] = {"url": url, "status": status, "ms": round(sorted(warm)[len(warm) // 2], 2),
                      "cold_ms": round(sorted(cold)[1], 2)}
    return out


def verdicts(name: str, n: str, entry: dict[str, Any], verdict) -> list[str]:
    out = []
    history = entry.get("history")
    if not history:
        return out
    with_s = history.get("full_with_s") or [entry["full"]["seconds"]]
    without_s = history.get("full_without_s") or [history["full_without"]["seconds"]]
    mean_with, mean_without = sum(with_s) / len(with_s), sum(without_s) / len(without_s)
    ratio = mean_with / mean_without if mean_without else float("nan")
    out.append(verdict(
        ratio <= TARGET_HISTORY_OVERHEAD,
        f"{name} {n}: full sync with history <= {TARGET_HISTORY_OVERHEAD:.2f}x without "
        f"(with, without, without, with: {' / '.join(f'{s:.1f}' for s in with_s[:1])}, "
        f"{' / '.join(f'{s:.1f}' for s in without_s)}, "
        f"{' / '.join(f'{s:.1f}' for s in with_s[1:])} s; means {mean_with:.1f} vs "
        f"{mean_without:.1f} s = {ratio:.2f}x)"))
    inc = entry["incremental"]
    out.append(verdict(
        history["rows_written"] == history["registrations_changed"],
        f"{name} {n}: the sync after 1% changed wrote {history['rows_written']:,} history "
        f"rows for {history['registrations_changed']:,} changed registrations "
        f"({inc['seconds']:.1f} s; without history "
        f"{history['incremental_without']['seconds']:.1f} s)"))
    for label, row in (history.get("overview") or {}).items():
        out.append(verdict(
            row["status"] == 200 and max(row["ms"], row["cold_ms"]) < TARGET_OVERVIEW_MS,
            f"{name} {n}: overview {label} with {history['seeded']['days']} days of history "
            f"({history['seeded']['rows']:,} changes) < {TARGET_OVERVIEW_MS:.0f} ms "
            f"({row['ms']:.1f} ms warm, {row['cold_ms']:.1f} ms with the cache cleared)"))
    seeded = history.get("seeded")
    if seeded and seeded.get("bytes_per_change"):
        out.append(f"- (not a target) {name} {n}: a history change takes "
                   f"{seeded['bytes_per_change']} bytes with its indexes "
                   f"({seeded['rows']:,} changes in {seeded['days']} days of typical churn: "
                   f"{seeded['bytes_total'] / 1e6:.0f} MB)")
    return out
