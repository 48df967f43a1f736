"""A scheduler's membership: lost fires of dead schedulers, pruning old rows, the heartbeat's cost."""

import re
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_apscheduler import fires, membership
from django_apscheduler.models import DjangoJob, DjangoJobExecution, SchedulerInstance

pytestmark = pytest.mark.django_db


def scheduler(seconds_silent):
    now = timezone.now()
    return SchedulerInstance.objects.create(
        host="h", pid=1, started=now - timedelta(days=30), last_heartbeat=now - timedelta(seconds=seconds_silent)
    )


def execution(job_id, status, owner):
    return DjangoJobExecution.objects.create(job_id=job_id, run_time=timezone.now(), status=status, scheduler=owner)


def test_only_dead_schedulers_lose_their_started_fires():
    alive, dead = scheduler(1), scheduler(120)
    running_alive = execution("a", DjangoJobExecution.SENT, alive)
    running_dead = execution("b", DjangoJobExecution.SENT, dead)
    done_dead = execution("c", DjangoJobExecution.SUCCESS, dead)
    legacy = execution("d", DjangoJobExecution.SENT, None)  # left by 0.7: nobody to blame

    assert fires.mark_lost() == 1
    statuses = dict(DjangoJobExecution.objects.values_list("job_id", "status"))
    assert statuses == {
        running_alive.job_id: DjangoJobExecution.SENT,
        running_dead.job_id: DjangoJobExecution.LOST,
        done_dead.job_id: DjangoJobExecution.SUCCESS,
        legacy.job_id: DjangoJobExecution.SENT,
    }


def test_schedulers_silent_for_a_week_are_pruned_but_history_stays():
    recent, old, old_busy = scheduler(3600), scheduler(8 * 86400), scheduler(8 * 86400)
    execution("kept", DjangoJobExecution.SUCCESS, old)
    execution("busy", DjangoJobExecution.SENT, old_busy)
    assert membership.prune_dead_schedulers() == 1
    assert set(SchedulerInstance.objects.values_list("pk", flat=True)) == {recent.pk, old_busy.pk}
    assert DjangoJobExecution.objects.get(job_id="kept").scheduler is None


@pytest.fixture
def statements_by_thread():
    """Every SQL statement any thread's new connection runs, as (thread name, sql)."""
    seen = []

    def record(execute, sql, params, many, context):
        seen.append((threading.current_thread().name, sql))
        return execute(sql, params, many, context)

    def install(sender, connection, **kwargs):
        if record not in connection.execute_wrappers:  # a reconnection keeps the wrapper
            connection.execute_wrappers.append(record)

    connection_created.connect(install)
    yield seen
    connection_created.disconnect(install)


class _FakeScheduler:
    def __init__(self, wakeups):
        self.wakeups = wakeups

    def wakeup(self):
        self.wakeups.append(1)


def make_heartbeat(planned, wakeups, notifications_live=False):
    """A real heartbeat thread (real poll, real statements) of a membership that is not joined."""
    member = membership.Membership(_FakeScheduler(wakeups), "default", planned_wakeup=lambda: planned)
    member.instance_id = membership.register_scheduler().pk
    member.notifications_live = lambda: notifications_live
    return membership.Heartbeat(member)


def weekly_job():
    return DjangoJob.objects.create(id="weekly", next_run_time=timezone.now() + timedelta(days=7), job_state=b"")


POLL = r'SELECT .*[`"]django_apscheduler_djangojob[`"]'
BEAT = r'UPDATE [`"]?django_apscheduler_schedulerinstance\b'
LOST = r'UPDATE [`"]?django_apscheduler_djangojobexecution\b'
PEERS = r'SELECT .*[`"]django_apscheduler_schedulerinstance[`"]'
# Where a heartbeat is one UPDATE that also checks for work (not MySQL/MariaDB).
CONDITIONAL_BEATS = connection.vendor != "mysql"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("notifications_live", [False, True], ids=["polling", "notified"])
def test_an_idle_scheduler_sends_one_statement_per_tick(settings, statements_by_thread, notifications_live):
    """Idle: per poll interval one statement (a poll or a heartbeat); with notifications, heartbeats only."""
    settings.APSCHEDULER_POLL_INTERVAL = 0.1
    settings.APSCHEDULER_HEARTBEAT_INTERVAL = 0.5
    job = weekly_job()
    wakeups = []
    beat = make_heartbeat(job.next_run_time, wakeups, notifications_live)
    beat._last_prune = time.monotonic()  # the hourly clean-up is not what is measured
    started = time.monotonic()
    beat.start()
    time.sleep(2.0)
    beat.stop()
    beat.join(timeout=5)
    elapsed = time.monotonic() - started
    own = [sql for thread, sql in statements_by_thread if thread == "django-apscheduler-heartbeat"]
    # A new MySQL connection first asks for the server's version and modes, once.
    setup = [sql for sql in own if "django_apscheduler_" not in sql]
    assert len(setup) <= (2 if connection.vendor == "mysql" else 0), setup
    own = [sql for sql in own if sql not in setup]
    beats = [sql for sql in own if re.match(BEAT, sql)]
    polls = [sql for sql in own if re.match(POLL, sql)]
    lost_checks = [sql for sql in own if re.match(LOST, sql)]
    peer_checks = [sql for sql in own if re.match(PEERS, sql)]
    assert len(peer_checks) == len(lost_checks), own  # each lost-fire check first asks which peers died
    assert len(own) == len(beats) + len(polls) + len(lost_checks) + len(peer_checks), own
    assert 2 <= len(beats) <= 5, own
    assert wakeups == []  # nothing was due sooner than planned
    if CONDITIONAL_BEATS:
        assert lost_checks == [], own  # part of the heartbeat's UPDATE
        extra_per_beat = 0
    else:
        # MySQL and MariaDB: each heartbeat is followed by a poll; lost fires every 15 s.
        assert len(lost_checks) == 1, own
        extra_per_beat = 1
    if notifications_live:
        assert len(polls) == extra_per_beat * len(beats), own
    else:
        ticks = elapsed / 0.1 + 1
        assert len(beats) + len(polls) <= ticks + extra_per_beat * len(beats), own  # one statement per tick
        assert len(polls) >= 10, own


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_with_nothing_to_do_is_one_statement_where_the_database_allows():
    job = weekly_job()
    wakeups = []
    beat = make_heartbeat(job.next_run_time, wakeups)
    beat._last_prune = beat._last_lost_check = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        beat._beat()
    # MySQL and MariaDB: the heartbeat, then a poll.
    assert len(queries.captured_queries) == (1 if CONDITIONAL_BEATS else 2), queries.captured_queries
    assert wakeups == []


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_that_finds_work_wakes_the_scheduler_and_marks_lost_fires():
    job = weekly_job()
    wakeups = []
    beat = make_heartbeat(job.next_run_time, wakeups)
    beat._last_prune = time.monotonic()
    dead = scheduler(120)
    orphan = execution("orphan", DjangoJobExecution.SENT, dead)
    own = SchedulerInstance.objects.get(pk=beat.instance_id)
    SchedulerInstance.objects.filter(pk=own.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=10))
    # Another process made a job due sooner than the scheduler planned to wake.
    DjangoJob.objects.create(id="sooner", next_run_time=timezone.now() + timedelta(hours=1), job_state=b"")
    beat._beat()
    assert wakeups == [1]
    assert DjangoJobExecution.objects.get(pk=orphan.pk).status == DjangoJobExecution.LOST
    assert SchedulerInstance.objects.get(pk=own.pk).last_heartbeat > timezone.now() - timedelta(seconds=5)


@pytest.mark.django_db(transaction=True)
def test_the_poll_is_one_statement_and_sees_run_requests(jobstore):
    later, sooner = timezone.now() + timedelta(hours=2), timezone.now() + timedelta(hours=1)
    DjangoJob.objects.create(id="scheduled", next_run_time=later, job_state=b"")
    DjangoJob.objects.create(id="requested", next_run_time=None, run_requested_at=sooner, job_state=b"")
    DjangoJob.objects.create(id="broken", next_run_time=timezone.now(), broken=True, job_state=b"")
    with CaptureQueriesContext(connection) as queries:
        earliest = jobstore._earliest_next_run_time()
    assert earliest == sooner
    assert len(queries.captured_queries) == 1, queries.captured_queries
    DjangoJob.objects.filter(pk="requested").delete()
    assert jobstore._earliest_next_run_time() == later
    DjangoJob.objects.all().delete()
    assert jobstore._earliest_next_run_time() is None


def _membership_threads():
    return [t for t in threading.enumerate() if isinstance(t, membership.Heartbeat) and t.is_alive()]


@pytest.mark.django_db(transaction=True)
def test_a_join_after_leave_starts_nothing():
    """A shutdown that overtakes a slow start (SIGTERM at once) leaves no row and no thread."""
    from apscheduler.schedulers.background import BackgroundScheduler

    member = membership.Membership(BackgroundScheduler(), "default")
    member.leave()
    member.join()

    assert not member.joined
    assert not SchedulerInstance.objects.exists()
    assert _membership_threads() == []


@pytest.mark.django_db(transaction=True)
def test_leave_racing_join_never_fails_and_leaves_no_thread():
    from apscheduler.schedulers.background import BackgroundScheduler

    for _ in range(5):
        member = membership.Membership(BackgroundScheduler(), "default")
        errors = []

        def join(member=member, errors=errors):
            try:
                member.join()
            except Exception as error:  # noqa: BLE001
                errors.append(error)

        joiner = threading.Thread(target=join)
        joiner.start()
        member.leave()  # before, during or after join's thread starts: each must be safe
        joiner.join(timeout=30)

        assert errors == []
        assert not joiner.is_alive()
        assert _membership_threads() == []
        assert not SchedulerInstance.objects.filter(stopped=None).exists()
