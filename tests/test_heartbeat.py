"""Scheduler registry housekeeping: lost fires of dead schedulers, pruning old rows."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from django_apscheduler import heartbeat
from django_apscheduler.models import DjangoJobExecution, SchedulerInstance

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

    assert heartbeat.mark_lost_executions(timeout=30) == 1
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
    assert heartbeat.prune_dead_schedulers() == 1
    assert set(SchedulerInstance.objects.values_list("pk", flat=True)) == {recent.pk, old_busy.pk}
    assert DjangoJobExecution.objects.get(job_id="kept").scheduler is None


@pytest.fixture
def statements_by_thread():
    """Every SQL statement any thread's new connection runs, as (thread name, sql)."""
    import threading

    from django.db.backends.signals import connection_created

    seen = []

    def record(execute, sql, params, many, context):
        seen.append((threading.current_thread().name, sql))
        return execute(sql, params, many, context)

    def install(sender, connection, **kwargs):
        connection.execute_wrappers.append(record)

    connection_created.connect(install)
    yield seen
    connection_created.disconnect(install)


def run_heartbeat(seconds, notifications_live, wakeups):
    import time

    instance = heartbeat.register_scheduler()
    beat = heartbeat.Heartbeat(
        instance.pk,
        earliest_next_run_time=lambda: timezone.now(),  # always "due sooner": every poll wakes
        planned_wakeup=lambda: None,
        wake_scheduler=lambda: wakeups.append(1),
        notifications_live=lambda: notifications_live,
    )
    beat._last_prune = time.monotonic()  # the hourly clean-up is not what is measured
    beat.start()
    time.sleep(seconds)
    beat.stop()
    beat.join(timeout=5)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("notifications_live", [False, True], ids=["polling", "notified"])
def test_idle_heartbeat_polls_every_interval_or_only_with_beats_when_notified(
    settings, statements_by_thread, notifications_live
):
    """What an idle scheduler costs besides its polls (each one statement, tested below).

    The earliest-next-run-time callback here runs no SQL and always reports a job due
    sooner, so each poll shows up as a wake-up, and the statements counted are the
    heartbeat thread's own: heartbeats and lost-fire checks, and nothing else (no
    connection pings).
    """
    settings.APSCHEDULER_POLL_INTERVAL = 0.1
    settings.APSCHEDULER_HEARTBEAT_INTERVAL = 0.5
    wakeups = []
    run_heartbeat(2.0, notifications_live, wakeups)
    own = [sql for thread, sql in statements_by_thread if thread == "django-apscheduler-heartbeat"]
    beats = [sql for sql in own if re.match(r'UPDATE [`"]?django_apscheduler_schedulerinstance\b', sql)]
    lost_checks = [sql for sql in own if re.match(r'UPDATE [`"]?django_apscheduler_djangojobexecution\b', sql)]
    assert 2 <= len(beats) <= 5, own
    assert len(lost_checks) == 1, own  # once per half heartbeat timeout (15 s here)
    assert len(own) == len(beats) + len(lost_checks), own
    if notifications_live:
        assert 2 <= len(wakeups) <= 5  # a safety poll with each heartbeat, nothing between
    else:
        assert len(wakeups) >= 12  # every poll interval


@pytest.mark.django_db(transaction=True)
def test_the_poll_is_one_statement_and_sees_run_requests(jobstore):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_apscheduler.models import DjangoJob

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
