"""Long-lived schedulers survive connections the database server closed between runs."""

import logging
import time
from datetime import datetime, timezone

import pytest
from django.db import connection
from django.db.backends.signals import connection_created

from django_apscheduler.models import DjangoJobExecution
from tests import jobfuncs
from tests.helpers import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def successes(job_id):
    return DjangoJobExecution.objects.filter(job_id=job_id, status=DjangoJobExecution.SUCCESS).count()


def assert_no_job_failed(caplog):
    failures = DjangoJobExecution.objects.exclude(status=DjangoJobExecution.SUCCESS)
    assert not failures.exists(), list(failures.values_list("job_id", "status", "exception"))
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert problems == []


@pytest.mark.skipif(connection.vendor != "mysql", reason="MariaDB's wait_timeout")
def test_mariadb_wait_timeout_between_runs(scheduler_factory, caplog):
    def short_wait_timeout(sender, connection, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION wait_timeout = 1")

    connection_created.connect(short_wait_timeout)
    try:
        scheduler = scheduler_factory()
        scheduler.start()
        scheduler.add_job(jobfuncs.count_stored_jobs, "interval", seconds=2.5, next_run_time=datetime.now(timezone.utc),
                          id="orm-job")
        wait_until(lambda: successes("orm-job") >= 3, timeout=30, message="three runs, each after the server timed out")
        scheduler.shutdown()
    finally:
        connection_created.disconnect(short_wait_timeout)
    assert_no_job_failed(caplog)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="terminates PostgreSQL backends")
def test_postgresql_backend_terminated_between_runs(scheduler_factory, caplog):
    scheduler = scheduler_factory()
    scheduler.start()
    scheduler.add_job(jobfuncs.count_stored_jobs, "interval", seconds=2, next_run_time=datetime.now(timezone.utc),
                      id="orm-job")
    for done in (1, 2, 3):
        wait_until(lambda done=done: successes("orm-job") >= done, timeout=20, message=f"run {done}")
        time.sleep(0.3)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    wait_until(lambda: successes("orm-job") >= 4, timeout=20, message="a run after the last termination")
    scheduler.shutdown()
    assert_no_job_failed(caplog)
