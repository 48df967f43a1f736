"""Execution history recorded from a real scheduler's events."""

import logging
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_SUBMITTED, JobExecutionEvent, JobSubmissionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from django.utils import timezone as dj_timezone

from django_apscheduler.fires import Fires
from django_apscheduler.jobstores import DjangoMemoryJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests import jobfuncs
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

UTC = timezone.utc


def now():
    return datetime.now(UTC)


def executions(job_id, **filters):
    return list(DjangoJobExecution.objects.filter(job_id=job_id, **filters))


def final(job_id, count=1, timeout=15):
    return wait_until(
        lambda: (rows := executions(job_id, status__in=DjangoJobExecution.FINAL_STATUSES)) and len(rows) >= count and rows,
        timeout=timeout,
        message=f"{count} finished execution(s) of {job_id}",
    )


def test_success_is_recorded_with_real_duration(scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start()
    scheduler.add_job(jobfuncs.sleep_for, "date", run_date=now(), args=[0.5], id="sleeper")
    (row,) = final("sleeper")
    assert row.status == DjangoJobExecution.SUCCESS
    assert 0.45 <= float(row.duration) <= 2.0
    assert row.started_at >= row.run_time
    assert row.finished is not None and float(row.finished) >= row.started_at.timestamp()
    assert row.scheduler_id is not None
    assert row.exception is None and row.traceback is None


def test_error_is_recorded_with_exception_and_full_traceback(scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start()
    scheduler.add_job(jobfuncs.fail_with, "date", run_date=now(), args=["boom <b>"], id="failing")
    (row,) = final("failing")
    assert row.status == DjangoJobExecution.ERROR
    assert row.exception == "ValueError: boom <b>"
    assert "fail_with" in row.traceback and "raise ValueError(message)" in row.traceback
    assert "fires.py" not in row.traceback  # the package's own timer frame is hidden


def test_missed_fire_is_recorded(scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start()
    scheduler.add_job(jobfuncs.noop, "date", run_date=now() - timedelta(seconds=30), misfire_grace_time=1, id="late")
    (row,) = final("late")
    assert row.status == DjangoJobExecution.MISSED


def test_max_instances_is_recorded(scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start()
    scheduler.add_job(jobfuncs.sleep_for, "interval", seconds=0.3, args=[1.5], max_instances=1, id="slow")
    wait_until(lambda: executions("slow", status=DjangoJobExecution.MAX_INSTANCES), message="a Max instances! row")
    scheduler.remove_job("slow")
    running = executions("slow", status=DjangoJobExecution.SENT)
    assert len(running) <= 1


def test_history_outlives_a_removed_job(scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start()
    scheduler.add_job(jobfuncs.noop, "interval", hours=1, next_run_time=now(), id="removable")
    final("removable")
    scheduler.remove_job("removable")
    assert not DjangoJob.objects.filter(pk="removable").exists()
    assert len(executions("removable")) == 1


def test_one_off_date_job_keeps_its_record(scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start()
    scheduler.add_job(jobfuncs.noop, "date", run_date=now(), id="once")
    (row,) = final("once")
    wait_until(lambda: not DjangoJob.objects.filter(pk="once").exists(), message="the finished date job to go")
    assert row.status == DjangoJobExecution.SUCCESS
    assert DjangoJobExecution.objects.filter(job_id="once").count() == 1


def test_duration_excludes_time_spent_waiting_for_a_worker(scheduler_factory):
    """With one worker thread, the second job waits ~1 s; its duration must not count that."""
    scheduler = scheduler_factory(
        executors={"default": {"type": "threadpool", "max_workers": 1}},
        job_defaults={"misfire_grace_time": None},
    )
    scheduler.start()
    when = now() + timedelta(milliseconds=300)
    scheduler.add_job(jobfuncs.sleep_for, "date", run_date=when, args=[1.0], id="first")
    scheduler.add_job(jobfuncs.sleep_for, "date", run_date=when, args=[0.2], id="second")
    final("first")
    (second,) = final("second")
    assert second.status == DjangoJobExecution.SUCCESS
    assert (second.started_at - second.run_time).total_seconds() >= 0.8
    assert float(second.duration) < 0.6


def test_memory_job_store_records_executions():
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_jobstore(DjangoMemoryJobStore(), "default")
    scheduler.start()
    try:
        scheduler.add_job(jobfuncs.noop, "date", run_date=now(), id="in-memory")
        scheduler.add_job(jobfuncs.fail_with, "date", run_date=now(), args=["nope"], id="in-memory-fails")
        (ok,) = final("in-memory")
        (bad,) = final("in-memory-fails")
    finally:
        scheduler.shutdown()
    assert ok.status == DjangoJobExecution.SUCCESS and ok.duration is not None
    assert bad.status == DjangoJobExecution.ERROR and bad.exception == "ValueError: nope"
    assert not DjangoJob.objects.exists()


def test_events_out_of_order_keep_the_final_status(caplog):
    recorder = Fires("default")
    run_time = now().replace(microsecond=123456)
    caplog.set_level(logging.DEBUG)
    recorder(JobExecutionEvent(EVENT_JOB_EXECUTED, "fast", "default", run_time, retval=1))
    recorder(JobSubmissionEvent(EVENT_JOB_SUBMITTED, "fast", "default", [run_time]))
    recorder(JobExecutionEvent(EVENT_JOB_EXECUTED, "fast", "default", run_time, retval=1))
    (row,) = executions("fast")
    assert row.status == DjangoJobExecution.SUCCESS
    assert "IntegrityError" not in caplog.text and "MultipleObjectsReturned" not in caplog.text


def test_events_of_other_job_stores_are_ignored():
    recorder = Fires("default")
    recorder(JobSubmissionEvent(EVENT_JOB_SUBMITTED, "elsewhere", "memory", [now()]))
    assert executions("elsewhere") == []


def test_delete_old_job_executions():
    old = dj_timezone.now() - timedelta(days=8)
    recent = dj_timezone.now() - timedelta(hours=1)
    for index, run_time in enumerate([old, old - timedelta(days=1), recent]):
        DjangoJobExecution.objects.create(job_id=f"j{index}", run_time=run_time, status=DjangoJobExecution.SUCCESS)
    deleted = DjangoJobExecution.objects.delete_old_job_executions(max_age=7 * 24 * 3600)
    assert deleted == 2
    assert list(DjangoJobExecution.objects.values_list("job_id", flat=True)) == ["j2"]


def test_shutdown_writes_every_result_before_it_returns(scheduler_factory):
    """Results are written by a writer thread in batches; a clean shutdown leaves none unwritten."""
    scheduler = scheduler_factory()
    scheduler.start()
    due = now()
    for index in range(40):
        # However late a loaded machine runs them: this test is about the writes, not misfires.
        scheduler.add_job(jobfuncs.noop, "date", run_date=due, id=f"quick{index:02d}", misfire_grace_time=None)
    wait_until(lambda: not DjangoJob.objects.exists(), message="all 40 date jobs claimed")
    scheduler.shutdown(wait=True)
    ids = [f"quick{index:02d}" for index in range(40)]
    statuses = list(DjangoJobExecution.objects.filter(job_id__in=ids).values_list("status", flat=True))
    assert statuses == [DjangoJobExecution.SUCCESS] * 40


def test_automatic_retention_keeps_fires_still_queued_or_running(settings):
    """APSCHEDULER_HISTORY_RETENTION prunes finished history only: a fire waiting for a worker keeps its row."""
    from django_apscheduler.membership import enforce_history_retention

    settings.APSCHEDULER_HISTORY_RETENTION = 3600
    old = dj_timezone.now() - timedelta(hours=2)
    for status in (DjangoJobExecution.SUCCESS, DjangoJobExecution.QUEUED, DjangoJobExecution.SENT, DjangoJobExecution.LOST):
        DjangoJobExecution.objects.create(job_id=f"old {status}", run_time=old, status=status)
    DjangoJobExecution.objects.create(job_id="recent", run_time=dj_timezone.now(), status=DjangoJobExecution.SUCCESS)

    assert enforce_history_retention() == 2
    assert sorted(DjangoJobExecution.objects.values_list("job_id", flat=True)) == [
        "old Queued",
        "old Started execution",
        "recent",
    ]
