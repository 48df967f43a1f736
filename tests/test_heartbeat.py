"""Scheduler registry housekeeping: lost fires of dead schedulers, pruning old rows."""

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
