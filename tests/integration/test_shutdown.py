"""A scheduler stopped between a claim and the start of the claimed fires.

The fires never ran, so none may be lost or run twice: the claim is undone (the
rows go, the job is due at the first fire again) and the next scheduler to claim
runs each fire once. Where the claim cannot be undone (a peer has claimed the
job's later fires, or its schedule was edited), the row says the fire never
started. (The AsyncIOScheduler case, where the shutdown cancels the claimed
coroutines, is in test_asyncio_scheduler.)
"""

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.executors.pool import ProcessPoolExecutor, ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests import jobfuncs
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

UTC = timezone.utc


class RefusingPool(ThreadPoolExecutor):
    """A pool that has shut down: it refuses every fire, as a pool does once its shutdown began."""

    def __init__(self):
        super().__init__(max_workers=1)
        self.refused = 0

    def _do_submit_job(self, job, run_times):
        self.refused += 1
        raise RuntimeError("cannot schedule new futures after shutdown")


@pytest.fixture(autouse=True)
def quick_polls(settings):
    settings.APSCHEDULER_POLL_INTERVAL = 0.2


def claim_into_a_refusing_pool(calls, **job_options):
    """Start a scheduler, let it claim the job's fire into a pool that refuses it; return the scheduler."""
    pool = RefusingPool()
    scheduler = BackgroundScheduler(timezone="UTC", executors={"pool": pool})
    scheduler.add_jobstore(DjangoJobStore(), "default")
    scheduler.start()
    scheduler.add_job(jobfuncs.record_call, args=[str(calls), "x"], id="hourly", executor="pool", **job_options)
    wait_until(lambda: pool.refused, message="the claimed fire to be refused")
    return scheduler


def run_with_a_working_pool(until):
    scheduler = BackgroundScheduler(timezone="UTC", executors={"pool": ThreadPoolExecutor(max_workers=1)})
    scheduler.add_jobstore(DjangoJobStore(), "default")
    scheduler.start()
    try:
        wait_until(until, message="the fire run by the next scheduler")
    finally:
        scheduler.shutdown()


def test_a_fire_the_pool_refused_is_given_back_and_run_once_by_the_next_scheduler(tmp_path):
    calls = tmp_path / "calls"
    due = datetime.now(UTC) + timedelta(seconds=0.5)
    scheduler = claim_into_a_refusing_pool(calls, trigger="interval", hours=1, start_date=due, misfire_grace_time=None)
    claimed = DjangoJobExecution.objects.get(job_id="hourly")
    assert claimed.status == DjangoJobExecution.SENT and claimed.run_time == due
    assert DjangoJob.objects.get(id="hourly").next_run_time == due + timedelta(hours=1)

    scheduler.shutdown()

    assert not DjangoJobExecution.objects.filter(job_id="hourly").exists()
    assert DjangoJob.objects.get(id="hourly").next_run_time == due
    run_with_a_working_pool(
        lambda: DjangoJobExecution.objects.filter(job_id="hourly", status=DjangoJobExecution.SUCCESS).exists()
    )
    assert calls.read_text().splitlines() == ["x"]
    row = DjangoJobExecution.objects.get(job_id="hourly")
    assert row.run_time == due
    assert DjangoJob.objects.get(id="hourly").next_run_time == due + timedelta(hours=1)


def test_a_fire_whose_job_moved_on_meanwhile_is_recorded_as_never_started(tmp_path):
    calls = tmp_path / "calls"
    due = datetime.now(UTC) + timedelta(seconds=0.5)
    scheduler = claim_into_a_refusing_pool(calls, trigger="interval", hours=1, start_date=due)
    edited = due + timedelta(days=1)
    DjangoJob.objects.filter(id="hourly").update(next_run_time=edited)  # a peer or an edit moved it

    scheduler.shutdown()

    row = DjangoJobExecution.objects.get(job_id="hourly")
    assert row.status == DjangoJobExecution.LOST
    assert "stopped before this fire started" in row.exception
    assert DjangoJob.objects.get(id="hourly").next_run_time == edited  # the edit stands
    assert not calls.exists()


def test_a_date_job_fire_that_never_started_is_recorded_as_never_started(tmp_path):
    calls = tmp_path / "calls"
    scheduler = claim_into_a_refusing_pool(calls, trigger="date", run_date=datetime.now(UTC) + timedelta(seconds=0.5))
    assert not DjangoJob.objects.filter(id="hourly").exists()  # its claim deleted the finished job

    scheduler.shutdown()

    row = DjangoJobExecution.objects.get(job_id="hourly")
    assert row.status == DjangoJobExecution.LOST
    assert "stopped before this fire started" in row.exception
    assert not calls.exists()


def test_a_fire_queued_in_the_pool_at_a_stop_without_wait_is_given_back_and_never_called(tmp_path):
    """shutdown(wait=False): the pool still starts what it had queued; the timer refuses the settled fire."""
    calls = tmp_path / "calls"
    pool = ThreadPoolExecutor(max_workers=1)
    scheduler = BackgroundScheduler(timezone="UTC", executors={"default": pool})
    scheduler.add_jobstore(DjangoJobStore(), "default")
    scheduler.start()
    due = datetime.now(UTC) + timedelta(seconds=0.5)
    # The slow job holds the pool's one thread; the hourly fire waits behind it.
    scheduler.add_job(jobfuncs.sleep_for, "date", run_date=due, args=[1.5], id="a-slow")
    scheduler.add_job(
        jobfuncs.record_call, "interval", hours=1, start_date=due, args=[str(calls), "x"], id="hourly",
        misfire_grace_time=None,
    )
    wait_until(lambda: DjangoJobExecution.objects.filter(job_id="hourly").exists(), message="both fires claimed")

    scheduler.shutdown(wait=False)
    pool._pool.shutdown(wait=True)  # the pool's thread runs what it had queued: the slow fire, then the hourly one

    assert not calls.exists()  # the settled fire's function was not called
    assert not DjangoJobExecution.objects.filter(job_id="hourly").exists()
    assert DjangoJob.objects.get(id="hourly").next_run_time == due


def test_only_fires_whose_function_starts_in_this_process_are_watched_for_a_start():
    """A process pool runs the function from its reference in another process: the timer never sees it start."""
    from apscheduler.triggers.interval import IntervalTrigger

    from django_apscheduler.claims import Claim
    from django_apscheduler.fires import Fires
    from tests.helpers import build_job

    scheduler = BackgroundScheduler(
        timezone="UTC", executors={"default": ThreadPoolExecutor(1), "procs": ProcessPoolExecutor(1)}
    )
    fires = Fires("default")
    fires.start(scheduler)
    try:
        due = datetime.now(UTC)
        for job_id, executor in (("threads", "default"), ("procs", "procs")):
            job = build_job(job_id, due, IntervalTrigger(hours=1, start_date=due), executor=executor)
            fires._hand_off(Claim(job, [due], due + timedelta(hours=1)))
        assert list(fires._not_started) == [("threads", due)]
    finally:
        fires.stop()
