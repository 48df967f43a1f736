"""AsyncIOScheduler started inside a running event loop (asyncio.run), on each database.

APScheduler calls the job store on the loop's thread, where Django forbids
synchronous queries: these tests pass only if the store keeps its database work
off the loop, and they measure how long the loop is held meanwhile.
"""

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from asgiref.sync import sync_to_async
from django.db import connections

from django_apscheduler import runnow
from django_apscheduler.jobstores import DjangoJobStore, DjangoMemoryJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution, SchedulerInstance
from tests import asyncjobs
from tests.eventloop import LoopLagProbe
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

UTC = timezone.utc
PACKAGE_THREADS = ("django-apscheduler",)


@pytest.fixture(autouse=True)
def fresh_seen():
    asyncjobs.SEEN.clear()
    yield
    asyncjobs.SEEN.clear()
    # The async ORM queries from asgiref's one thread for sync code, which outlives
    # the loop: close its connection, or the test database cannot be dropped.
    asyncio.run(sync_to_async(connections.close_all)())


@pytest.fixture(autouse=True)
def quick_polls(settings):
    settings.APSCHEDULER_POLL_INTERVAL = 0.5
    settings.APSCHEDULER_HEARTBEAT_INTERVAL = 0.5


def package_threads():
    """The package's threads still alive; a worker process's lease thread (started by the hand-off
    tests when they play the worker in this process) is meant to live as long as the process."""
    return sorted(
        t.name
        for t in threading.enumerate()
        if t.name.startswith(PACKAGE_THREADS) and t.name != "django-apscheduler-worker-lease"
    )


async def wait_for(condition, timeout=20.0, message="condition"):
    """Poll ``condition`` (a sync ORM check) off the loop until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.1)


def finished(*job_ids):
    def check():
        statuses = dict(DjangoJobExecution.objects.filter(job_id__in=job_ids).values_list("job_id", "status"))
        return all(statuses.get(job_id) in DjangoJobExecution.FINAL_STATUSES for job_id in job_ids)

    return check


async def stop(scheduler):
    """AsyncIOScheduler.shutdown() only schedules the shutdown on the loop: let it run."""
    scheduler.shutdown()
    while scheduler.running:
        await asyncio.sleep(0.01)


def test_the_issue_snippet_records_sync_and_coroutine_jobs():
    """The snippet from the issue, with every kind of job an async site has."""
    soon = datetime.now(UTC) + timedelta(seconds=1)
    probe = LoopLagProbe()

    async def main():
        probe.start()
        s = AsyncIOScheduler(timezone="UTC")
        s.add_jobstore(DjangoJobStore(), "default")
        s.start()
        s.add_job(asyncjobs.count_with_async_orm, "date", run_date=soon, args=["async-orm"], id="async-orm")
        s.add_job(asyncjobs.count_through_sync_to_async, "date", run_date=soon, args=["s2a"], id="s2a")
        s.add_job(asyncjobs.sleep_on_the_loop, "date", run_date=soon, args=["slow", 0.4], id="slow")
        s.add_job(asyncjobs.fail_on_the_loop, "date", run_date=soon, args=["boom <b>"], id="fails")
        s.add_job(asyncjobs.sync_job, "date", run_date=soon, args=["sync"], id="sync")
        s.add_job(asyncjobs.sync_job, "interval", seconds=1, args=["tick"], id="tick")
        await wait_for(finished("async-orm", "s2a", "slow", "fails", "sync"), message="the date jobs")
        await stop(s)
        await probe.stop()

    asyncio.run(main())

    rows = {e.job_id: e for e in DjangoJobExecution.objects.exclude(job_id="tick")}
    assert {job_id: e.status for job_id, e in rows.items()} == {
        "async-orm": DjangoJobExecution.SUCCESS,
        "s2a": DjangoJobExecution.SUCCESS,
        "slow": DjangoJobExecution.SUCCESS,
        "fails": DjangoJobExecution.ERROR,
        "sync": DjangoJobExecution.SUCCESS,
    }
    seen = dict(asyncjobs.SEEN)
    # Both coroutine jobs queried the jobs table: "tick" was still stored, the date jobs maybe not.
    assert seen["async-orm"] >= 1 and seen["s2a"] >= 1
    assert seen["slow"] == 0.4
    assert seen["sync"] != threading.main_thread().name  # a sync job runs in the loop's thread pool
    # Real start and duration of a coroutine job: it awaited 0.4 s on the loop.
    slow = rows["slow"]
    assert slow.started_at >= slow.run_time
    assert 0.4 <= float(slow.duration) < 3
    failed = rows["fails"]
    assert failed.exception == "ValueError: boom <b>"
    assert "fail_on_the_loop" in failed.traceback and "raise ValueError(message)" in failed.traceback
    assert "fires.py" not in failed.traceback  # the timer's own frame is removed
    assert failed.started_at is not None and failed.duration is not None
    ticks = DjangoJobExecution.objects.filter(job_id="tick")
    assert ticks.exists() and set(ticks.values_list("status", flat=True)) == {DjangoJobExecution.SUCCESS}
    # A clean stop: the row says so, and no thread of the package is left behind.
    instance = SchedulerInstance.objects.get()
    assert instance.stopped is not None and instance.died is None
    assert package_threads() == []
    assert probe.samples > 100
    print(f"\nloop lag while scheduling (worst): {probe.worst * 1000:.1f} ms")


class TimedStore(DjangoJobStore):
    """Notes how long each call made on the loop's thread held it (what the loop waits for)."""

    def __init__(self):
        super().__init__()
        self.longest_call = 0.0
        self.calls = 0

    def _timed(self, method, *args):
        started = time.perf_counter()
        try:
            return method(*args)
        finally:
            self.longest_call = max(self.longest_call, time.perf_counter() - started)
            self.calls += 1

    def get_due_jobs(self, now):
        return self._timed(super().get_due_jobs, now)

    def get_next_run_time(self):
        return self._timed(super().get_next_run_time)


def test_the_loop_is_held_only_while_a_claim_runs(capsys):
    """200 fires due at once: the loop waits for the claim, and for nothing else."""
    jobs = 200
    first = datetime.now(UTC) + timedelta(seconds=2)
    probe = LoopLagProbe()
    store = TimedStore()

    async def main():
        s = AsyncIOScheduler(timezone="UTC", job_defaults={"misfire_grace_time": 60})
        s.add_jobstore(store, "default")
        s.start()
        for index in range(jobs):
            s.add_job(asyncjobs.sleep_on_the_loop, "date", run_date=first, args=[f"j{index}", 0], id=f"j{index:03d}")
        probe.start()
        await wait_for(lambda: DjangoJobExecution.objects.filter(status=DjangoJobExecution.SUCCESS).count() == jobs)
        await probe.stop()
        await stop(s)

    asyncio.run(main())
    assert len(asyncjobs.SEEN) == jobs
    assert store.calls > 0
    # The probe's worst wake-up delay is the loop's longest block; it cannot exceed the
    # longest store call by more than the scheduling of 200 coroutines and machine noise.
    assert probe.worst < store.longest_call + 0.5, (probe.worst, store.longest_call)
    with capsys.disabled():
        print(
            f"\nloop lag with {jobs} fires due at once: worst {probe.worst * 1000:.1f} ms; "
            f"longest store call (a claim) {store.longest_call * 1000:.1f} ms over {store.calls} calls"
        )


def test_changes_from_other_threads_and_run_now_are_obeyed():
    """Jobs added from another thread run; a run requested elsewhere (admin, command) runs on the loop's scheduler."""
    far = datetime.now(UTC) + timedelta(days=1)

    async def main():
        s = AsyncIOScheduler(timezone="UTC")
        s.add_jobstore(DjangoJobStore(), "default")
        s.start()
        s.add_job(asyncjobs.count_with_async_orm, "date", run_date=far, args=["requested"], id="later")
        # A sync view or the shell adds a job from its own thread.
        await asyncio.to_thread(
            s.add_job, asyncjobs.sync_job, "date", run_date=datetime.now(UTC), args=["from-thread"], id="thread"
        )
        results = await asyncio.to_thread(runnow.run_jobs_now, ["later"], 15)
        await wait_for(finished("thread"), message="the job added from another thread")
        await stop(s)
        return results

    [result] = asyncio.run(main())
    assert result.succeeded and not result.in_process
    assert ("requested", 1) in asyncjobs.SEEN  # the job "later" is still stored, untouched
    assert DjangoJob.objects.get(pk="later").next_run_time == far
    assert DjangoJobExecution.objects.get(job_id="thread").status == DjangoJobExecution.SUCCESS


def test_memory_job_store_records_coroutine_jobs():
    soon = datetime.now(UTC) + timedelta(seconds=0.5)

    async def main():
        s = AsyncIOScheduler(timezone="UTC")
        s.add_jobstore(DjangoMemoryJobStore(), "default")
        s.start()
        s.add_job(asyncjobs.sleep_on_the_loop, "date", run_date=soon, args=["mem", 0.2], id="mem")
        s.add_job(asyncjobs.fail_on_the_loop, "date", run_date=soon, args=["mem failed"], id="mem-fails")
        await wait_for(finished("mem", "mem-fails"))
        await stop(s)

    asyncio.run(main())
    ok = DjangoJobExecution.objects.get(job_id="mem")
    assert ok.status == DjangoJobExecution.SUCCESS and float(ok.duration) >= 0.2
    failed = DjangoJobExecution.objects.get(job_id="mem-fails")
    assert failed.status == DjangoJobExecution.ERROR and failed.exception == "ValueError: mem failed"
    assert package_threads() == []


def test_a_thread_based_scheduler_runs_coroutine_jobs_to_completion(scheduler_factory):
    """A BackgroundScheduler that claims a coroutine job (beside AsyncIOSchedulers) really runs it."""
    scheduler = scheduler_factory()
    scheduler.start()
    soon = datetime.now(UTC) + timedelta(seconds=0.5)
    scheduler.add_job(asyncjobs.sync_job, "date", run_date=soon + timedelta(days=1), args=["never"], id="keeper")
    scheduler.add_job(asyncjobs.count_with_async_orm, "date", run_date=soon, args=["bg-orm"], id="bg-orm")
    scheduler.add_job(asyncjobs.sleep_on_the_loop, "date", run_date=soon, args=["bg-slow", 0.3], id="bg-slow")
    scheduler.add_job(asyncjobs.fail_on_the_loop, "date", run_date=soon, args=["bg failed"], id="bg-fails")
    wait_until(finished("bg-orm", "bg-slow", "bg-fails"), message="the coroutine jobs")
    scheduler.shutdown(wait=True)
    # The async ORM query ran (in the fire's own loop) and saw at least the job "keeper".
    assert dict(asyncjobs.SEEN) == {"bg-orm": 1, "bg-slow": 0.3}
    slow = DjangoJobExecution.objects.get(job_id="bg-slow")
    assert slow.status == DjangoJobExecution.SUCCESS and float(slow.duration) >= 0.3
    failed = DjangoJobExecution.objects.get(job_id="bg-fails")
    assert failed.status == DjangoJobExecution.ERROR and failed.exception == "ValueError: bg failed"
    assert "fail_on_the_loop" in failed.traceback


class StopsRightAfterItsClaim(DjangoJobStore):
    """Queues the scheduler's shutdown on the loop the moment a claim returns fires.

    The claimed coroutines' tasks are created after the claim, so the shutdown runs
    before any of them starts: APScheduler's AsyncIOExecutor then cancels them.
    """

    def __init__(self, scheduler_ref):
        super().__init__()
        self.scheduler_ref = scheduler_ref
        self.claimed = []

    def get_due_jobs(self, now):
        jobs = super().get_due_jobs(now)
        if jobs and not self.claimed:
            self.claimed = [(job.id, job.next_run_time) for job in jobs]
            asyncio.get_running_loop().call_soon(self.scheduler_ref[0].shutdown)
        return jobs


def test_fires_claimed_but_cancelled_by_the_shutdown_are_given_back_for_a_peer_to_run(settings):
    """A stop between a claim and the start of its coroutines: the fires did not run, so nothing is lost.

    Their rows are removed and the job's next run time goes back to the fire, so the
    next scheduler to claim (here: the same store started again) runs each once.
    (Claimed at their instant, so that one claim hands over both; fires claimed
    ahead and stopped are in test_claim_ahead.)
    """
    settings.APSCHEDULER_CLAIM_AHEAD = 0
    due = datetime.now(UTC) + timedelta(seconds=1)
    scheduler_ref = []
    store = StopsRightAfterItsClaim(scheduler_ref)

    async def first_run():
        s = AsyncIOScheduler(timezone="UTC")
        scheduler_ref.append(s)
        s.add_jobstore(store, "default")
        s.start()
        # No grace limit: the given-back fire is run late, by the next scheduler (the default 1 s could miss it).
        s.add_job(
            asyncjobs.sleep_on_the_loop, "interval", seconds=3600, start_date=due, args=["first", 0], id="hourly",
            misfire_grace_time=None,
        )
        s.add_job(asyncjobs.sleep_on_the_loop, "date", run_date=due, args=["once", 0], id="once")
        while s.running:
            await asyncio.sleep(0.05)

    asyncio.run(first_run())
    assert sorted(job_id for job_id, _ in store.claimed) == ["hourly", "once"]
    assert asyncjobs.SEEN == []  # cancelled before they started
    # The interval job's fire is given back; the date job, deleted by its claim, has nothing to go back to.
    assert DjangoJob.objects.get(id="hourly").next_run_time == due
    assert not DjangoJobExecution.objects.filter(job_id="hourly").exists()
    once = DjangoJobExecution.objects.get(job_id="once")
    assert once.status == DjangoJobExecution.LOST and "stopped before this fire started" in once.exception

    async def second_run():
        s = AsyncIOScheduler(timezone="UTC")
        s.add_jobstore(DjangoJobStore(), "default")
        s.start()
        await wait_for(finished("hourly"), message="the given-back fire")
        await stop(s)

    asyncio.run(second_run())
    assert asyncjobs.SEEN == [("first", 0)]
    row = DjangoJobExecution.objects.get(job_id="hourly")
    assert row.status == DjangoJobExecution.SUCCESS and row.run_time == due
