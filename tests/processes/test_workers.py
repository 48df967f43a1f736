"""Fires handed to a real worker fleet: django-tasks' database backend and its ``db_worker`` processes.

Schedulers (tests/procs/scheduler_process.py --executor tasks) claim fires and
queue them; separate ``db_worker`` processes run them. Every real call of a job
appends "job pid time" to a shared file, so runs are counted (and attributed to a
process) independently of the rows the package writes.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from django.test import override_settings

from django_apscheduler.models import DjangoJobExecution
from django_apscheduler.runnow import run_jobs_now
from tests.cluster import QUICK_LIVENESS, assert_clean_logs
from tests.helpers import wait_until

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(importlib.util.find_spec("django_tasks_db") is None, reason="django-tasks-db (Django 5.2+) is not installed"),
]

UTC = timezone.utc


class Fleet:
    """``db_worker`` processes of the test database's task queue."""

    def __init__(self, env, workdir):
        self.env = env
        self.workdir = workdir
        self.processes = []

    def start(self, count):
        for _ in range(count):
            index = len(self.processes)
            output = open(self.workdir / f"worker{index}.out", "w")
            command = [sys.executable, "-m", "django", "db_worker", "--interval", "0.05", "--no-startup-delay", "--queue-name", "default"]
            process = subprocess.Popen(command, env=self.env, stdout=output, stderr=subprocess.STDOUT)
            process.output_path = self.workdir / f"worker{index}.out"
            self.processes.append(process)

    @property
    def pids(self):
        return {p.pid for p in self.processes}

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def outputs(self):
        return "\n".join(f"--- worker pid {p.pid} ---\n{p.output_path.read_text()}" for p in self.processes)


@pytest.fixture
def env(subprocess_env):
    return {**subprocess_env, "DJANGO_SETTINGS_MODULE": "tests.settings", **QUICK_LIVENESS}


@pytest.fixture
def cluster(env, cluster_factory):
    return cluster_factory(env)


@pytest.fixture
def fleet(env, tmp_path):
    fleet = Fleet(env, tmp_path)
    yield fleet
    fleet.stop()


def calls_by_pid(cluster):
    """{(job id, pid)} of every real call, from the shared log."""
    if not cluster.calls_log.exists():
        return []
    return [tuple(line.split()[:2]) for line in cluster.calls_log.read_text().splitlines() if line.strip()]


def store_jobs(cluster, count, first, **options):
    """Jobs every second from ``first`` that hand their fires to the workers, stored for the running schedulers.

    Stored once everything runs, rather than added by each scheduler at its start:
    on a busy machine a slow start would otherwise decide which fires exist.
    """
    from apscheduler.triggers.interval import IntervalTrigger

    from django_apscheduler.jobstores import DjangoJobStore
    from tests.helpers import build_job
    from tests.procs.scheduler_process import record

    store = DjangoJobStore()
    job_ids = [f"job{i:03d}" for i in range(count)]
    for job_id in job_ids:
        trigger = IntervalTrigger(seconds=1, start_date=first, timezone=UTC)
        options.setdefault("misfire_grace_time", 30)
        store.add_job(build_job(job_id, first, trigger, func=record, args=(str(cluster.calls_log), job_id), executor="tasks", **options))
    return job_ids


@pytest.mark.timeout(400)
def test_two_schedulers_and_three_workers_run_every_fire_once_on_a_worker(cluster, fleet):
    jobs, run_for = 20, 20
    fleet.start(3)
    # The peers' heartbeat timeout is longer here than in the crash tests: on a busy
    # machine, a 3 s stall of a live process is not what this test is about.
    cluster.start(2, executor="tasks", env={"APSCHEDULER_HEARTBEAT_TIMEOUT": "10"})
    cluster.wait_ready()
    first = datetime.now(UTC) + timedelta(seconds=2)
    # A fire may wait for a busy worker longer than the interval: that is no reason to refuse it here.
    job_ids = store_jobs(cluster, jobs, first, max_instances=100)
    expected = [first + timedelta(seconds=k) for k in range(run_for)]
    time.sleep(max(0, expected[-1].timestamp() - time.time()))
    rows = DjangoJobExecution.objects.filter(job_id__in=job_ids)
    # On a loaded machine the schedulers may be behind the clock: wait until they
    # claimed the last fire counted, rather than count what they had no time to claim.
    wait_until(lambda: rows.filter(run_time=expected[-1]).count() == jobs, timeout=90, message="the last fires claimed")
    cluster.stop()  # the schedulers stop; the workers finish what is queued
    # Seconds on an idle machine; a loaded one (other test runs beside this one) lags far more.
    wait_until(lambda: not rows.unfinished().exists(), timeout=150, message="the queue drained")

    recorded = {(r.job_id, r.run_time) for r in rows}
    missing = [(job, t) for job in job_ids for t in expected if (job, t) not in recorded]
    assert missing == [], f"{len(missing)} missed fires, e.g. {missing[:5]}"
    statuses = set(rows.values_list("status", flat=True))
    assert statuses == {DjangoJobExecution.SUCCESS}, statuses
    calls = calls_by_pid(cluster)
    assert len(calls) == rows.count(), "duplicates: more calls than fires"
    assert {int(pid) for _, pid in calls} <= fleet.pids  # run by workers, never by a scheduler
    assert set(rows.values_list("worker_pid", flat=True)) <= fleet.pids
    assert len(set(rows.values_list("worker_pid", flat=True))) >= 2  # the fleet shared the work
    assert rows.values("scheduler").distinct().count() == 2  # both schedulers handed fires off
    lags = sorted((r.started_at - r.run_time).total_seconds() for r in rows)
    print(f"{rows.count()} fires on workers; start lag p50 {lags[len(lags) // 2]:.3f} s, max {lags[-1]:.3f} s")
    assert_clean_logs(cluster.outputs())

    # Run now with no scheduler alive goes through the job's executor too: a worker runs it.
    with override_settings(APSCHEDULER_EXECUTORS={"tasks": {"type": "tasks"}}):
        (result,) = run_jobs_now(["job000"], timeout=30)
    assert result.execution is not None and result.execution.status == DjangoJobExecution.SUCCESS
    assert result.execution.worker_pid in fleet.pids
    assert_clean_logs(fleet.outputs())


def test_a_worker_killed_mid_run_loses_that_fire_only(cluster, fleet, tmp_path):
    fleet.start(2)
    start_at = time.time() + 5
    # One worker is taken by the long job: the other may fall behind on a busy machine,
    # which is no reason to refuse fires here (max_instances has tests of its own).
    cluster.start(1, jobs=4, interval=1.0, start_at=start_at, executor="tasks", max_instances=100)
    cluster.wait_ready()
    _add_sleeper(cluster, start_at)
    sleeper = wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id="sleeper", status=DjangoJobExecution.SENT, worker_pid__isnull=False).first(),
        timeout=20,
        message="the long job started on a worker",
    )
    killed_at = time.time()
    os.kill(sleeper.worker_pid, signal.SIGKILL)
    wait_until(
        lambda: DjangoJobExecution.objects.get(pk=sleeper.pk).status == DjangoJobExecution.LOST,
        timeout=15,
        message="the killed worker's fire marked Lost!",
    )
    print(f"killed worker's fire Lost! after {time.time() - killed_at:.1f} s (heartbeat timeout 3 s)")
    time.sleep(max(0, killed_at + 3 - time.time()))  # the other worker goes on meanwhile
    cluster.stop()
    others = DjangoJobExecution.objects.exclude(job_id="sleeper")
    wait_until(lambda: not others.unfinished().exists(), timeout=20, message="the queue drained")
    assert set(others.values_list("status", flat=True)) == {DjangoJobExecution.SUCCESS}
    survivor = fleet.pids - {sleeper.worker_pid}
    assert others.filter(run_time__gt=datetime.fromtimestamp(killed_at, tz=UTC) - timedelta(seconds=1)).exists()
    assert set(others.filter(started_at__gt=sleeper.started_at).values_list("worker_pid", flat=True)) == survivor


def _add_sleeper(cluster, start_at):
    """A one-off job that sleeps a minute, stored for the running scheduler to claim and hand off."""
    from apscheduler.triggers.date import DateTrigger

    from django_apscheduler.jobstores import DjangoJobStore
    from tests.helpers import build_job
    from tests.procs.scheduler_process import record

    run_date = datetime.fromtimestamp(start_at, tz=UTC)
    job = build_job(
        "sleeper",
        run_date,
        DateTrigger(run_date=run_date, timezone=UTC),
        func=record,
        args=(str(cluster.calls_log), "sleeper", 60),
        executor="tasks",
        misfire_grace_time=30,
    )
    DjangoJobStore().add_job(job)
