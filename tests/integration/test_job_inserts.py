"""``JobQuerySet.insert_one`` / ``insert_many``: the INSERTs behind add_job and bulk.add_jobs store what ``save`` stores.

They build their statements themselves (a COPY for a batch on PostgreSQL), so
each column's value must land in its own column, prepared by its field, on every
backend, whatever the job's arguments hold.
"""

import pickle
from datetime import datetime, timezone

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from django.db import IntegrityError, connection, transaction
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext

from django_apscheduler import inserts, jobstate
from django_apscheduler.bulk import add_jobs
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob
from tests import jobfuncs

pytestmark = pytest.mark.django_db(transaction=True)

UTC = timezone.utc
LATER = datetime(2031, 6, 1, 9, 0, 0, 123456, tzinfo=UTC)
EARLIER = datetime(2031, 5, 31, 8, 59, 59, 654321, tzinfo=UTC)
# What a COPY's text format or a statement's quoting could mangle.
AWKWARD = ["tab\there", "new\nline", "back\\slash \\N", "quote ' \" ,;", "é ✓ 𝄞", "\r\n", ""]
BIG = "x" * 900_000  # near the stored state's limit (limits.MAX_STATE_BYTES)
COMPARED = [field.attname for field in DjangoJob._meta.local_concrete_fields if field.attname != "id"]


@pytest.fixture
def scheduler():
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_jobstore(DjangoJobStore(), "default")
    scheduler.start(paused=True)
    yield scheduler
    scheduler.shutdown(wait=False)


@pytest.fixture
def builder():
    """Builds jobs in memory: their rows are then stored by the INSERT under test."""
    builder = BackgroundScheduler(timezone=UTC)
    builder.start(paused=True)
    yield builder
    builder.shutdown(wait=False)


def unsaved_row(builder, job_id, args):
    job = builder.add_job(jobfuncs.noop, "date", run_date=LATER, args=args, id=job_id)
    columns = jobstate.dump(job)
    builder.remove_job(job.id)
    # Columns of one type hold different values: a swap between them shows.
    return DjangoJob(id=job_id, next_run_time=LATER, run_requested_at=EARLIER, declared=True, broken_reason="a reason",
                     declaration="a declaration", history=DjangoJob.HISTORY_FAILURES, **columns)


def stored(job_id):
    """The row's columns; its state loaded, without the id it holds (the rows compared differ only in ids)."""
    row = DjangoJob.objects.values(*COMPARED).get(pk=job_id)
    state = jobstate.load(bytes(row.pop("job_state")))
    assert state["id"] == job_id
    row["state"] = pickle.dumps({**state, "id": None})
    return row


def test_insert_one_stores_every_column_as_save_does(scheduler, builder):
    by_save, by_insert = unsaved_row(builder, "saved", [AWKWARD]), unsaved_row(builder, "inserted", [AWKWARD])
    by_save.save(force_insert=True)
    DjangoJob.objects.insert_one(by_insert)
    assert stored("inserted") == stored("saved")
    assert (stored("inserted")["next_run_time"], stored("inserted")["run_requested_at"]) == (LATER, EARLIER)
    assert not by_insert._state.adding  # saved, as far as the model instance knows
    assert scheduler.get_job("inserted").args == (AWKWARD,)


@pytest.mark.parametrize("count", [1, 3, 260])  # 260: more than one statement where INSERTs are used
def test_insert_many_stores_every_column_as_save_does(scheduler, builder, count):
    unsaved_row(builder, "saved", [AWKWARD, BIG]).save(force_insert=True)
    rows = [unsaved_row(builder, f"many-{index}", [AWKWARD, BIG] if index == 0 else [index]) for index in range(count)]
    with CaptureQueriesContext(connection) as queries:
        DjangoJob.objects.insert_many(rows, rows_per_statement=250)
    assert stored("many-0") == stored("saved")
    assert DjangoJob.objects.filter(pk__startswith="many-").count() == count
    assert scheduler.get_job(f"many-{count - 1}").args == ((AWKWARD, BIG) if count == 1 else (count - 1,))
    statements = [query["sql"].split(None, 1)[0] for query in queries.captured_queries]
    if connection.vendor == "postgresql":
        # psycopg 3, no row-level security: one COPY for the batch (after the
        # once-per-process look at the table's row-level security).
        assert [statement for statement in statements if statement != "SELECT"] == ["COPY"]
    else:
        # At most 250 rows per INSERT, and never more parameters than the backend takes
        # (SQLite's 999: 83 rows of 12 columns).
        columns = len(DjangoJob._meta.local_concrete_fields)
        rows_per_insert = min(250, (connection.features.max_query_params or 10**9) // columns)
        assert statements == ["INSERT"] * -(-count // rows_per_insert)


def test_a_taken_id_raises_djangos_integrity_error_and_writes_nothing(scheduler, builder):
    unsaved_row(builder, "taken", [1]).save(force_insert=True)
    for insert in (
        lambda: DjangoJob.objects.insert_one(unsaved_row(builder, "taken", [2])),
        lambda: DjangoJob.objects.insert_many(
            [unsaved_row(builder, "free", [3]), unsaved_row(builder, "taken", [4])], rows_per_statement=250
        ),
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            insert()
    assert sorted(DjangoJob.objects.values_list("pk", flat=True)) == ["taken"]
    assert scheduler.get_job("taken").args == (1,)


@pytest.mark.parametrize("signal", [pre_save, post_save], ids=["pre_save", "post_save"])
def test_a_save_receiver_still_hears_of_jobs_added_one_at_a_time(scheduler, signal):
    # 0.7's add_job went through save(): a project's receiver on DjangoJob keeps working.
    heard = []

    def receiver(sender, instance, **kwargs):
        heard.append(instance.pk)

    signal.connect(receiver, sender=DjangoJob)
    try:
        scheduler.add_job(jobfuncs.noop, "date", run_date=LATER, id="heard")
    finally:
        signal.disconnect(receiver, sender=DjangoJob)
    scheduler.add_job(jobfuncs.noop, "date", run_date=LATER, id="unheard")
    assert heard == ["heard"]
    assert sorted(DjangoJob.objects.values_list("pk", flat=True)) == ["heard", "unheard"]


def test_an_overridden_save_is_still_called(scheduler, monkeypatch):
    called = []
    original = DjangoJob.save

    def save(self, *args, **kwargs):
        called.append(self.pk)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DjangoJob, "save", save)
    scheduler.add_job(jobfuncs.noop, "date", run_date=LATER, id="overridden")
    assert called == ["overridden"]
    assert DjangoJob.objects.filter(pk="overridden").exists()


def test_a_bulk_batch_with_awkward_arguments_loads_back_whole(scheduler):
    jobs = [{"func": jobfuncs.noop, "trigger": "date", "run_date": LATER, "args": [text], "id": f"awkward {index}\t/_"}
            for index, text in enumerate(AWKWARD)]
    add_jobs(scheduler, jobs)
    assert [scheduler.get_job(f"awkward {index}\t/_").args for index in range(len(AWKWARD))] == [(t,) for t in AWKWARD]


def test_the_pickled_state_gets_the_placeholder_the_orm_gives_it(builder):
    # MySQL's ORM writes binary values as `_binary %s` (a plain string literal would be
    # read as utf8mb4 text); the hand-built INSERT must do the same.
    fields = DjangoJob._meta.local_concrete_fields
    values = inserts._prepared(connection, fields, unsaved_row(builder, "placeholders", [1]))
    expected = ["%s"] * len(fields)
    expected[[field.name for field in fields].index("job_state")] = connection.ops.binary_placeholder_sql(b"state")
    assert inserts._row_template(connection, fields, values) == f"({', '.join(expected)})"
