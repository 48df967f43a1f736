"""The Django tasks executor: configured from the settings, enqueued through django.tasks / django-tasks."""

import importlib.util
import os
from datetime import datetime, timezone

import pytest
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from django.core.management import call_command
from django.test import override_settings

from django_apscheduler import checks as our_checks
from django_apscheduler.executors import IN_PROCESS_ALIAS, configured_executors
from django_apscheduler.executors.tasks import DjangoTasksExecutor, run_scheduled_fire
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests import jobfuncs
from tests.helpers import wait_until

has_database_backend = importlib.util.find_spec("django_tasks_db") is not None


def ids(messages):
    return [message.id for message in messages]


@pytest.fixture
def settings_scheduler():
    """A scheduler built as `apscheduler start` builds it, from the settings."""
    made = []

    def make():
        scheduler = BackgroundScheduler(timezone="UTC", jobstores={"default": DjangoJobStore()}, executors=configured_executors(2))
        made.append(scheduler)
        scheduler.start()
        return scheduler

    yield make
    for scheduler in made:
        scheduler.shutdown(wait=True)


@pytest.mark.django_db(transaction=True)
@override_settings(APSCHEDULER_EXECUTORS={"tasks": {"type": "tasks", "backend": "immediate"}})
def test_a_job_given_the_tasks_executor_runs_through_the_trampoline_task(settings_scheduler, tmp_path):
    scheduler = settings_scheduler()
    log = tmp_path / "calls.log"
    scheduler.add_job(jobfuncs.record_call, "date", run_date=datetime.now(timezone.utc), args=[str(log), "t"], id="via-tasks", executor="tasks")
    wait_until(lambda: DjangoJobExecution.objects.filter(job_id="via-tasks", status=DjangoJobExecution.SUCCESS).exists())
    row = DjangoJobExecution.objects.get(job_id="via-tasks")
    assert row.worker_pid == os.getpid()  # the immediate backend runs it in the enqueuing process
    assert log.read_text() == "t\n"


@override_settings(
    APSCHEDULER_EXECUTORS={"tasks": {"type": "tasks", "backend": "immediate", "queue": "q1"}},
    APSCHEDULER_DEFAULT_EXECUTOR="tasks",
)
def test_the_default_executor_setting_sends_jobs_without_an_executor_to_the_workers():
    executors = configured_executors(3)
    assert isinstance(executors["default"], DjangoTasksExecutor)
    assert executors["default"] is not executors["tasks"]
    assert (executors["default"].queue, executors["default"].backend) == ("q1", "immediate")
    assert isinstance(executors[IN_PROCESS_ALIAS], ThreadPoolExecutor)


def test_without_settings_only_the_thread_pool_is_configured():
    assert list(configured_executors()) == ["default"]


def test_the_trampoline_is_one_module_level_task():
    assert run_scheduled_fire.module_path == "django_apscheduler.executors.tasks.run_scheduled_fire"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not has_database_backend, reason="django-tasks-db (Django 5.2+) is not installed")
@override_settings(APSCHEDULER_EXECUTORS={"reports": {"type": "tasks", "queue": "reports"}})
def test_the_database_backend_queues_the_fire_and_its_worker_runs_it(settings_scheduler, tmp_path):
    from django_tasks_db.models import DBTaskResult

    scheduler = settings_scheduler()
    log = tmp_path / "calls.log"
    scheduler.add_job(jobfuncs.record_call, "date", run_date=datetime.now(timezone.utc), args=[str(log)], id="a/b_c", executor="reports")
    task = wait_until(lambda: DBTaskResult.objects.filter(queue_name="reports").first(), message="the task queued")
    row = DjangoJobExecution.objects.get(job_id="a/b_c")
    assert row.status == DjangoJobExecution.QUEUED
    assert task.task_path == "django_apscheduler.executors.tasks.run_scheduled_fire"
    assert task.args_kwargs["args"] == ["a/b_c", row.run_time.astimezone(timezone.utc).isoformat()]
    assert not log.exists()

    call_command("db_worker", "--batch", "--queue-name", "reports", "--no-startup-delay", verbosity=0)

    row.refresh_from_db()
    assert row.status == DjangoJobExecution.SUCCESS and row.worker_pid == os.getpid()
    assert log.read_text() == "x\n"
    assert not DjangoJob.objects.filter(pk="a/b_c").exists()


@pytest.mark.parametrize(
    "executors, default, message",
    [
        ({"tasks": {"type": "carrier-pigeon"}}, "default", "cannot be imported"),
        ({"tasks": {"queue": "default"}}, "default", 'needs a "type"'),
        ({"tasks": {"type": "tasks", "backend": "nope"}}, "default", "nope"),
        ({"tasks": {"type": "tasks", "backend": "immediate", "colour": "red"}}, "default", "colour"),
        ({"tasks": {"type": "apscheduler.executors.pool.ThreadPoolExecutor"}}, "default", "not a HandOffExecutor"),
        ({"default": {"type": "tasks"}}, "default", "alias 'default'"),
        ({}, "tasks", "does not configure"),
    ],
)
def test_bad_executor_settings_are_errors(executors, default, message):
    with override_settings(APSCHEDULER_EXECUTORS=executors, APSCHEDULER_DEFAULT_EXECUTOR=default):
        errors = our_checks.check_executors()
    assert errors and message in errors[0].msg + (errors[0].hint or "")
    assert set(ids(errors)) <= {"django_apscheduler.E005", "django_apscheduler.E006"}


@pytest.mark.skipif(not has_database_backend, reason="django-tasks-db (Django 5.2+) is not installed")
def test_a_queue_the_backend_does_not_take_is_an_error():
    with override_settings(APSCHEDULER_EXECUTORS={"tasks": {"type": "tasks", "queue": "elsewhere"}}):
        (error,) = our_checks.check_executors()
    assert "elsewhere" in error.msg


@pytest.mark.parametrize("value", [0, -5, "1h", float("inf")])
def test_a_bad_handoff_timeout_is_an_error(value):
    with override_settings(APSCHEDULER_HANDOFF_TIMEOUT=value):
        messages = our_checks.check_settings()
    assert ids(messages) == ["django_apscheduler.E001"] and "APSCHEDULER_HANDOFF_TIMEOUT" in messages[0].msg


def test_good_executor_settings_pass():
    with override_settings(
        APSCHEDULER_EXECUTORS={"tasks": {"type": "tasks", "backend": "immediate"}},
        APSCHEDULER_DEFAULT_EXECUTOR="tasks",
        APSCHEDULER_HANDOFF_TIMEOUT=None,
    ):
        assert our_checks.check_executors() == [] and our_checks.check_settings() == []
