"""Fires handed to a worker fleet: queued once after the claim, started once by a worker, recorded in one row."""

import logging
import os
import time
from datetime import datetime, timedelta, timezone

import pytest
from django.db import OperationalError
from django.test import override_settings

from django_apscheduler import fires, history_writer
from django_apscheduler.executors.handoff import FleetFire, SendingPaused, task_id_for
from django_apscheduler.executors.worker import run_fire
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests import jobfuncs
from tests.fleet import BrokerDownExecutor, FlakyBrokerExecutor, RecordingExecutor, SlowBrokerExecutor
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _row(job_id):
    return DjangoJobExecution.objects.get(job_id=job_id)


@pytest.fixture
def fleet(scheduler_factory):
    """A running scheduler whose "fleet" executor keeps the fires it is handed."""
    scheduler = scheduler_factory()
    executor = RecordingExecutor(queue="reports")
    scheduler.add_executor(executor, "fleet")
    scheduler.add_executor(BrokerDownExecutor(), "down")
    scheduler.start()
    return scheduler, executor


def _queued(scheduler, executor, job_id, func=jobfuncs.noop, **options):
    scheduler.add_job(func, "date", run_date=datetime.now(timezone.utc), id=job_id, executor="fleet", **options)
    return wait_until(lambda: next((f for f in executor.sent if f.job_id == job_id), None), message=f"{job_id} handed off")


def test_a_fire_is_queued_then_run_once_by_a_worker(fleet, tmp_path):
    scheduler, executor = fleet
    log = tmp_path / "calls.log"
    fire = _queued(scheduler, executor, "report/daily_1\n", func=jobfuncs.record_call, args=[str(log)])

    assert isinstance(fire, FleetFire)
    assert fire.queue == "reports" and fire.task_id == task_id_for(fire.job_id, fire.run_time)
    assert fire.run_time.tzinfo == timezone.utc
    assert _row(fire.job_id).status == DjangoJobExecution.QUEUED
    assert not log.exists()  # the scheduler did not run it
    # A finished one-off job is kept (paused) until the worker has loaded it.
    assert DjangoJob.objects.get(pk=fire.job_id).next_run_time is None

    assert run_fire(fire.job_id, fire.run_time_iso) == DjangoJobExecution.SUCCESS
    # The same message delivered again, or to a second worker: not run twice.
    assert run_fire(fire.job_id, fire.run_time_iso) == DjangoJobExecution.SUCCESS

    assert log.read_text() == "x\n"
    row = _row(fire.job_id)
    assert row.status == DjangoJobExecution.SUCCESS
    assert row.worker_pid == os.getpid() and row.worker_host
    assert row.started_at is not None and row.duration is not None and row.finished is not None
    assert len(executor.sent) == 1
    assert not DjangoJob.objects.filter(pk=fire.job_id).exists()  # its last fire ran: retired


def test_the_task_id_is_the_same_for_the_same_fire_only():
    moment = datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc)
    assert task_id_for("a", moment) == task_id_for("a", moment.astimezone(timezone(timedelta(hours=2))))
    assert task_id_for("a", moment) != task_id_for("a", moment + timedelta(microseconds=1))
    assert task_id_for("a", moment) != task_id_for("b", moment)


def test_the_worker_records_the_error_and_traceback(fleet):
    scheduler, executor = fleet
    fire = _queued(scheduler, executor, "failing", func=jobfuncs.fail_with, args=["on the worker"])
    assert run_fire(fire.job_id, fire.run_time_iso) == DjangoJobExecution.ERROR
    row = _row("failing")
    assert row.exception == "ValueError: on the worker"
    assert "fail_with" in row.traceback
    assert row.worker_pid == os.getpid()


def test_a_coroutine_job_runs_to_completion_on_the_worker(fleet):
    from tests import asyncjobs

    scheduler, executor = fleet
    fire = _queued(scheduler, executor, "async", func=asyncjobs.count_with_async_orm, args=["t"])
    assert run_fire(fire.job_id, fire.run_time_iso) == DjangoJobExecution.SUCCESS


def test_a_broker_that_is_down_fails_its_fires_only(fleet, tmp_path):
    scheduler, executor = fleet
    now = datetime.now(timezone.utc)
    scheduler.add_job(jobfuncs.noop, "date", run_date=now, id="unlucky", executor="down")
    fire = _queued(scheduler, executor, "lucky")
    wait_until(lambda: _row("unlucky").status == DjangoJobExecution.ERROR, message="the refused hand-off recorded")
    row = _row("unlucky")
    assert row.exception == "could not be handed to the workers: ConnectionError: broker at 127.0.0.1:1 refused the connection"
    assert _row("lucky").status == DjangoJobExecution.QUEUED
    assert run_fire(fire.job_id, fire.run_time_iso) == DjangoJobExecution.SUCCESS
    # A worker that gets a message for the failed fire anyway does not run it.
    assert run_fire("unlucky", row.run_time.isoformat()) == DjangoJobExecution.ERROR


def test_a_broker_that_is_down_costs_one_try_per_pause_not_one_per_fire(scheduler_factory, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="django_apscheduler.executors")
    scheduler = scheduler_factory()
    flaky = FlakyBrokerExecutor()
    scheduler.add_executor(flaky, "flaky")
    log = tmp_path / "calls.log"
    now = datetime.now(timezone.utc) + timedelta(seconds=0.3)
    for index in range(10):
        scheduler.add_job(jobfuncs.noop, "date", run_date=now, id=f"sent{index}", executor="flaky")
    scheduler.add_job(jobfuncs.record_call, "date", run_date=now, id="in-process", args=[str(log)])
    scheduler.start()

    ids = [f"sent{index}" for index in range(10)]
    wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id__in=ids, status=DjangoJobExecution.ERROR).count() == 10,
        message="the ten fires ended",
    )
    # Real tries: those its sending threads began before the first failure paused it (one each at most);
    # the other fires were not tried while it was paused.
    assert 1 <= flaky.tries <= flaky.sender_threads < 10
    exceptions = sorted(DjangoJobExecution.objects.filter(job_id__in=ids).values_list("exception", flat=True))
    assert sum("ConnectionError: broker at 127.0.0.1:1 refused" in text for text in exceptions) == 10
    paused = sum("SendingPaused: sending through this executor is paused" in text for text in exceptions)
    assert paused == 10 - flaky.tries
    wait_until(lambda: log.exists(), message="the in-process job")  # the other executor's job ran on time
    assert "without a try for the next 0.5 s; check that the broker or task backend is reachable" in caplog.text
    assert caplog.text.count("Traceback") <= flaky.tries  # the paused fires' lines carry none

    # The broker is back: once the pause is over, the next fire is a real try, and it is sent.
    flaky.up = True
    time.sleep(flaky.first_pause + 0.1)
    scheduler.add_job(jobfuncs.noop, "date", run_date=datetime.now(timezone.utc), id="after", executor="flaky")
    wait_until(lambda: [f.job_id for f in flaky.sent] == ["after"], message="the fire sent after the pause")
    wait_until(lambda: _row("after").last_seen is not None, message="the send noted")
    assert _row("after").status == DjangoJobExecution.QUEUED
    assert "works again" in caplog.text


def test_sends_begun_before_a_pause_neither_lengthen_nor_end_it():
    """Four threads fail at once: one pause of first_pause, not one doubled per thread."""
    executor = FlakyBrokerExecutor()
    error = ConnectionError("refused")
    for _ in range(4):  # all began before any failure was counted (epoch 0)
        executor._note_failure(error, 0)
    assert executor._pause == executor.first_pause
    executor._note_success(0)  # a send begun before the pause succeeded late: the pause stands
    assert executor._pause == executor.first_pause
    with pytest.raises(SendingPaused):
        executor.send(FleetFire("job", datetime.now(timezone.utc), "id", "job", None, None))
    executor._note_success(executor._pause_epoch)  # a send begun during the pause succeeded: it ends
    assert executor._pause == 0


def test_a_slow_broker_holds_up_no_other_job_and_a_clean_stop_sends_what_was_submitted(scheduler_factory, tmp_path):
    scheduler = scheduler_factory()
    slow = SlowBrokerExecutor()
    scheduler.add_executor(slow, "slow")
    log = tmp_path / "calls.log"
    due = datetime.now(timezone.utc) + timedelta(seconds=0.5)
    ids = [f"slow{index}" for index in range(3)]
    for job_id in ids:
        scheduler.add_job(jobfuncs.noop, "date", run_date=due, id=job_id, executor="slow", misfire_grace_time=60)
    # Claimed after the others (same run time, later id): submitted after them too.
    scheduler.add_job(jobfuncs.record_call, "date", run_date=due, id="z-in-process", args=[str(log)])
    scheduler.start()

    wait_until(log.exists, message="the in-process job")
    # It ran while the slow broker was still taking the messages (1.5 s each).
    assert len(slow.sent) < 3
    scheduler.shutdown(wait=True)  # sends what was submitted before it returns
    assert sorted(fire.job_id for fire in slow.sent) == ids
    rows = DjangoJobExecution.objects.filter(job_id__in=ids)
    assert [(row.status, row.last_seen is not None) for row in rows] == [(DjangoJobExecution.QUEUED, True)] * 3


def test_hand_off_outcomes_wait_for_a_database_that_is_away(fleet, monkeypatch):
    """The database fails while a hand-off is recorded: the writer retries, and the fire does not stay Queued."""
    scheduler, _ = fleet
    real_apply = history_writer.apply_writes
    failures = []

    def away_for_a_while(writes):
        writes = list(writes)
        if any(w.kind == "unqueue" for w in writes) and len(failures) < 3:
            failures.append(len(writes))
            raise OperationalError("server closed the connection unexpectedly")
        return real_apply(writes)

    monkeypatch.setattr(history_writer, "apply_writes", away_for_a_while)
    scheduler.add_job(jobfuncs.noop, "date", run_date=datetime.now(timezone.utc), id="unlucky", executor="down")
    wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id="unlucky", status=DjangoJobExecution.ERROR).exists(),
        message="the failed send recorded",
    )
    assert len(failures) == 3


def test_ending_a_queued_fire_leaves_one_a_worker_has_started():
    run_time = datetime(2026, 1, 1, tzinfo=timezone.utc)
    DjangoJobExecution.objects.create(job_id="started", run_time=run_time, status=DjangoJobExecution.SENT, worker_pid=1)
    DjangoJobExecution.objects.create(job_id="waiting", run_time=run_time, status=DjangoJobExecution.QUEUED)
    history_writer.apply_writes(
        [history_writer.unqueue(job_id, run_time, status=DjangoJobExecution.ERROR) for job_id in ("started", "waiting")]
    )
    assert _row("started").status == DjangoJobExecution.SENT
    assert _row("waiting").status == DjangoJobExecution.ERROR


def test_an_unknown_message_runs_nothing():
    assert run_fire("ghost", "2026-01-01T00:00:00+00:00") == ""


def test_a_fire_is_noted_as_sent_once_it_was_handed_off(fleet):
    scheduler, executor = fleet
    fire = _queued(scheduler, executor, "noted")
    wait_until(lambda: _row("noted").last_seen is not None, message="the send noted")
    assert _row("noted").status == DjangoJobExecution.QUEUED
    assert fires.mark_lost() == 0  # sent, waiting for a worker: not lost
    assert run_fire(fire.job_id, fire.run_time_iso) == DjangoJobExecution.SUCCESS


def test_a_fire_its_dead_scheduler_never_sent_is_lost_and_never_runs(fleet, tmp_path):
    from django_apscheduler.models import SchedulerInstance

    scheduler, executor = fleet
    log = tmp_path / "calls.log"
    fire = _queued(scheduler, executor, "unsent", func=jobfuncs.record_call, args=[str(log)])
    wait_until(lambda: _row("unsent").last_seen is not None, message="the send noted")
    # As if its scheduler had died between the claim and the send: Queued, never noted as sent.
    dead = SchedulerInstance.objects.create(host="gone", pid=1, started=datetime.now(timezone.utc), last_heartbeat=datetime.now(timezone.utc))
    DjangoJobExecution.objects.filter(job_id="unsent").update(last_seen=None, scheduler=dead)
    assert fires.mark_lost() == 0  # its scheduler still looks alive
    assert fires.mark_lost(among={dead.pk}) == 1
    assert _row("unsent").status == DjangoJobExecution.LOST
    assert run_fire(fire.job_id, fire.run_time_iso) == DjangoJobExecution.LOST  # a message sent anyway: refused
    assert not log.exists()


def test_a_fire_queued_too_long_is_lost_and_never_runs(fleet, tmp_path):
    scheduler, executor = fleet
    log = tmp_path / "calls.log"
    fire = _queued(scheduler, executor, "stuck", func=jobfuncs.record_call, args=[str(log)])
    DjangoJobExecution.objects.filter(job_id="stuck").update(last_seen=datetime.now(timezone.utc) - timedelta(seconds=120))
    with override_settings(APSCHEDULER_HANDOFF_TIMEOUT=60):
        assert fires.mark_lost() == 1
    assert _row("stuck").status == DjangoJobExecution.LOST
    assert run_fire(fire.job_id, fire.run_time_iso) == DjangoJobExecution.LOST
    assert not log.exists()


def test_a_fire_whose_worker_stopped_beating_is_lost(fleet):
    scheduler, executor = fleet
    fire = _queued(scheduler, executor, "orphan")
    taken = fires.start_on_worker(fire.job_id, fire.run_time)
    assert taken is not None
    assert fires.mark_lost() == 0  # its lease is fresh
    DjangoJobExecution.objects.filter(pk=taken.execution_id).update(last_seen=datetime.now(timezone.utc) - timedelta(hours=1))
    assert fires.mark_lost() == 1
    assert _row("orphan").status == DjangoJobExecution.LOST


def test_max_instances_counts_fires_queued_and_running_on_workers(fleet):
    scheduler, executor = fleet
    scheduler.add_job(jobfuncs.noop, "interval", seconds=1, id="busy", executor="fleet", max_instances=1)
    wait_until(lambda: executor.sent, message="the first fire")
    wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id="busy", status=DjangoJobExecution.MAX_INSTANCES).exists(),
        timeout=5,
        message="the second fire refused",
    )
    assert DjangoJobExecution.objects.filter(job_id="busy").on_workers().count() == 1
    assert len(executor.sent) == 1


def test_a_job_whose_executor_is_not_configured_is_flagged_beside_healthy_ones(fleet):
    scheduler, executor = fleet
    now = datetime.now(timezone.utc)
    # Stored by a process that has a "celery-not-configured" executor, due now.
    scheduler.add_job(jobfuncs.noop, "date", run_date=now + timedelta(hours=1), id="nowhere", executor="fleet")
    job = scheduler.get_job("nowhere")
    from django_apscheduler import jobstate

    state = job.__getstate__()
    state["executor"] = "celery-not-configured"
    DjangoJob.objects.filter(pk="nowhere").update(next_run_time=now, **jobstate.dump_state(state, job_id="nowhere"))
    _queued(scheduler, executor, "healthy")
    scheduler.wakeup()
    wait_until(lambda: DjangoJob.objects.get(pk="nowhere").broken, message="the job flagged broken")
    assert "celery-not-configured" in DjangoJob.objects.get(pk="nowhere").broken_reason
    assert not DjangoJobExecution.objects.filter(job_id="nowhere").exists()
    assert _row("healthy").status == DjangoJobExecution.QUEUED


def test_concurrent_deliveries_of_one_fire_run_it_once(fleet, tmp_path):
    """Two workers (threads here, each with its own connection) get the same message at the same moment."""
    import threading

    from django.db import connections

    scheduler, executor = fleet
    log = tmp_path / "calls.log"
    fire = _queued(scheduler, executor, "raced", func=jobfuncs.record_call, args=[str(log)])
    barrier = threading.Barrier(4)
    statuses = []

    def deliver():
        barrier.wait()
        try:
            statuses.append(run_fire(fire.job_id, fire.run_time_iso))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert log.read_text() == "x\n"
    assert statuses.count(DjangoJobExecution.SUCCESS) >= 1 and len(statuses) == 4
    assert _row("raced").status == DjangoJobExecution.SUCCESS


@override_settings(APSCHEDULER_EXECUTORS={"tasks": {"type": "tasks", "backend": "immediate"}})
def test_apscheduler_start_builds_its_scheduler_with_the_configured_executors():
    from django_apscheduler.executors.tasks import DjangoTasksExecutor
    from django_apscheduler.runner import build_scheduler

    scheduler = build_scheduler(max_workers=3)
    assert set(scheduler._executors) == {"default", "tasks"}
    assert isinstance(scheduler._executors["tasks"], DjangoTasksExecutor)


def test_fires_run_on_workers_and_failed_sends_are_counted_in_the_metrics(fleet):
    """The worker process counts what it ran (the scheduler only handed it off); a failed send counts as Error!."""
    from prometheus_client import REGISTRY

    def fires_of(job_id, status):
        return REGISTRY.get_sample_value("django_apscheduler_fires_total", {"job_id": job_id, "status": status}) or 0.0

    scheduler, executor = fleet
    fire = _queued(scheduler, executor, "counted on worker")
    assert fires_of("counted on worker", "executed") == 0
    assert run_fire(fire.job_id, fire.run_time_iso) == DjangoJobExecution.SUCCESS
    assert fires_of("counted on worker", "executed") == 1
    assert run_fire(fire.job_id, fire.run_time_iso) == DjangoJobExecution.SUCCESS  # redelivered: not counted again
    assert fires_of("counted on worker", "executed") == 1

    scheduler.add_job(jobfuncs.noop, "date", run_date=datetime.now(timezone.utc), id="send fails", executor="down")
    wait_until(lambda: fires_of("send fails", "error") == 1, message="the failed send counted")
