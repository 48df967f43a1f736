"""Jobs declared in code with @job, synced into the store when a scheduler starts."""

import logging
from datetime import timedelta

import pytest
from django.test import override_settings

from django_apscheduler import registry
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests import jobfuncs
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    monkeypatch.setattr(registry, "_declared", {})


def start_with_declarations(scheduler_factory):
    scheduler = scheduler_factory()
    registry.sync_when_started(scheduler)
    scheduler.start()
    return scheduler


def stored_next_run(job_id):
    return DjangoJob.objects.get(pk=job_id).next_run_time


def test_declared_job_gets_a_stable_dotted_id():
    registry.job("interval", minutes=5)(jobfuncs.noop)
    (declared,) = registry.declared_jobs()
    assert declared.id == "tests.jobfuncs.noop"


def test_two_functions_with_one_id_are_refused():
    registry.job("interval", minutes=5, id="same")(jobfuncs.noop)
    with pytest.raises(ValueError, match="Two jobs are declared with the id 'same'"):
        registry.job("interval", minutes=5, id="same")(jobfuncs.sleep_for)


def test_bad_history_policy_is_refused():
    with pytest.raises(ValueError, match="history must be one of"):
        registry.job("interval", minutes=5, history="some")


def test_restart_keeps_the_schedule_of_an_unchanged_job(scheduler_factory):
    registry.job("interval", minutes=10, id="steady")(jobfuncs.noop)
    first = start_with_declarations(scheduler_factory)
    before = stored_next_run("steady")
    first.shutdown()
    second = start_with_declarations(scheduler_factory)
    assert stored_next_run("steady") == before
    second.shutdown()


def test_changed_trigger_reschedules_and_changed_options_apply_in_place(scheduler_factory, monkeypatch):
    registry.job("interval", minutes=10, id="evolving", max_instances=1)(jobfuncs.noop)
    start_with_declarations(scheduler_factory).shutdown()
    before = stored_next_run("evolving")

    monkeypatch.setattr(registry, "_declared", {})
    registry.job("interval", minutes=10, id="evolving", max_instances=3)(jobfuncs.noop)
    scheduler = start_with_declarations(scheduler_factory)
    assert scheduler.get_job("evolving").max_instances == 3
    assert stored_next_run("evolving") == before  # options only: schedule kept
    scheduler.shutdown()

    monkeypatch.setattr(registry, "_declared", {})
    registry.job("interval", hours=2, id="evolving")(jobfuncs.noop)
    scheduler = start_with_declarations(scheduler_factory)
    assert str(scheduler.get_job("evolving").trigger) == "interval[2:00:00]"
    assert stored_next_run("evolving") > before + timedelta(minutes=30)


@pytest.mark.parametrize("policy", ["pause", "remove", "keep"])
def test_a_job_no_longer_declared_is_handled_visibly(scheduler_factory, monkeypatch, caplog, policy):
    registry.job("interval", minutes=10, id="obsolete")(jobfuncs.noop)
    registry.job("interval", minutes=10, id="current")(jobfuncs.noop)
    start_with_declarations(scheduler_factory).shutdown()
    assert DjangoJob.objects.filter(declared=True).count() == 2

    monkeypatch.setattr(registry, "_declared", {})
    registry.job("interval", minutes=10, id="current")(jobfuncs.noop)
    caplog.set_level(logging.WARNING)
    with override_settings(APSCHEDULER_UNDECLARED_JOBS=policy):
        start_with_declarations(scheduler_factory)
    if policy == "pause":
        assert stored_next_run("obsolete") is None
        assert "no longer declared in code were paused: obsolete" in caplog.text
    elif policy == "remove":
        assert not DjangoJob.objects.filter(pk="obsolete").exists()
        assert "no longer declared in code were removed" in caplog.text
    else:
        assert stored_next_run("obsolete") is not None
    assert stored_next_run("current") is not None


def test_jobs_added_at_run_time_are_not_touched_by_the_sync(scheduler_factory):
    scheduler = start_with_declarations(scheduler_factory)
    scheduler.add_job(jobfuncs.noop, "interval", minutes=10, id="added-by-code")
    scheduler.shutdown()
    start_with_declarations(scheduler_factory)
    assert stored_next_run("added-by-code") is not None


def test_failures_only_history_keeps_just_the_failures(scheduler_factory):
    registry.job("interval", seconds=0.3, id="chatty", history="failures", args=["flaky"])(jobfuncs.fail_every_other)
    scheduler = start_with_declarations(scheduler_factory)
    assert DjangoJob.objects.get(pk="chatty").history == DjangoJob.HISTORY_FAILURES
    wait_until(lambda: DjangoJobExecution.objects.filter(job_id="chatty", status="Error!").count() >= 2)
    scheduler.pause_job("chatty")
    wait_until(lambda: not DjangoJobExecution.objects.filter(job_id="chatty", status="Started execution").exists())
    statuses = set(DjangoJobExecution.objects.filter(job_id="chatty").values_list("status", flat=True))
    assert statuses == {DjangoJobExecution.ERROR}
