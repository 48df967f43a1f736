"""AsyncIOSchedulers in real processes beside a thread-based scheduler, on one database.

One runs in ``asyncio.run`` (the issue's snippet, as a process); one is the example
site under uvicorn, its scheduler started by the ASGI lifespan. Each shares the
database with a BackgroundScheduler process running the same jobs: every fire
runs exactly once, counted from the jobs' own log, not from the rows. The
thread-based scheduler stops halfway: the scheduler on the loop must then carry
every fire on its own.

Under ``asyncio.run`` the two claim alike and race for each instant's fires, and
which wins is luck: on a loaded machine one can win every batch. Under uvicorn the
thread-based one claims further ahead (``THREADED``), so it takes the fires while
both run and the hand-over at its stop is seen from both sides.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from django_apscheduler.models import DjangoJobExecution, SchedulerInstance
from tests.cluster import QUICK_LIVENESS
from tests.helpers import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

EXAMPLE = Path(__file__).resolve().parents[2] / "example"
JOBS = 20
JOB_IDS = [f"job{index:03d}" for index in range(JOBS)]  # the ids tests/procs/scheduler_process.py gives them
# The thread-based scheduler's environment under uvicorn: it claims each instant's fires
# 0.8 s ahead, the scheduler on the loop 0.3 s (the default), so both are seen to run fires.
THREADED = {"APSCHEDULER_CLAIM_AHEAD": "0.8"}


@pytest.fixture
def cluster(cluster_factory):
    return cluster_factory(QUICK_LIVENESS)


def assert_each_fire_ran_once(cluster, *pids):
    """Every job's log lines match its execution rows one to one, all Executed; each of ``pids`` ran some."""
    rows = DjangoJobExecution.objects.filter(job_id__in=JOB_IDS)
    calls = cluster.calls()
    per_job = Counter(rows.values_list("job_id", flat=True))
    assert sum(calls.values()) >= JOBS * 5, calls  # enough fires to mean something
    differing = [job for job in calls if calls[job] != per_job[job]]
    assert calls == per_job, {
        job: (calls[job], per_job[job], Counter(rows.filter(job_id=job).values_list("status", flat=True)))
        for job in differing
    }
    assert set(rows.values_list("status", flat=True)) == {DjangoJobExecution.SUCCESS}
    ran_in = Counter(line.split()[1] for line in cluster.calls_log.read_text().splitlines())
    for pid in pids:
        assert ran_in[str(pid)] > 0, f"process {pid} ran no fire: {ran_in}"


def assert_carried_alone(pid, since, until):
    """Every job's fire scheduled in [``since``, ``until``) was run by the process ``pid`` alone."""
    rows = DjangoJobExecution.objects.filter(job_id__in=JOB_IDS, run_time__gte=since, run_time__lt=until)
    per_instant = Counter(rows.values_list("run_time", flat=True))
    assert len(per_instant) >= 2 and set(per_instant.values()) == {JOBS}, per_instant  # no fire missed
    assert set(rows.values_list("scheduler__pid", flat=True)) == {pid}


def assert_no_async_errors(text):
    for forbidden in ("SynchronousOnlyOperation", "IntegrityError", "never awaited", "Deadlock", "deadlock", "cannot be loaded"):
        assert forbidden not in text, f"{forbidden!r} in output:\n{text[-5000:]}"


def test_asyncio_run_scheduler_beside_a_thread_scheduler_runs_each_coroutine_fire_once(cluster):
    start_at = time.time() + 6
    threaded = cluster.start(jobs=JOBS, interval=1, start_at=start_at, coroutine=True)[0]
    on_loop = cluster.start(jobs=JOBS, interval=1, start_at=start_at, coroutine=True, asyncio=True)[0]
    cluster.wait_ready()
    time.sleep(max(0, start_at + 7 - time.time()))
    stop_process(threaded)
    alone = datetime.now(timezone.utc)
    time.sleep(6)
    cluster.stop()
    output = cluster.outputs()
    assert "STOPPED" in on_loop.output_path.read_text(), output
    assert_no_async_errors(output)
    assert_each_fire_ran_once(cluster, on_loop.pid)  # the thread-based one may have lost every race
    assert SchedulerInstance.objects.get(pid=threaded.pid).stopped is not None  # it ran, and stopped
    assert_carried_alone(on_loop.pid, alone + timedelta(seconds=2), alone + timedelta(seconds=5))
    assert not SchedulerInstance.objects.filter(stopped=None).exists()  # both stopped cleanly


def stop_process(process):
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_uvicorn_serving_the_example_site_beside_a_thread_scheduler_runs_each_fire_once(cluster, tmp_path):
    # Both processes can import the example's jobs (each claims whatever is due).
    cluster.env["PYTHONPATH"] = os.pathsep.join([str(EXAMPLE), cluster.env["PYTHONPATH"]])
    env = dict(cluster.env, DJANGO_SETTINGS_MODULE="tests.asgi_example_settings")
    port = free_port()
    output = open(tmp_path / "uvicorn.out", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--lifespan", "on", "--port", str(port), "demo_site.asgi:application"],
        env=env, stdout=output, stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: SchedulerInstance.objects.filter(pid=server.pid, stopped=None).exists(), timeout=40,
                   message="the scheduler under uvicorn")
        start_at = time.time() + 4
        threaded = cluster.start(jobs=JOBS, interval=1, start_at=start_at, env=THREADED)[0]
        cluster.wait_ready()
        # The site is served meanwhile.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=10) as response:
            assert response.status == 200 and b"Django" in response.read()
        time.sleep(max(0, start_at + 7 - time.time()))
        stop_process(threaded)
        alone = datetime.now(timezone.utc)
        time.sleep(6)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        cluster.stop()
    log = (tmp_path / "uvicorn.out").read_text()
    assert "Scheduler started on the server's event loop (AsyncIOScheduler)" in log, log
    assert "Scheduler stopped" in log, log
    assert_no_async_errors(log + cluster.outputs())
    assert_each_fire_ran_once(cluster, threaded.pid, server.pid)
    assert_carried_alone(server.pid, alone + timedelta(seconds=2), alone + timedelta(seconds=5))
    # The site's own jobs, declared in example/reports/jobs.py, were synced and run too.
    assert DjangoJobExecution.objects.filter(job_id="reports.count_users", status=DjangoJobExecution.SUCCESS).exists()
    assert SchedulerInstance.objects.get(pid=server.pid).stopped is not None  # the lifespan stopped it
