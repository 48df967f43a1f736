"""PostgreSQL: the notification triggers the migrations create tell schedulers what they must hear.

The test database is built by the migrations (0011 creates the triggers, 0013
replaces them, 0021 makes the INSERT one per statement), so these tests check the SQL frozen in those files: a job that
becomes due sooner, or a requested run, is announced on ``postgres.CHANNEL`` with
its time as seconds since the epoch; a job moved later (what claims do) is not.
"""

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from django_apscheduler import postgres
from django_apscheduler.bulk import add_jobs
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob
from tests import jobfuncs

pytestmark = [
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql", reason="PostgreSQL only"
    ),
    pytest.mark.django_db(transaction=True),  # notifications are sent when a transaction commits
]

SOON = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def heard():
    """A function returning the payloads notified since its last call, as date-times."""
    import psycopg

    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as listener:
        listener.execute(f"LISTEN {postgres.CHANNEL}")

        def payloads():
            return [
                datetime.fromtimestamp(float(note.payload), tz=timezone.utc) for note in listener.notifies(timeout=0.3)
            ]

        yield payloads


def add(job_id, next_run_time):
    return DjangoJob.objects.create(id=job_id, next_run_time=next_run_time, job_state=b"")


def update(job_id, **fields):
    DjangoJob.objects.filter(pk=job_id).update(**fields)


def test_an_added_job_is_announced_and_a_paused_one_is_not(heard):
    add("due", SOON)
    add("paused", None)
    assert heard() == [SOON]


def test_a_job_due_sooner_is_announced_and_one_due_later_is_not(heard):
    add("job", SOON)
    heard()
    update("job", next_run_time=SOON + timedelta(hours=1))  # what a claim does
    assert heard() == []
    update("job", next_run_time=SOON - timedelta(hours=1))
    assert heard() == [SOON - timedelta(hours=1)]


def test_a_resumed_or_repaired_job_is_announced(heard):
    add("job", None)
    update("job", next_run_time=SOON)
    assert heard() == [SOON]
    update("job", broken=True)
    assert heard() == []
    update("job", broken=False)
    assert heard() == [SOON]


def test_a_run_request_is_announced_with_the_earlier_of_both_times(heard):
    add("job", SOON)
    heard()
    update("job", run_requested_at=SOON - timedelta(days=1))
    assert heard() == [SOON - timedelta(days=1)]
    update("job", run_requested_at=SOON - timedelta(days=1))  # the same request again
    assert heard() == []
    add("paused", None)
    update("paused", run_requested_at=SOON)
    assert heard() == [SOON]


def test_a_batch_of_jobs_is_announced_once_with_its_earliest_time(heard):
    DjangoJob.objects.bulk_create(
        [DjangoJob(id=f"batch-{hours}", next_run_time=SOON + timedelta(hours=hours), job_state=b"") for hours in (3, 1, 2)]
        + [DjangoJob(id="batch-paused", next_run_time=None, job_state=b"")]
    )
    assert heard() == [SOON + timedelta(hours=1)]
    DjangoJob.objects.bulk_create([DjangoJob(id=f"paused-{n}", next_run_time=None, job_state=b"") for n in range(3)])
    assert heard() == []
    DjangoJob.objects.bulk_create(
        [DjangoJob(id="requested", next_run_time=None, run_requested_at=SOON - timedelta(days=2), job_state=b""),
         DjangoJob(id="later", next_run_time=SOON, job_state=b"")]
    )
    assert heard() == [SOON - timedelta(days=2)]


def test_a_bulk_add_through_copy_is_announced_once(heard):
    scheduler = BackgroundScheduler(timezone=timezone.utc)
    scheduler.add_jobstore(DjangoJobStore(), "default")
    add_jobs(scheduler, [{"func": jobfuncs.noop, "trigger": "date", "run_date": SOON + timedelta(minutes=n),
                          "id": f"bulk-{n}"} for n in range(500)])
    assert heard() == [SOON]


def test_going_back_before_0021_restores_one_notification_per_row(heard):
    def batch(prefix):
        DjangoJob.objects.bulk_create(
            [DjangoJob(id=f"{prefix}-{hours}", next_run_time=SOON + timedelta(hours=hours), job_state=b"") for hours in (2, 1)]
        )

    call_command("migrate", "django_apscheduler", "0020", verbosity=0)
    try:
        batch("rows")
        assert heard() == [SOON + timedelta(hours=2), SOON + timedelta(hours=1)]
    finally:
        call_command("migrate", "django_apscheduler", verbosity=0)
    batch("statement")
    assert heard() == [SOON + timedelta(hours=1)]
