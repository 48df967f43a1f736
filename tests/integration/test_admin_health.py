"""The admin says when no scheduler is running, marks overdue runs, filters by state.

Every page of the app carries the banner while no scheduler is alive; none does
while one is. Status colours come from classes of the app's stylesheet (each theme
has its own), not from inline colours.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils import timezone as dj_timezone

from django_apscheduler.health import scheduler_health
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution, SchedulerInstance
from tests.helpers import build_job

UTC = timezone.utc
FUTURE = datetime(2030, 1, 1, tzinfo=UTC)
JOBS_URL = reverse("admin:django_apscheduler_djangojob_changelist")
BANNER = "jobs are not running"


def store_job(job_id, next_run_time=FUTURE):
    DjangoJobStore().add_job(build_job(job_id, next_run_time, IntervalTrigger(hours=1, timezone=UTC)))


def scheduler_row(heartbeat_ago=timedelta(seconds=1), **fields):
    now = dj_timezone.now()
    return SchedulerInstance.objects.create(
        host="h", pid=4242, version="t", started=now - timedelta(hours=1), last_heartbeat=now - heartbeat_ago, **fields
    )


def app_pages():
    """Every page of the app a superuser can open (one stored job, one execution, one scheduler row)."""
    execution = DjangoJobExecution.objects.create(job_id="a/b_c", status=DjangoJobExecution.SUCCESS, run_time=dj_timezone.now())
    instance = SchedulerInstance.objects.first()
    job = quote("a/b_c")
    return [
        reverse("admin:app_list", args=["django_apscheduler"]),
        JOBS_URL,
        reverse("admin:django_apscheduler_djangojob_change", args=[job]),
        reverse("admin:django_apscheduler_djangojob_schedule", args=[job]),
        reverse("admin:django_apscheduler_djangojob_add"),
        reverse("admin:django_apscheduler_djangojob_delete", args=[job]),
        reverse("admin:django_apscheduler_djangojob_history", args=[job]),
        reverse("admin:django_apscheduler_djangojobexecution_changelist"),
        reverse("admin:django_apscheduler_djangojobexecution_change", args=[execution.pk]),
        reverse("admin:django_apscheduler_schedulerinstance_changelist"),
        reverse("admin:django_apscheduler_schedulerinstance_change", args=[instance.pk]),
    ]


@pytest.mark.django_db
def test_every_page_of_the_app_says_when_no_scheduler_is_running(admin_client):
    store_job("a/b_c")
    scheduler_row(heartbeat_ago=timedelta(seconds=125))  # silent for longer than the timeout

    for url in app_pages():
        html = admin_client.get(url).content.decode()
        # 125 s when written; a page rendered a few seconds later (a busy machine) says a few more.
        assert re.search(r"No scheduler has reported for 12[5-9] s — jobs are not running\.", html), url


@pytest.mark.django_db
def test_no_banner_while_a_scheduler_is_alive(admin_client):
    store_job("a/b_c")
    scheduler_row()

    for url in app_pages():
        response = admin_client.get(url)
        assert response.status_code == 200 and BANNER not in response.content.decode(), url


@pytest.mark.django_db
def test_a_stopped_or_dead_scheduler_is_no_health(admin_client):
    scheduler_row(stopped=dj_timezone.now())
    scheduler_row(died=dj_timezone.now())

    assert not scheduler_health().healthy
    assert BANNER in admin_client.get(JOBS_URL).content.decode()


@pytest.mark.django_db
def test_the_banner_when_no_scheduler_ever_ran(admin_client):
    assert scheduler_health().silent_for is None
    assert "No scheduler has ever reported to this database" in admin_client.get(JOBS_URL).content.decode()


@pytest.mark.django_db
def test_overdue_next_runs_are_marked(admin_client):
    store_job("late", next_run_time=datetime.now(UTC) - timedelta(minutes=5))
    store_job("soon", next_run_time=datetime.now(UTC) + timedelta(minutes=5))

    html = admin_client.get(JOBS_URL).content.decode()

    late_row = next(row for row in html.split("<tr") if ">late<" in row)
    soon_row = next(row for row in html.split("<tr") if ">soon<" in row)
    assert 'class="das-overdue">overdue</span>' in late_row
    assert "das-overdue" not in soon_row


@pytest.mark.django_db
def test_jobs_filter_by_state_and_last_status(admin_client):
    for job_id in ("ok", "failed", "fresh", "paused"):
        store_job(job_id)
    DjangoJob.objects.filter(pk="paused").update(next_run_time=None)
    now = dj_timezone.now()
    DjangoJobExecution.objects.create(job_id="ok", status=DjangoJobExecution.ERROR, run_time=now - timedelta(hours=2))
    DjangoJobExecution.objects.create(job_id="ok", status=DjangoJobExecution.SUCCESS, run_time=now - timedelta(hours=1))
    DjangoJobExecution.objects.create(job_id="failed", status=DjangoJobExecution.ERROR, run_time=now)

    def listed(**params):
        response = admin_client.get(JOBS_URL, params)
        return sorted(job.pk for job in response.context["cl"].result_list)

    assert listed(state="paused") == ["paused"]
    assert listed(state="active") == ["failed", "fresh", "ok"]
    assert listed(last_status=DjangoJobExecution.ERROR) == ["failed"]  # the newest run only
    assert listed(last_status=DjangoJobExecution.SUCCESS) == ["ok"]
    assert listed(last_status="never") == ["fresh", "paused"]
    assert listed(last_status="no such status") == ["failed", "fresh", "ok", "paused"]


@pytest.mark.django_db
def test_statuses_are_coloured_by_the_stylesheet(admin_client):
    store_job("job")
    DjangoJobExecution.objects.create(job_id="job", status=DjangoJobExecution.MISSED, run_time=dj_timezone.now())

    jobs = admin_client.get(JOBS_URL).content.decode()
    executions = admin_client.get(reverse("admin:django_apscheduler_djangojobexecution_changelist")).content.decode()

    for html in (jobs, executions):
        assert "django_apscheduler/admin.css" in html
        assert '<span class="das-status das-status-skipped">Missed!</span>' in html
        assert "style=\"color" not in html
