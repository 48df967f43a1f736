"""Claiming ahead (``APSCHEDULER_CLAIM_AHEAD``): a running scheduler claims a job's next
fire shortly before its instant, holds it, and hands it to APScheduler at the instant.

Whatever happens to a held fire, it runs once at its instant or not at all, and a
fire that does not happen leaves no trace: the scheduler stops or is paused, the
job is changed, paused, rescheduled or removed in the same process. The claim is
made as it would be at the instant (a cron job's next fire is the one after), and
not at all for jobs whose claim cannot be undone (date jobs, hand-offs) or that
the cluster's ``max_instances`` refuses right now.
"""

import threading
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from django_apscheduler import jobstate
from django_apscheduler.claims import claim_due_jobs
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.membership import HELD_FIRE_CHECK, register_scheduler
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests import jobfuncs
from tests.helpers import build_job, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

UTC = timezone.utc
# Long enough that a test acts on a held fire well before its instant, on a loaded machine.
AHEAD = 4
LEAD = timedelta(seconds=5.5)


@pytest.fixture(autouse=True)
def claim_early(settings):
    settings.APSCHEDULER_POLL_INTERVAL = 0.2
    settings.APSCHEDULER_CLAIM_AHEAD = AHEAD


@pytest.fixture
def scheduler():
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_jobstore(DjangoJobStore(), "default")
    scheduler.start()
    yield scheduler
    if scheduler.running:
        scheduler.shutdown()


def add_hourly(scheduler, calls, label="x"):
    """An hourly job whose first fire comes in LEAD; returns that fire's instant."""
    due = (datetime.now(UTC) + LEAD).replace(microsecond=0)
    scheduler.add_job(
        jobfuncs.record_call_time, "interval", hours=1, start_date=due, args=[str(calls), label], id="hourly",
        misfire_grace_time=None,
    )
    return due


def wait_until_held(due):
    """The fire's row is written before its instant: it was claimed ahead."""
    row = wait_until(lambda: DjangoJobExecution.objects.filter(job_id="hourly").first(), message="the early claim")
    assert datetime.now(UTC) < due, "the test was too slow to see the fire held"
    assert row.status == DjangoJobExecution.SENT and row.run_time == due
    assert DjangoJob.objects.get(id="hourly").next_run_time == due + timedelta(hours=1)
    return row


def still_before(due):
    """The test acted on the held fire before its instant, or the machine was too slow to tell."""
    if datetime.now(UTC) >= due:
        pytest.skip("the machine was too slow to act on the held fire before its instant")


def calls_of(path):
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def test_a_fire_is_claimed_ahead_and_starts_at_its_instant_not_before(scheduler, tmp_path):
    calls = tmp_path / "calls"
    due = add_hourly(scheduler, calls)
    wait_until_held(due)
    assert not calls.exists()

    wait_until(lambda: DjangoJobExecution.objects.filter(job_id="hourly", status=DjangoJobExecution.SUCCESS).exists())
    [(label, started)] = calls_of(calls)
    assert float(started) >= due.timestamp()
    assert DjangoJobExecution.objects.filter(job_id="hourly").count() == 1


def test_a_stop_gives_back_the_held_fire_and_the_next_scheduler_runs_it_once(scheduler, tmp_path):
    calls = tmp_path / "calls"
    due = add_hourly(scheduler, calls)
    wait_until_held(due)

    scheduler.shutdown()
    still_before(due)

    assert not DjangoJobExecution.objects.filter(job_id="hourly").exists()
    assert DjangoJob.objects.get(id="hourly").next_run_time == due
    successor = BackgroundScheduler(timezone="UTC")
    successor.add_jobstore(DjangoJobStore(), "default")
    successor.start()
    try:
        wait_until(lambda: calls_of(calls), message="the fire run by the next scheduler")
        wait_until(lambda: DjangoJobExecution.objects.filter(status=DjangoJobExecution.SUCCESS).exists())
    finally:
        successor.shutdown()
    assert len(calls_of(calls)) == 1
    assert list(DjangoJobExecution.objects.values_list("run_time", flat=True)) == [due]


def test_a_stop_waiting_for_a_running_job_lets_go_of_the_held_fire_and_a_peer_runs_it_once(scheduler, tmp_path):
    """APScheduler stops the job stores only once the running jobs end.

    The held fire must not wait that long: a peer claiming the job's following fire
    meanwhile would leave it Lost! (its give-back could no longer be made).
    """
    release, running = tmp_path / "release", tmp_path / "running"
    scheduler.add_job(jobfuncs.wait_for_file, args=[str(release)], kwargs={"started": str(running)}, id="slow",
                      misfire_grace_time=None)
    wait_until(running.exists, message="the slow job running")
    calls = tmp_path / "calls"
    due = add_hourly(scheduler, calls)
    wait_until_held(due)

    stopping = threading.Thread(target=scheduler.shutdown, name="test-stop")  # waits for the slow job
    stopping.start()
    peer = BackgroundScheduler(timezone="UTC")
    try:
        still_before(due)
        wait_until(
            lambda: not DjangoJobExecution.objects.filter(job_id="hourly").exists(),
            timeout=LEAD.total_seconds() + 5,
            message="the held fire given back",
        )
        assert stopping.is_alive(), "given back only when the stop ended"
        assert DjangoJob.objects.get(id="hourly").next_run_time == due
        peer.add_jobstore(DjangoJobStore(), "default")
        peer.start()
        wait_until(lambda: DjangoJobExecution.objects.filter(job_id="hourly", status=DjangoJobExecution.SUCCESS).exists())
        assert stopping.is_alive()
    finally:
        release.touch()
        stopping.join(timeout=15)
        if peer.running:
            peer.shutdown()
    assert not stopping.is_alive()
    assert len(calls_of(calls)) == 1
    assert list(DjangoJobExecution.objects.filter(job_id="hourly").values_list("run_time", "status")) == [
        (due, DjangoJobExecution.SUCCESS)
    ]


def test_a_stop_gives_back_the_held_fire_before_waiting_for_the_listening_connection(scheduler, monkeypatch):
    """On PostgreSQL the LISTEN thread takes up to a second to stop: the held fire must not wait for it.

    A peer claiming the job's following fire meanwhile would leave the held fire Lost!
    (seen in a cluster test: a Lost! fire, then the peer's next one refused as Max instances!).
    """
    from django_apscheduler import postgres

    if not postgres.listening_available():
        pytest.skip("the LISTEN connection exists on PostgreSQL only")
    listener_stopping, release = threading.Event(), threading.Event()
    original_join = postgres.Listener.join

    def slow_join(self, timeout=None):
        listener_stopping.set()
        release.wait(20)
        original_join(self, timeout)

    monkeypatch.setattr(postgres.Listener, "join", slow_join)
    due = add_hourly(scheduler, "/dev/null")
    wait_until_held(due)

    stopping = threading.Thread(target=scheduler.shutdown, name="test-stop")
    stopping.start()
    try:
        assert listener_stopping.wait(10), "the stop never reached the listening connection"
        still_before(due)
        assert not DjangoJobExecution.objects.filter(job_id="hourly").exists()  # given back already
        assert DjangoJob.objects.get(id="hourly").next_run_time == due
    finally:
        release.set()
        stopping.join(timeout=20)
    assert not stopping.is_alive()


def test_a_pause_gives_back_the_held_fire_and_the_resumed_scheduler_runs_it_once(scheduler, tmp_path):
    calls = tmp_path / "calls"
    due = add_hourly(scheduler, calls)
    wait_until_held(due)

    scheduler.pause()
    still_before(due)

    wait_until(lambda: not DjangoJobExecution.objects.exists(), message="the held fire given back")
    assert DjangoJob.objects.get(id="hourly").next_run_time == due  # peers may claim it now
    scheduler.resume()
    wait_until(lambda: DjangoJobExecution.objects.filter(status=DjangoJobExecution.SUCCESS).exists())
    [(label, started)] = calls_of(calls)
    assert float(started) >= due.timestamp()


def test_modify_job_here_keeps_the_held_fire_and_runs_it_with_the_new_arguments(scheduler, tmp_path):
    calls = tmp_path / "calls"
    due = add_hourly(scheduler, calls, label="old")
    wait_until_held(due)

    job = scheduler.modify_job("hourly", args=[str(calls), "new"])
    still_before(due)

    assert job.next_run_time == due
    assert DjangoJob.objects.get(id="hourly").next_run_time in (due, due + timedelta(hours=1))  # re-claimed ahead
    wait_until(lambda: DjangoJobExecution.objects.filter(status=DjangoJobExecution.SUCCESS).exists())
    [(label, started)] = calls_of(calls)
    assert label == "new" and float(started) >= due.timestamp()
    assert list(DjangoJobExecution.objects.values_list("run_time", flat=True)) == [due]


@pytest.mark.parametrize("change", ["pause_job", "reschedule_job", "remove_job", "remove_all_jobs"])
def test_a_held_fire_of_a_job_paused_rescheduled_or_removed_here_does_not_run(scheduler, tmp_path, change):
    calls = tmp_path / "calls"
    due = add_hourly(scheduler, calls)
    wait_until_held(due)
    later = due + timedelta(days=1)

    if change == "reschedule_job":
        scheduler.reschedule_job("hourly", trigger="interval", hours=1, start_date=later)
    elif change == "remove_all_jobs":
        scheduler.remove_all_jobs()
    else:
        getattr(scheduler, change)("hourly")
    still_before(due)

    assert not DjangoJobExecution.objects.exists()
    stored = DjangoJob.objects.filter(id="hourly").values_list("next_run_time", flat=True).first()
    assert stored == {"reschedule_job": later}.get(change)
    wait_until(lambda: datetime.now(UTC) > due + timedelta(seconds=0.5), timeout=10)
    scheduler.shutdown()  # waits for anything its executor started
    assert not calls.exists()
    assert not DjangoJobExecution.objects.exists()


# --- the claim itself, without a running scheduler ----------------------------------


@pytest.fixture
def store():
    scheduler = BackgroundScheduler(timezone=UTC)
    store = DjangoJobStore()
    store.start(scheduler, "default")
    yield store, scheduler
    store.shutdown()


def claim(store, now, ahead=timedelta(seconds=1), **options):
    store, scheduler = store
    options.setdefault("may_claim_early", lambda job: True)
    return claim_due_jobs(
        now,
        limit=10,
        scheduler_id=None,
        load_job=lambda job_id, next_run_time, state: jobstate.restore(job_id, next_run_time, state, scheduler, "default"),
        on_broken_job=lambda job_id, error: pytest.fail(f"{job_id} broken: {error}"),
        ahead=ahead,
        **options,
    )


NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def add(store, job_id, trigger, next_run_time, **options):
    store, scheduler = store
    store.add_job(build_job(job_id, next_run_time, trigger, scheduler=scheduler, **options))


def test_an_interval_job_due_within_the_horizon_has_its_next_fire_claimed_early(store):
    due = NOW + timedelta(milliseconds=500)
    add(store, "every-minute", IntervalTrigger(minutes=1, start_date=due, timezone=UTC), due)

    [claimed] = claim(store, NOW)

    assert claimed.early and claimed.run_times == [due] and claimed.next_run_time == due + timedelta(minutes=1)
    assert DjangoJob.objects.get(id="every-minute").next_run_time == due + timedelta(minutes=1)
    assert DjangoJobExecution.objects.get().status == DjangoJobExecution.SENT


def test_a_cron_job_claimed_early_moves_on_to_its_following_fire(store):
    due = NOW + timedelta(seconds=30)
    add(store, "cron", CronTrigger(second="*/30", timezone=UTC), due)

    [claimed] = claim(store, due - timedelta(seconds=0.6))

    assert claimed.early and claimed.run_times == [due]
    assert claimed.next_run_time == due + timedelta(seconds=30)  # not the claimed fire again


def test_jobs_whose_claim_could_not_be_undone_wait_for_their_instant(store):
    due = NOW + timedelta(milliseconds=500)
    add(store, "once", DateTrigger(due, timezone=UTC), due)
    add(store, "to-workers", IntervalTrigger(minutes=1, start_date=due, timezone=UTC), due)
    add(store, "process-pool", IntervalTrigger(minutes=1, start_date=due, timezone=UTC), due)

    claims = claim(
        store, NOW, hands_off=lambda job: job.id == "to-workers", may_claim_early=lambda job: job.id != "process-pool"
    )

    assert claims == []
    assert set(DjangoJob.objects.values_list("next_run_time", flat=True)) == {due}
    assert not DjangoJobExecution.objects.exists()
    # At their instant they are claimed as usual.
    assert {c.job.id for c in claim(store, due)} == {"once", "to-workers", "process-pool"}


def test_a_job_at_its_cluster_max_instances_is_not_claimed_early_nor_refused(store):
    due = NOW + timedelta(milliseconds=500)
    add(store, "busy", IntervalTrigger(minutes=1, start_date=due, timezone=UTC), due, max_instances=1)
    peer = register_scheduler()
    DjangoJobExecution.objects.create(job_id="busy", run_time=NOW - timedelta(minutes=1), status=DjangoJobExecution.SENT, scheduler=peer)

    assert claim(store, NOW) == []

    assert DjangoJob.objects.get(id="busy").next_run_time == due
    assert not DjangoJobExecution.objects.filter(status=DjangoJobExecution.MAX_INSTANCES).exists()


def test_a_held_job_is_left_alone_and_fires_beyond_the_horizon_are_not_claimed(store):
    soon, later = NOW + timedelta(milliseconds=500), NOW + timedelta(seconds=5)
    add(store, "held", IntervalTrigger(minutes=1, start_date=soon, timezone=UTC), soon)
    add(store, "later", IntervalTrigger(minutes=1, start_date=later, timezone=UTC), later)

    assert claim(store, NOW, held=frozenset({"held"})) == []
    assert claim(store, NOW, ahead=timedelta(0)) == []
    assert [c.job.id for c in claim(store, NOW)] == ["held"]


class IdleScheduler(BackgroundScheduler):
    """A running scheduler whose loop processes nothing: the test calls its store as the loop would."""

    def _process_jobs(self):
        return None


@pytest.fixture
def idle_store(settings):
    settings.APSCHEDULER_CLAIM_AHEAD = 1
    scheduler = IdleScheduler(timezone=UTC)
    scheduler.add_jobstore(DjangoJobStore(), "default")
    scheduler.start()
    yield scheduler, scheduler._jobstores["default"]
    scheduler.shutdown()


def add_quick_job(scheduler, store, due):
    store.add_job(build_job("quick", due, IntervalTrigger(seconds=0.5, start_date=due, timezone=UTC), scheduler=scheduler))


def test_a_fire_handed_over_late_brings_no_unclaimed_fire_with_it(idle_store):
    """Released after its successor's instant (a busy loop): APScheduler must not run the successor too."""
    scheduler, store = idle_store
    now = datetime.now(UTC)
    due = now + timedelta(milliseconds=200)
    add_quick_job(scheduler, store, due)

    assert store.get_due_jobs(now) == []  # claimed ahead, held
    assert store.get_next_run_time() == due
    late = due + timedelta(seconds=0.7)
    [job] = store.get_due_jobs(late)

    run_times = job._get_run_times(late)  # as APScheduler's loop does
    assert run_times == [due]  # not the unclaimed fire at due + 0.5 s
    job._modify(next_run_time=job.trigger.get_next_fire_time(run_times[-1], late))
    store.update_job(job)  # APScheduler's follow-up write: skipped
    assert DjangoJob.objects.get(id="quick").next_run_time == due + timedelta(seconds=0.5)  # due, unclaimed
    [again] = store.get_due_jobs(late + timedelta(milliseconds=1))
    assert again._get_run_times(late + timedelta(milliseconds=1)) == [due + timedelta(seconds=0.5)]


def test_a_claim_made_while_the_scheduler_was_pausing_gives_its_early_fires_back(idle_store):
    scheduler, store = idle_store
    now = datetime.now(UTC)
    due = now + timedelta(milliseconds=500)
    add_quick_job(scheduler, store, due)
    scheduler.pause()  # (nothing was held yet: the claim below comes "during" the pause)

    assert store.get_due_jobs(now) == []

    assert not DjangoJobExecution.objects.exists()
    assert DjangoJob.objects.get(id="quick").next_run_time == due
    assert store._fires.next_held() is None


def test_a_held_fire_the_database_will_not_give_back_stays_held_and_the_change_fails(idle_store, monkeypatch):
    from django_apscheduler import fires

    scheduler, store = idle_store
    now = datetime.now(UTC)
    due = now + timedelta(milliseconds=500)
    add_quick_job(scheduler, store, due)
    store.get_due_jobs(now)

    def refuse(unstarted):
        raise RuntimeError("database refused")

    monkeypatch.setattr(fires, "give_back", refuse)
    with pytest.raises(RuntimeError, match="database refused"):
        scheduler.pause_job("quick")

    assert store._fires.next_held() == due  # still claimed: it runs at its instant
    assert DjangoJob.objects.get(id="quick").next_run_time == due + timedelta(seconds=0.5)
    [job] = store.get_due_jobs(due)
    assert job._get_run_times(due) == [due]


def test_a_fire_left_for_its_instant_does_not_make_the_scheduler_spin(idle_store, monkeypatch):
    """A date job inside the horizon is not claimed early; the early wake-up must not come again and again for it."""
    scheduler, store = idle_store
    timer = store._membership._wake_timer
    wakes = []

    def counted_wake():
        wakes.append(1)
        store.get_due_jobs(datetime.now(UTC))  # what APScheduler's loop asks its store when woken
        store.get_next_run_time()

    monkeypatch.setattr(timer, "_wake", counted_wake)
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    store.add_job(build_job("once", due, DateTrigger(due, timezone=UTC), scheduler=scheduler))
    store.get_due_jobs(datetime.now(UTC))  # the loop's first round ...
    store.get_next_run_time()  # ... and report: the early wake is set for due - 1 s

    wait_until(lambda: datetime.now(UTC) > due - timedelta(milliseconds=100), timeout=5)

    assert 1 <= len(wakes) <= 3
    assert not DjangoJobExecution.objects.exists()


def test_fires_claimed_ahead_falling_due_one_after_another_do_not_hold_up_the_other_jobs(idle_store):
    """A round that only hands over held fires is followed by one that claims, whatever falls due then."""
    scheduler, store = idle_store
    now = datetime.now(UTC)
    first, once, second = (now + timedelta(milliseconds=ms) for ms in (200, 250, 400))
    store.add_job(build_job("first", first, IntervalTrigger(hours=1, start_date=first, timezone=UTC), scheduler=scheduler))
    store.add_job(build_job("second", second, IntervalTrigger(hours=1, start_date=second, timezone=UTC), scheduler=scheduler))
    store.add_job(build_job("once", once, DateTrigger(once, timezone=UTC), scheduler=scheduler))
    assert store.get_due_jobs(now) == []  # "first" and "second" held; "once" is claimed at its instant

    assert [job.id for job in store.get_due_jobs(now + timedelta(milliseconds=300))] == ["first"]
    assert sorted(job.id for job in store.get_due_jobs(now + timedelta(milliseconds=450))) == ["once", "second"]


def release_round(scheduler, store):
    """A quick job's fire claimed ahead, then the round at its instant that hands it over; returns the instant."""
    now = datetime.now(UTC)
    due = now + timedelta(milliseconds=200)
    add_quick_job(scheduler, store, due)  # every 0.5 s
    assert store.get_due_jobs(now) == []  # claimed ahead, held
    assert store.get_next_run_time() == due
    [job] = store.get_due_jobs(due)  # the release round: no database work
    return due


def test_a_round_that_only_hands_over_held_fires_reports_without_a_query_and_looks_again_soon(idle_store, monkeypatch):
    """APScheduler asks for the next run time before the fires' threads start: no query then, a full round 10 ms later."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    scheduler, store = idle_store
    planned = []
    checks = []
    monkeypatch.setattr(
        store._membership, "wake_at", lambda moment, check_held_at: planned.append(moment) or checks.append(check_held_at) or True
    )
    due = release_round(scheduler, store)
    assert checks[-1] == due + HELD_FIRE_CHECK  # while held: checked just after its instant

    with CaptureQueriesContext(connection) as queries:
        before = datetime.now(UTC)
        reported = store.get_next_run_time()
    assert len(queries) == 0
    assert reported == due + timedelta(seconds=0.5)  # the stored fire the claim advanced to
    assert before + timedelta(milliseconds=10) <= planned[-1] <= datetime.now(UTC) + timedelta(milliseconds=10)
    assert store._planned_wakeup == planned[-1]
    assert checks[-1] is None  # handed over: the check is called off, no wake-up comes for it

    # The round it wakes for claims and looks at the database again.
    assert store.get_due_jobs(due + timedelta(milliseconds=10)) == []
    with CaptureQueriesContext(connection) as queries:
        assert store.get_next_run_time() == due + timedelta(seconds=0.5)
    assert len(queries) == 1


def test_without_a_wake_up_to_plan_the_round_that_hands_over_held_fires_looks_at_once(idle_store):
    """The wake timer gone (the scheduler leaving it): nothing would bring the next look, so it is made now."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    scheduler, store = idle_store
    due = release_round(scheduler, store)
    timer = store._membership._wake_timer
    timer.stop()
    timer.join(timeout=5)

    with CaptureQueriesContext(connection) as queries:
        assert store.get_next_run_time() == due + timedelta(seconds=0.5)
    assert len(queries) == 1


def test_the_check_of_held_fires_comes_at_its_own_moment_without_waking_the_scheduler():
    from django_apscheduler.membership import WakeTimer

    woken, checked = [], []
    timer = WakeTimer(lambda: woken.append(datetime.now(UTC)), check_held=lambda: checked.append(datetime.now(UTC)))
    timer.start()
    try:
        start = datetime.now(UTC)
        # A wake-up first, then the check: the wake-up does not call the check off.
        timer.wake_at(start, check_held_at=start + timedelta(milliseconds=300))
        wait_until(lambda: checked, timeout=5)
    finally:
        timer.stop()
        timer.join(timeout=5)
    assert len(woken) == 1 and len(checked) == 1
    assert checked[0] >= start + timedelta(milliseconds=300) > woken[0]


def test_a_check_of_held_fires_can_ask_to_come_again_and_survives_an_error(caplog):
    from django_apscheduler.membership import WakeTimer

    checked = []

    def check():
        checked.append(datetime.now(UTC))
        if len(checked) == 1:
            return datetime.now(UTC) + timedelta(milliseconds=50)  # a fire still held: again soon
        if len(checked) == 2:
            raise ValueError("database gone")
        return None

    timer = WakeTimer(lambda: None, check_held=check)
    timer.start()
    try:
        timer.wake_at(None, check_held_at=datetime.now(UTC))
        wait_until(lambda: len(checked) == 2, timeout=5)
        timer.wake_at(None, check_held_at=datetime.now(UTC))
        wait_until(lambda: len(checked) == 3, timeout=5)
        assert timer.is_alive()
    finally:
        timer.stop()
        timer.join(timeout=5)
    assert checked[1] - checked[0] >= timedelta(milliseconds=50)
    assert "Could not check the fires claimed ahead" in caplog.text


def test_the_check_of_a_fire_held_in_the_repeated_autumn_hour_comes_after_its_instant():
    """A local time plus a delta loses its fold: the check must not land an hour early (and spin)."""
    from zoneinfo import ZoneInfo

    from django_apscheduler.jobstores import _held_check_time

    second_half_thirty = datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York"))  # 01:30 EST
    check = _held_check_time(second_half_thirty)
    assert check.timestamp() - second_half_thirty.timestamp() == pytest.approx(HELD_FIRE_CHECK.total_seconds())
    assert _held_check_time(None) is None


def test_the_wake_timer_outlives_a_failing_wake_up(caplog):
    from django_apscheduler.membership import WakeTimer

    woken = []

    def wake():
        woken.append(datetime.now(UTC))
        if len(woken) == 1:
            raise ValueError("scheduler in a bad state")

    timer = WakeTimer(wake)
    timer.start()
    try:
        timer.wake_at(datetime.now(UTC))
        wait_until(lambda: len(woken) == 1, timeout=5)
        timer.wake_at(datetime.now(UTC))
        wait_until(lambda: len(woken) == 2, timeout=5)
    finally:
        timer.stop()
        timer.join(timeout=5)
    assert "Could not wake the scheduler" in caplog.text


def test_a_run_request_for_a_job_with_a_held_fire_is_taken(store):
    due = NOW + timedelta(milliseconds=500)
    add(store, "held", IntervalTrigger(minutes=1, start_date=due, timezone=UTC), due)
    DjangoJob.objects.filter(id="held").update(run_requested_at=NOW - timedelta(seconds=1))

    [requested] = claim(store, NOW, held=frozenset({"held"}))

    assert requested.run_now and requested.run_times == [NOW - timedelta(seconds=1)]


def test_an_asyncio_scheduler_claims_ahead_and_a_pause_on_its_loop_gives_the_fire_back():
    """AsyncIOScheduler: the store's work runs off the loop; pause() is called on the loop's thread."""
    import asyncio

    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from asgiref.sync import sync_to_async
    from django.db import connections

    from tests import asyncjobs

    asyncjobs.SEEN.clear()
    due = (datetime.now(UTC) + LEAD).replace(microsecond=0)

    def rows():
        return list(DjangoJobExecution.objects.values_list("run_time", "status"))

    async def until(condition, message):
        for _ in range(200):
            if await asyncio.to_thread(condition):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {message}")

    async def main():
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_jobstore(DjangoJobStore(), "default")
        scheduler.start()
        scheduler.add_job(
            asyncjobs.sleep_on_the_loop, "interval", hours=1, start_date=due, args=["x", 0], id="hourly",
            misfire_grace_time=None,
        )
        try:
            await until(lambda: rows() == [(due, DjangoJobExecution.SENT)], "the early claim")
            assert datetime.now(UTC) < due and asyncjobs.SEEN == []
            scheduler.pause()
            await until(lambda: not rows(), "the held fire given back")
            assert await asyncio.to_thread(lambda: DjangoJob.objects.get(id="hourly").next_run_time) == due
            scheduler.resume()
            await until(lambda: rows() == [(due, DjangoJobExecution.SUCCESS)], "the fire run once")
            assert asyncjobs.SEEN == [("x", 0)]
        finally:
            scheduler.shutdown()
            while scheduler.running:
                await asyncio.sleep(0.05)

    try:
        asyncio.run(main())
    finally:
        asyncjobs.SEEN.clear()
        asyncio.run(sync_to_async(connections.close_all)())
