"""Choosing a job's executor in the admin: the aliases the settings configure, kept through edits."""

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from django.test import override_settings
from django.urls import reverse

from django_apscheduler import registry
from django_apscheduler.jobstores import DjangoJobStore
from tests import jobfuncs
from tests.helpers import build_job

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("declared"),
]

EXECUTORS = {"tasks": {"type": "tasks", "backend": "immediate"}}
BASE = {"kind": "interval", "crontab": "", "every": "10", "unit": "minutes", "run_date": "", "max_instances": "1", "misfire_grace_time": ""}


@pytest.fixture
def declared(isolated_registry):
    registry.job("interval", hours=1)(jobfuncs.sleep_for)


def offered(page):
    return [value for value, _label in page.context["form"].fields["executor"].choices]


@override_settings(APSCHEDULER_EXECUTORS=EXECUTORS)
def test_a_job_is_created_with_a_worker_executor(admin_client):
    url = reverse("admin:django_apscheduler_djangojob_add")
    assert offered(admin_client.get(url)) == ["default", "tasks"]
    data = dict(BASE, function="tests.jobfuncs:sleep_for", job_id="to/the_workers", name="", args="[1]", kwargs="{}", executor="tasks")
    assert admin_client.post(url, data).status_code == 302
    assert DjangoJobStore().lookup_job("to/the_workers").executor == "tasks"


@override_settings(APSCHEDULER_EXECUTORS=EXECUTORS)
def test_the_schedule_editor_changes_the_executor_and_keeps_it_otherwise(admin_client):
    DjangoJobStore().add_job(build_job("nightly", datetime.now(timezone.utc) + timedelta(days=1), IntervalTrigger(days=1, timezone=timezone.utc)))
    url = reverse("admin:django_apscheduler_djangojob_schedule", args=["nightly"])
    page = admin_client.get(url)
    assert offered(page) == ["default", "tasks"] and page.context["form"].initial["executor"] == "default"
    assert admin_client.post(url, dict(BASE, executor="tasks")).status_code == 302
    assert DjangoJobStore().lookup_job("nightly").executor == "tasks"
    assert admin_client.post(url, BASE).status_code == 302  # a form without the field keeps it
    assert DjangoJobStore().lookup_job("nightly").executor == "tasks"
    response = admin_client.post(url, dict(BASE, executor="celery-nowhere"))
    assert response.status_code == 200 and "executor" in response.context["form"].errors


def test_an_alias_only_the_schedulers_know_is_offered_for_its_job(admin_client):
    DjangoJobStore().add_job(
        build_job("elsewhere", datetime.now(timezone.utc) + timedelta(days=1), IntervalTrigger(days=1, timezone=timezone.utc), executor="celery")
    )
    page = admin_client.get(reverse("admin:django_apscheduler_djangojob_schedule", args=["elsewhere"]))
    assert offered(page) == ["default", "celery"]
