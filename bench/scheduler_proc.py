"""One benchmark process, run with either package's interpreter (ours or django-apscheduler 0.7.0).

The same script serves both: each exposes ``django_apscheduler.jobstores.DjangoJobStore``
and the ``DjangoJob`` / ``DjangoJobExecution`` models. ``--store sqlalchemy`` runs
APScheduler's own SQLAlchemyJobStore instead (no Django, no history), as a reference;
``--store memory`` APScheduler's MemoryJobStore (no database at all): the floor.

Subcommands:

    run      a real scheduler, as users run one: BackgroundScheduler + the job store,
             jobs added with replace_existing=True before start(); prints "READY <epoch>",
             runs until SIGTERM (or --max-seconds), then writes its statistics
             (every SQL statement with time and thread, CPU, peak memory) to --stats
             BEFORE shutting down, so shutdown work is not counted.
    sendrate time N Celery send_task calls to the hand-off trampoline (bench_celery.py), no database:
             the broker client's own ceiling for a hand-off burst; prints {"messages", "seconds", "per_s"}.
    addrate  time N add_job calls through the store (--bulk: this package's bulk.add_jobs);
             prints {"jobs", "seconds", "jobs_per_s"}.
    seed     bulk-insert many stored jobs (date jobs due at one instant, or weekly jobs).
    change   in another process, reschedule a stored job to "now" through APScheduler's
             API (a paused scheduler on the same store); prints the epoch of the change.
    migrate  create the tables (Django's migrate).
    info     versions, as JSON.

Every execution of a job appends "job_id pid epoch" to the --log file (benchjobs.record).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import pickle
import resource
import signal
import sys
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

JOB_FUNC = "benchjobs:record"

# (epoch, thread name, SQL text truncated) for every statement, and the extra round
# trips that do not pass through cursor.execute (commits, rollbacks, connection pings).
STATEMENTS: list[tuple[float, str, str]] = []
EXTRAS: list[tuple[float, str, str]] = []


def package_version() -> str:
    return importlib.metadata.version("django-apscheduler")


def is_original() -> bool:
    return package_version().startswith("0.")


# --- counting SQL -----------------------------------------------------------------------


def _head(sql) -> str:
    """The statement's start, plus its FROM clause when that is further on (enough to classify it)."""
    sql = str(sql)
    at = sql.find(" FROM ")
    return sql[:80] if at < 0 else sql[: min(at, 60)] + " ..." + sql[at : at + 80]


def _django_wrapper(execute, sql, params, many, context):
    STATEMENTS.append((time.time(), threading.current_thread().name, _head(sql)))
    return execute(sql, params, many, context)


def install_django_counters() -> None:
    """Count every statement of every thread's connection, and commits, rollbacks and pings."""
    from django.db import connections
    from django.db.backends.signals import connection_created

    def install(sender, connection, **kwargs):
        if _django_wrapper not in connection.execute_wrappers:
            connection.execute_wrappers.append(_django_wrapper)

    connection_created.connect(install, weak=False)
    cls = type(connections["default"])

    def counted(name: str, kind: str):
        original = getattr(cls, name)

        def wrapper(self, *args, **kwargs):
            EXTRAS.append((time.time(), threading.current_thread().name, kind))
            return original(self, *args, **kwargs)

        setattr(cls, name, wrapper)

    counted("_commit", "COMMIT")
    counted("_rollback", "ROLLBACK")
    counted("is_usable", "PING")


def install_sqlalchemy_counters(engine) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany):
        STATEMENTS.append((time.time(), threading.current_thread().name, _head(statement)))

    @event.listens_for(engine, "commit")
    def _commit(conn):
        EXTRAS.append((time.time(), threading.current_thread().name, "COMMIT"))


# --- set-up -----------------------------------------------------------------------------


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_settings")
    import django

    django.setup()


def sqlalchemy_store(url: str):
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    store = SQLAlchemyJobStore(url=url)
    install_sqlalchemy_counters(store.engine)
    return store


def make_store(args):
    if args.store == "sqlalchemy":
        return sqlalchemy_store(args.sa_url)
    if args.store == "memory":
        from apscheduler.jobstores.memory import MemoryJobStore

        return MemoryJobStore()
    from django_apscheduler.jobstores import DjangoJobStore

    return DjangoJobStore()


def job_state(
    scheduler, job_id: str, log: str, trigger, next_run_time, grace: int | None, executor: str = "default"
) -> dict:
    """The state dict of a bench job, as ``Job.__getstate__`` makes it."""
    from apscheduler.job import Job

    job = Job(
        scheduler,
        id=job_id,
        func=JOB_FUNC,
        args=(log, job_id),
        kwargs={},
        trigger=trigger,
        executor=executor,
        name=job_id,
        misfire_grace_time=grace,
        coalesce=False,
        max_instances=1,
        next_run_time=next_run_time,
    )
    return job.__getstate__()


def django_columns(state: dict) -> dict:
    """The DjangoJob column values for a state: signed by this package, a bare pickle for 0.7.0."""
    try:
        from django_apscheduler.jobstate import dump_state
    except ImportError:  # django-apscheduler 0.7.0 stores the bare pickle
        return {"job_state": pickle.dumps(state, pickle.HIGHEST_PROTOCOL)}
    return dump_state(state)


def peak_rss_kb() -> int | None:
    """This process's peak resident memory (VmHWM), in KiB.

    Not ``ru_maxrss``: Linux carries that over an exec from the forked copy of the
    parent, so every child of a large harness would report the harness's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --- hand-off executors -----------------------------------------------------------------


def add_handoff_executor(scheduler, alias: str, handoff_log: str | None) -> None:
    """Add the hand-off executor ``alias`` ("celery" or "tasks"); each fire it sends appends "job_id pid
    epoch" to ``handoff_log`` once the queue took it, as the job function does when it runs in process."""
    if alias == "celery":
        from django_apscheduler.executors.celery import CeleryExecutor as executor_class
    elif alias == "tasks":
        from django_apscheduler.executors.tasks import DjangoTasksExecutor as executor_class
    else:
        raise SystemExit(f"unknown --executor {alias!r} (celery, tasks)")

    class Logged(executor_class):
        def enqueue(self, fire) -> None:
            super().enqueue(fire)
            if handoff_log:
                from benchjobs import record

                record(handoff_log, fire.job_id)

    scheduler.add_executor(Logged(), alias)


# --- subcommands ------------------------------------------------------------------------


def cmd_info(args) -> None:
    import sqlite3

    info = {"python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version}
    for dist in ("django-apscheduler", "Django", "APScheduler", "SQLAlchemy", "psycopg", "PyMySQL"):
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = None
    print(json.dumps(info))


def cmd_migrate(args) -> None:
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def cmd_seed(args) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    scheduler = BackgroundScheduler(timezone=UTC)  # never started: only binds the Job objects
    rows = []
    if args.date_jobs:
        run_at = datetime.fromtimestamp(args.run_at, tz=UTC)
        trigger = DateTrigger(run_date=run_at, timezone=UTC)
        for index in range(args.date_jobs):
            job_id = f"burst{index:06d}"
            rows.append((job_id, run_at, job_state(scheduler, job_id, args.log, trigger, run_at, args.grace,
                                                   args.executor or "default")))
    if args.weekly_jobs:
        week = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
        for index in range(args.weekly_jobs):
            job_id = f"weekly{index:06d}"
            start = week + timedelta(seconds=index)
            trigger = IntervalTrigger(weeks=1, start_date=start, timezone=UTC)
            rows.append((job_id, start, job_state(scheduler, job_id, args.log, trigger, start, args.grace)))

    if args.store == "sqlalchemy":
        from apscheduler.util import datetime_to_utc_timestamp

        store = sqlalchemy_store(args.sa_url)
        store.jobs_t.create(store.engine, checkfirst=True)
        with store.engine.begin() as conn:
            for start in range(0, len(rows), 5000):
                conn.execute(
                    store.jobs_t.insert(),
                    [
                        {
                            "id": i,
                            "next_run_time": datetime_to_utc_timestamp(n),
                            "job_state": pickle.dumps(s, pickle.HIGHEST_PROTOCOL),
                        }
                        for i, n, s in rows[start : start + 5000]
                    ],
                )
    else:
        setup_django()
        from django.db import transaction

        from django_apscheduler.models import DjangoJob

        with transaction.atomic():
            DjangoJob.objects.bulk_create(
                (DjangoJob(id=i, next_run_time=n, **django_columns(s)) for i, n, s in rows), batch_size=2000
            )
    print(json.dumps({"seeded": len(rows)}))


def cmd_change(args) -> None:
    setup_django()
    from apscheduler.schedulers.background import BackgroundScheduler

    from django_apscheduler.jobstores import DjangoJobStore

    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_jobstore(DjangoJobStore(), "default")
    scheduler.start(paused=True)
    try:
        scheduler.modify_job(args.job_id, next_run_time=datetime.now(UTC))
        changed_at = time.time()
    finally:
        scheduler.shutdown(wait=False)
    print(json.dumps({"changed_at": changed_at}), flush=True)


def cmd_addrate(args) -> None:
    """add_job's rate through the store, as a site adding a reminder per user sees it."""
    if args.store == "django":
        setup_django()
    from apscheduler.schedulers.background import BackgroundScheduler
    from benchjobs import record

    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_jobstore(make_store(args), "default")
    scheduler.start(paused=True)  # a running scheduler: add_job writes through to the store
    week = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    specs = [
        {"func": record, "trigger": "date", "run_date": week + timedelta(seconds=i), "args": [args.log, f"add{i:07d}"],
         "id": f"add{i:07d}"}
        for i in range(args.jobs)
    ]
    started = time.perf_counter()
    if args.bulk:
        from django_apscheduler.bulk import add_jobs

        add_jobs(scheduler, specs)
    else:
        for spec in specs:
            scheduler.add_job(**spec)
    seconds = time.perf_counter() - started
    scheduler.shutdown(wait=False)
    print(json.dumps({"jobs": args.jobs, "seconds": seconds, "jobs_per_s": args.jobs / seconds}))


def cmd_sendrate(args) -> None:
    """Celery's own ceiling on this machine: N messages sent with send_task in a loop, one producer, no
    database and no scheduler (what a hand-off adds to it is the rest of the hand-off burst)."""
    from bench_celery import app

    from django_apscheduler.contrib.celery import TASK_NAME

    with app.producer_or_acquire() as producer:
        started = time.perf_counter()
        for index in range(args.messages):
            app.send_task(TASK_NAME, args=[f"send{index:06d}", "2026-01-01T00:00:00+00:00"], task_id=f"send-{index}",
                          headers={"periodic_task_name": f"send{index:06d}"}, producer=producer)
        seconds = time.perf_counter() - started
    print(json.dumps({"messages": args.messages, "seconds": seconds, "per_s": args.messages / seconds}))


def cmd_run(args) -> None:
    if args.store == "django":
        setup_django()
        install_django_counters()
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"misfire_grace_time": args.grace})
    scheduler.add_jobstore(make_store(args), "default")
    if args.store == "django" and is_original():
        # 0.7.0's quick start; in 0.7.0 itself this is a deprecated no-op (its job store
        # registers its history listeners on start), so it changes nothing measured.
        from django_apscheduler.jobstores import register_events

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            register_events(scheduler)

    from benchjobs import record

    executor = args.executor or "default"
    if args.executor:
        add_handoff_executor(scheduler, args.executor, args.handoff_log)
    now = datetime.now(UTC)
    if args.interval_jobs:
        start = datetime.fromtimestamp(args.start_at, tz=UTC)
        for index in range(args.interval_jobs):
            job_id = f"job{index:03d}"
            scheduler.add_job(
                record, "interval", seconds=args.interval, start_date=start, args=[args.log, job_id],
                id=job_id, max_instances=1, replace_existing=True, executor=executor,
            )
    for index in range(args.weekly_jobs):
        job_id = f"weekly{index:06d}"
        scheduler.add_job(
            record, "interval", weeks=1, start_date=now + timedelta(days=7, seconds=index),
            args=[args.log, job_id], id=job_id, replace_existing=True,
        )
    if args.date_jobs:  # only for the in-memory store: the others are seeded beforehand
        run_at = datetime.fromtimestamp(args.run_at, tz=UTC)
        for index in range(args.date_jobs):
            job_id = f"burst{index:06d}"
            scheduler.add_job(record, "date", run_date=run_at, args=[args.log, job_id], id=job_id,
                              misfire_grace_time=args.grace, coalesce=False, max_instances=1)
    if args.sentinel:
        scheduler.add_job(record, "date", run_date=now, args=[args.log, "sentinel"], id="sentinel",
                          replace_existing=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    scheduler.start()
    print(f"READY {time.time():.6f}", flush=True)
    stop.wait(args.max_seconds)

    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = {
        "store": args.store,
        "version": package_version() if args.store == "django" else None,
        "statements": STATEMENTS[:],
        "extras": EXTRAS[:],
        "maxrss_kb": peak_rss_kb(),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "scheduler_alive": bool(scheduler._thread and scheduler._thread.is_alive()),
        "stopped_at": time.time(),
    }
    with open(args.stats, "w") as out:
        json.dump(stats, out)
    print(f"STATS {time.time():.6f}", flush=True)
    try:
        scheduler.shutdown(wait=True)
    except Exception as error:  # noqa: BLE001 - the original may already be wedged; the numbers are saved
        print(f"shutdown failed: {error!r}", file=sys.stderr)
    print(f"STOPPED {time.time():.6f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--store", choices=["django", "sqlalchemy", "memory"], default="django")
        p.add_argument("--sa-url", help="SQLAlchemy URL for --store sqlalchemy")
        p.add_argument("--log", default=os.devnull, help="file each job execution appends to")
        p.add_argument("--grace", type=int, default=30, help="misfire_grace_time of the jobs")
        p.add_argument("--executor", default=None,
                       help="the jobs' executor: celery (hand fires to Celery workers, bench_celery.py) or tasks "
                            "(django-tasks-db's database backend); default: the scheduler's thread pool")

    sub.add_parser("info")
    sub.add_parser("migrate")
    p = sub.add_parser("seed")
    common(p)
    p.add_argument("--date-jobs", type=int, default=0)
    p.add_argument("--run-at", type=float, help="epoch of the date jobs' run date")
    p.add_argument("--weekly-jobs", type=int, default=0)
    p = sub.add_parser("addrate")
    common(p)
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--bulk", action="store_true", help="this package's bulk.add_jobs instead of add_job")
    p = sub.add_parser("sendrate")
    p.add_argument("--messages", type=int, default=2000)
    p = sub.add_parser("change")
    p.add_argument("--job-id", required=True)
    p = sub.add_parser("run")
    common(p)
    p.add_argument("--stats", required=True)
    p.add_argument("--interval-jobs", type=int, default=0)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--start-at", type=float, help="epoch of the interval jobs' first fire")
    p.add_argument("--weekly-jobs", type=int, default=0)
    p.add_argument("--sentinel", action="store_true", help="add a date job due now (start-up timing)")
    p.add_argument("--date-jobs", type=int, default=0, help="date jobs due at --run-at, added in-process (memory store)")
    p.add_argument("--run-at", type=float, help="epoch of the date jobs' run date")
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.add_argument("--handoff-log", help="with --executor: file each fire handed off appends to")
    args = parser.parse_args()
    {"info": cmd_info, "migrate": cmd_migrate, "seed": cmd_seed, "change": cmd_change, "run": cmd_run,
     "addrate": cmd_addrate, "sendrate": cmd_sendrate}[
        args.command
    ](args)


if __name__ == "__main__":
    main()
