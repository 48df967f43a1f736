"""Editing a job's schedule in the admin: cron, interval or date, validated, obeyed live."""

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone as dj_timezone

from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests import jobfuncs
from tests.helpers import build_job, wait_until

UTC = timezone.utc
NEXT_WEEK = datetime.now(UTC) + timedelta(days=7)


def store(job_id, trigger, next_run_time=NEXT_WEEK):
    DjangoJobStore().add_job(build_job(job_id, next_run_time, trigger, max_instances=2))


def schedule_url(job_id):
    return reverse("admin:django_apscheduler_djangojob_schedule", args=[job_id])


def post(client, job_id, **fields):
    data = {"kind": "cron", "crontab": "", "every": "", "unit": "minutes", "run_date": "",
            "max_instances": "1", "misfire_grace_time": ""}
    data.update({key: str(value) for key, value in fields.items()})
    return client.post(schedule_url(job_id), data)


def stored(job_id):
    return DjangoJobStore().lookup_job(job_id)


@pytest.mark.django_db
def test_the_editor_starts_from_the_current_schedule(admin_client):
    store("nightly", CronTrigger(hour=1, minute=30, day_of_week="mon-fri", timezone=UTC))
    page = admin_client.get(schedule_url("nightly"))
    assert page.status_code == 200
    form = page.context["form"]
    assert form.initial["kind"] == "cron"
    assert form.initial["crontab"] == "30 1 * * mon-fri"
    assert form.initial["max_instances"] == 2


@pytest.mark.django_db
def test_a_valid_crontab_reschedules(admin_client):
    store("job", IntervalTrigger(days=7, timezone=UTC))
    response = post(admin_client, "job", kind="cron", crontab="*/15 * * * 1-5", max_instances=3, coalesce="on",
                    misfire_grace_time=30)
    assert response.status_code == 302
    job = stored("job")
    assert str(job.trigger.fields[4]) == "mon-fri"  # crontab's 1-5 is Monday to Friday
    assert job.max_instances == 3 and job.coalesce is True and job.misfire_grace_time == 30
    next_run = DjangoJob.objects.get(pk="job").next_run_time
    assert next_run <= dj_timezone.now() + timedelta(days=3, minutes=15)  # no longer next week
    assert next_run.minute % 15 == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields, field_in_error",
    [
        ({"kind": "cron", "crontab": "61 * * * *"}, "crontab"),
        ({"kind": "cron", "crontab": "* * * *"}, "crontab"),
        ({"kind": "cron", "crontab": "0 9 * * 9"}, "crontab"),
        ({"kind": "cron", "crontab": ""}, "crontab"),
        ({"kind": "interval", "every": "0"}, "every"),
        ({"kind": "interval", "every": "-5"}, "every"),
        ({"kind": "interval", "every": ""}, "every"),
        ({"kind": "interval", "every": "ten"}, "every"),
        ({"kind": "date", "run_date": "2001-01-01T10:00"}, "run_date"),
        ({"kind": "date", "run_date": "not a date"}, "run_date"),
        ({"kind": "cron", "crontab": "* * * * *", "max_instances": "0"}, "max_instances"),
        ({"kind": "cron", "crontab": "* * * * *", "misfire_grace_time": "-1"}, "misfire_grace_time"),
        ({"kind": "weekly"}, "kind"),
        # Schedules that never fire, or reach beyond what a date-time can hold: a form
        # error, never a 500 nor a job saved that would do nothing.
        ({"kind": "cron", "crontab": "0 0 31 2 *"}, "crontab"),
        ({"kind": "interval", "every": "600000", "unit": "weeks"}, "every"),
        ({"kind": "interval", "every": str(10**18), "unit": "seconds"}, "every"),
        ({"kind": "cron", "crontab": "* * * * *", "misfire_grace_time": "100000000000000"}, "misfire_grace_time"),
        ({"kind": "cron", "crontab": "* * * * *", "max_instances": str(10**9)}, "max_instances"),
    ],
)
def test_bad_input_is_an_error_on_its_field_and_changes_nothing(admin_client, fields, field_in_error):
    store("job", IntervalTrigger(days=7, timezone=UTC))
    before = DjangoJob.objects.get(pk="job")
    response = post(admin_client, "job", **fields)
    assert response.status_code == 200
    assert field_in_error in response.context["form"].errors, response.context["form"].errors
    after = DjangoJob.objects.get(pk="job")
    assert (after.next_run_time, bytes(after.job_state)) == (before.next_run_time, bytes(before.job_state))


@pytest.mark.django_db
def test_interval_and_date(admin_client):
    store("job", CronTrigger(hour=3, timezone=UTC))
    post(admin_client, "job", kind="interval", every=90, unit="minutes")
    assert stored("job").trigger.interval == timedelta(minutes=90)
    when = (dj_timezone.localtime() + timedelta(days=2)).replace(second=0, microsecond=0)
    post(admin_client, "job", kind="date", run_date=when.strftime("%Y-%m-%dT%H:%M"))
    assert DjangoJob.objects.get(pk="job").next_run_time == when


@pytest.mark.django_db
def test_a_paused_job_stays_paused(admin_client):
    store("resting", IntervalTrigger(days=7, timezone=UTC), next_run_time=None)
    post(admin_client, "resting", kind="interval", every=5, unit="minutes")
    assert DjangoJob.objects.get(pk="resting").next_run_time is None
    assert stored("resting").trigger.interval == timedelta(minutes=5)


@pytest.mark.django_db
def test_only_users_who_may_change_jobs_can_edit(client):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_djangojob"))
    client.force_login(viewer)
    store("job", IntervalTrigger(days=7, timezone=UTC))
    assert client.get(schedule_url("job")).status_code == 403
    assert post(client, "job", kind="interval", every=1).status_code == 403
    assert stored("job").trigger.interval == timedelta(days=7)


@pytest.mark.django_db(transaction=True)
def test_a_running_scheduler_obeys_the_edit(admin_client, scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start()
    scheduler.add_job(jobfuncs.noop, "interval", days=7, next_run_time=NEXT_WEEK, id="edited")
    when = (dj_timezone.localtime() + timedelta(minutes=1)).replace(second=0, microsecond=0)
    post(admin_client, "edited", kind="date", run_date=when.strftime("%Y-%m-%dT%H:%M"))
    row = wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id="edited", status=DjangoJobExecution.SUCCESS).first(),
        timeout=90,
        interval=0.5,
        message="the edited job to run at its new time",
    )
    assert row.run_time == when


@pytest.mark.django_db
def test_changes_need_a_csrf_token(admin_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    store("job", IntervalTrigger(days=7, timezone=UTC))
    assert post(client, "job", kind="interval", every=1).status_code == 403
    jobs_url = reverse("admin:django_apscheduler_djangojob_changelist")
    assert client.post(jobs_url, {"action": "pause_selected_jobs", "_selected_action": ["job"]}).status_code == 403
    assert DjangoJob.objects.get(pk="job").next_run_time is not None
    assert stored("job").trigger.interval == timedelta(days=7)


@pytest.mark.django_db
@pytest.mark.parametrize("zone, storable", [("UTC", True), ("Pacific/Kiritimati", True), ("America/New_York", False)])
def test_a_date_at_the_end_of_time_is_saved_or_a_form_error_never_a_500(admin_client, settings, zone, storable):
    """9999-12-31 23:59 in New York is in the year 10000 in UTC, which no date-time holds; east of UTC it fits."""
    settings.TIME_ZONE = zone
    store("job", IntervalTrigger(days=7, timezone=UTC))
    response = post(admin_client, "job", kind="date", run_date="9999-12-31T23:59")
    if storable:
        assert response.status_code == 302
        assert DjangoJob.objects.get(pk="job").next_run_time.year == 9999
    else:
        assert response.status_code == 200 and "run_date" in response.context["form"].errors


@pytest.mark.django_db
def test_resuming_a_job_with_no_further_run_keeps_it_paused_and_says_so(admin_client):
    # A cron schedule whose end date has passed: its trigger has no fire from now on.
    store("past", CronTrigger(hour=1, end_date=datetime(2001, 1, 1, tzinfo=UTC), timezone=UTC), next_run_time=None)
    changelist = reverse("admin:django_apscheduler_djangojob_changelist")
    response = admin_client.post(
        changelist, {"action": "resume_selected_jobs", "_selected_action": ["past"]}, follow=True
    )
    assert DjangoJob.objects.filter(pk="past", next_run_time=None).exists()  # kept, still paused
    text = " ".join(str(m) for m in response.context["messages"])
    assert "has no further run time" in text and "stays paused" in text
