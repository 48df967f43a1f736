"""Nothing about one job hurts another: each way a job can be broken, beside healthy jobs.

Every case stores one bad job (written as a row, the way a hostile staff user, an
old deployment or a database edit could leave it) next to healthy due jobs, and
checks that the healthy jobs keep every fire, the bad one is kept and flagged with
its reason, and nothing of the bad one is consumed.
"""

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from django_apscheduler import fires, jobstate
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests import jobfuncs
from tests.helpers import build_job, signed_pickle, wait_until

pytestmark = pytest.mark.django_db

UTC = timezone.utc
BASE = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
HEALTHY = ["healthy-1", "healthy-2", "healthy-3"]


def interval(seconds=60, start=BASE):
    return IntervalTrigger(seconds=seconds, start_date=start, timezone=UTC)


def store_healthy_jobs(jobstore):
    for job_id in HEALTHY:
        jobstore.add_job(build_job(job_id, BASE, interval()))


def state_of_a_healthy_job(job_id="bad", **changes):
    state = build_job(job_id, BASE, interval()).__getstate__()
    state.update(changes)
    return state


def store_row(job_id, job_state, next_run_time=BASE):
    DjangoJob.objects.create(id=job_id, next_run_time=next_run_time, job_state=job_state)


BROKEN_STATES = {
    "huge misfire grace time": lambda: signed_pickle(state_of_a_healthy_job(misfire_grace_time=100_000_000_000_000)),
    "negative misfire grace time": lambda: signed_pickle(state_of_a_healthy_job(misfire_grace_time=-5)),
    "zero max instances": lambda: signed_pickle(state_of_a_healthy_job(max_instances=0)),
    "huge max instances": lambda: signed_pickle(state_of_a_healthy_job(max_instances=10**18)),
    "a trigger that raises": lambda: signed_pickle(state_of_a_healthy_job(trigger=jobfuncs.ExplodingTrigger())),
    "an interval that overflows": lambda: signed_pickle(
        state_of_a_healthy_job(trigger=IntervalTrigger(weeks=600_000, start_date=BASE, timezone=UTC))
    ),
    "state that unpickles to a number": lambda: signed_pickle(42),
    "state that unpickles to another dict": lambda: signed_pickle({"version": 1}),
    "state that is not a pickle": lambda: b"\x00not a pickle",
    "a function that vanished": lambda: signed_pickle(state_of_a_healthy_job(func="tests.no_such_module:vanished")),
}


@pytest.mark.parametrize("breakage", sorted(BROKEN_STATES))
def test_a_broken_job_costs_its_neighbours_nothing(jobstore, breakage):
    store_healthy_jobs(jobstore)
    # An interval overflows only when its next fire is computed: let it be due late.
    store_row("bad", BROKEN_STATES[breakage](), next_run_time=BASE)

    now = BASE + timedelta(seconds=1)
    claimed = jobstore.get_due_jobs(now)

    assert sorted(job.id for job in claimed) == HEALTHY
    for job in claimed:
        assert job._get_run_times(now) == [BASE]  # exactly the claimed fire, handed over
    bad = DjangoJob.objects.get(pk="bad")
    assert bad.broken and bad.broken_reason
    assert bad.next_run_time == BASE  # nothing of the bad job was consumed
    assert not DjangoJobExecution.objects.filter(job_id="bad").exists()
    assert set(DjangoJobExecution.objects.values_list("job_id", flat=True)) == set(HEALTHY)
    # The next claim does not see the bad job again, and the healthy ones go on.
    later = BASE + timedelta(seconds=61)
    assert sorted(job.id for job in jobstore.get_due_jobs(later)) == HEALTHY


def test_a_job_whose_hand_off_fails_gets_error_for_its_claimed_fires(jobstore, monkeypatch):
    store_healthy_jobs(jobstore)
    jobstore.add_job(build_job("cannot-hand-off", BASE, interval()))
    real_hand_off = fires.Fires._hand_off

    def hand_off(self, claim):
        if claim.job.id == "cannot-hand-off":
            raise RuntimeError("the executor refused it")
        return real_hand_off(self, claim)

    monkeypatch.setattr(fires.Fires, "_hand_off", hand_off)
    claimed = jobstore.get_due_jobs(BASE + timedelta(seconds=1))

    assert sorted(job.id for job in claimed) == HEALTHY
    row = DjangoJobExecution.objects.get(job_id="cannot-hand-off")
    assert row.status == DjangoJobExecution.ERROR
    assert "the executor refused it" in row.exception
    assert DjangoJob.objects.get(pk="cannot-hand-off").broken


@pytest.mark.parametrize(
    "options, message",
    [
        ({"misfire_grace_time": 100_000_000_000_000}, "misfire_grace_time"),
        ({"max_instances": 10**9}, "max_instances"),
    ],
)
def test_add_job_refuses_options_out_of_range_and_writes_nothing(jobstore, options, message):
    with pytest.raises(jobstate.JobStateError, match=message):
        jobstore.add_job(build_job("absurd", BASE, interval(), **options))
    assert not DjangoJob.objects.exists()


def test_a_moved_back_schedule_hands_over_only_the_fires_not_yet_run(jobstore):
    """The 12:00 fire ran; the schedule is moved back to 12:00; a claim at 12:05:01 hands over 12:05 only."""
    jobstore.add_job(build_job("moved", BASE, interval(seconds=300)))
    (first,) = jobstore.get_due_jobs(BASE + timedelta(seconds=1))
    assert first._get_run_times(BASE + timedelta(seconds=1)) == [BASE]
    DjangoJob.objects.filter(pk="moved").update(next_run_time=BASE)  # the README's "ORM update reschedules"

    now = BASE + timedelta(minutes=5, seconds=1)
    (job,) = jobstore.get_due_jobs(now)
    # What APScheduler's _process_jobs computes from the job it is handed:
    run_times = job._get_run_times(now)
    assert run_times == [BASE + timedelta(minutes=5)]
    assert job.trigger.get_next_fire_time(run_times[-1], now) == BASE + timedelta(minutes=10)
    rows = sorted(DjangoJobExecution.objects.filter(job_id="moved").values_list("run_time", flat=True))
    assert [r.astimezone(UTC) for r in rows] == [BASE, BASE + timedelta(minutes=5)]
    # The handed-over trigger is never what gets stored.
    jobstore.update_job(job)
    stored = jobstore.lookup_job("moved")
    assert isinstance(stored.trigger, IntervalTrigger)


def test_a_job_with_an_executor_this_scheduler_lacks_is_flagged_not_deleted():
    scheduler = BackgroundScheduler(timezone=UTC)
    store = DjangoJobStore()
    scheduler.add_jobstore(store, "default")
    store_row("elsewhere", signed_pickle(state_of_a_healthy_job("elsewhere", executor="celery")))
    store_healthy_jobs(store)
    scheduler.start(paused=True)  # its executors exist; its loop claims nothing while paused
    try:
        claimed = store.get_due_jobs(BASE + timedelta(seconds=1))
    finally:
        scheduler.shutdown()
    assert sorted(job.id for job in claimed) == HEALTHY
    row = DjangoJob.objects.get(pk="elsewhere")
    assert row.broken and "executor 'celery'" in row.broken_reason


@pytest.mark.django_db(transaction=True)
def test_a_bad_job_beside_healthy_ones_in_a_running_scheduler(scheduler_factory):
    """The issue's scenario: three jobs every second keep running beside one with an absurd option."""
    now = datetime.now(UTC)
    store_row(
        "absurd",
        signed_pickle(
            dict(
                state_of_a_healthy_job("absurd", misfire_grace_time=100_000_000_000_000),
                trigger=IntervalTrigger(seconds=1, start_date=now, timezone=UTC),
            )
        ),
        next_run_time=now,
    )
    scheduler = scheduler_factory()
    scheduler.start()
    for job_id in HEALTHY:
        scheduler.add_job(jobfuncs.noop, "interval", seconds=1, id=job_id, next_run_time=now)

    def every_healthy_job_ran_three_times():
        runs = DjangoJobExecution.objects.filter(status=DjangoJobExecution.SUCCESS)
        return all(runs.filter(job_id=job_id).count() >= 3 for job_id in HEALTHY)

    wait_until(every_healthy_job_ran_three_times, timeout=30, message="each healthy job to run 3 times")
    assert DjangoJob.objects.get(pk="absurd").broken
    assert not DjangoJobExecution.objects.filter(job_id="absurd").exists()


@pytest.mark.parametrize("kind", ["interval", "cron"])
def test_fires_across_the_autumn_fold_are_claimed_and_handed_over_in_order(jobstore, kind):
    """01:40 EDT, 01:50 EDT, then 01:00 EST: wall clocks go back, instants do not."""
    from zoneinfo import ZoneInfo

    from apscheduler.triggers.cron import CronTrigger

    new_york = ZoneInfo("America/New_York")
    first = datetime(2024, 11, 3, 5, 40, tzinfo=UTC)  # 01:40 EDT
    if kind == "interval":
        trigger = IntervalTrigger(minutes=10, start_date=first, timezone=new_york)
    else:
        trigger = CronTrigger(minute="*/10", timezone=new_york)
    jobstore.add_job(build_job("fold", first.astimezone(new_york), trigger))
    now = datetime(2024, 11, 3, 6, 5, tzinfo=UTC)  # 01:05 EST, the second 01:05 of the night

    (job,) = jobstore.get_due_jobs(now)

    expected = [first, first + timedelta(minutes=10), datetime(2024, 11, 3, 6, 0, tzinfo=UTC)]
    assert [t.astimezone(UTC) for t in job._get_run_times(now)] == expected
    assert not DjangoJob.objects.get(pk="fold").broken
    rows = DjangoJobExecution.objects.filter(job_id="fold").values_list("run_time", flat=True)
    assert sorted(r.astimezone(UTC) for r in rows) == expected
    assert DjangoJob.objects.get(pk="fold").next_run_time.astimezone(UTC) == datetime(2024, 11, 3, 6, 10, tzinfo=UTC)
