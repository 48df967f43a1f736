"""The lag scenario in one process, timed per instant: where a fire's lag comes from.

The harness's lag scenario reports percentiles over all fires; this script runs the
same shape (50 interval jobs every second, all due at the same instants) and prints
each instant's median and slowest lag, so that a tail can be traced to the instant
it comes from. ``--trace N`` also prints, for instant N, when the store's loop calls
began and ended and when each job started (ms from the instant).

    BENCH_DB=postgres BENCH_DB_NAME=bench bench/.venvs/ours/bin/python bench/lag_instants.py django
    bench/.venvs/ours/bin/python bench/lag_instants.py memory        # the floor

The database must exist and be migrated (``scheduler_proc.py migrate``); its jobs and
history are deleted first. Not part of ``run.sh``: a tool for looking closer.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scheduler_proc  # noqa: E402 -- the harness's own store set-up, from this folder

UTC = timezone.utc
EVENTS: list[tuple[float, str]] = []
LOG = os.path.join(tempfile.gettempdir(), "lag_instants.log")


def record(job_id: str) -> None:
    """The benchmark job's work (one appended line), with its start noted first."""
    EVENTS.append((time.time(), f"start {job_id}"))
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{job_id}\n".encode())
    finally:
        os.close(fd)


def traced(store, name: str) -> None:
    method = getattr(store, name)

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        EVENTS.append((time.time(), f"{name} begins"))
        try:
            return method(*args, **kwargs)
        finally:
            EVENTS.append((time.time(), f"{name} ends"))

    setattr(store, name, wrapper)


def make_store(kind: str):
    """The harness's store for ``kind``, on an empty table for this package's."""
    store = scheduler_proc.make_store(argparse.Namespace(store=kind))
    if kind == "django":
        from django_apscheduler.models import DjangoJob, DjangoJobExecution

        DjangoJobExecution.objects.all().delete()
        DjangoJob.objects.all().delete()
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", choices=["django", "memory"])
    parser.add_argument("--instants", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--trace", type=int, default=None, help="print the timeline of this instant (0: the first)")
    args = parser.parse_args()

    from apscheduler.schedulers.background import BackgroundScheduler

    if args.store == "django":
        scheduler_proc.setup_django()
    store = make_store(args.store)
    scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"misfire_grace_time": 30})
    scheduler.add_jobstore(store, "default")
    first = datetime.fromtimestamp(int(time.time()) + 3, tz=UTC)
    for index in range(args.jobs):
        job_id = f"job{index:03d}"
        scheduler.add_job(record, "interval", seconds=1, start_date=first, args=[job_id], id=job_id,
                          max_instances=1, replace_existing=True)
    for name in ("get_due_jobs", "get_next_run_time"):
        traced(store, name)
    full_collections = []
    gc.callbacks.append(lambda phase, info: phase == "stop" and info["generation"] == 2
                        and full_collections.append(time.time()))
    scheduler.start()
    time.sleep(max(0.0, (first - datetime.now(UTC)).total_seconds() + args.instants - 0.5))
    scheduler.shutdown(wait=True)

    t0 = first.timestamp()
    by_instant: dict[int, list[float]] = {}
    for moment, event in EVENTS:
        if event.startswith("start "):
            instant = round(moment - t0)
            by_instant.setdefault(instant, []).append((moment - t0 - instant) * 1000)
    lags = sorted(lag for values in by_instant.values() for lag in values)
    for instant, values in sorted(by_instant.items()):
        print(f"instant {instant}: {len(values)} fires, p50 {statistics.median(values):.1f} ms, "
              f"slowest {max(values):.1f} ms")
    if args.trace is not None:
        at = t0 + args.trace
        for moment, event in EVENTS:
            if at - 0.35 <= moment <= at + 0.05:
                print(f"{(moment - at) * 1000:9.2f} ms  {event}")
    print(json.dumps({
        "store": args.store, "fires": len(lags), "p50_ms": round(statistics.median(lags), 2),
        "p99_ms": round(statistics.quantiles(lags, n=100)[98], 2), "min_ms": round(lags[0], 2),
        "full_collections_s": [round(moment - t0, 3) for moment in full_collections],
    }))


if __name__ == "__main__":
    main()
