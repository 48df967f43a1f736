"""django-apscheduler 0.7's names that users call or subclass, kept working (see compat.py)."""

import logging
import threading
from datetime import timedelta
from unittest import mock

import pytest
from apscheduler.events import (
    EVENT_ALL,
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.background import BackgroundScheduler
from django import db
from django.utils import timezone

from django_apscheduler import util
from django_apscheduler.admin import DjangoJobAdmin, DjangoJobExecutionAdmin
from django_apscheduler.jobstores import DjangoJobStore, DjangoResultStoreMixin
from django_apscheduler.models import DjangoJob, DjangoJobExecution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def started_store():
    scheduler = BackgroundScheduler(timezone="UTC")
    store = DjangoJobStore()
    scheduler.add_jobstore(store, "default")
    scheduler.start(paused=True)
    yield store
    scheduler.shutdown()


def status_of(job_id):
    return list(DjangoJobExecution.objects.filter(job_id=job_id).values_list("status", flat=True))


def test_the_event_handlers_record_each_event_at_once(started_store):
    assert isinstance(started_store, DjangoResultStoreMixin) and started_store.lock is not None
    run_time = timezone.now()
    started_store.handle_submission_event(JobSubmissionEvent(EVENT_JOB_SUBMITTED, "a", "default", [run_time]))
    assert status_of("a") == [DjangoJobExecution.SENT]
    started_store.handle_execution_event(JobExecutionEvent(EVENT_JOB_EXECUTED, "a", "default", run_time))
    assert status_of("a") == [DjangoJobExecution.SUCCESS]
    started_store.handle_submission_event(JobSubmissionEvent(EVENT_JOB_MAX_INSTANCES, "b", "default", [run_time]))
    started_store.handle_error_event(JobExecutionEvent(EVENT_JOB_MISSED, "c", "default", run_time))
    started_store.handle_error_event(JobExecutionEvent(EVENT_JOB_ERROR, "d", "default", run_time))
    assert status_of("b") == [DjangoJobExecution.MAX_INSTANCES]
    assert status_of("c") == [DjangoJobExecution.MISSED]
    assert DjangoJobExecution.objects.get(job_id="d").exception == "RuntimeError: Job 'd' raised an error!"


@pytest.mark.parametrize("handler", ["handle_submission_event", "handle_execution_event", "handle_error_event"])
def test_an_event_a_handler_does_not_handle_is_refused(started_store, handler):
    event = (JobSubmissionEvent if handler == "handle_submission_event" else JobExecutionEvent)(
        EVENT_ALL, "x", "default", [timezone.now()] if handler == "handle_submission_event" else timezone.now()
    )
    with pytest.raises(NotImplementedError):
        getattr(started_store, handler)(event)


def test_registering_0_7_listeners_replaces_the_store_s_own(started_store):
    scheduler = started_store._scheduler
    with pytest.warns(DeprecationWarning, match="register_event_listeners"):
        started_store.register_event_listeners()
    codes = [mask for _callback, mask in scheduler._listeners]
    assert EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES in codes
    assert EVENT_JOB_EXECUTED in codes and EVENT_JOB_ERROR | EVENT_JOB_MISSED in codes
    assert started_store._fires not in [callback for callback, _mask in scheduler._listeners]


def test_atomic_update_or_create_keeps_0_7_semantics():
    run_time = timezone.now() - timedelta(seconds=5)
    with pytest.warns(DeprecationWarning, match="record_outcome"):
        created = DjangoJobExecution.atomic_update_or_create(threading.RLock(), "j", run_time, DjangoJobExecution.SENT)
    assert created.status == DjangoJobExecution.SENT
    with pytest.warns(DeprecationWarning):
        done = DjangoJobExecution.atomic_update_or_create(threading.RLock(), "j", run_time, DjangoJobExecution.SUCCESS)
    assert done.pk == created.pk and done.duration >= 5 and done.finished is not None
    with pytest.warns(DeprecationWarning):
        late = DjangoJobExecution.atomic_update_or_create(threading.RLock(), "j", run_time, DjangoJobExecution.SENT)
    assert late.status == DjangoJobExecution.SUCCESS  # a late submission never overwrites the outcome


def test_the_admins_0_7_helpers(rf):
    job = DjangoJob.objects.create(id="helped", job_state=b"")
    run_time = timezone.now() - timedelta(minutes=1)
    for offset, duration in ((0, 5), (10, 10)):
        DjangoJobExecution.objects.create(
            job=job, status=DjangoJobExecution.SUCCESS, run_time=run_time + timedelta(seconds=offset), duration=duration
        )
    unrun = DjangoJob.objects.create(id="unrun", next_run_time=timezone.now(), job_state=b"")
    admin = DjangoJobAdmin(DjangoJob, None)
    admin.get_queryset(rf.get("/admin/django_apscheduler/djangojob/"))
    assert list(admin.avg_duration_qs) == [("helped", 7.5)]
    assert admin.average_duration(job) == 7.5 and admin.average_duration(unrun) == "None"
    assert admin.local_run_time(job) == "(paused)" and admin.local_run_time(unrun) != "(paused)"
    execution = DjangoJobExecution.objects.create(job=unrun, status=DjangoJobExecution.SUCCESS, run_time=run_time)
    execution_admin = DjangoJobExecutionAdmin(DjangoJobExecution, None)
    assert "green" in execution_admin.html_status(execution)
    assert execution_admin.duration_text(execution) == "N/A"
    with mock.patch.object(DjangoJobAdmin, "run_selected_jobs_now") as run_now, pytest.warns(DeprecationWarning):
        admin.run_selected_jobs(None, DjangoJob.objects.all())
    assert run_now.call_count == 1


def test_retry_on_db_operational_error_retries_once_on_a_new_connection_as_in_0_7(caplog):
    calls = []

    @util.retry_on_db_operational_error
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise db.OperationalError("connection lost")
        return len(calls)

    caplog.set_level(logging.WARNING)
    with mock.patch.object(db.connection, "close") as close:
        assert flaky() == 2
    assert close.call_count == 1
    assert "DB error executing 'flaky' (connection lost). Retrying with a new DB connection..." in caplog.text
