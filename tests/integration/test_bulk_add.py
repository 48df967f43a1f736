"""``bulk.add_jobs``: many jobs in one transaction, checked and stored exactly as ``add_job`` stores one."""

import pickle
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.events import EVENT_JOB_ADDED
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_apscheduler import jobstate
from django_apscheduler.bulk import BulkAddError, add_jobs
from django_apscheduler.jobstores import MAX_JOB_ID_LENGTH, DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests import jobfuncs
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

UTC = timezone.utc
LATER = datetime(2031, 6, 1, 9, 0, tzinfo=UTC)
COLUMNS = ("next_run_time", "job_state", "func_ref", "trigger_description", "details", "broken")


@pytest.fixture
def scheduler():
    scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"misfire_grace_time": 60})
    scheduler.add_jobstore(DjangoJobStore(), "default")
    yield scheduler
    if scheduler.running:
        scheduler.shutdown(wait=True)


def reminder(index: int, **extra):
    return {"func": jobfuncs.noop, "trigger": "date", "run_date": LATER, "args": [index], "id": f"remind-{index}", **extra}


def test_a_bulk_added_job_is_stored_as_add_job_stores_it(scheduler):
    scheduler.start(paused=True)
    cron = CronTrigger(hour=9, minute=30, timezone="Europe/Berlin")
    scheduler.add_job(jobfuncs.noop, cron, args=[1], kwargs={"k": "v"}, id="one", name="n", max_instances=3)
    add_jobs(scheduler, [{"func": jobfuncs.noop, "trigger": cron, "args": [1], "kwargs": {"k": "v"}, "id": "many",
                          "name": "n", "max_instances": 3}])
    one, many = (DjangoJob.objects.values(*COLUMNS).get(pk=pk) for pk in ("one", "many"))
    states = [jobstate.load(bytes(row.pop("job_state"))) for row in (one, many)]
    assert one == many
    assert pickle.dumps({**states[0], "id": None}) == pickle.dumps({**states[1], "id": None})
    assert scheduler.get_job("many").max_instances == 3


def test_a_batch_is_stored_whole_and_announced(scheduler):
    added = []
    scheduler.add_listener(lambda event: added.append(event.job_id), EVENT_JOB_ADDED)
    jobs = add_jobs(scheduler, (reminder(i) for i in range(600)))  # more than one INSERT
    assert [job.id for job in jobs] == [f"remind-{i}" for i in range(600)]
    assert DjangoJob.objects.count() == 600
    assert added == [job.id for job in jobs]
    assert {job.misfire_grace_time for job in jobs} == {60}  # the scheduler's job defaults
    assert DjangoJob.objects.get(pk="remind-7").trigger_description == "Once, at 2031-06-01 09:00 UTC"


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"args": [lambda: None]}, "pickle"),  # unserializable, found while storing
        ({"id": "x" * (MAX_JOB_ID_LENGTH + 1)}, "characters long"),
        ({"trigger": "cron", "hour": 25}, "(25) is higher"),
        ({"trigger": "nonsense"}, "nonsense"),
        ({"max_instances": 0}, "max_instances"),
        ({"func": "no.such.module:func"}, "no.such.module"),
    ],
)
def test_a_bad_job_in_the_batch_is_named_and_nothing_is_written(scheduler, bad, words):
    batch = [reminder(0), reminder(1), {**reminder(2), **bad}, reminder(3)]
    if "trigger" in bad:
        batch[2].pop("run_date")
    with pytest.raises(BulkAddError) as caught:
        add_jobs(scheduler, batch)
    assert caught.value.index == 2
    assert words in str(caught.value)
    assert "No job of this batch was added" in str(caught.value)
    assert not DjangoJob.objects.exists()


def test_an_existing_or_repeated_id_is_refused_and_nothing_is_written(scheduler):
    scheduler.start(paused=True)
    scheduler.add_job(jobfuncs.noop, "date", run_date=LATER, id="remind-5")
    with pytest.raises(ConflictingIdError, match="remind-5"):
        add_jobs(scheduler, [reminder(i) for i in range(10)])
    assert list(DjangoJob.objects.values_list("pk", flat=True)) == ["remind-5"]
    with pytest.raises(ConflictingIdError, match="twice"):
        add_jobs(scheduler, [reminder(1, id="twice"), reminder(2, id="twice")])
    assert DjangoJob.objects.count() == 1


def test_only_a_django_job_store_takes_a_batch():
    scheduler = BackgroundScheduler(timezone=UTC)
    with pytest.raises(ValueError, match="DjangoJobStore"):
        add_jobs(scheduler, [reminder(0)])


def test_a_running_scheduler_runs_bulk_added_jobs(scheduler):
    scheduler.start()
    due = datetime.now(UTC) + timedelta(milliseconds=300)
    add_jobs(scheduler, [reminder(i, run_date=due) for i in range(5)])
    wait_until(
        lambda: DjangoJobExecution.objects.filter(status=DjangoJobExecution.SUCCESS).count() == 5,
        message="the five bulk-added jobs executed",
    )
    assert not DjangoJob.objects.exists()  # finished date jobs, removed as usual


hostile_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(hostile_ids, min_size=1, max_size=8))
def test_any_ids_are_stored_whole_or_not_at_all(scheduler, ids):
    DjangoJob.objects.all().delete()
    batch = [reminder(index, id=job_id) for index, job_id in enumerate(ids)]
    try:
        add_jobs(scheduler, batch)
    except ConflictingIdError:
        # A repeated id, or ids MySQL/MariaDB's collation takes for equal ("a" and "A ").
        assert len(set(ids)) < len(ids) or connection.vendor == "mysql"
        assert not DjangoJob.objects.exists()
    else:
        assert sorted(DjangoJob.objects.values_list("pk", flat=True)) == sorted(ids)
