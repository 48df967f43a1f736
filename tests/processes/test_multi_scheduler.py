"""Several scheduler processes on one database: exactly-once fires, crashes, live changes.

Real OS processes (tests/procs/scheduler_process.py) share the test database;
every real call of a job appends a line to a shared file, so executions are
counted independently of the rows the package writes.
"""

import os
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection

from django_apscheduler.models import DjangoJob, DjangoJobExecution, SchedulerInstance
from tests.cluster import QUICK_LIVENESS, assert_clean_logs
from tests.helpers import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

UTC = timezone.utc


@pytest.fixture
def cluster(cluster_factory):
    return cluster_factory(QUICK_LIVENESS)


def expected_fires(start_at: float, interval: float, until: float) -> list:
    count = int((until - start_at) // interval) + 1
    return [datetime.fromtimestamp(start_at + k * interval, tz=UTC) for k in range(max(count, 0))]


def test_four_schedulers_run_every_fire_exactly_once(cluster):
    jobs, interval, run_for = 50, 1.0, 20
    start_at = time.time() + 6  # every process adds the same jobs with this first fire
    cluster.start(4, jobs=jobs, interval=interval, start_at=start_at)
    cluster.wait_ready()
    time.sleep(max(0, start_at + run_for - time.time()))
    cluster.stop()
    last_counted = start_at + run_for - 2  # fires before this had ample time to run

    rows = DjangoJobExecution.objects.filter(job_id__in=[f"job{i:03d}" for i in range(100)])
    assert set(rows.values_list("status", flat=True)) == {DjangoJobExecution.SUCCESS}, _explain_refusals(rows)
    calls = cluster.calls()
    executed = {(r.job_id, r.run_time) for r in rows}
    expected = expected_fires(start_at, interval, last_counted)
    missing = [(f"job{i:03d}", t) for i in range(jobs) for t in expected if (f"job{i:03d}", t) not in executed]
    duplicates = {job: n - rows.filter(job_id=job).count() for job, n in calls.items()}
    assert missing == [], f"{len(missing)} missed fires, e.g. {missing[:5]}"
    assert all(extra == 0 for extra in duplicates.values()), duplicates
    assert sum(calls.values()) == rows.count()
    # The work was shared, not done by one process while the others idled.
    assert rows.values("scheduler").distinct().count() >= 2
    assert_clean_logs(cluster.outputs())


def _explain_refusals(rows):
    """For a failure message: each refused fire with the fire of the same job before it."""
    lines = []
    for refused in rows.exclude(status=DjangoJobExecution.SUCCESS)[:8]:
        before = rows.filter(job_id=refused.job_id, run_time__lt=refused.run_time).order_by("-run_time").first()
        lines.append(
            f"{refused.job_id} {refused.run_time:%H:%M:%S.%f} {refused.status} by {refused.scheduler_id}; "
            f"previous: {before and (before.run_time.strftime('%H:%M:%S.%f'), before.status, before.scheduler_id, before.started_at, before.finished)}"
        )
    return "\n".join(lines)


def test_a_killed_scheduler_loses_only_its_running_fires(cluster):
    start_at = time.time() + 6
    cluster.start(3, jobs=6, interval=2, job_sleep=1.5, start_at=start_at, misfire_grace_time=60)
    cluster.wait_ready()
    one_off_due = [datetime.now(UTC) + timedelta(seconds=6 + i * 0.5) for i in range(16)]
    _add_one_off_jobs(one_off_due, cluster.calls_log)

    # Wait until some scheduler is in the middle of running jobs, then SIGKILL it.
    victim_row = wait_until(
        lambda: DjangoJobExecution.objects.filter(status=DjangoJobExecution.SENT, scheduler__isnull=False)
        .select_related("scheduler")
        .first(),
        timeout=30,
        message="a running execution",
    )
    victim_pid = victim_row.scheduler.pid
    victim = next(p for p in cluster.processes if p.pid == victim_pid)
    os.kill(victim_pid, signal.SIGKILL)
    victim.wait()
    killed_at = datetime.now(UTC)

    wait_until(
        lambda: DjangoJobExecution.objects.filter(status=DjangoJobExecution.LOST).exists(),
        timeout=20,
        message="the dead scheduler's fires to be marked Lost!",
    )
    time.sleep(8)  # the survivors keep going
    # Dead schedulers are noticed within a second or so now: wait for the last one-off
    # job's fire too (due up to 14 s after they were added) before stopping.
    wait_until(
        lambda: not DjangoJob.objects.filter(id__startswith="once").exists(),
        timeout=30,
        message="every one-off job to fire",
    )
    time.sleep(2)  # its result is written
    cluster.stop()

    lost = DjangoJobExecution.objects.filter(status=DjangoJobExecution.LOST)
    assert set(lost.values_list("scheduler__pid", flat=True)) == {victim_pid}
    still_started = list(
        DjangoJobExecution.objects.filter(status=DjangoJobExecution.SENT).values_list("job_id", "run_time", "scheduler_id")
    )
    schedulers = list(SchedulerInstance.objects.values_list("pk", "pid", "last_heartbeat", "stopped"))
    assert still_started == [], f"{still_started}\n{schedulers}\nkilled {victim_pid}\n{cluster.outputs()[-4000:]}"
    for index in range(6):
        later = DjangoJobExecution.objects.filter(
            job_id=f"job{index:03d}", status=DjangoJobExecution.SUCCESS, run_time__gt=killed_at + timedelta(seconds=4)
        )
        assert later.exists(), f"job{index:03d} stopped firing after the crash"
    # Nothing ran twice: every real call has exactly one row (finished or lost).
    calls = cluster.calls()
    for job_id, count in calls.items():
        recorded = DjangoJobExecution.objects.filter(
            job_id=job_id, status__in=[DjangoJobExecution.SUCCESS, DjangoJobExecution.LOST]
        ).count()
        assert count <= recorded, (job_id, count, recorded)
    for index in range(len(one_off_due)):
        job_id = f"once{index:02d}"
        assert calls[job_id] <= 1, job_id
        assert DjangoJobExecution.objects.filter(job_id=job_id).count() == 1, job_id
    assert not DjangoJob.objects.filter(id__startswith="once").exists()
    survivors = "\n".join(p.output_path.read_text() for p in cluster.processes if p.pid != victim_pid)
    assert_clean_logs(survivors)


def _add_one_off_jobs(due_times, log_path):
    """Date jobs added by this (non-scheduler) process through the job store."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from django_apscheduler.jobstores import DjangoJobStore
    from tests.procs.scheduler_process import record

    store = DjangoJobStore()
    adder = BackgroundScheduler(timezone="UTC")
    adder.add_jobstore(store, "default")
    adder.start(paused=True)  # writes jobs, runs nothing
    try:
        for index, due in enumerate(due_times):
            adder.add_job(record, "date", run_date=due, args=[str(log_path), f"once{index:02d}"], id=f"once{index:02d}")
    finally:
        adder.shutdown()


def _live_change_bound():
    return 1.0 if connection.vendor == "postgresql" else 1.0 + 1.0  # poll interval is 1 s here


def test_changes_from_another_process_are_obeyed_live(cluster):
    from apscheduler.schedulers.background import BackgroundScheduler

    from django_apscheduler.jobstores import DjangoJobStore
    from tests.procs.scheduler_process import record

    log = str(cluster.calls_log)
    cluster.start(1, jobs=0)
    cluster.wait_ready()
    (process,) = cluster.processes
    other = BackgroundScheduler(timezone="UTC")
    other.add_jobstore(DjangoJobStore(), "default")
    other.start(paused=True)
    next_week = datetime.now(UTC) + timedelta(days=7)
    try:
        other.add_job(record, "date", run_date=next_week, args=[log, "weekly"], id="weekly")
        time.sleep(1.5)  # the running scheduler now sleeps until next week

        # Added elsewhere, due in one second.
        due = datetime.now(UTC) + timedelta(seconds=1)
        other.add_job(record, "date", run_date=due, args=[log, "added"], id="added")
        _assert_ran_within("added", due, _live_change_bound())

        # Rescheduled elsewhere from next week to one second from now.
        due = datetime.now(UTC) + timedelta(seconds=1)
        other.reschedule_job("weekly", trigger="date", run_date=due)
        _assert_ran_within("weekly", due, _live_change_bound())

        # A plain ORM update of next_run_time.
        other.add_job(record, "interval", days=7, args=[log, "orm"], id="orm")
        due = datetime.now(UTC) + timedelta(seconds=1)
        DjangoJob.objects.filter(pk="orm").update(next_run_time=due)
        _assert_ran_within("orm", due, _live_change_bound())

        # Paused elsewhere: no more fires after the bound.
        other.add_job(record, "interval", seconds=0.5, args=[log, "ticker"], id="ticker")
        wait_until(lambda: cluster.calls()["ticker"] >= 2, timeout=10, message="ticker to run")
        other.pause_job("ticker")
        time.sleep(_live_change_bound() + 0.5)
        frozen = cluster.calls()["ticker"]
        cpu_before = cluster.cpu_seconds(process)
        time.sleep(3)
        assert cluster.calls()["ticker"] == frozen
        # Idle with nothing due for a week: it sleeps, it does not spin.
        assert cluster.cpu_seconds(process) - cpu_before < 0.5
    finally:
        other.shutdown()
    assert_clean_logs(cluster.outputs())


def _assert_ran_within(job_id, due, bound):
    row = wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id=job_id, status=DjangoJobExecution.SUCCESS).first(),
        timeout=bound + 10,
        message=f"{job_id} to run",
    )
    lag = (row.started_at - due).total_seconds()
    assert -0.05 <= lag <= bound + 0.3, f"{job_id} started {lag:.2f}s after it was due (bound {bound}s)"


@pytest.mark.skipif(os.environ.get("DB") != "postgres", reason="restarts the local PostgreSQL server")
def test_schedulers_ride_out_a_postgresql_restart(cluster):
    # A restart ends every session: nobody may take that for its peers' deaths. (A
    # heartbeat timeout longer than the restart, so only the session rule is tested.)
    cluster.env["APSCHEDULER_HEARTBEAT_TIMEOUT"] = "30"
    start_at = time.time() + 5
    cluster.start(2, env=lambda index: {"DJANGO_APSCHEDULER_NAMESPACE": f"host-{index}"}, jobs=10, interval=1, start_at=start_at)
    cluster.wait_ready()
    time.sleep(max(0, start_at + 4 - time.time()))
    _restart_postgresql()
    restarted_at = datetime.now(UTC)
    connection.close()
    time.sleep(10)
    from django_apscheduler.liveness import held_locks

    running = set(SchedulerInstance.objects.filter(stopped=None).values_list("pk", flat=True))
    assert len(running) == 2 and held_locks(running) == running  # each took its session lock again
    cluster.stop()
    connection.close()

    assert all(p.returncode == 0 for p in cluster.processes), cluster.outputs()
    rows = DjangoJobExecution.objects.filter(job_id__in=[f"job{i:03d}" for i in range(100)])
    calls = cluster.calls()
    assert sum(calls.values()) == rows.filter(status=DjangoJobExecution.SUCCESS).count()
    for index in range(10):
        assert rows.filter(job_id=f"job{index:03d}", run_time__gt=restarted_at + timedelta(seconds=3)).exists()
    output = cluster.outputs()
    assert "Retrying with back-off" in output or "reachable again" in output or "LISTEN" in output
    for forbidden in ("IntegrityError", "MultipleObjectsReturned"):
        assert forbidden not in output
    assert not SchedulerInstance.objects.filter(died__isnull=False).exists(), output
    assert not rows.filter(status=DjangoJobExecution.LOST).exists(), output


def _restart_postgresql():
    import subprocess
    from pathlib import Path

    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    try:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"],
            check=True,
            timeout=120,
        )
    finally:
        # Whatever happened, leave the server running for the rest of the suite.
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
            timeout=120,
            capture_output=True,
        )
