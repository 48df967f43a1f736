"""Signed job state: no code runs from a row this package did not write.

A row whose ``job_state`` pickle would call ``os.system`` is written straight into
the table, as someone with write access to the database (but not ``SECRET_KEY``)
could. The admin (a view-only user is enough to open the list), the command line
and a scheduler's claim must all leave it unpickled and show it as broken. Rows
signed with an old key load through ``SECRET_KEY_FALLBACKS`` and are re-signed
by ``apscheduler resign``.
"""

from __future__ import annotations

import io
import os
import pickle
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from django_apscheduler import jobstate, operations
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob
from tests.helpers import build_job, signed_pickle

UTC = timezone.utc
JOBS_URL = reverse("admin:django_apscheduler_djangojob_changelist")
OLD_KEY = "the-key-before-rotation"


class _RunsShell:
    """Unpickling this calls ``os.system``: what a hostile row would hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path):
    """A file that exists only if the hostile pickle was ever unpickled."""
    return tmp_path / "unpickled"


def write_raw_row(job_id, job_state, next_run_time=None, **columns):
    """Insert a row with plain SQL, bypassing the ORM and this package (as an intruder would)."""
    table = connection.ops.quote_name(DjangoJob._meta.db_table)
    when = connection.ops.adapt_datetimefield_value(next_run_time)
    values = {"id": job_id, "next_run_time": when, "job_state": job_state, "broken": False, "broken_reason": "",
              "declared": False, "history": DjangoJob.HISTORY_ALL, "declaration": "", "func_ref": "",
              "trigger_description": "", "details": "{}", **columns}
    names = ", ".join(connection.ops.quote_name(name) for name in values)
    placeholders = ", ".join(["%s"] * len(values))
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", list(values.values()))


def hostile_state(marker):
    return pickle.dumps({"version": 1, "trigger": _RunsShell(marker), "id": "x"})


def store_job(job_id, next_run_time=datetime(2030, 1, 1, tzinfo=UTC)):
    DjangoJobStore().add_job(build_job(job_id, next_run_time, IntervalTrigger(hours=1, timezone=UTC)))


def viewer_client(client):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_djangojob"))
    client.force_login(viewer)
    return client


def assert_raw_row_columns_exist():
    """The raw insert names every column; a new NOT NULL column must be added to it."""
    names = {field.column for field in DjangoJob._meta.concrete_fields}
    assert names <= {"id", "next_run_time", "job_state", "broken", "broken_reason", "declared", "history",
                     "declaration", "func_ref", "trigger_description", "details", "run_requested_at"}


@pytest.mark.django_db
@pytest.mark.parametrize("signature", ["none", "forged"])
def test_a_hostile_row_is_never_unpickled_by_the_admin(client, marker, signature):
    assert_raw_row_columns_exist()
    payload = hostile_state(marker)
    if signature == "forged":  # the right format, a key the attacker guessed wrong
        payload = jobstate.SIGNATURE_PREFIX + b"\0" * 32 + payload
    write_raw_row("evil", payload, datetime(2030, 1, 1, tzinfo=UTC),
                  func_ref="myapp.jobs:harmless", trigger_description="Every minute")
    store_job("fine")
    client = viewer_client(client)

    listing = client.get(JOBS_URL)
    change = client.get(reverse("admin:django_apscheduler_djangojob_change", args=[quote("evil")]))

    assert listing.status_code == 200 and change.status_code == 200
    html = listing.content.decode()
    evil_row = next(row for row in html.split("<tr") if ">evil<" in row)
    assert ">broken</strong>" in evil_row
    # What an intruder wrote beside the state is not shown as if this package had.
    assert "harmless" not in change.content.decode() and "Every minute" not in evil_row
    assert "not signed" in change.content.decode() or "does not verify" in change.content.decode()
    assert not marker.exists()


@pytest.mark.django_db
def test_a_hostile_row_is_never_unpickled_by_the_schedule_editor(admin_client, marker):
    write_raw_row("evil", hostile_state(marker), datetime(2030, 1, 1, tzinfo=UTC))
    url = reverse("admin:django_apscheduler_djangojob_schedule", args=[quote("evil")])

    shown = admin_client.get(url)
    posted = admin_client.post(url, {"kind": "interval", "every": "5", "unit": "minutes", "max_instances": "1"})

    assert shown.status_code == 302 and posted.status_code == 302
    assert not marker.exists()
    assert bytes(DjangoJob.objects.get(pk="evil").job_state) == hostile_state(marker)  # nothing written


@pytest.mark.django_db
def test_a_hostile_row_is_never_unpickled_by_the_command_line(marker):
    write_raw_row("evil", hostile_state(marker), datetime(2030, 1, 1, tzinfo=UTC))
    store_job("fine")
    out = io.StringIO()

    call_command("apscheduler", "list", stdout=out)
    for command in (["resume", "evil"], ["run", "evil", "--timeout", "1"]):
        with pytest.raises(CommandError):
            call_command("apscheduler", *command, stdout=io.StringIO(), stderr=io.StringIO())

    lines = {line.split()[0]: line for line in out.getvalue().splitlines()[1:]}
    assert "broken" in lines["evil"] and "(not verified)" in lines["evil"]
    assert "scheduled" in lines["fine"]
    assert not marker.exists()


@pytest.mark.django_db(transaction=True)
def test_a_scheduler_flags_a_hostile_row_broken_and_runs_the_others(marker, scheduler_factory):
    due = datetime.now(UTC) - timedelta(seconds=1)
    write_raw_row("evil", hostile_state(marker), due)
    store_job("fine", next_run_time=due)
    store = DjangoJobStore()
    scheduler = scheduler_factory()
    scheduler.remove_jobstore("default")
    scheduler.add_jobstore(store, "default")
    scheduler.start(paused=True)

    claimed = store.get_due_jobs(datetime.now(UTC))

    assert [job.id for job in claimed] == ["fine"]
    evil = DjangoJob.objects.get(pk="evil")
    assert evil.broken and "not signed" in evil.broken_reason
    assert not marker.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("value", [42, {"version": 1}, "text"])
def test_a_signed_row_that_is_not_a_job_breaks_no_page(admin_client, value):
    write_raw_row("odd", signed_pickle(value), datetime(2030, 1, 1, tzinfo=UTC))
    store_job("fine")

    listing = admin_client.get(JOBS_URL)
    change = admin_client.get(reverse("admin:django_apscheduler_djangojob_change", args=[quote("odd")]))
    schedule = admin_client.get(reverse("admin:django_apscheduler_djangojob_schedule", args=[quote("odd")]))
    out = io.StringIO()
    call_command("apscheduler", "list", stdout=out)

    assert (listing.status_code, change.status_code, schedule.status_code) == (200, 200, 200)
    assert "odd" in out.getvalue() and "fine" in out.getvalue()


@pytest.mark.django_db
def test_pages_show_a_job_from_its_plain_columns():
    store_job("plain")
    row = DjangoJob.objects.get(pk="plain")

    assert row.func_ref == "tests.jobfuncs:noop"
    assert row.trigger_description == "Every hour"
    assert row.details["schedule"] == {"kind": "interval", "seconds": 3600}
    assert row.details["max_instances"] == 1 and row.details["coalesce"] is False
    assert jobstate.signature_problem(row.job_state) is None


# --- key rotation -------------------------------------------------------------------------


@pytest.mark.django_db
def test_rows_signed_with_a_fallback_key_load_and_are_resigned():
    with override_settings(SECRET_KEY=OLD_KEY):
        store_job("rotated")
    with override_settings(SECRET_KEY_FALLBACKS=[OLD_KEY]):
        row = DjangoJob.objects.get(pk="rotated")
        assert jobstate.signed_with(row.job_state) == "fallback"
        assert operations.load_job("rotated").id == "rotated"
        out = io.StringIO()
        call_command("apscheduler", "resign", stdout=out)
    assert "rotated: signed with the current SECRET_KEY" in out.getvalue()
    # The old key can go now.
    assert jobstate.signed_with(DjangoJob.objects.get(pk="rotated").job_state) == "current"
    assert operations.load_job("rotated").id == "rotated"


@pytest.mark.django_db
def test_without_the_old_key_a_row_is_refused_until_trusted_explicitly():
    with override_settings(SECRET_KEY=OLD_KEY):
        store_job("orphan")
    store_job("fine")

    with pytest.raises(jobstate.JobStateError, match="does not verify"):
        operations.load_job("orphan")
    err = io.StringIO()
    with pytest.raises(CommandError, match="--trust-unverified"):
        call_command("apscheduler", "resign", stdout=io.StringIO(), stderr=err)
    assert "orphan: no key verifies its state" in err.getvalue()
    assert jobstate.signed_with(DjangoJob.objects.get(pk="orphan").job_state) is None

    call_command("apscheduler", "resign", "orphan", "--trust-unverified", stdout=io.StringIO())

    assert operations.load_job("orphan").id == "orphan"
    assert not DjangoJob.objects.get(pk="orphan").broken


@pytest.mark.django_db
def test_resign_flags_a_trusted_row_that_cannot_be_loaded(marker):
    write_raw_row("junk", b"not a pickle at all")
    out = io.StringIO()

    call_command("apscheduler", "resign", "junk", "--trust-unverified", stdout=out)

    row = DjangoJob.objects.get(pk="junk")
    assert row.broken and "cannot be loaded" in row.broken_reason
    assert "but it cannot be loaded" in out.getvalue()


@pytest.mark.django_db
def test_resign_of_an_unknown_job_is_a_clear_error():
    with pytest.raises(CommandError, match="No job with id 'ghost'"):
        call_command("apscheduler", "resign", "ghost", stdout=io.StringIO())


def test_an_unsigned_pickle_never_looks_signed():
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert not pickle.dumps({"a": 1}, protocol).startswith(jobstate.SIGNATURE_PREFIX)


@pytest.mark.django_db
def test_trusting_unverified_rows_needs_their_ids():
    with pytest.raises(CommandError, match="give their ids"):
        call_command("apscheduler", "resign", "--trust-unverified", stdout=io.StringIO())


@pytest.mark.django_db
def test_resign_leaves_a_state_saved_meanwhile(monkeypatch):
    with override_settings(SECRET_KEY=OLD_KEY):
        store_job("busy")
    real_store = operations._store_resigned

    def saved_meanwhile(job_id, old, signed):
        store_job("busy-copy")  # another writer saves the job between the read and the write
        fresh = DjangoJob.objects.get(pk="busy-copy").job_state
        DjangoJob.objects.filter(pk=job_id).update(job_state=fresh)
        return real_store(job_id, old, signed)

    monkeypatch.setattr(operations, "_store_resigned", saved_meanwhile)
    with override_settings(SECRET_KEY_FALLBACKS=[OLD_KEY]):
        operations.resign_jobs()

    assert bytes(DjangoJob.objects.get(pk="busy").job_state) == bytes(DjangoJob.objects.get(pk="busy-copy").job_state)


@pytest.mark.django_db
def test_a_signed_state_copied_into_another_row_is_refused():
    store_job("original")
    state = DjangoJob.objects.get(pk="original").job_state
    write_raw_row("impostor", bytes(state), datetime(2030, 1, 1, tzinfo=UTC))

    with pytest.raises(jobstate.JobStateError, match="belongs to job 'original'"):
        operations.load_job("impostor")
    assert operations.load_job("original").id == "original"
