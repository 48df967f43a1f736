"""Creating a job in the admin: declared functions only, JSON arguments checked against the signature."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone as dj_timezone

from django_apscheduler import registry
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob
from tests import jobfuncs
from tests.helpers import post_add_job

ADD_URL = reverse("admin:django_apscheduler_djangojob_add")
SLEEP_REF = "tests.jobfuncs:sleep_for"


@pytest.fixture(autouse=True)
def declared(isolated_registry):
    registry.job("interval", hours=1)(jobfuncs.sleep_for)
    registry.job("interval", hours=1)(jobfuncs.Greeter.class_greet)


@pytest.mark.django_db
def test_only_declared_functions_are_offered(admin_client):
    page = admin_client.get(ADD_URL)
    assert page.status_code == 200
    offered = [value for value, _label in page.context["form"].fields["function"].choices]
    assert offered == sorted([SLEEP_REF, "tests.jobfuncs:Greeter.class_greet"])


@pytest.mark.django_db
def test_a_job_is_created_and_scheduled(admin_client):
    response = post_add_job(admin_client, args="[0.1]", kind="cron", crontab="30 1 * * *", name="Nap")
    assert response.status_code == 302
    job = DjangoJobStore().lookup_job("made-in-admin")
    assert job.func is jobfuncs.sleep_for and job.args == (0.1,) and job.name == "Nap"
    stored = DjangoJob.objects.get(pk="made-in-admin")
    assert stored.declared is False
    local = dj_timezone.localtime(stored.next_run_time)
    assert (local.hour, local.minute) == (1, 30)
    assert stored.next_run_time <= dj_timezone.now() + timedelta(days=1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields, field_in_error",
    [
        ({"function": "os:system"}, "function"),  # not declared: never importable from a browser
        ({"args": "[1,"}, "args"),  # malformed JSON
        ({"args": '{"seconds": 1}'}, "args"),  # not a list
        ({"kwargs": "[1]"}, "kwargs"),  # not an object
        ({"args": "[1, 2]"}, "args"),  # too many for sleep_for(seconds)
        ({"args": "[]", "kwargs": '{"minutes": 1}'}, "args"),  # unknown keyword
        ({"job_id": ""}, "job_id"),
        ({"job_id": "x" * 256}, "job_id"),
        ({"kind": "interval", "every": "0"}, "every"),
        ({"kind": "cron", "crontab": "bad"}, "crontab"),
        ({"kind": "date", "run_date": "2001-01-01T00:00"}, "run_date"),
    ],
)
def test_bad_input_is_an_error_on_its_field_and_nothing_is_stored(admin_client, fields, field_in_error):
    response = post_add_job(admin_client, **fields)
    assert response.status_code == 200
    assert field_in_error in response.context["form"].errors, response.context["form"].errors
    assert not DjangoJob.objects.exists()


@pytest.mark.django_db
def test_an_existing_id_is_refused(admin_client):
    post_add_job(admin_client)
    response = post_add_job(admin_client, args="[2]")
    assert "job_id" in response.context["form"].errors
    assert DjangoJobStore().lookup_job("made-in-admin").args == (1,)
