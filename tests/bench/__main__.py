"""``python -m tests.bench [--sizes 1000,10000,100000] [--databases sqlite,postgres]
[--runs 7] [--json bench-results.json]``: print one table and write it as JSON.

Each database is measured by its own worker process (Django is configured per process from
DATABASE_URL); the workers run one after the other so they never compete for the two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from tests import bench


def _sizes(value: str) -> list[int]:
    sizes = [int(part.replace("_", "")) for part in value.split(",") if part.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes are positive integers, comma separated")
    return sizes


def _databases(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = set(names) - {"sqlite", "postgres"}
    if unknown or not names:
        raise argparse.ArgumentTypeError("databases: sqlite and/or postgres")
    return names


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--sizes", type=_sizes, default=[1000, 10000, 100000])
    parser.add_argument("--databases", type=_databases, default=["sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per query (after a "
                        "warm-up); the median is reported")
    parser.add_argument("--json", default="bench-results.json", help="where to write results")
    parser.add_argument("--naive-max", type=int, default=100000,
                        help="measure the naive loop up to this size; larger sizes are "
                        "extrapolated linearly (and say so)")
    parser.add_argument("--naive-budget", type=float, default=200.0,
                        help="seconds the naive loop may run per size; if it has not finished "
                        "by then its rate so far is extrapolated to the whole size (and the "
                        "output says so)")
    parser.add_argument("--cache", choices=["redis", "database"], default="redis",
                        help="the Django cache the list uses: Redis at 127.0.0.1:6379/5 (the "
                        "README's deployment) or Django's database cache (the default "
                        "without REDIS_URL)")
    parser.add_argument("--worker", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["naive-sync"]:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vobizadmin.settings")
        import django

        django.setup()
        print(f"naive sync wrote {bench.naive_sync()} endpoints")
        return 0
    args = parse_args(argv)
    if args.worker:
        warnings.filterwarnings("ignore", message="No directory at")  # whitenoise, no collectstatic
        result = bench.run_worker(args.worker, args.sizes, args.runs, args.naive_max,
                                  args.naive_budget, log=_log, cache=args.cache)
        Path(args.worker_out).write_text(json.dumps(result, default=str))
        return 0

    started = time.perf_counter()
    concurrency = os.environ.get("VOBIZ_SYNC_CONCURRENCY", "default")
    report = {"machine": bench.machine(), "runs": args.runs, "per_page": 20,
              "sync_concurrency": concurrency, "sizes": args.sizes, "databases": [],
              "cache": args.cache}
    _log(f"machine: {report['machine']}")
    failed = False
    for database in args.databases:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            out = handle.name
        command = [sys.executable, "-m", "tests.bench", "--worker", database,
                   "--worker-out", out, "--sizes", ",".join(map(str, args.sizes)),
                   "--runs", str(args.runs), "--naive-max", str(args.naive_max),
                   "--naive-budget", str(args.naive_budget), "--cache", args.cache]
        code = subprocess.call(command, cwd=bench.ROOT)  # noqa: S603
        if code:
            _log(f"[{database}] worker failed with exit code {code}")
            failed = True
        else:
            report["databases"].append(json.loads(Path(out).read_text()))
        Path(out).unlink(missing_ok=True)
    report["seconds"] = time.perf_counter() - started
    report["cpu_reference_end_s"] = bench.cpu_reference()
    text = bench.render_report(report)
    report["table_markdown"] = text
    bench.write_json(report, args.json)
    print(text)
    print(f"\n(JSON: {args.json})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
