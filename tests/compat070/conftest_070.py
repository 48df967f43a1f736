"""Fixtures that django-apscheduler 0.7.0's test suite expects, written for this package.

0.7.0's sdist ships its tests without their conftest; this module, copied next to
them in a temporary folder as ``tests/conftest.py``, provides the fixture names and
helpers those tests import (``DummyScheduler``, ``dummy_job``,
``raise_db_operational_error``, ``jobstore``, ``create_add_job``, ...). The expected
failures (deliberate differences from 0.7) are marked here, from ``expected.py``.
"""

from datetime import datetime
from unittest.mock import MagicMock, Mock

import pytest
import pytz
from apscheduler.executors.debug import DebugExecutor
from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from django import db
from django.db import transaction

from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob

from .expected import EXPECTED_FAILURES  # copied beside this module


def raise_db_operational_error(*args, **kwargs):
    """A side effect for mocks: the database connection failed."""
    raise db.OperationalError("Some DB-related error")  # the text its tests match


class DummyScheduler(BaseScheduler):
    """A scheduler that never runs a loop; its wake-ups are recorded, not acted on."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.wakeup = MagicMock()

    def shutdown(self, wait=True):
        super().shutdown(wait)

    def wakeup(self):  # BaseScheduler's abstract method; each instance's is the mock above
        pass


def dummy_job():
    pass


@pytest.fixture
def timezone(monkeypatch, settings):
    zone = pytz.timezone(settings.TIME_ZONE)
    monkeypatch.setattr("apscheduler.schedulers.base.get_localzone", Mock(return_value=zone))
    return zone


@pytest.fixture
def job_defaults(timezone):
    return {
        "trigger": "date",
        "trigger_args": {"run_date": timezone.localize(datetime(2011, 4, 3, 18, 40)), "timezone": timezone},
        "executor": "default",
        "args": (),
        "kwargs": {},
        "id": "t\u00e9st\u00efd",
        "misfire_grace_time": 1,
        "coalesce": False,
        "name": "n\u00e4m\u00e9",
        "max_instances": 1,
    }


@pytest.fixture
def create_job(job_defaults, timezone):
    def create(**overrides):
        overrides.setdefault("scheduler", Mock(BaseScheduler, timezone=timezone))
        options = {**job_defaults, **overrides}
        trigger = BlockingScheduler()._create_trigger(options.pop("trigger"), options.pop("trigger_args"))
        options.setdefault("next_run_time", None)
        return Job(trigger=trigger, **options)

    return create


@pytest.fixture
def create_add_job(timezone, create_job):
    def create(jobstore, func=dummy_job, run_date=datetime(2999, 1, 1), id=None, paused=False, **options):
        run_date = timezone.localize(run_date)
        job = create_job(func=func, trigger="date", trigger_args={"run_date": run_date}, id=id, **options)
        job.next_run_time = None if paused else job.trigger.get_next_fire_time(None, run_date)
        if jobstore:
            jobstore.add_job(job)
        return job

    return create


@pytest.fixture
def jobstore():
    store = DjangoJobStore()
    store.start(DummyScheduler(), "djangojobstore")
    yield store
    transaction.on_commit(DjangoJob.objects.all().delete)
    store.shutdown()


@pytest.fixture
def scheduler(jobstore, settings):
    scheduler = DummyScheduler(timezone=settings.TIME_ZONE)
    scheduler.add_jobstore(jobstore, "default")
    scheduler.add_executor(DebugExecutor())
    return scheduler


@pytest.fixture
def use_seconds_format(settings):
    settings.APSCHEDULER_DATETIME_FORMAT = "N j, Y, f:s"
    return settings.APSCHEDULER_DATETIME_FORMAT


@pytest.fixture
def use_tz(settings):
    settings.APSCHEDULER_DATETIME_FORMAT = "H"
    settings.USE_TZ = True
    return settings.APSCHEDULER_DATETIME_FORMAT


@pytest.fixture
def use_hour_format(settings):
    settings.APSCHEDULER_DATETIME_FORMAT = "H"
    return settings.APSCHEDULER_DATETIME_FORMAT


def pytest_collection_modifyitems(items):
    for item in items:
        reason = EXPECTED_FAILURES.get(item.nodeid)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
