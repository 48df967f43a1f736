"""A database behind the code's migrations gets "run migrate", not a traceback or an endless retry.

The test database is migrated back to 0012 (tables present, later columns missing:
what an upgrade without ``manage.py migrate`` leaves) for this module only, and
forward again at its end, so the other tests find the full schema.
"""

import logging
import threading
import time

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from django.core.management import CommandError, call_command
from django.db import connection

from django_apscheduler import autostart
from django_apscheduler.database import SchemaNotReady, ensure_schema_ready, is_schema_error, run_with_retry
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, SchedulerInstance

pytestmark = pytest.mark.django_db(transaction=True)

APP = "django_apscheduler"
MISSING = ["0013_run_requests", "0014_run_permission", "0015_execution_status_index"]
SUBCOMMANDS = [["start"], ["list"], ["run", "x"], ["pause", "x"], ["resume", "x"], ["prune"], ["status"]]


@pytest.fixture(scope="module", autouse=True)
def migrated_to_0012(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        call_command("migrate", APP, "0012", verbosity=0)
        try:
            yield
        finally:
            call_command("migrate", APP, verbosity=0)
            ensure_schema_ready()  # the full schema is back for the other tests


def test_the_check_names_the_unapplied_migrations():
    with pytest.raises(SchemaNotReady) as raised:
        ensure_schema_ready()
    message = str(raised.value)
    assert "run `python manage.py migrate` first" in message
    for name in MISSING:
        assert name in message
    assert "and 4 more" in message  # 0013 to 0021: five named, the other four counted


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=lambda argv: argv[0])
def test_every_subcommand_says_run_migrate(argv):
    started = time.monotonic()
    with pytest.raises(CommandError, match="run `python manage.py migrate` first"):
        call_command("apscheduler", *argv, verbosity=0)
    assert time.monotonic() - started < 30  # `start` gives up at once, it does not retry


@pytest.mark.parametrize("scheduler_class", [BackgroundScheduler, BlockingScheduler])
def test_the_store_refuses_to_start(scheduler_class):
    before = set(threading.enumerate())
    scheduler = scheduler_class(timezone="UTC")
    scheduler.add_jobstore(DjangoJobStore(), "default")
    with pytest.raises(SchemaNotReady, match="0013_run_requests"):
        scheduler.start()
    assert not scheduler.running
    assert set(threading.enumerate()) - before == set()
    assert not SchedulerInstance.objects.exists()


def test_autostart_logs_run_migrate_and_starts_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="django_apscheduler.autostart"):
        autostart._start()
    assert autostart.running_scheduler() is None
    assert "Scheduler not started" in caplog.text
    assert "0013_run_requests" in caplog.text and "run `python manage.py migrate` first" in caplog.text
    assert "Traceback" not in caplog.text


def test_a_missing_column_is_not_retried_as_an_outage(caplog):
    """The scheduler's loop retries outages for ever; a schema error must surface at once, saying migrate."""
    calls = []

    def query():
        calls.append(1)
        return list(DjangoJob.objects.values_list("run_requested_at"))  # added by 0013

    started = time.monotonic()
    with pytest.raises(SchemaNotReady, match="run `python manage.py migrate` first") as raised:
        run_with_retry(query, "claiming due jobs")
    assert time.monotonic() - started < 5
    assert calls == [1]
    assert is_schema_error(raised.value.__cause__)
    assert "reachable" not in caplog.text


def test_a_missing_table_is_a_schema_error():
    with pytest.raises(SchemaNotReady):
        run_with_retry(lambda: _query("SELECT 1 FROM django_apscheduler_no_such_table"), "reading")


def test_a_scheduler_started_before_a_rollback_says_migrate(caplog):
    """Migrations rolled back under a running scheduler: its store reports it, and the scheduler carries on."""
    store = DjangoJobStore()
    assert store.get_next_run_time() is not None  # the 10 s "look again" after the error it logged
    assert "run `python manage.py migrate` first" in caplog.text
    assert "reachable" not in caplog.text


def _query(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()
