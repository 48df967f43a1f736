"""A crashed scheduler is noticed in seconds, by its session or its pid; a slow one is not declared dead.

Real scheduler processes on one database, with a heartbeat timeout of 30 s: every
death noticed sooner was noticed by the session lock (schedulers given distinct
namespaces, as on separate hosts) or by the pid (same host).
"""

import os
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection

from django_apscheduler.models import DjangoJobExecution, SchedulerInstance
from tests.cluster import assert_clean_logs
from tests.helpers import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

UTC = timezone.utc
SESSION_DATABASES = ("postgresql", "mysql")


@pytest.fixture
def cluster(cluster_factory):
    # A long timeout: these tests measure the session lock and pid paths, not the heartbeat's.
    return cluster_factory(
        {"APSCHEDULER_POLL_INTERVAL": "1", "APSCHEDULER_HEARTBEAT_INTERVAL": "1", "APSCHEDULER_HEARTBEAT_TIMEOUT": "30"}
    )


def detection_paths():
    paths = ["pid"]
    if connection.vendor in SESSION_DATABASES:
        paths.append("session")
    return paths


def as_separate_hosts(index):
    """Distinct namespaces: no pid checks between them, only their sessions tell."""
    return {"DJANGO_APSCHEDULER_NAMESPACE": f"test-host-{index}"}


@pytest.mark.parametrize("path", ["pid", "session"])
def test_a_killed_scheduler_is_noticed_within_seconds(cluster, path, capsys):
    if path not in detection_paths():
        pytest.skip("no database sessions to watch on SQLite")
    jobs, start_at = 20, time.time() + 5
    cluster.start(
        3,
        env=as_separate_hosts if path == "session" else None,
        jobs=jobs,
        interval=1,
        job_sleep=0.4,
        start_at=start_at,
        misfire_grace_time=30,
    )
    cluster.wait_ready()
    victim_row = wait_until(
        lambda: DjangoJobExecution.objects.filter(status=DjangoJobExecution.SENT, scheduler__isnull=False, run_time__gt=datetime.fromtimestamp(start_at + 2, UTC))
        .select_related("scheduler")
        .first(),
        timeout=30,
        message="a fire running on some scheduler",
    )
    victim = victim_row.scheduler
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = datetime.now(UTC)
    in_flight = set(
        DjangoJobExecution.objects.filter(status=DjangoJobExecution.SENT, scheduler=victim).values_list("job_id", flat=True)
    )

    def lost_all_in_flight():
        return not DjangoJobExecution.objects.filter(status=DjangoJobExecution.SENT, scheduler=victim).exists()

    try:
        wait_until(lost_all_in_flight, timeout=10, message="the killed scheduler's fires to end")
    except AssertionError:
        raise AssertionError(cluster.outputs()[-6000:]) from None
    lost_after = (datetime.now(UTC) - killed_at).total_seconds()
    time.sleep(5)
    cluster.stop()

    statuses = set(
        DjangoJobExecution.objects.filter(scheduler=victim, run_time__lte=killed_at).values_list("status", flat=True)
    )
    assert DjangoJobExecution.SENT not in statuses
    assert SchedulerInstance.objects.get(pk=victim.pk).died is not None
    resumed = []
    for job_id in sorted(in_flight):
        first = (
            DjangoJobExecution.objects.filter(job_id=job_id, started_at__gt=killed_at, status=DjangoJobExecution.SUCCESS)
            .exclude(scheduler=victim)
            .order_by("started_at")
            .first()
        )
        assert first is not None, f"{job_id} did not run again after the kill"
        resumed.append((first.started_at - killed_at).total_seconds())
    with capsys.disabled():
        print(
            f"\n[{connection.vendor}, {path}] SIGKILL -> in-flight fires Lost! within {lost_after:.2f} s; "
            f"first fire of each affected job ({len(resumed)}) on a survivor after "
            f"{min(resumed):.2f}..{max(resumed):.2f} s"
        )
    assert max(resumed) <= 3.0, resumed
    refused_after = DjangoJobExecution.objects.filter(
        status=DjangoJobExecution.MAX_INSTANCES, run_time__gt=killed_at + timedelta(seconds=1)
    ).count()
    assert refused_after == 0
    survivors = "\n".join(p.output_path.read_text() for p in cluster.processes if p.pid != victim.pid)
    assert_clean_logs(survivors)


@pytest.mark.parametrize("path", ["pid", "session"])
def test_a_paused_scheduler_is_not_declared_dead(cluster, path):
    """SIGSTOP for longer than the lock and pid checks run, shorter than the heartbeat timeout."""
    if path not in detection_paths():
        pytest.skip("no database sessions to watch on SQLite")
    start_at = time.time() + 5
    cluster.start(2, env=as_separate_hosts if path == "session" else None, jobs=6, interval=1, job_sleep=0.3, start_at=start_at)
    cluster.wait_ready()
    time.sleep(max(0, start_at + 2 - time.time()))
    paused = cluster.processes[0]
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        time.sleep(6)
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    resumed_at = datetime.now(UTC)
    # It carries on where it stopped: its next heartbeat comes within a beat or two.
    wait_until(
        lambda: SchedulerInstance.objects.filter(
            pid=paused.pid, stopped=None, died=None, last_heartbeat__gt=resumed_at
        ).exists(),
        timeout=10,
        message="a heartbeat of the resumed scheduler",
    )
    time.sleep(1)
    cluster.stop()

    assert not SchedulerInstance.objects.filter(died__isnull=False).exists()
    assert not DjangoJobExecution.objects.filter(status=DjangoJobExecution.LOST).exists()
    assert all(p.returncode == 0 for p in cluster.processes), cluster.outputs()
    assert SchedulerInstance.objects.filter(pid=paused.pid).count() == 1  # it never had to register again
