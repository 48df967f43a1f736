"""A scheduler process for the multi-scheduler tests, started as a real OS process.

Every process does what users do in each web worker or on each host: it builds a
scheduler with DjangoJobStore and adds the same jobs with replace_existing=True.
Each real call of a job function appends one line to a shared log file, so a test
can count executions independently of the database.

    python -m tests.procs.scheduler_process --jobs 50 --interval 1 --log calls.log

It runs until SIGTERM/SIGINT (graceful) or SIGKILL, or for --duration seconds.
``--asyncio`` runs an AsyncIOScheduler in ``asyncio.run`` instead of a
BackgroundScheduler; ``--coroutine`` makes the job a coroutine function;
``--executor tasks`` (or ``celery``) hands the fires to Django tasks (or Celery) workers
instead of running them.
"""

import argparse
import asyncio
import os
import signal
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import django


def record(log_path, job_id, sleep=0.0):
    """The job: note that it ran (job id, pid, wall time), optionally take some time."""
    line = f"{job_id} {os.getpid()} {time.time():.3f}\n"
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    if sleep:
        time.sleep(sleep)


async def record_async(log_path, job_id, sleep=0.0):
    """The job as a coroutine function: the same note, then it awaits its sleep."""
    record(log_path, job_id)
    if sleep:
        await asyncio.sleep(sleep)


def add_jobs(scheduler, args):
    start = (
        datetime.fromtimestamp(args.start_at, tz=timezone.utc)
        if args.start_at
        else datetime.now(timezone.utc) + timedelta(seconds=1)
    )
    for index in range(args.jobs):
        job_id = f"job{index:03d}"
        scheduler.add_job(
            # By importable name, not __main__: other kinds of process (a web server) run these jobs too.
            f"tests.procs.scheduler_process:{'record_async' if args.coroutine else 'record'}",
            "interval",
            seconds=args.interval,
            start_date=start,
            args=[args.log, job_id, args.job_sleep],
            id=job_id,
            max_instances=args.max_instances,
            replace_existing=True,
            executor=args.executor,
        )


async def run_on_a_loop(args):
    """The same, with an AsyncIOScheduler on this process's event loop."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from django_apscheduler.jobstores import DjangoJobStore

    scheduler = AsyncIOScheduler(timezone="UTC", job_defaults={"misfire_grace_time": args.misfire_grace_time})
    scheduler.add_jobstore(DjangoJobStore(), "default")
    scheduler.start()
    add_jobs(scheduler, args)
    print(f"READY {os.getpid()}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.duration)
    except TimeoutError:
        pass
    scheduler.shutdown()
    while scheduler.running:  # the shutdown runs on the loop
        await asyncio.sleep(0.05)
    print(f"STOPPED {os.getpid()}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--job-sleep", type=float, default=0.0)
    parser.add_argument("--start-at", type=float, default=None, help="epoch seconds of the first fire")
    parser.add_argument("--log", required=True)
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--misfire-grace-time", type=float, default=30)
    parser.add_argument("--asyncio", action="store_true")
    parser.add_argument("--coroutine", action="store_true")
    parser.add_argument("--max-instances", type=int, default=1)
    parser.add_argument("--executor", default="default", help='the jobs\' executor: "default", or a hand-off type ("tasks", "celery")')
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    if args.asyncio:
        asyncio.run(run_on_a_loop(args))
        return 0
    from apscheduler.schedulers.background import BackgroundScheduler

    from django_apscheduler.jobstores import DjangoJobStore

    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"misfire_grace_time": args.misfire_grace_time})
    scheduler.add_jobstore(DjangoJobStore(), "default")
    if args.executor != "default":  # fires go to a worker fleet (tests/processes/test_workers.py)
        from django_apscheduler.executors import build_executor

        scheduler.add_executor(build_executor({"type": args.executor}), args.executor)
    scheduler.start()
    add_jobs(scheduler, args)
    print(f"READY {os.getpid()}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    stop.wait(args.duration)
    scheduler.shutdown(wait=True)
    print(f"STOPPED {os.getpid()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
