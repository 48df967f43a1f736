"""Running stored jobs once, now, without touching their schedules.

Used by the admin's "run selected jobs now" action and the ``apscheduler run``
command. Each requested run is an extra fire recorded like any other (one
execution row at the moment it was requested); the job's next run time is not
changed, and the caller waits for the results up to a timeout.

When a scheduler is alive, the run is handed to it: the job's ``run_requested_at``
is set, and a scheduler claims it like a due fire (at once on PostgreSQL, within
the poll interval elsewhere), so a web worker never executes the job itself. When
no scheduler is alive, the jobs run in a short-lived scheduler of this process, as
django-apscheduler 0.7 did, and the results say so.

Either way the run goes through the job's executor: a job whose executor hands
fires to a worker fleet (``executors``) is queued for the workers, and the result
waited for is the worker's.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from django.conf import settings
from django.db import connection, transaction

from . import conf, fires, jobstate, operations
from .executors import ExecutorConfigError, hand_off_executor_for
from .executors.handoff import HandOffExecutor
from .fires import wait_for_results
from .jobstores import DjangoMemoryJobStore
from .models import DjangoJob, DjangoJobExecution, SchedulerInstance
from .timezones import to_db, utc_now

logger = logging.getLogger("django_apscheduler.runnow")

RUN_NOW_ALIAS = "django_apscheduler_run_now"
_NOT_RUNNABLE = "no such job, or it cannot be loaded (see its broken flag)"


@dataclass
class RunResult:
    job_id: str
    run_time: datetime
    execution: DjangoJobExecution | None
    error: str = ""  # set when the job could not even be started
    in_process: bool = False  # run here because no scheduler was alive
    # Requested inside the caller's transaction: it starts once that commits, so
    # its result was not waited for.
    deferred: bool = False

    @property
    def finished(self) -> bool:
        return self.execution is not None and self.execution.status in DjangoJobExecution.FINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.execution is not None and self.execution.status == DjangoJobExecution.SUCCESS


def run_jobs_now(job_ids: list[str], timeout: float | None = None) -> list[RunResult]:
    """Run each job once now; wait up to ``timeout`` seconds (default: the setting) for results."""
    if timeout is None:
        timeout = float(conf.get("APSCHEDULER_RUN_NOW_TIMEOUT"))
    if SchedulerInstance.objects.alive().exists():
        return _hand_to_scheduler(job_ids, timeout)
    return _run_in_process(job_ids, timeout)


def _hand_to_scheduler(job_ids: list[str], timeout: float) -> list[RunResult]:
    results = []
    for job_id in job_ids:
        run_time = utc_now()
        if DjangoJob.objects.filter(pk=job_id).runnable().update(run_requested_at=to_db(run_time)):
            logger.info("Run of job %r requested from a live scheduler", job_id)
            results.append(RunResult(job_id, run_time, None, deferred=_in_callers_transaction()))
        else:
            results.append(RunResult(job_id, run_time, None, error=_NOT_RUNNABLE))
    _collect(results, timeout)
    return results


def _in_callers_transaction() -> bool:
    """Inside the caller's transaction (a view under ATOMIC_REQUESTS), no scheduler sees a run
    request, and no worker a queued fire, before it commits: waiting for them would only use
    up the timeout."""
    return connection.in_atomic_block


def _collect(results: list[RunResult], timeout: float) -> None:
    waited = [r for r in results if not r.error and not r.deferred]
    if not waited:
        return
    outcomes = wait_for_results([(r.job_id, to_db(r.run_time)) for r in waited], timeout)
    for result in waited:
        result.execution = outcomes.get((result.job_id, to_db(result.run_time)))


def _run_in_process(job_ids: list[str], timeout: float) -> list[RunResult]:
    scheduler = BackgroundScheduler(timezone=settings.TIME_ZONE if settings.USE_TZ else None)
    scheduler.add_jobstore(DjangoMemoryJobStore(), RUN_NOW_ALIAS)
    results: list[RunResult] = []
    scheduler.start()
    try:
        for job_id in job_ids:
            results.append(_submit(scheduler, job_id))
        _collect(results, timeout)
    finally:
        # Do not make the caller wait for jobs still running after the timeout: they
        # finish, and their results are recorded, while it reports them as pending.
        # Shutting down stops the history listener, so it waits for them elsewhere.
        threading.Thread(
            target=scheduler.shutdown, kwargs={"wait": True}, name="django-apscheduler-run-now", daemon=True
        ).start()
    return results


def _submit(scheduler: BackgroundScheduler, job_id: str) -> RunResult:
    run_time = utc_now()
    try:
        job = operations.load_job(job_id)
        workers = hand_off_executor_for(job.executor)
    except (operations.UnknownJob, jobstate.JobStateError):
        return RunResult(job_id, run_time, None, error=_NOT_RUNNABLE, in_process=True)
    except ExecutorConfigError as error:
        return RunResult(job_id, run_time, None, error=str(error))
    if workers is not None:
        return _hand_to_workers(job, run_time, workers)
    scheduler.add_job(
        job.func,
        trigger="date",
        run_date=run_time,
        args=job.args,
        kwargs=job.kwargs,
        id=job_id,
        name=job.name,
        jobstore=RUN_NOW_ALIAS,
        misfire_grace_time=None,
        replace_existing=True,
    )
    logger.info("Running job %r now in this process: no scheduler is alive", job_id)
    return RunResult(job_id, run_time, None, in_process=True)


def _hand_to_workers(job: Job, run_time: datetime, executor: BaseExecutor) -> RunResult:
    """No scheduler is alive, but the job's executor sends it to workers: queue it for them from here."""
    assert isinstance(executor, HandOffExecutor)

    def send() -> None:
        try:
            fires.hand_off(job, [run_time], lambda moment: executor.enqueue(executor.fleet_fire(job, moment)))
        finally:
            # Built for this one run: release what it holds (a Celery producer comes from a
            # pool of ten; one kept per click would hang this process's sends).
            executor.shutdown(wait=False)

    queued = False
    try:
        queued = fires.queue_unclaimed(job.id, run_time)
    finally:
        if not queued:  # nothing to send (already recorded, or the row could not be written)
            executor.shutdown(wait=False)
    if not queued:
        return RunResult(job.id, run_time, None, error="a run of it at this very instant is already recorded")
    # A worker must find the Queued row: inside the caller's transaction, send once
    # it commits (and never, if it rolls back). Outside one, this sends at once.
    # Robust: one job's failed send must not cost the other jobs' callbacks theirs.
    deferred = _in_callers_transaction()
    transaction.on_commit(send, robust=True)
    logger.info("Run of job %r handed to the workers of executor %r (no scheduler is alive)", job.id, job.executor)
    return RunResult(job.id, run_time, None, deferred=deferred)
