"""The hand-off's in-memory parts, without a database: the claimed-fires trigger, the run-time tracker, job state."""

import pickle
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from hypothesis import given
from hypothesis import strategies as st

from django_apscheduler import jobstate
from django_apscheduler.fires import _ClaimedFiresTrigger, _RunTimeTracker
from tests import jobfuncs
from tests.helpers import build_job, signed_pickle

UTC = timezone.utc
BASE = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def run_times_apscheduler_computes(job, now):
    """What APScheduler's ``_process_jobs`` computes from a job it is handed (``Job._get_run_times``)."""
    return job._get_run_times(now)


@given(
    claimed=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=10, unique=True),
    stored_offset=st.integers(min_value=-10, max_value=10),
)
def test_a_handed_off_job_yields_exactly_its_claimed_fires(claimed, stored_offset):
    """Whatever the stored next run time says, APScheduler gets back the claim, no more, no fewer."""
    trigger = IntervalTrigger(minutes=1, start_date=BASE, timezone=UTC)
    run_times = [BASE + timedelta(minutes=m) for m in sorted(claimed)]
    now = run_times[-1] + timedelta(seconds=30)
    next_run_time = trigger.get_next_fire_time(run_times[-1], now)
    job = build_job("j", BASE + timedelta(minutes=stored_offset), trigger)
    job.trigger = _ClaimedFiresTrigger(trigger, run_times, next_run_time)
    job.next_run_time = run_times[0]
    assert run_times_apscheduler_computes(job, now) == run_times
    assert job.trigger.get_next_fire_time(run_times[-1], now) == next_run_time


def test_the_claimed_fires_trigger_is_never_stored():
    cron = CronTrigger(hour=3, timezone="Europe/Berlin")
    job = build_job("j", BASE, cron)
    job.trigger = _ClaimedFiresTrigger(cron, [BASE], BASE + timedelta(days=1))
    state = jobstate.load(jobstate.dump(job)["job_state"])
    assert isinstance(state["trigger"], CronTrigger)
    assert str(state["trigger"]) == str(cron)
    assert str(job.trigger) == str(cron) and job.trigger.timezone == cron.timezone


def test_the_tracker_skips_the_fires_the_executor_skipped_as_missed():
    now = datetime.now(UTC)
    late, recent = now - timedelta(minutes=10), now - timedelta(seconds=1)
    tracker = _RunTimeTracker([late, recent], misfire_grace_time=30)
    assert tracker.next_run_time() == recent
    assert tracker.next_run_time() is None


@pytest.mark.parametrize("grace", [None, 1, jobstate.MAX_MISFIRE_GRACE_TIME, 10**20])
def test_the_tracker_never_overflows_whatever_the_grace_time(grace):
    run_times = [datetime(1, 1, 2, tzinfo=UTC), datetime.now(UTC)]
    tracker = _RunTimeTracker(run_times, misfire_grace_time=grace)
    assert tracker.next_run_time() in run_times


@pytest.mark.parametrize(
    "blob, reason",
    [
        (signed_pickle(42), "is a int, not a job"),
        (signed_pickle({"version": 1}), "not a job"),
        (jobstate.sign(b"garbage"), "cannot be loaded: UnpicklingError"),
        (signed_pickle({"trigger": "cron"}), "not a job"),
        (b"garbage", "is not signed"),
        (pickle.dumps({"trigger": "cron"}), "is not signed"),
    ],
)
def test_state_that_is_not_a_job_cannot_be_loaded_and_says_why(blob, reason):
    state, why = jobstate.try_load(blob)
    assert state is None
    assert reason in why
    with pytest.raises(jobstate.JobStateError, match="cannot be loaded"):
        jobstate.load(blob)


@given(st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=5), st.booleans()))
def test_misfire_grace_time_is_accepted_only_within_bounds(grace):
    state = build_job("j", BASE, IntervalTrigger(minutes=1, start_date=BASE, timezone=UTC)).__getstate__()
    state["misfire_grace_time"] = grace
    valid = grace is None or (
        not isinstance(grace, bool) and isinstance(grace, int | float) and 0 < grace <= jobstate.MAX_MISFIRE_GRACE_TIME
    )
    if valid:
        jobstate.check_options(state)
    else:
        with pytest.raises(jobstate.JobStateError, match="misfire_grace_time"):
            jobstate.check_options(state)


def test_a_bound_method_is_stored_with_its_instance():
    job = build_job("greet", BASE, IntervalTrigger(minutes=1, start_date=BASE, timezone=UTC), func=jobfuncs.Greeter("x").greet)
    restored = jobstate.restore("greet", BASE, jobstate.dump(job)["job_state"], scheduler=None, alias=None)
    assert restored.func(*restored.args) == "hello x"


def test_a_0_7_era_huge_grace_time_is_still_accepted():
    state = build_job("j", BASE, IntervalTrigger(minutes=1, start_date=BASE, timezone=UTC)).__getstate__()
    state["misfire_grace_time"] = 10**10
    jobstate.check_options(state)
