"""Admin edits of jobs declared with @job persist until the code's declaration changes.

Each scheduler start syncs the declarations into the store. What the code declared
at the last sync is kept as a fingerprint with the job: the same fingerprint leaves
the stored job alone (with whatever was edited in the admin), a different one
applies the code's declaration again.
"""

import logging
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.contrib.admin.utils import quote
from django.urls import reverse

from django_apscheduler import operations, registry
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob
from tests import jobfuncs

pytestmark = pytest.mark.django_db(transaction=True)

UTC = timezone.utc
EDITED = CronTrigger(hour=4, minute=30, timezone=UTC)


@pytest.fixture(autouse=True)
def _declarations_of_this_test_only(isolated_registry):
    pass


@pytest.fixture
def declare(monkeypatch):
    """Replace every declaration with one: what a deploy of changed code does."""

    def make(trigger="interval", job_id="declared", func=jobfuncs.noop, **arguments):
        monkeypatch.setattr(registry, "_declared", {})
        registry.job(trigger, id=job_id, **arguments)(func)

    return make


@pytest.fixture
def restart(scheduler_factory):
    """Start a scheduler that syncs the declarations, then stop it: one deploy or restart."""

    def run():
        scheduler = scheduler_factory()
        registry.sync_when_started(scheduler)
        scheduler.start()
        scheduler.shutdown()

    return run


def row(job_id="declared"):
    return DjangoJob.objects.get(pk=job_id)


def stored(job_id="declared"):
    return DjangoJobStore().lookup_job(job_id)


def edit_in_admin(job_id="declared", trigger=EDITED, **options):
    values = {"max_instances": 4, "coalesce": True, "misfire_grace_time": 45}
    values.update(options)
    return operations.reschedule(job_id, trigger, **values)


# --- the sync ---------------------------------------------------------------------------


def test_a_new_declared_job_is_stored_with_its_declaration(declare, restart):
    declare(minutes=10, max_instances=2)
    restart()
    assert str(stored().trigger) == "interval[0:10:00]"
    assert row().declaration
    assert '"max_instances":2' in row().declaration


def test_an_admin_edit_survives_restarts(declare, restart):
    declare(minutes=10, max_instances=1)
    restart()
    edit_in_admin()
    edited_next_run = row().next_run_time
    edited_state = bytes(row().job_state)

    restart()
    restart()
    job = stored()
    assert str(job.trigger) == str(EDITED)
    assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (4, True, 45)
    assert row().next_run_time == edited_next_run
    assert bytes(row().job_state) == edited_state  # not even rewritten


def test_an_edit_saved_in_the_schedule_editor_survives_a_restart(declare, restart, admin_client):
    declare(minutes=10)
    restart()
    url = reverse("admin:django_apscheduler_djangojob_schedule", args=[quote("declared")])
    data = {"kind": "cron", "crontab": "15 2 * * *", "every": "", "unit": "minutes", "run_date": "",
            "max_instances": "3", "misfire_grace_time": "20"}
    assert admin_client.post(url, data).status_code == 302
    assert stored().max_instances == 3

    restart()
    job = stored()
    assert isinstance(job.trigger, CronTrigger)
    assert (str(job.trigger.fields[5]), str(job.trigger.fields[6])) == ("2", "15")  # hour, minute
    assert (job.max_instances, job.misfire_grace_time) == (3, 20)


def test_a_changed_trigger_in_code_overrides_the_admin_edit(declare, restart, caplog):
    declare(minutes=10)
    restart()
    edit_in_admin()

    declare(minutes=20)
    caplog.set_level(logging.INFO, logger="django_apscheduler.registry")
    restart()
    job = stored()
    assert str(job.trigger) == "interval[0:20:00]"
    assert job.max_instances == 1  # the scheduler's default: the code declares none
    assert row().next_run_time <= datetime.now(UTC) + timedelta(minutes=20)
    overrides = [r.getMessage() for r in caplog.records if "declaration in code changed" in r.getMessage()]
    assert len(overrides) == 1, caplog.text
    assert "overrides any edit made in the admin" in overrides[0]
    assert "'declared'" in overrides[0]

    edit_in_admin()  # and the next edit persists again
    restart()
    assert str(stored().trigger) == str(EDITED)


def test_changed_options_in_code_override_the_admin_edit_too(declare, restart):
    declare(minutes=10, max_instances=1)
    restart()
    edit_in_admin(max_instances=4)

    declare(minutes=10, max_instances=2)  # the trigger in code is as before
    restart()
    job = stored()
    assert job.max_instances == 2
    assert str(job.trigger) == "interval[0:10:00]"  # the whole declaration applies again


def test_changed_options_alone_are_applied_in_place(declare, restart):
    declare(minutes=10, max_instances=1)
    restart()
    before = row().next_run_time

    declare(minutes=10, max_instances=3, coalesce=True)
    restart()
    job = stored()
    assert (job.max_instances, job.coalesce) == (3, True)
    assert row().next_run_time == before


def test_an_unchanged_job_keeps_its_next_run_time(declare, restart):
    declare(minutes=10, max_instances=2, args=[1, "a"], kwargs={"when": datetime(2030, 1, 1, tzinfo=UTC)})
    restart()
    first = row()
    restart()
    second = row()
    assert second.next_run_time == first.next_run_time
    assert bytes(second.job_state) == bytes(first.job_state)
    assert second.declaration == first.declaration


def test_a_changed_history_policy_is_a_changed_declaration(declare, restart):
    declare(minutes=10)
    restart()
    edit_in_admin()

    declare(minutes=10, history="failures")
    restart()
    assert row().history == DjangoJob.HISTORY_FAILURES
    assert str(stored().trigger) == "interval[0:10:00]"


def test_a_row_without_fingerprint_is_compared_as_before_once(declare, restart, caplog):
    """Databases from before fingerprints: the first sync compares the stored job with the code."""
    declare(minutes=10)
    restart()
    edit_in_admin()
    DjangoJob.objects.filter(pk="declared").update(declaration="")

    caplog.set_level(logging.INFO, logger="django_apscheduler.registry")
    restart()
    assert str(stored().trigger) == "interval[0:10:00]"  # as before: the code's trigger wins
    assert "changed its function or trigger: rescheduled" in caplog.text
    assert "declaration in code changed" not in caplog.text
    assert row().declaration  # recorded now

    edit_in_admin()
    restart()
    assert str(stored().trigger) == str(EDITED)  # from then on, edits persist


def test_a_row_without_fingerprint_that_matches_the_code_keeps_its_schedule(declare, restart):
    declare(minutes=10, max_instances=2)
    restart()
    DjangoJob.objects.filter(pk="declared").update(declaration="")
    before = row()

    restart()
    after = row()
    assert after.next_run_time == before.next_run_time
    assert bytes(after.job_state) == bytes(before.job_state)
    assert after.declaration


def test_a_deleted_declared_job_comes_back_at_the_next_start(declare, restart):
    declare(minutes=10)
    restart()
    DjangoJob.objects.filter(pk="declared").delete()
    restart()
    assert str(stored().trigger) == "interval[0:10:00]"
    assert row().declaration


def test_a_paused_undeclared_job_forgets_its_declaration(declare, restart):
    declare(minutes=10)
    restart()
    declare(minutes=10, job_id="another")
    restart()
    assert row().next_run_time is None
    assert row().declaration == ""


# --- the fingerprint --------------------------------------------------------------------


def test_the_fingerprint_ignores_the_interval_start_and_object_addresses(declare):
    class Opaque:
        pass

    declare(minutes=5, args=[Opaque()])
    (declared,) = registry.declared_jobs()
    first = registry.declaration_fingerprint(declared, IntervalTrigger(minutes=5, timezone=UTC))
    later = IntervalTrigger(minutes=5, timezone=UTC, start_date=datetime.now(UTC) + timedelta(seconds=3))
    assert registry.declaration_fingerprint(declared, later) == first
    assert "0x" not in first

    declare(minutes=6, args=[Opaque()])
    (changed,) = registry.declared_jobs()
    assert registry.declaration_fingerprint(changed, IntervalTrigger(minutes=6, timezone=UTC)) != first


def test_an_explicit_interval_start_is_part_of_the_declaration(declare):
    declare(minutes=5, start_date="2030-01-01 00:00:00")
    (declared,) = registry.declared_jobs()
    first = registry.declaration_fingerprint(declared, IntervalTrigger(minutes=5, timezone=UTC))
    declare(minutes=5, start_date="2030-01-01 00:01:00")
    (moved,) = registry.declared_jobs()
    assert registry.declaration_fingerprint(moved, IntervalTrigger(minutes=5, timezone=UTC)) != first


# --- the admin --------------------------------------------------------------------------


def change_page(client, job_id="declared"):
    response = client.get(reverse("admin:django_apscheduler_djangojob_change", args=[quote(job_id)]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_change_page_of_a_declared_job_shows_the_code_declaration(declare, restart, admin_client):
    declare(minutes=10, max_instances=2)
    restart()
    html = change_page(admin_client)
    assert "Declared in code with @job: Every 10 minutes; options: max_instances=2." in html
    assert "overrides the code’s declaration until the code’s declaration changes" in html
    assert "an edit made in the admin is in effect" not in html

    edit_in_admin()
    assert "an edit made in the admin is in effect" in change_page(admin_client)


def test_the_change_page_escapes_the_declaration(declare, restart, admin_client):
    declare(minutes=10, name="<b>bold</b>")
    restart()
    html = change_page(admin_client)
    assert "name=&#x27;&lt;b&gt;bold&lt;/b&gt;&#x27;" in html
    assert "<b>bold</b>" not in html


def test_the_change_page_of_a_job_added_at_run_time_says_nothing_of_code(admin_client):
    DjangoJobStore().add_job(_job("runtime"))
    html = change_page(admin_client, "runtime")
    assert "Declared in code with @job:" not in html
    assert "overrides the code’s declaration" not in html


def test_the_change_page_says_so_when_this_process_does_not_declare_it(declare, restart, admin_client, monkeypatch):
    declare(minutes=10)
    restart()
    monkeypatch.setattr(registry, "_declared", {})
    html = change_page(admin_client)
    assert "Declared in code with @job (no jobs.py of this web process declares it)." in html
    assert "overrides the code’s declaration" in html


def test_the_schedule_editor_of_a_declared_job_says_edits_override_the_code(declare, restart, admin_client):
    declare(minutes=10)
    restart()
    url = reverse("admin:django_apscheduler_djangojob_schedule", args=[quote("declared")])
    html = admin_client.get(url).content.decode()
    assert "This job is declared in code with @job: Every 10 minutes; options: none." in html
    assert "A schedule saved here overrides the code’s declaration until the code’s declaration changes" in html

    DjangoJobStore().add_job(_job("runtime"))
    url = reverse("admin:django_apscheduler_djangojob_schedule", args=[quote("runtime")])
    assert "declared in code" not in admin_client.get(url).content.decode()


def test_deleting_a_declared_job_says_it_comes_back(declare, restart, admin_client):
    declare(minutes=10)
    restart()
    url = reverse("admin:django_apscheduler_djangojob_delete", args=[quote("declared")])
    html = admin_client.get(url).content.decode()
    assert "“declared” is declared in code with @job" in html
    assert "It comes back at the next scheduler start unless it is removed from the code" in html

    response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert not DjangoJob.objects.filter(pk="declared").exists()
    texts = [str(message) for message in response.context["messages"]]
    assert any("comes back at the next scheduler start unless it is removed from the code" in t for t in texts), texts


def test_deleting_declared_jobs_from_the_list_says_they_come_back(declare, restart, admin_client):
    declare(minutes=10)
    restart()
    DjangoJobStore().add_job(_job("runtime"))
    response = admin_client.post(
        reverse("admin:django_apscheduler_djangojob_changelist"),
        {"action": "delete_selected", "_selected_action": ["declared", "runtime"], "post": "yes"},
        follow=True,
    )
    assert not DjangoJob.objects.exists()
    texts = [str(message) for message in response.context["messages"]]
    warnings = [t for t in texts if "comes back at the next scheduler start" in t]
    assert len(warnings) == 1, texts
    assert "declared" in warnings[0] and "runtime" not in warnings[0]


def test_deleting_a_job_added_at_run_time_does_not_say_it_comes_back(admin_client):
    DjangoJobStore().add_job(_job("runtime"))
    url = reverse("admin:django_apscheduler_djangojob_delete", args=[quote("runtime")])
    html = admin_client.get(url).content.decode()
    assert "Are you sure" in html
    assert "comes back at the next scheduler start" not in html


def _job(job_id):
    from tests.helpers import build_job

    return build_job(job_id, datetime.now(UTC) + timedelta(days=1), IntervalTrigger(minutes=10, timezone=UTC))
