"""A scheduler whose start fails leaves nothing behind; one that started is not hurt by a bad add_job.

APScheduler starts the job stores early in ``start()`` and can still fail after
that (a pending job that cannot be stored, another store or executor whose start
raises). It then raises from ``start()`` and leaves the scheduler stopped, with no
``shutdown()`` to come: none of our threads may keep running, no scheduler row may
count as alive, and run-now must not wait for a scheduler that never ran.
"""

import threading
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from django.db import DatabaseError

from django_apscheduler import membership
from django_apscheduler.jobstores import DjangoJobStore, DjangoMemoryJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution, SchedulerInstance
from django_apscheduler.runnow import run_jobs_now
from tests import jobfuncs

pytestmark = pytest.mark.django_db(transaction=True)

NEXT_WEEK = datetime.now(timezone.utc) + timedelta(days=7)
STORES = {"DjangoJobStore": DjangoJobStore, "DjangoMemoryJobStore": DjangoMemoryJobStore}
SCHEDULERS = {"BackgroundScheduler": BackgroundScheduler, "BlockingScheduler": BlockingScheduler}


class StoreThatCannotStart(MemoryJobStore):
    """Another job store of the same scheduler, started after ours, whose start raises."""

    def start(self, scheduler, alias):
        raise RuntimeError("this store cannot start")


def our_threads():
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("django-apscheduler"))


@pytest.fixture
def threads_before():
    """Threads already running (other tests' leftovers do not count against a test)."""
    return set(threading.enumerate())


def new_threads(before):
    return [t.name for t in set(threading.enumerate()) - before if t.is_alive()]


def add_stored_good_job(scheduler):
    scheduler.add_job(jobfuncs.noop, "date", run_date=NEXT_WEEK, id="good")


@pytest.mark.parametrize("scheduler_class", SCHEDULERS.values(), ids=SCHEDULERS.keys())
def test_a_lambda_added_before_start_leaves_nothing_running(scheduler_class, threads_before):
    scheduler = scheduler_class(timezone="UTC")
    scheduler.add_jobstore(DjangoJobStore(), "default")
    add_stored_good_job(scheduler)
    scheduler.add_job(lambda: None, "interval", seconds=5, id="lambda")

    with pytest.raises(ValueError, match="cannot be serialized"):
        scheduler.start()

    assert not scheduler.running
    assert new_threads(threads_before) == []
    assert not SchedulerInstance.objects.exists()  # not even a stopped row: it never joined


@pytest.mark.parametrize("scheduler_class", SCHEDULERS.values(), ids=SCHEDULERS.keys())
@pytest.mark.parametrize("store_class", STORES.values(), ids=STORES.keys())
def test_another_store_failing_after_ours_leaves_nothing_running(scheduler_class, store_class, threads_before):
    scheduler = scheduler_class(timezone="UTC")
    scheduler.add_jobstore(store_class(), "default")
    scheduler.add_jobstore(StoreThatCannotStart(), "second")

    with pytest.raises(RuntimeError, match="this store cannot start"):
        scheduler.start()

    assert not scheduler.running
    assert new_threads(threads_before) == []
    assert not SchedulerInstance.objects.exists()


def test_run_now_after_a_failed_start_runs_in_process():
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_jobstore(DjangoJobStore(), "default")
    add_stored_good_job(scheduler)
    scheduler.add_job(lambda: None, "interval", seconds=5, id="lambda")
    with pytest.raises(ValueError):
        scheduler.start()
    assert DjangoJob.objects.filter(pk="good").exists()  # stored before the lambda failed

    (result,) = run_jobs_now(["good"], timeout=15)

    assert result.in_process  # as when no scheduler is alive: nobody to hand it to
    assert result.succeeded
    assert result.execution.scheduler_id is None


def test_the_same_scheduler_starts_correctly_once_the_bad_job_is_gone(threads_before):
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_jobstore(DjangoJobStore(), "default")
    scheduler.add_job(lambda: None, "interval", seconds=5, id="lambda")
    with pytest.raises(ValueError):
        scheduler.start()

    scheduler.remove_job("lambda")  # a stopped scheduler forgets its pending job
    scheduler.start()
    try:
        (alive,) = SchedulerInstance.objects.alive()
        assert {"django-apscheduler-heartbeat", "django-apscheduler-history-default"} <= set(our_threads())
        scheduler.add_job(jobfuncs.noop, "date", run_date=NEXT_WEEK, id="after")
        (result,) = run_jobs_now(["after"], timeout=15)
        assert not result.in_process
        assert result.succeeded and result.execution.scheduler_id == alive.pk
    finally:
        scheduler.shutdown()
    assert new_threads(threads_before) == []
    assert not SchedulerInstance.objects.alive().exists()


def test_a_blocking_scheduler_starts_correctly_after_a_failed_start(threads_before):
    failed = BlockingScheduler(timezone="UTC")
    failed.add_jobstore(DjangoJobStore(), "default")
    failed.add_job(lambda: None, "interval", seconds=5, id="lambda")
    with pytest.raises(ValueError):
        failed.start()

    good = BlockingScheduler(timezone="UTC")
    good.add_jobstore(DjangoJobStore(), "default")
    good.add_job(jobfuncs.noop, "date", run_date=NEXT_WEEK, id="good")
    loop = threading.Thread(target=good.start, name="test-blocking-loop")
    loop.start()
    try:
        for _ in range(200):
            if SchedulerInstance.objects.alive().exists() and good.running:
                break
            threading.Event().wait(0.05)
        (result,) = run_jobs_now(["good"], timeout=15)
        assert not result.in_process
        assert result.succeeded
    finally:
        good.shutdown()
        loop.join(timeout=15)
    assert not loop.is_alive()
    assert SchedulerInstance.objects.count() == 1  # the failed start never registered


def test_a_lambda_added_after_start_harms_nothing(scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start()
    scheduler.add_job(jobfuncs.noop, "date", run_date=NEXT_WEEK, id="good")
    threads = our_threads()
    (alive,) = SchedulerInstance.objects.alive()

    with pytest.raises(ValueError, match="cannot be serialized"):
        scheduler.add_job(lambda: None, "interval", seconds=5, id="lambda")

    assert scheduler.running
    assert list(DjangoJob.objects.values_list("id", flat=True)) == ["good"]  # nothing half-written
    assert our_threads() == threads
    assert list(SchedulerInstance.objects.alive()) == [alive]
    (result,) = run_jobs_now(["good"], timeout=15)
    assert not result.in_process and result.succeeded
    assert DjangoJobExecution.objects.get(job_id="good").scheduler_id == alive.pk


def test_a_store_added_to_a_running_scheduler_joins_at_once(scheduler_factory):
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start()
    try:
        scheduler.add_jobstore(DjangoJobStore(), "db")
        assert SchedulerInstance.objects.alive().count() == 1
        assert "django-apscheduler-heartbeat" in our_threads()
    finally:
        scheduler.shutdown()
    assert not SchedulerInstance.objects.alive().exists()


def test_a_scheduler_that_cannot_register_claims_nothing(monkeypatch, threads_before, caplog):
    """APScheduler swallows a start listener's error: the scheduler runs on, so it must claim nothing."""

    def refuse():
        raise DatabaseError("permission denied for table django_apscheduler_schedulerinstance")

    monkeypatch.setattr(membership, "register_scheduler", refuse)
    scheduler = BackgroundScheduler(timezone="UTC")
    store = DjangoJobStore()
    scheduler.add_jobstore(store, "default")
    scheduler.add_job(jobfuncs.noop, "date", run_date=datetime.now(timezone.utc), id="due")
    scheduler.start(paused=True)
    try:
        assert "could not register in the database" in caplog.text
        assert store.get_due_jobs(datetime.now(timezone.utc) + timedelta(seconds=1)) == []
        assert not SchedulerInstance.objects.exists()
        assert not DjangoJobExecution.objects.exists()
        assert our_threads() == sorted(t.name for t in threads_before if t.name.startswith("django-apscheduler"))
    finally:
        scheduler.shutdown()
