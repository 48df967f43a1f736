"""Cron jobs in a DST time zone fire at the right instants across both transitions.

Europe/London in 2030: clocks go forward on Sunday 31 March at 01:00 UTC (01:00 GMT
becomes 02:00 BST: local 01:00-01:59 does not exist) and back on Sunday 27 October at
01:00 UTC (02:00 BST becomes 01:00 GMT: local 01:00-01:59 happens twice).

No real time passes: jobs are added to a ``DjangoJobStore`` that is not started, and
``get_due_jobs(now)`` is called with a simulated ``now`` stepping every 10 minutes
through each transition, the way APScheduler's scheduler loop calls it. Every fire is
checked as a UTC instant three ways: what the claim returned (the Job's
``next_run_time`` and the run times APScheduler would derive from it), the execution
rows the claim wrote, and the sequence APScheduler's own ``CronTrigger`` computes.

Both Django modes are covered: ``USE_TZ = True`` (the database holds UTC instants)
and ``USE_TZ = False`` (the database holds naive local times, which are ambiguous
during the autumn repeated hour). Django accepts ``USE_TZ = False`` with a non-UTC
``TIME_ZONE`` on every backend used here (it only refuses a per-database
``DATABASES[...]["TIME_ZONE"]`` when ``USE_TZ = False``), so nothing is skipped.

Each simulation runs twice: polling exactly on the fire instants (``poll=+0s``) and one
second after them (``poll=+1s``, as a real scheduler that reads its clock after waking
does). The store is not started, so the jobs it loads carry their next run time as read
from the database (in UTC under USE_TZ = True), not in the trigger's time zone: the case
of a scheduler whose time zone is not the trigger's.
A known limitation is marked ``xfail(strict=True)`` with the reason (BUG_B below): with
USE_TZ = False, stored times are naive, and the hour repeated in autumn cannot be told
apart (a system check warns about that configuration).
"""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from django.test import override_settings
from django.utils import timezone

from django_apscheduler import util
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from django_apscheduler.timezones import to_db
from tests.helpers import build_job

UTC = dt_timezone.utc
LONDON = ZoneInfo("Europe/London")
STEP = timedelta(minutes=10)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def every_hour(first, last):
    times = []
    while first <= last:
        times.append(first)
        first += timedelta(hours=1)
    return times


# Simulated windows: from a little before each transition to the small hours of the
# day after it, both ends included.
WINDOWS = {
    "spring": (utc(2030, 3, 30, 22, 0), utc(2030, 4, 1, 3, 0)),
    "autumn": (utc(2030, 10, 26, 21, 0), utc(2030, 10, 28, 3, 0)),
}

TRIGGERS = {
    "daily": lambda: CronTrigger(hour=1, minute=30, timezone=LONDON),  # every day at 01:30 local
    "hourly": lambda: CronTrigger(minute=0, timezone=LONDON),  # every hour on the hour
}

# The fires inside each window, checked by hand, as UTC instants.
EXPECTED = {
    # Local 01:30 does not exist on 31 March. APScheduler 3.11 with zoneinfo does not
    # skip that day (its 3.x docs, written for pytz, say such a fire is skipped): it
    # builds 01:30 with the pre-transition offset (GMT), i.e. 01:30 UTC = 02:30 BST.
    # On 1 April, 01:30 BST = 00:30 UTC.
    ("spring", "daily"): [utc(2030, 3, 31, 1, 30), utc(2030, 4, 1, 0, 30)],
    # Every hour in UTC without a gap: local 00:00 GMT (00:00 UTC) is followed by
    # 02:00 BST (01:00 UTC), local 01:00 does not exist.
    ("spring", "hourly"): every_hour(utc(2030, 3, 30, 22, 0), utc(2030, 4, 1, 3, 0)),
    # Local 01:30 happens twice on 27 October and the job runs at both, as APScheduler
    # documents ("it will execute twice"): 01:30 BST = 00:30 UTC, 01:30 GMT = 01:30 UTC;
    # then 01:30 GMT on the 28th.
    ("autumn", "daily"): [utc(2030, 10, 27, 0, 30), utc(2030, 10, 27, 1, 30), utc(2030, 10, 28, 1, 30)],
    # Every hour in UTC: local 01:00 happens twice (01:00 BST = 00:00 UTC and
    # 01:00 GMT = 01:00 UTC), two distinct fires one hour apart.
    ("autumn", "hourly"): every_hour(utc(2030, 10, 26, 21, 0), utc(2030, 10, 28, 3, 0)),
}


def apscheduler_fires(trigger, start, end):
    """The trigger's fires in [start, end] as APScheduler computes them, as UTC instants."""
    fires = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= end:
        fires.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)
    return [f.astimezone(UTC) for f in fires], fire


def test_windows_are_the_2030_dst_transitions():
    for transition, (start, end) in WINDOWS.items():
        offsets = [(t, t.astimezone(LONDON).utcoffset()) for t in every_hour(start, end)]
        changes = [t for (_, before), (t, after) in zip(offsets, offsets[1:], strict=False) if before != after]
        expected = utc(2030, 3, 31, 1, 0) if transition == "spring" else utc(2030, 10, 27, 1, 0)
        assert changes == [expected]
        assert expected.weekday() == 6 and (expected + timedelta(days=7)).month != expected.month  # last Sunday


@pytest.mark.parametrize("key", sorted(EXPECTED), ids="-".join)
def test_apscheduler_computes_the_hand_checked_instants(key):
    transition, kind = key
    fires, _ = apscheduler_fires(TRIGGERS[kind](), *WINDOWS[transition])
    assert fires == EXPECTED[key]


def test_hand_checked_instants_in_local_time():
    def local(instants):
        return [t.astimezone(LONDON).strftime("%m-%d %H:%M %Z") for t in instants]

    assert local(EXPECTED["spring", "daily"]) == ["03-31 02:30 BST", "04-01 01:30 BST"]
    assert local(EXPECTED["autumn", "daily"]) == ["10-27 01:30 BST", "10-27 01:30 GMT", "10-28 01:30 GMT"]
    spring = local(EXPECTED["spring", "hourly"])
    assert spring[2:4] == ["03-31 00:00 GMT", "03-31 02:00 BST"]
    assert not any(t.startswith("03-31 01:") for t in spring)
    autumn = local(EXPECTED["autumn", "hourly"])
    assert autumn[2:6] == ["10-27 00:00 BST", "10-27 01:00 BST", "10-27 01:00 GMT", "10-27 02:00 GMT"]


BUG_B_NAIVE_REPEATED_HOUR = (
    "Known limitation: with USE_TZ=False the two occurrences of a local time in the repeated "
    "autumn hour are stored as one naive value (the database column cannot tell them apart, and "
    "history is unique on (job, run_time)), so one of the two fires is skipped. A system check "
    "(django_apscheduler.W001) warns against USE_TZ=False with a daylight-saving TIME_ZONE."
)

POLL_OFFSETS = {"poll=+0s": timedelta(0), "poll=+1s": timedelta(seconds=1)}


def simulate(store, job_id, start, end, offset):
    """Call get_due_jobs every STEP (shifted by ``offset``); return the fires claimed, as UTC instants."""
    fires = []
    now = start + offset
    while now <= end + offset:
        for job in store.get_due_jobs(now):
            assert job.id == job_id
            fire = job.next_run_time.astimezone(UTC)
            # Claimed at the first poll at or after its instant: never early, never late.
            assert fire <= now < fire + STEP, (now, fire)
            # What APScheduler's scheduler runs for this claim: this one fire, once.
            assert [t.astimezone(UTC) for t in job._get_run_times(now)] == [fire], now
            fires.append(fire)
        # Nothing is left due: the store does not report a next run time it did not run.
        assert store.get_next_run_time() > now, now
        now += STEP
    return fires


def _cases():
    for transition in ("spring", "autumn"):
        for kind in ("daily", "hourly"):
            for use_tz in (True, False):
                for poll in POLL_OFFSETS:
                    marks = []
                    if transition == "autumn" and not use_tz:
                        marks.append(pytest.mark.xfail(strict=True, reason=BUG_B_NAIVE_REPEATED_HOUR))
                    case_id = f"{transition}-{kind}-USE_TZ={use_tz}-{poll}"
                    yield pytest.param(transition, kind, use_tz, POLL_OFFSETS[poll], marks=marks, id=case_id)


@pytest.mark.django_db
@pytest.mark.parametrize("transition, kind, use_tz, offset", list(_cases()))
def test_cron_job_fires_once_at_each_instant_across_dst(transition, kind, use_tz, offset):
    start, end = WINDOWS[transition]
    expected = EXPECTED[transition, kind]
    with override_settings(TIME_ZONE="Europe/London", USE_TZ=use_tz):
        trigger = TRIGGERS[kind]()
        store = DjangoJobStore()
        store.add_job(build_job(kind, trigger.get_next_fire_time(None, start), trigger))
        fires = simulate(store, kind, start, end, offset)
        next_run_time = store.lookup_job(kind).next_run_time
        stored_next_run_time = DjangoJob.objects.values_list("next_run_time", flat=True).get(pk=kind)
        run_times = list(
            DjangoJobExecution.objects.filter(job_id=kind).order_by("run_time", "id").values_list("run_time", flat=True)
        )

    computed, following = apscheduler_fires(trigger, start, end)
    # Every fire APScheduler computes, once each, at the hand-checked instants.
    assert fires == computed == expected
    assert next_run_time.astimezone(UTC) == following.astimezone(UTC)
    if use_tz:
        # One execution row per fire holding the fired instant (aware, compared as instants).
        assert all(timezone.is_aware(t) for t in run_times)
        assert run_times == expected
        assert stored_next_run_time == following
    else:
        # Django stores naive Europe/London wall-clock times; read as Django reads them
        # (make_aware in TIME_ZONE) they are the fired instants, one row per fire.
        assert all(timezone.is_naive(t) for t in run_times)
        assert [timezone.make_aware(t, LONDON).astimezone(UTC) for t in run_times] == expected
        assert timezone.is_naive(stored_next_run_time)
        assert stored_next_run_time == following.astimezone(LONDON).replace(tzinfo=None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fire, wall_time",
    [
        (utc(2030, 3, 30, 1, 30), datetime(2030, 3, 30, 1, 30)),  # GMT, the day before
        (utc(2030, 3, 31, 1, 30), datetime(2030, 3, 31, 2, 30)),  # in the spring gap: 02:30 BST
        (utc(2030, 4, 1, 0, 30), datetime(2030, 4, 1, 1, 30)),  # BST, the day after
    ],
    ids=["before", "gap", "after"],
)
def test_use_tz_false_stores_the_local_wall_clock_time(fire, wall_time, request):
    """Under USE_TZ=False the rows hold the local time at which the fire really happened."""
    with override_settings(TIME_ZONE="Europe/London", USE_TZ=False):
        trigger = TRIGGERS["daily"]()
        computed = trigger.get_next_fire_time(None, fire - timedelta(hours=2))  # as APScheduler hands it over
        assert computed.astimezone(UTC) == fire
        store = DjangoJobStore()
        store.add_job(build_job("daily", computed, trigger))
        stored_before = DjangoJob.objects.values_list("next_run_time", flat=True).get(pk="daily")
        assert [job.next_run_time.astimezone(UTC) for job in store.get_due_jobs(fire)] == [fire]
        run_time = DjangoJobExecution.objects.values_list("run_time", flat=True).get(job_id="daily")
    assert (stored_before, run_time) == (wall_time, wall_time)


# --- the admin's date-time helper ------------------------------------------------------


@override_settings(USE_TZ=True, TIME_ZONE="Europe/London", APSCHEDULER_DATETIME_FORMAT="Y-m-d H:i T")
@pytest.mark.parametrize(
    "instant, shown",
    [
        (utc(2030, 1, 15, 12, 0), "2030-01-15 12:00 GMT"),
        (utc(2030, 7, 1, 12, 0), "2030-07-01 13:00 BST"),
        (utc(2030, 3, 31, 0, 59), "2030-03-31 00:59 GMT"),  # a minute before clocks go forward
        (utc(2030, 3, 31, 1, 30), "2030-03-31 02:30 BST"),  # the spring daily 01:30 fire
        (utc(2030, 10, 27, 2, 0), "2030-10-27 02:00 GMT"),
    ],
)
def test_get_local_dt_format_shows_utc_time_in_london_time(instant, shown):
    assert util.get_local_dt_format(instant) == shown


@override_settings(USE_TZ=True, TIME_ZONE="Europe/London", APSCHEDULER_DATETIME_FORMAT="Y-m-d H:i")
def test_get_local_dt_format_in_the_repeated_autumn_hour():
    # Both 01:30 fires show 01:30 local. (Django's date format leaves T and O blank for
    # an ambiguous wall-clock time, so the format used here omits them.)
    assert util.get_local_dt_format(utc(2030, 10, 27, 0, 30)) == "2030-10-27 01:30"
    assert util.get_local_dt_format(utc(2030, 10, 27, 1, 30)) == "2030-10-27 01:30"


@pytest.mark.django_db
@pytest.mark.parametrize("use_tz", [True, False], ids=["USE_TZ=True", "USE_TZ=False"])
def test_execution_run_time_read_back_is_shown_in_london_time(use_tz):
    instants = {"summer": utc(2030, 7, 1, 12, 0), "winter": utc(2030, 1, 15, 12, 0)}
    with override_settings(TIME_ZONE="Europe/London", USE_TZ=use_tz, APSCHEDULER_DATETIME_FORMAT="Y-m-d H:i"):
        for name, instant in instants.items():
            DjangoJobExecution.objects.create(job_id=name, status=DjangoJobExecution.SUCCESS, run_time=to_db(instant))
        shown = {e.job_id: util.get_local_dt_format(e.run_time) for e in DjangoJobExecution.objects.all()}
    assert shown == {"summer": "2030-07-01 13:00", "winter": "2030-01-15 12:00"}


@override_settings(USE_TZ=True, TIME_ZONE="Europe/London")
def test_get_local_dt_format_default_format_in_london_time():
    assert util.get_local_dt_format(utc(2030, 7, 1, 12, 0)) == "July 1, 2030, 1:00 p.m."  # BST
    assert util.get_local_dt_format(utc(2030, 1, 15, 12, 0)) == "Jan. 15, 2030, 12:00 p.m."  # GMT
