"""``manage.py apscheduler`` subcommands for operators."""

from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone as dj_timezone

from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution, SchedulerInstance
from tests import jobfuncs
from tests.helpers import build_job

UTC = timezone.utc
SOON = datetime.now(UTC) + timedelta(days=1)


def store(job_id, trigger=None, func=jobfuncs.noop, args=(), next_run_time=SOON):
    trigger = trigger or IntervalTrigger(minutes=5, timezone=UTC)
    DjangoJobStore().add_job(build_job(job_id, next_run_time, trigger, func=func, args=args))


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("apscheduler", *args, stdout=out, stderr=err, verbosity=0)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_list_shows_trigger_in_words_state_and_last_status():
    store("nightly", CronTrigger(hour=1, minute=30, timezone=UTC))
    store("often")
    store("resting", next_run_time=None)
    DjangoJobExecution.objects.create(job_id="nightly", run_time=dj_timezone.now(), status=DjangoJobExecution.ERROR)
    out, _ = run("list")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "TRIGGER", "NEXT", "RUN", "STATE", "LAST", "STATUS"]
    nightly = next(line for line in lines if line.startswith("nightly"))
    assert "At 01:30" in nightly and "scheduled" in nightly and "Error!" in nightly
    assert "Every 5 minutes" in next(line for line in lines if line.startswith("often"))
    assert "paused" in lines[-1] and lines[-1].startswith("resting")


@pytest.mark.django_db
def test_pause_and_resume():
    store("a")
    out, _ = run("pause", "a")
    assert "a: paused" in out
    assert DjangoJob.objects.get(pk="a").next_run_time is None
    out, _ = run("resume", "a")
    assert "a: resumed" in out
    next_run = DjangoJob.objects.get(pk="a").next_run_time
    assert next_run is not None and next_run <= dj_timezone.now() + timedelta(minutes=5, seconds=1)


@pytest.mark.django_db
@pytest.mark.parametrize("subcommand", ["pause", "resume", "run"])
def test_unknown_job_is_a_clear_error(subcommand):
    store("known")
    with pytest.raises(CommandError, match="No job with id 'ghost'") as error:
        run(subcommand, "known", "ghost")
    assert error.value.returncode == 1
    assert DjangoJob.objects.get(pk="known").next_run_time is not None  # nothing half-done


@pytest.mark.django_db(transaction=True)
def test_run_reports_success_and_failure_and_exit_code():
    store("ok")
    store("bad", func=jobfuncs.fail_with, args=("broken pipe",))
    out, err = run("run", "ok")
    assert "ok: Executed" in out
    with pytest.raises(CommandError) as error:
        run("run", "ok", "bad")
    assert error.value.returncode == 1
    assert DjangoJob.objects.get(pk="ok").next_run_time == SOON  # schedule untouched


@pytest.mark.django_db
def test_prune_deletes_old_history():
    DjangoJobExecution.objects.create(job_id="a", run_time=dj_timezone.now() - timedelta(days=10), status="Executed")
    DjangoJobExecution.objects.create(job_id="a", run_time=dj_timezone.now(), status="Executed")
    out, _ = run("prune", "--max-age", str(7 * 86400))
    assert "Deleted 1 execution(s)" in out
    assert DjangoJobExecution.objects.count() == 1


@pytest.mark.django_db
def test_status_exit_code_follows_live_schedulers():
    now = dj_timezone.now()
    SchedulerInstance.objects.create(host="old", pid=1, started=now, last_heartbeat=now - timedelta(hours=1))
    with pytest.raises(CommandError, match="No scheduler is alive") as error:
        run("status")
    assert error.value.returncode == 1
    SchedulerInstance.objects.create(host="web-1", pid=2, started=now, last_heartbeat=now)
    out, _ = run("status")
    assert "1 scheduler(s) alive" in out
    assert "web-1" in out and "alive" in out and "dead" in out
