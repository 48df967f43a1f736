"""Running stored jobs once, now, without touching their schedules.

Used by the admin's "run selected jobs now" action and the ``apscheduler run``
command. Each requested run is an extra fire recorded like any other (one
execution row at the moment it was requested); the job's next run time is not
changed. The jobs run in a short-lived scheduler of this process, and the caller
waits for their results up to a timeout.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from django.conf import settings

from . import conf
from .history import wait_for_results
from .jobstores import DjangoJobStore, DjangoMemoryJobStore
from .models import DjangoJobExecution
from .timezones import to_db, utc_now

logger = logging.getLogger("django_apscheduler.runnow")

RUN_NOW_ALIAS = "django_apscheduler_run_now"


@dataclass
class RunResult:
    job_id: str
    run_time: datetime
    execution: DjangoJobExecution | None
    error: str = ""  # set when the job could not even be started

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
    store = DjangoJobStore()
    scheduler = BackgroundScheduler(timezone=settings.TIME_ZONE if settings.USE_TZ else None)
    scheduler.add_jobstore(DjangoMemoryJobStore(), RUN_NOW_ALIAS)
    results: list[RunResult] = []
    scheduler.start()
    try:
        for job_id in job_ids:
            results.append(_submit(scheduler, store, job_id))
        pending = [(r.job_id, to_db(r.run_time)) for r in results if not r.error]
        outcomes = wait_for_results(pending, timeout)
        for result in results:
            if not result.error:
                result.execution = outcomes.get((result.job_id, to_db(result.run_time)))
    finally:
        # Do not make the caller wait for jobs still running after the timeout: they
        # finish, and their results are recorded, while it reports them as pending.
        # Shutting down stops the history listener, so it waits for them elsewhere.
        threading.Thread(
            target=scheduler.shutdown, kwargs={"wait": True}, name="django-apscheduler-run-now", daemon=True
        ).start()
    return results


def _submit(scheduler: BackgroundScheduler, store: DjangoJobStore, job_id: str) -> RunResult:
    run_time = utc_now()
    job = store.lookup_job(job_id)
    if job is None:
        return RunResult(job_id, run_time, None, error="no such job, or it cannot be loaded (see its broken flag)")
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
    logger.info("Running job %r now, outside its schedule", job_id)
    return RunResult(job_id, run_time, None)

