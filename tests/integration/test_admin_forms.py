"""The schedule editor and the add-job form (server side), the job and scheduler pages in words, the action messages.

The browser side (layout, hiding the other kinds, focus) is in tests/browser/.
"""

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.contrib.admin.utils import quote
from django.test import override_settings
from django.urls import reverse

from django_apscheduler import crontab, registry
from django_apscheduler.forms import PREVIEW_COUNT, next_run_times
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution, SchedulerInstance
from tests import jobfuncs
from tests.helpers import build_job, post_add_job

ADD_URL = reverse("admin:django_apscheduler_djangojob_add")
JOBS_URL = reverse("admin:django_apscheduler_djangojob_changelist")
OPTIONS = ("max_instances", "coalesce", "misfire_grace_time")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(autouse=True)
def declared(isolated_registry):
    registry.job("interval", hours=1, args=[1])(jobfuncs.sleep_for)


def store(job_id, next_run_time, trigger=None, **options):
    trigger = trigger or IntervalTrigger(hours=1, timezone=timezone.utc)
    DjangoJobStore().add_job(build_job(job_id, next_run_time, trigger, **options))
    if next_run_time is None:
        DjangoJob.objects.filter(pk=job_id).update(next_run_time=None)


def schedule_url(job_id):
    return reverse("admin:django_apscheduler_djangojob_schedule", args=[quote(job_id)])


def post_schedule(client, job_id, **fields):
    data = {"kind": "cron", "crontab": "", "every": "", "unit": "minutes", "run_date": "", "max_instances": "1"}
    data.update({key: str(value) for key, value in fields.items()})
    return client.post(schedule_url(job_id), data)


def page_messages(response):
    return [(message.level_tag, str(message)) for message in response.context["messages"]]


def soon(**delta):
    return datetime.now(timezone.utc) + timedelta(**delta)


# --- the add form's defaults are @job's --------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_add_form_starts_from_the_options_a_declared_job_gets(admin_client, scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start(paused=True)
    registry.sync_declared_jobs(scheduler)
    declared = DjangoJob.objects.get(pk="tests.jobfuncs.sleep_for").details

    page = admin_client.get(ADD_URL)

    initial = page.context["form"].initial
    assert {key: initial[key] for key in OPTIONS} == {key: declared[key] for key in OPTIONS}
    assert {key: declared[key] for key in OPTIONS} == {"max_instances": 1, "coalesce": True, "misfire_grace_time": 1}
    html = page.content.decode()
    assert re.search(r'<input type="checkbox" name="coalesce"[^>]* checked>', html)
    assert re.search(r'<input type="number" name="misfire_grace_time" value="1"', html)
    # The form posted as it starts makes a job with the same options as the declared one.
    assert post_add_job(admin_client, job_id="from-the-form", coalesce="on", misfire_grace_time=1).status_code == 302
    made = DjangoJob.objects.get(pk="from-the-form").details
    assert {key: made[key] for key in OPTIONS} == {key: declared[key] for key in OPTIONS}


def test_the_defaults_are_apschedulers_own():
    from apscheduler.schedulers.background import BackgroundScheduler

    assert registry.job_defaults() == BackgroundScheduler()._job_defaults
    registry.job_defaults()["coalesce"] = "changed"  # each caller gets its own copy
    assert registry.job_defaults()["coalesce"] is True


# --- only the chosen kind's fields are read -----------------------------------------------


@pytest.mark.django_db
def test_other_kinds_fields_are_ignored_whatever_they_hold(admin_client):
    """Without JavaScript every kind's fields are posted: junk in the ones not chosen must not stop the form."""
    response = post_add_job(admin_client, kind="cron", crontab="15 3 * * *", every="abc", unit="fortnights", run_date="not a date")

    assert response.status_code == 302, response.context["form"].errors
    assert DjangoJob.objects.get(pk="made-in-admin").trigger_description == "At 03:15"


@pytest.mark.django_db
def test_each_kind_has_its_own_fieldset_headed_by_its_kind(admin_client):
    html = admin_client.get(ADD_URL).content.decode()

    for kind, heading in (("cron", "Cron (a crontab line)"), ("interval", "Interval"), ("date", "Once, at a date")):
        assert f'<fieldset class="module aligned" data-trigger-kind="{kind}"' in html
        start = html.index(f'data-trigger-kind="{kind}"')
        assert heading in html[start : html.index("</fieldset>", start)]
    assert html.count('<fieldset class="module aligned"') == 6  # job, schedule, three kinds, options
    assert "schedule_form.js" in html and "admin/css/forms.css" in html


# --- the preview ---------------------------------------------------------------------------


@override_settings(TIME_ZONE="Europe/Berlin")
def test_the_preview_crosses_daylight_saving_time_in_time_zone():
    before_spring = datetime(2027, 3, 28, 0, 30, tzinfo=BERLIN)
    hourly = next_run_times(crontab.parse("0 * * * *", "Europe/Berlin"), 5, before_spring)
    assert [moment.strftime("%H:%M %Z") for moment in hourly] == ["01:00 CET", "03:00 CEST", "04:00 CEST", "05:00 CEST", "06:00 CEST"]
    utc = [moment.astimezone(timezone.utc) for moment in hourly]
    assert all(later - earlier == timedelta(hours=1) for earlier, later in zip(utc, utc[1:], strict=False))
    # 02:30 does not exist that night: shown as the instant it fires at.
    nightly = next_run_times(crontab.parse("30 2 * * *", "Europe/Berlin"), 2, before_spring)
    assert [moment.strftime("%m-%d %H:%M %Z") for moment in nightly] == ["03-28 03:30 CEST", "03-29 02:30 CEST"]
    before_autumn = datetime(2027, 10, 31, 1, 30, tzinfo=BERLIN)
    hourly = next_run_times(crontab.parse("0 * * * *", "Europe/Berlin"), 3, before_autumn)
    assert [moment.strftime("%H:%M %Z") for moment in hourly] == ["02:00 CEST", "02:00 CET", "03:00 CET"]
    every_hour = IntervalTrigger(hours=1, start_date=datetime(2027, 3, 27, 0, 0), timezone="Europe/Berlin")
    assert [m.strftime("%H:%M %Z") for m in next_run_times(every_hour, 3, before_spring)] == ["01:00 CET", "03:00 CEST", "04:00 CEST"]


@override_settings(TIME_ZONE="Europe/Berlin")
def test_a_one_off_date_previews_one_run_and_the_end_of_time_none():
    when = DateTrigger(run_date=datetime(2030, 1, 1, 12, 0), timezone="Europe/Berlin")
    assert [moment.isoformat() for moment in next_run_times(when, 5)] == ["2030-01-01T12:00:00+01:00"]
    near_the_end = IntervalTrigger(days=365, start_date=datetime(9999, 6, 1, tzinfo=timezone.utc))
    assert len(next_run_times(near_the_end, 5, datetime(9999, 1, 1, tzinfo=timezone.utc))) == 1  # then past year 9999


@pytest.mark.django_db
@override_settings(TIME_ZONE="Europe/Berlin")
def test_preview_shows_five_runs_and_saves_nothing(admin_client):
    store("nightly", soon(hours=5), crontab.parse("0 3 * * *", "Europe/Berlin"))
    before = DjangoJob.objects.get(pk="nightly")

    response = post_schedule(admin_client, "nightly", crontab="*/10 * * * *", _preview="Preview")

    assert response.status_code == 200
    preview = response.context["preview"]
    assert len(preview) == PREVIEW_COUNT == 5
    assert all(moment.minute % 10 == 0 and str(moment.tzinfo) == "Europe/Berlin" for moment in preview)
    html = response.content.decode()
    assert "The next 5 runs, if saved" in html and "Europe/Berlin" in html
    assert "errornote" not in html
    after = DjangoJob.objects.get(pk="nightly")
    assert (after.trigger_description, after.next_run_time, after.job_state) == (
        before.trigger_description,
        before.next_run_time,
        before.job_state,
    )
    # The add form previews the same way, creates nothing, and leaves the fields not yet filled for saving.
    response = post_add_job(admin_client, job_id="", kind="interval", every=15, unit="minutes", _preview="Preview")
    assert len(response.context["preview"]) == 5
    assert not response.context["form"].errors and "errornote" not in response.content.decode()
    assert not DjangoJob.objects.filter(pk="made-in-admin").exists()


@pytest.mark.django_db
def test_preview_of_invalid_input_shows_the_errors_instead(admin_client):
    store("nightly", soon(hours=5))

    response = post_schedule(admin_client, "nightly", crontab="61 * * * *", _preview="Preview")

    assert response.context["preview"] == []
    html = response.content.decode()
    assert '<p class="errornote">Please correct the error below.</p>' in html
    assert "The next" not in html


# --- errors: summarised, the first one focused ---------------------------------------------


@pytest.mark.django_db
def test_errors_are_summarised_and_the_first_one_focused(admin_client):
    response = post_add_job(admin_client, job_id="", args="not json", kind="interval", every=0)

    html = response.content.decode()
    assert '<p class="errornote">Please correct the errors below.</p>' in html
    form = response.context["form"]
    assert set(form.errors) == {"job_id", "args", "every"}
    assert form.first_error_field() == "job_id"  # the first on the page, not the first found
    assert html.count(" autofocus") == 1
    assert re.search(r'<input type="text" name="job_id"[^>]* autofocus', html)


@pytest.mark.django_db
def test_an_error_in_a_kind_not_chosen_is_never_the_focus(admin_client):
    store("nightly", soon(hours=5))

    response = post_schedule(admin_client, "nightly", kind="interval", every="", crontab="bad", max_instances="0")

    form = response.context["form"]
    assert "crontab" not in form.errors
    assert form.first_error_field() == "every"


# --- the job page and the scheduler page in words -------------------------------------------


@pytest.mark.django_db
def test_job_page_in_words_with_a_dash_for_every_empty_value(admin_client):
    store("quiet", soon(hours=1), IntervalTrigger(seconds=15, timezone=timezone.utc), misfire_grace_time=None)

    html = admin_client.get(reverse("admin:django_apscheduler_djangojob_change", args=["quiet"])).content.decode()

    assert "Every 15 seconds" in html and "interval[" not in html
    assert ">None<" not in html and "None" not in html.split('id="content"')[1]
    assert "at most 1 run at a time, every missed run is run, runs however late" in html
    assert "Broken" not in html and "das-status-error" not in html  # healthy: no broken section
    assert html.count(">Change history<") == 1 and ">History<" not in html
    assert ">Executions</h2>" in html and "All executions of this job" in html


@pytest.mark.django_db
def test_a_broken_job_says_so_with_its_reason(admin_client):
    store("gone", soon(hours=1))
    DjangoJob.objects.filter(pk="gone").update(broken=True, broken_reason="ImportError: no module named gone")

    html = admin_client.get(reverse("admin:django_apscheduler_djangojob_change", args=["gone"])).content.decode()

    assert ">Broken</h2>" in html and "ImportError: no module named gone" in html


@pytest.mark.django_db
def test_last_status_links_to_that_execution_on_the_list_and_the_job_page(admin_client):
    store("flaky", soon(hours=1))
    now = datetime.now(timezone.utc)
    DjangoJobExecution.objects.create(job_id="flaky", status=DjangoJobExecution.SUCCESS, run_time=now - timedelta(minutes=2))
    failed = DjangoJobExecution.objects.create(
        job_id="flaky", status=DjangoJobExecution.ERROR, run_time=now - timedelta(minutes=1), traceback="Traceback: boom"
    )
    link = f'<a href="{reverse("admin:django_apscheduler_djangojobexecution_change", args=[failed.pk])}">'

    for url in (JOBS_URL, reverse("admin:django_apscheduler_djangojob_change", args=["flaky"])):
        html = admin_client.get(url).content.decode()
        assert link + '<span class="das-status das-status-error">Error!</span></a>' in html, url
    assert "Traceback: boom" in admin_client.get(link.split('"')[1]).content.decode()


@pytest.mark.django_db
def test_a_running_scheduler_shows_a_dash_for_stopped(admin_client):
    running = SchedulerInstance.objects.create(host="web-1", pid=42, started=datetime.now(timezone.utc), last_heartbeat=datetime.now(timezone.utc))

    url = reverse("admin:django_apscheduler_schedulerinstance_change", args=[running.pk])
    html = admin_client.get(url).content.decode()

    stopped = html[html.index("field-stopped_column") :]
    assert '<div class="readonly">-</div>' in stopped[:600]
    assert "None" not in html.split('id="content"')[1]


# --- action messages --------------------------------------------------------------------------


def act(client, name, *job_ids):
    return client.post(JOBS_URL, {"action": name, "_selected_action": list(job_ids)}, follow=True)


@pytest.mark.django_db
def test_pause_and_resume_report_in_the_same_shape_and_change_only_what_they_say(admin_client):
    store("a", soon(hours=1))
    store("b", soon(hours=2))
    store("resting", None)

    assert page_messages(act(admin_client, "pause_selected_jobs", "a", "b", "resting")) == [
        ("success", "Paused 2 jobs: a, b."),
        ("info", "1 job was paused already and is left as it was: resting."),
    ]
    assert page_messages(act(admin_client, "pause_selected_jobs", "a")) == [
        ("info", "1 job was paused already and is left as it was: a.")
    ]
    DjangoJob.objects.filter(pk="resting").update(next_run_time=soon(hours=3))
    state_before = DjangoJob.objects.get(pk="resting").job_state

    messages = page_messages(act(admin_client, "resume_selected_jobs", "a", "b", "resting"))

    assert [level for level, _text in messages] == ["success", "info"]
    assert messages[0][1].startswith("Resumed 2 jobs: a (next run ") and ", b (next run " in messages[0][1]
    assert messages[1] == ("info", "1 job was active already (not paused) and is left as it was: resting.")
    assert DjangoJob.objects.get(pk="resting").job_state == state_before  # left as it was
    assert page_messages(act(admin_client, "resume_selected_jobs", "a", "b")) == [
        ("info", "2 jobs were active already (not paused) and are left as they were: a, b.")
    ]
