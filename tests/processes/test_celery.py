"""Fires handed to real Celery workers: exactly once, recorded by the worker, a dead worker's fire Lost!.

Real OS processes: scheduler processes (tests/procs/scheduler_process.py with
``--executor celery``) and Celery prefork workers (``celery -A tests.celery_app
worker``, tests/celery_fleet.py) share the test database; Redis on 127.0.0.1:6379
is the broker, under keys of this run's own prefix. Every real call of a job
appends a line (job id, pid) to a shared file, and every task a worker is about
to run is noted with the id and headers it received, so the rows the package
writes are checked against what really happened.
"""

import math
import os
import signal
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.test import Client
from django.urls import reverse

from django_apscheduler.executors.handoff import task_id_for
from django_apscheduler.models import DjangoJobExecution
from tests.celery_fleet import CeleryFleet, require_redis
from tests.cluster import assert_clean_logs
from tests.helpers import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

UTC = timezone.utc
UNFINISHED = [DjangoJobExecution.QUEUED, DjangoJobExecution.SENT]
JOB_IDS = [f"job{i:03d}" for i in range(100)]  # what tests/procs/scheduler_process.py names its jobs


@pytest.fixture
def fleet(subprocess_env, tmp_path):
    require_redis()
    env = dict(subprocess_env)
    env.update(
        APSCHEDULER_POLL_INTERVAL="1",
        APSCHEDULER_HEARTBEAT_INTERVAL="0.5",
        # Short, so a killed worker's fire is found Lost! within seconds; not shorter, so
        # a scheduler or worker starved of CPU on a loaded machine is not taken for dead.
        APSCHEDULER_HEARTBEAT_TIMEOUT="6",
    )
    fleet = CeleryFleet(env=env, workdir=tmp_path)
    yield fleet
    fleet.stop()
    assert fleet.flush_keys() == 0  # stop() removed this run's keys, and only those were looked for


@pytest.fixture
def cluster(fleet, cluster_factory):
    return cluster_factory(fleet.env)


def settle(timeout=30):
    """Wait until no fire is queued or running any more."""
    wait_until(
        lambda: not DjangoJobExecution.objects.filter(status__in=UNFINISHED).exists(),
        timeout=timeout,
        interval=0.2,
        message="every handed-off fire to finish",
    )


def explain(rows, limit=8):
    """For a failure message: each fire that did not run, with the fire of the same job before it."""
    lines = [f"{rows.count()} rows: " + ", ".join(f"{s}: {rows.filter(status=s).count()}" for s in
                                                  set(rows.values_list("status", flat=True)))]
    for row in rows.exclude(status=DjangoJobExecution.SUCCESS).order_by("run_time")[:limit]:
        before = rows.filter(job_id=row.job_id, run_time__lt=row.run_time).order_by("-run_time").first()
        lines.append(
            f"{row.job_id} {row.run_time:%H:%M:%S.%f} {row.status}; previous: "
            + (f"{before.run_time:%H:%M:%S} {before.status} started {before.started_at} finished {before.finished}"
               if before else "none")
        )
    return "\n".join(lines)


def test_two_schedulers_hand_every_fire_once_to_three_workers(fleet, cluster):
    jobs, run_for = 20, 20
    fleet.start(3)
    fleet.wait_ready()  # (a loaded machine takes seconds to start a worker)
    start_at = time.time() + 6  # every scheduler adds the same jobs with this first fire
    # A generous max_instances: on a loaded machine the fleet falls seconds behind, and a
    # fire still queued would refuse the job's next one (cluster-wide max_instances counts
    # queued fires: a refusal would be right, but this test is about delivery).
    cluster.start(2, jobs=jobs, interval=1, start_at=start_at, executor="celery", max_instances=30)
    cluster.wait_ready()
    # Jobs added after their start date skip the fires already past (APScheduler's rule): on
    # a loaded machine a scheduler may be that late, so count from the first fire after both
    # had added the jobs (they say READY once they have).
    first_counted = max(0, math.ceil(time.time() - start_at))
    pool = fleet.pool_pids()
    time.sleep(max(0, start_at + run_for - time.time()))
    cluster.stop()
    settle(timeout=90)  # the fleet works off its backlog
    last_counted = start_at + run_for - 2  # fires before this had ample time to be claimed

    rows = DjangoJobExecution.objects.filter(job_id__in=JOB_IDS)
    statuses = set(rows.values_list("status", flat=True))
    assert statuses == {DjangoJobExecution.SUCCESS}, explain(rows)
    executed = {(r.job_id, r.run_time) for r in rows}
    expected = [
        (f"job{i:03d}", datetime.fromtimestamp(start_at + k, tz=UTC))
        for i in range(jobs)
        for k in range(first_counted, int(last_counted - start_at) + 1)
    ]
    assert len(expected) >= jobs * 12, "the schedulers started too late for this test to say much"
    missing = [fire for fire in expected if fire not in executed]
    assert missing == [], f"{len(missing)} missed fires, e.g. {missing[:5]}"

    # Each fire ran once, on a worker's pool process, which its row names.
    calls = cluster.calls()
    assert sum(calls.values()) == rows.count()
    assert all(calls[job] == rows.filter(job_id=job).count() for job in calls), calls
    called_pids = {int(line.split()[1]) for line in cluster.calls_log.read_text().splitlines()}
    recorded_pids = set(rows.values_list("worker_pid", flat=True))
    assert recorded_pids <= pool and called_pids <= pool, (recorded_pids, called_pids, pool)
    assert len(recorded_pids) >= 2  # the fleet shared the work
    assert set(rows.exclude(worker_host="").values_list("worker_host", flat=True)) == {os.uname().nodename}
    assert not rows.filter(worker_host="").exists()
    assert rows.values("scheduler").distinct().count() == 2  # both schedulers handed fires off

    # What went over the wire: one message per fire, its deterministic id and the header.
    received = fleet.received()
    assert len(received) == rows.count()
    by_id = {message["task_id"]: message for message in received}
    assert len(by_id) == len(received), "a task id was delivered twice"
    for row in rows:
        message = by_id[task_id_for(row.job_id, row.run_time)]
        assert message["name"] == "django_apscheduler.run_fire"
        assert message["periodic_task_name"] == row.job_id
        assert message["args"][0] == row.job_id
        assert datetime.fromisoformat(message["args"][1]) == row.run_time
        assert message["pid"] == row.worker_pid
    assert_clean_logs(cluster.outputs())


def test_a_killed_worker_loses_only_its_running_fire(fleet, cluster):
    fleet.start(3)
    fleet.wait_ready()
    start_at = time.time() + 5
    # 3 jobs every 2 s, each running 1.5 s: about 2.3 of the 3 pool processes busy. The
    # killed fire counts as running until it is found Lost!, and a loaded machine queues
    # fires for seconds: a generous max_instances, so that no next fire is refused meanwhile.
    cluster.start(
        2, jobs=3, interval=2, job_sleep=1.5, start_at=start_at, executor="celery", misfire_grace_time=60,
        max_instances=10,
    )
    cluster.wait_ready()

    victim = wait_until(
        lambda: DjangoJobExecution.objects.filter(status=DjangoJobExecution.SENT, worker_pid__isnull=False).first(),
        timeout=30,
        message="a fire running on a worker",
    )
    os.kill(victim.worker_pid, signal.SIGKILL)
    killed_at = datetime.now(UTC)
    wait_until(
        lambda: DjangoJobExecution.objects.get(pk=victim.pk).status == DjangoJobExecution.LOST,
        timeout=30,
        interval=0.2,
        message="the killed worker's fire to be marked Lost!",
    )
    time.sleep(7)  # the fleet (the pool replaced its process) goes on
    cluster.stop()
    settle(timeout=60)

    rows = DjangoJobExecution.objects.filter(job_id__in=JOB_IDS)
    lost = list(rows.filter(status=DjangoJobExecution.LOST).values_list("job_id", "run_time"))
    assert lost == [(victim.job_id, victim.run_time)]
    assert set(rows.values_list("status", flat=True)) == {DjangoJobExecution.SUCCESS, DjangoJobExecution.LOST}
    for index in range(3):
        later = rows.filter(
            job_id=f"job{index:03d}", status=DjangoJobExecution.SUCCESS, run_time__gt=killed_at + timedelta(seconds=2)
        )
        assert later.exists(), f"job{index:03d} stopped running after the kill"
    # Nothing ran twice, the lost fire included: one call per executed row (the killed
    # fire's call happened or not, depending on the instant of the kill), one message per fire.
    calls = cluster.calls()
    executed = Counter(rows.filter(status=DjangoJobExecution.SUCCESS).values_list("job_id", flat=True))
    extra = {job: calls[job] - executed[job] for job in set(calls) | set(executed)}
    assert all(n == 0 for job, n in extra.items() if job != victim.job_id), (calls, executed)
    assert extra.get(victim.job_id, 0) in (0, 1), (calls, executed)
    received = [message["task_id"] for message in fleet.received()]
    assert len(received) == len(set(received)) == rows.count()
    assert received.count(task_id_for(victim.job_id, victim.run_time)) == 1
    assert_clean_logs(cluster.outputs())


def test_run_now_from_the_admin_runs_on_a_worker_and_shows_its_result(fleet, cluster):
    fleet.start(1)
    # A job whose next scheduled fire is an hour away: the only fire is the one asked for.
    cluster.start(1, jobs=1, interval=3600, start_at=time.time() + 3600, executor="celery")
    fleet.wait_ready()
    cluster.wait_ready()
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.force_login(user)

    response = client.post(
        reverse("admin:django_apscheduler_djangojob_changelist"),
        {"action": "run_selected_jobs_now", "_selected_action": ["job000"]},
        follow=True,
    )
    shown = [(m.level, str(m)) for m in response.context["messages"]]
    row = DjangoJobExecution.objects.get(job_id="job000")
    assert row.status == DjangoJobExecution.SUCCESS, (row.status, shown, fleet.outputs())
    assert row.worker_pid in fleet.pool_pids()
    # The page names the worker that ran it.
    said = f"(on worker {row.worker_host}, pid {row.worker_pid})"
    assert any(level == messages.SUCCESS and "job000" in text and said in text for level, text in shown), shown
    assert not any("in this web process" in text for _, text in shown), shown
    assert cluster.calls()["job000"] == 1
    (message,) = fleet.received()
    assert message["task_id"] == task_id_for("job000", row.run_time)
    assert not DjangoJobExecution.objects.filter(~Q(job_id="job000")).exists()
