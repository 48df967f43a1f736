"""Claiming ahead of the due time (APSCHEDULER_CLAIM_AHEAD): paid early, run on time, never twice.

A paused scheduler makes the store a running scheduler's store (it claims ahead)
while the test calls ``get_due_jobs`` with the "now"s it chooses, as APScheduler's
loop would. A real running scheduler shows that no job starts before its time.
"""

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.events import EVENT_JOB_SUBMITTED
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from django_apscheduler.fires import mark_lost
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution, SchedulerInstance
from tests import jobfuncs
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

UTC = timezone.utc


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def paused():
    """A started, paused scheduler with a DjangoJobStore, and that store."""
    made = []

    def make():
        scheduler = BackgroundScheduler(timezone=UTC)
        store = DjangoJobStore()
        scheduler.add_jobstore(store, "default")
        scheduler.start(paused=True)
        made.append(scheduler)
        return scheduler, store

    with override_settings(APSCHEDULER_CLAIM_AHEAD=5.0):
        yield make
        for scheduler in made:
            if scheduler.running:
                scheduler.shutdown(wait=True)


def statuses(job_id: str) -> list[str]:
    return list(DjangoJobExecution.objects.filter(job_id=job_id).values_list("status", flat=True))


def test_a_fire_due_soon_is_claimed_early_and_handed_off_only_when_due(paused):
    scheduler, store = paused()
    due = (now() + timedelta(seconds=3)).replace(microsecond=0)
    scheduler.add_job(jobfuncs.noop, "date", run_date=due, id="soon")
    looked = due - timedelta(seconds=2)

    assert store.get_due_jobs(looked) == []  # not due: APScheduler must not run it yet
    assert statuses("soon") == [DjangoJobExecution.SENT]  # but claimed: the claim row fences it
    assert not DjangoJob.objects.filter(pk="soon").exists()  # a finished date job, as any claim
    assert store.get_next_run_time() == due  # the scheduler wakes at the due instant

    with CaptureQueriesContext(connection) as queries:
        assert store.get_due_jobs(due - timedelta(microseconds=1)) == []
        (job,) = store.get_due_jobs(due)
    assert len(queries) == 0, "a held fire is handed off without a round trip"
    assert job.id == "soon"
    assert job._get_run_times(due) == [due]  # what APScheduler submits
    assert job._get_run_times(due - timedelta(microseconds=1)) == []


def test_an_early_cron_claim_stores_the_fire_after_it(paused):
    scheduler, store = paused()
    scheduler.add_job(jobfuncs.noop, CronTrigger(second="*/10", timezone="Europe/Berlin"), id="cron")
    due = DjangoJob.objects.get(pk="cron").next_run_time
    store.get_due_jobs(due - timedelta(seconds=1))
    assert DjangoJob.objects.get(pk="cron").next_run_time == due + timedelta(seconds=10)
    (job,) = store.get_due_jobs(due)
    assert job._get_run_times(due) == [due]


def test_a_peer_never_runs_a_fire_claimed_early(paused):
    scheduler, store = paused()
    due = (now() + timedelta(seconds=3)).replace(microsecond=0)
    scheduler.add_job(jobfuncs.noop, "interval", seconds=60, next_run_time=due, id="fenced")
    assert store.get_due_jobs(due - timedelta(seconds=1)) == []
    peer = DjangoJobStore()  # a store on its own claims what is due, nothing ahead
    assert peer.get_due_jobs(due + timedelta(seconds=1)) == []
    # Even with the schedule moved back by hand, the claim row refuses a second run.
    DjangoJob.objects.filter(pk="fenced").update(next_run_time=due)
    assert peer.get_due_jobs(due + timedelta(seconds=1)) == []
    assert statuses("fenced") == [DjangoJobExecution.SENT]


def test_a_scheduler_that_dies_holding_an_early_claim_leaves_a_lost_fire(paused):
    scheduler, store = paused()
    due = (now() + timedelta(seconds=3)).replace(microsecond=0)
    scheduler.add_job(jobfuncs.noop, "date", run_date=due, id="orphan")
    store.get_due_jobs(due - timedelta(seconds=1))
    SchedulerInstance.objects.update(died=now())  # what a peer writes when it finds it dead
    assert mark_lost() == 1
    assert statuses("orphan") == [DjangoJobExecution.LOST]
    assert DjangoJobStore().get_due_jobs(due + timedelta(seconds=1)) == []  # never a duplicate


@pytest.mark.parametrize("trigger", ["date", "interval"])
def test_a_clean_stop_gives_early_claims_back(paused, trigger):
    scheduler, store = paused()
    due = (now() + timedelta(seconds=3)).replace(microsecond=0)
    options = {"run_date": due} if trigger == "date" else {"seconds": 60, "next_run_time": due}
    scheduler.add_job(jobfuncs.noop, trigger, id="given-back", **options)
    before = DjangoJob.objects.values("func_ref", "trigger_description", "details", "job_state").get(pk="given-back")
    store.get_due_jobs(due - timedelta(seconds=1))
    scheduler.shutdown(wait=True)
    assert statuses("given-back") == []  # as if never claimed
    row = DjangoJob.objects.get(pk="given-back")
    assert row.next_run_time == due  # a peer (or the next start) runs it
    assert DjangoJob.objects.values("func_ref", "trigger_description", "details", "job_state").get(pk="given-back") == before
    later = DjangoJobStore()
    (job,) = later.get_due_jobs(due + timedelta(seconds=1))
    assert job.id == "given-back"


def test_removing_or_pausing_a_job_drops_its_early_fire(paused):
    scheduler, store = paused()
    due = (now() + timedelta(seconds=3)).replace(microsecond=0)
    scheduler.add_job(jobfuncs.noop, "interval", seconds=60, next_run_time=due, id="paused-soon")
    scheduler.add_job(jobfuncs.noop, "date", run_date=due, id="removed-soon")
    store.get_due_jobs(due - timedelta(seconds=1))
    scheduler.pause_job("paused-soon")
    scheduler.remove_job("removed-soon")
    assert store.get_due_jobs(due + timedelta(seconds=1)) == []
    assert statuses("paused-soon") == statuses("removed-soon") == []
    assert DjangoJob.objects.get(pk="paused-soon").next_run_time is None
    assert not DjangoJob.objects.filter(pk="removed-soon").exists()


def test_claim_ahead_zero_claims_only_what_is_due(paused):
    scheduler, store = paused()
    due = now() + timedelta(seconds=3)
    scheduler.add_job(jobfuncs.noop, "date", run_date=due, id="later")
    with override_settings(APSCHEDULER_CLAIM_AHEAD=0):
        assert store.get_due_jobs(due - timedelta(seconds=1)) == []
        assert statuses("later") == []
        assert store.get_next_run_time() == due


def test_no_job_starts_before_its_time(scheduler_factory):
    """A real scheduler claiming 1 s ahead: every job starts at or after its run time, once."""
    with override_settings(APSCHEDULER_CLAIM_AHEAD=1.0):
        scheduler = scheduler_factory()
        submitted = []
        scheduler.add_listener(lambda event: submitted.append(event.job_id), EVENT_JOB_SUBMITTED)
        scheduler.start()
        base = now() + timedelta(seconds=1.5)
        ids = [f"timed{index}" for index in range(8)]
        for index, job_id in enumerate(ids):
            scheduler.add_job(jobfuncs.noop, "date", run_date=base + timedelta(milliseconds=137 * index), id=job_id)
        rows = wait_until(
            lambda: (found := list(DjangoJobExecution.objects.filter(job_id__in=ids, status=DjangoJobExecution.SUCCESS)))
            and len(found) == len(ids)
            and found,
            message="every job executed",
        )
    assert sorted(submitted) == ids
    for row in rows:
        assert row.started_at is not None
        assert row.started_at >= row.run_time, f"{row.job_id} started {row.run_time - row.started_at} early"
