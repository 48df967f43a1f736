"""The scheduler's loop survives database trouble; SQLite with default settings holds up."""

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from django.db import OperationalError

from django_apscheduler import claims, fires, jobstores
from django_apscheduler.models import DjangoJobExecution
from tests import jobfuncs
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_many_jobs_writing_at_once_do_not_break_the_scheduler(scheduler_factory, caplog):
    """30 jobs every 0.5 s on 10 threads: the write pattern that kills the original on SQLite."""
    caplog.set_level(logging.WARNING)
    scheduler = scheduler_factory(job_defaults={"misfire_grace_time": 30})
    scheduler.start()
    start = datetime.now(timezone.utc) + timedelta(milliseconds=500)
    for index in range(30):
        scheduler.add_job(jobfuncs.noop, "interval", seconds=0.5, start_date=start, id=f"busy{index}")
    time.sleep(6)
    for index in range(30):
        scheduler.pause_job(f"busy{index}")
    assert scheduler._thread.is_alive()  # the BackgroundScheduler's loop is still running
    wait_until(
        lambda: not DjangoJobExecution.objects.filter(status=DjangoJobExecution.SENT).exists(),
        message="every started execution to finish",
    )
    per_job = [DjangoJobExecution.objects.filter(job_id=f"busy{i}").count() for i in range(30)]
    assert min(per_job) >= 8, per_job  # ~11 fires each in 6 s; allow a slow machine
    assert set(DjangoJobExecution.objects.values_list("status", flat=True)) == {DjangoJobExecution.SUCCESS}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_database_errors_while_claiming_are_retried_not_fatal(scheduler_factory, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    real_claim = claims.claim_due_jobs
    failures = {"left": 3}

    def flaky_claim(*args, **kwargs):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(fires, "claim_due_jobs", flaky_claim)
    scheduler = scheduler_factory()
    scheduler.start()
    scheduler.add_job(jobfuncs.noop, "date", run_date=datetime.now(timezone.utc), id="survivor")
    wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id="survivor", status=DjangoJobExecution.SUCCESS).exists(),
        message="the job to run after the errors",
    )
    assert failures["left"] == 0
    warnings = [r.getMessage() for r in caplog.records if "Retrying with back-off" in r.getMessage()]
    assert len(warnings) == 1, warnings  # one warning per outage, not one per try
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert scheduler._thread.is_alive()


def test_shutdown_is_not_blocked_by_an_unreachable_database(scheduler_factory, monkeypatch):
    def always_failing(*args, **kwargs):
        raise OperationalError("could not connect to server")

    scheduler = scheduler_factory()
    scheduler.start()
    monkeypatch.setattr(fires, "claim_due_jobs", always_failing)
    monkeypatch.setattr(jobstores.DjangoJobStore, "_earliest_next_run_time", lambda self: always_failing())
    scheduler.wakeup()
    time.sleep(0.5)
    stopper = threading.Thread(target=scheduler.shutdown)
    stopper.start()
    stopper.join(timeout=20)
    assert not stopper.is_alive()


def test_an_unexpected_error_finding_the_next_run_time_does_not_end_the_loop(scheduler_factory, monkeypatch, caplog):
    from django.db import ProgrammingError

    from django_apscheduler.jobstores import DjangoJobStore

    scheduler = scheduler_factory()
    scheduler.start()
    monkeypatch.setattr(DjangoJobStore, "_earliest_next_run_time", lambda self: (_ for _ in ()).throw(ProgrammingError("boom")))
    scheduler.wakeup()
    wait_until(lambda: "Could not find the next run time" in caplog.text, message="the error to be logged")
    monkeypatch.undo()
    assert scheduler._thread.is_alive()
    scheduler.add_job(jobfuncs.noop, "date", run_date=datetime.now(timezone.utc), id="after-error")
    wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id="after-error", status=DjangoJobExecution.SUCCESS).exists(),
        message="the job to run after the error",
    )
