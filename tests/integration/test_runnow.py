"""Run now: handed to a live scheduler, schedule untouched; in-process when none is alive."""

from datetime import datetime, timedelta, timezone

import pytest

from django_apscheduler.models import DjangoJob, DjangoJobExecution, SchedulerInstance
from django_apscheduler.runnow import run_jobs_now
from tests import jobfuncs

pytestmark = pytest.mark.django_db(transaction=True)

NEXT_WEEK = datetime.now(timezone.utc) + timedelta(days=7)


@pytest.fixture
def live_scheduler(scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start()
    return scheduler


def test_a_live_scheduler_runs_it_and_the_schedule_stays(live_scheduler):
    live_scheduler.add_job(jobfuncs.noop, "interval", days=7, next_run_time=NEXT_WEEK, id="weekly")
    live_scheduler.add_job(jobfuncs.noop, "date", run_date=NEXT_WEEK, id="one-off")
    live_scheduler.add_job(jobfuncs.noop, "interval", hours=1, id="resting")
    live_scheduler.pause_job("resting")

    results = run_jobs_now(["weekly", "one-off", "resting"], timeout=15)

    (instance,) = SchedulerInstance.objects.filter(stopped=None)
    for result in results:
        assert not result.in_process
        assert result.execution.status == DjangoJobExecution.SUCCESS, result.job_id
        assert result.execution.scheduler_id == instance.pk  # the scheduler ran it, not this process
    assert DjangoJob.objects.get(pk="weekly").next_run_time == NEXT_WEEK
    assert DjangoJob.objects.get(pk="one-off").next_run_time == NEXT_WEEK  # not consumed
    assert DjangoJob.objects.get(pk="resting").next_run_time is None  # still paused
    assert not DjangoJob.objects.exclude(run_requested_at=None).exists()


def test_errors_come_back_from_the_scheduler(live_scheduler):
    live_scheduler.add_job(jobfuncs.fail_with, "date", run_date=NEXT_WEEK, args=["nope"], id="failing")
    (result,) = run_jobs_now(["failing"], timeout=15)
    assert result.execution.status == DjangoJobExecution.ERROR
    assert result.execution.exception == "ValueError: nope"


def test_unknown_or_broken_jobs_are_not_requested(live_scheduler):
    live_scheduler.add_job(jobfuncs.noop, "date", run_date=NEXT_WEEK, id="broken-one")
    DjangoJob.objects.filter(pk="broken-one").update(broken=True)
    results = run_jobs_now(["ghost", "broken-one"], timeout=2)
    assert all(result.error for result in results)
    assert not DjangoJob.objects.exclude(run_requested_at=None).exists()


def test_without_a_live_scheduler_it_runs_in_process(scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start(paused=True)
    scheduler.add_job(jobfuncs.noop, "date", run_date=NEXT_WEEK, id="lonely")
    scheduler.shutdown()  # no scheduler alive any more
    (result,) = run_jobs_now(["lonely"], timeout=10)
    assert result.in_process
    assert result.execution.status == DjangoJobExecution.SUCCESS
    assert DjangoJob.objects.get(pk="lonely").next_run_time == NEXT_WEEK


def test_without_a_live_scheduler_a_fleet_job_is_sent_once_and_its_executor_released(settings):
    from apscheduler.triggers.date import DateTrigger

    from django_apscheduler.jobstores import DjangoJobStore
    from tests.fleet import ReleasingExecutor
    from tests.helpers import build_job

    settings.APSCHEDULER_EXECUTORS = {"fleet": {"type": "tests.fleet.ReleasingExecutor"}}
    ReleasingExecutor.sent_fires.clear()
    ReleasingExecutor.shutdowns.clear()
    DjangoJobStore().add_job(build_job("to/the_fleet", NEXT_WEEK, DateTrigger(NEXT_WEEK), executor="fleet"))

    for _ in range(3):  # each click builds an executor; each must give back what it holds
        (result,) = run_jobs_now(["to/the_fleet"], timeout=0.2)
        assert not result.error and not result.in_process

    assert [fire.job_id for fire in ReleasingExecutor.sent_fires] == ["to/the_fleet"] * 3
    assert len(ReleasingExecutor.shutdowns) == 3
    assert DjangoJobExecution.objects.filter(job_id="to/the_fleet", status=DjangoJobExecution.QUEUED).count() == 3


def test_inside_a_transaction_a_fleet_job_is_sent_once_it_commits_and_never_if_it_rolls_back(settings):
    """ATOMIC_REQUESTS: a worker given the fire before the commit would not find its Queued row."""
    from apscheduler.triggers.date import DateTrigger
    from django.db import transaction

    from django_apscheduler.jobstores import DjangoJobStore
    from tests.fleet import ReleasingExecutor
    from tests.helpers import build_job

    settings.APSCHEDULER_EXECUTORS = {"fleet": {"type": "tests.fleet.ReleasingExecutor"}}
    ReleasingExecutor.sent_fires.clear()
    ReleasingExecutor.shutdowns.clear()
    DjangoJobStore().add_job(build_job("to/the_fleet", NEXT_WEEK, DateTrigger(NEXT_WEEK), executor="fleet"))

    with transaction.atomic():
        (result,) = run_jobs_now(["to/the_fleet"], timeout=30)
        assert not result.error and result.deferred and ReleasingExecutor.sent_fires == []  # not before the commit
    assert [fire.job_id for fire in ReleasingExecutor.sent_fires] == ["to/the_fleet"]
    assert len(ReleasingExecutor.shutdowns) == 1

    with pytest.raises(RuntimeError), transaction.atomic():
        run_jobs_now(["to/the_fleet"], timeout=30)
        raise RuntimeError("the view failed")
    assert len(ReleasingExecutor.sent_fires) == 1  # rolled back: nothing sent, no row left Queued
    assert DjangoJobExecution.objects.filter(job_id="to/the_fleet").count() == 1


def test_inside_a_transaction_run_now_does_not_wait_for_a_scheduler_that_cannot_see_it_yet(live_scheduler):
    import time

    from django.db import connection, transaction

    if connection.vendor == "sqlite":
        pytest.skip(
            "SQLite cannot turn this read-then-write transaction into a write while the scheduler writes "
            "(its deferred transactions fail at once); Django 5.1+'s transaction_mode IMMEDIATE avoids it"
        )

    live_scheduler.add_job(jobfuncs.noop, "date", run_date=NEXT_WEEK, id="weekly")
    started = time.monotonic()
    with transaction.atomic():
        (result,) = run_jobs_now(["weekly"], timeout=30)
    assert time.monotonic() - started < 10  # it did not wait out the 30 s
    assert not result.error and result.deferred and result.execution is None  # the scheduler runs it after the commit
    from tests.helpers import wait_until

    wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id="weekly", status=DjangoJobExecution.SUCCESS).exists(),
        message="the run after the commit",
    )


def test_a_deferred_run_is_reported_as_requested_not_as_still_running(rf):
    from django_apscheduler.admin import audit
    from django_apscheduler.admin.jobs import report_run_results
    from django_apscheduler.runnow import RunResult

    result = RunResult("nightly/report", datetime.now(timezone.utc), None, deferred=True)
    said = []
    report_run_results(rf.get("/"), [result], lambda request, text, level: said.append(str(text)))
    assert len(said) == 1
    assert "Requested:" in said[0] and "nightly/report" in said[0] and "once this request is saved" in said[0]
    assert "Not finished within" not in said[0]
    assert audit.ran_now(result, 25) == "Run now requested; it starts once the request is saved."
