"""The worker's side: what every trampoline task runs for a fire handed off by a scheduler.

A worker process (``manage.py db_worker``, a Celery worker...) receives the job id
and fire time, and calls ``run_fire``. It takes the fire from Queued to started
(once, whatever the number of deliveries), loads the job from the database, runs
its function with its arguments, and records the outcome in the fire's row. The
worker needs the job's code importable, and the same ``SECRET_KEY`` as the
schedulers (stored jobs are signed; an unverified row is never unpickled).

While it runs fires, the process renews their lease (``fires.renew_leases``)
from one background thread: a fire whose worker was killed stops being renewed,
and the schedulers mark it Lost! once its lease is older than
``APSCHEDULER_HEARTBEAT_TIMEOUT``. That works the same on every queue backend.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from apscheduler.job import Job

from .. import conf, fires, jobstate
from ..database import connection_hygiene, run_with_retry
from ..models import DjangoJob, DjangoJobExecution
from ..timezones import utc_now

__all__ = ["run_fire"]

logger = logging.getLogger("django_apscheduler.worker")


class JobUnavailable(Exception):
    """The fire's job cannot be run here: gone, or its stored state does not load."""


def run_fire(job_id: str, run_time_iso: str) -> str:
    """Run one fire handed off by a scheduler; return the fire's final status.

    A fire that is not Queued (any more) is not run: it already ran or runs
    elsewhere (a message delivered twice), or it ended (Lost!, Error!). Its
    current status is returned then ("" when the fire has no row).
    """
    run_time = parse_run_time(run_time_iso)
    connection_hygiene()
    try:
        fire = fires.start_on_worker(job_id, run_time)
        if fire is None:
            status = fires.status_of(job_id, run_time) or ""
            logger.warning(
                "Fire of job %r at %s is not queued (status %r): it is not run again here.", job_id, run_time_iso, status
            )
            return status
        with _leases.holding(fire.execution_id):
            return _run(fire)
    finally:
        connection_hygiene()


def parse_run_time(run_time_iso: str) -> datetime:
    """An ISO 8601 fire time as an aware date-time; a naive one is read as UTC."""
    run_time = datetime.fromisoformat(run_time_iso)
    if run_time.tzinfo is None:
        run_time = run_time.replace(tzinfo=timezone.utc)
    return run_time.astimezone(timezone.utc)


def _run(fire: fires.WorkerFire) -> str:
    try:
        job, keep_successes = load_stored_job(fire.job_id)
    except JobUnavailable as error:
        logger.error("Fire of job %r at %s cannot run: %s", fire.job_id, fire.run_time, error)
        return fires.finish_on_worker(fire, status=DjangoJobExecution.ERROR, exception=str(error))
    # No misfire check here: misfire_grace_time applies when the scheduler hands the
    # fire off (fires.hand_off); how long it may then wait for a worker is
    # APSCHEDULER_HANDOFF_TIMEOUT's business.
    logger.info('Running job "%s" (scheduled at %s) on this worker', job, fire.run_time)
    try:
        call_job_function(job)
    except BaseException as error:  # noqa: BLE001 -- recorded, as APScheduler's executors do
        formatted = "".join(traceback.format_tb(sys.exc_info()[2]))
        logger.exception('Job "%s" raised an exception', job)
        status = fires.finish_on_worker(
            fire,
            status=DjangoJobExecution.ERROR,
            ended=utc_now(),
            exception=error,
            traceback=formatted,
            keep_successes=keep_successes,
            job=job,
        )
        if not isinstance(error, Exception):
            raise  # KeyboardInterrupt, SystemExit: the worker is stopping; let it
        return status
    return fires.finish_on_worker(
        fire, status=DjangoJobExecution.SUCCESS, ended=utc_now(), keep_successes=keep_successes, job=job
    )


def load_stored_job(job_id: str) -> tuple[Job, bool]:
    """The stored job, restored through ``jobstate`` (signature checked), and whether it keeps successes."""
    row = run_with_retry(
        lambda: DjangoJob.objects.filter(pk=job_id).values_list("next_run_time", "job_state", "history").first(),
        "loading a job",
        attempts=8,
    )
    if row is None:
        raise JobUnavailable(f"job {job_id!r} no longer exists (deleted after the fire was handed off)")
    next_run_time, job_state, history = row
    try:
        job = jobstate.restore(job_id, next_run_time, job_state, scheduler=None, alias=None)
    except jobstate.JobStateError as error:
        raise JobUnavailable(f"job {job_id!r} {error}") from error
    return job, history != DjangoJob.HISTORY_FAILURES


def call_job_function(job: Job) -> Any:
    """The job's function with its arguments; a coroutine function runs to completion on a loop of its own."""
    func = job.func
    if inspect.iscoroutinefunction(func):
        return fires.run_to_completion(func)(*job.args, **job.kwargs)
    return func(*job.args, **job.kwargs)


class _Leases:
    """The fires this worker process runs, and the thread that renews their leases.

    One thread per process, started with the first fire (and again in a child
    process after a fork, where threads do not survive).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, int] = {}  # execution id -> how many holders (one, but safe)
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._wake = threading.Event()

    @contextmanager
    def holding(self, execution_id: int) -> Iterator[None]:
        with self._lock:
            self._running[execution_id] = self._running.get(execution_id, 0) + 1
            self._ensure_thread()
        try:
            yield
        finally:
            with self._lock:
                left = self._running.pop(execution_id, 1) - 1
                if left > 0:
                    self._running[execution_id] = left

    def running(self) -> list[int]:
        with self._lock:
            return list(self._running)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._renew_forever, name="django-apscheduler-worker-lease", daemon=True)
        self._thread.start()

    def _renew_forever(self) -> None:
        while True:
            self._wake.wait(float(conf.get("APSCHEDULER_HEARTBEAT_INTERVAL")))
            running = self.running()
            if running:
                self._renew(running)

    def _renew(self, running: list[int]) -> None:
        try:
            connection_hygiene(check_idle=False)
            run_with_retry(lambda: fires.renew_leases(running), "renewing the leases of running fires", attempts=3)
        except Exception:  # noqa: BLE001 -- tried again with the next beat; the fires keep running
            logger.exception("Could not renew the lease of %d running fire(s); trying again", len(running))


_leases = _Leases()
