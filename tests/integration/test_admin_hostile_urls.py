"""Text in admin URLs that no column can hold (a NUL, a lone surrogate) finds nothing, never a 500.

PostgreSQL refuses a query holding a NUL in a text value (psycopg raises DataError);
the admin unquotes ``_00`` in a path to a NUL, and a search or filter passes ``%00``.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

JOB_PAGES = ["change", "delete", "history", "schedule"]


@pytest.mark.django_db
@pytest.mark.parametrize("page", JOB_PAGES)
@pytest.mark.parametrize("object_id", ["a_00b", "_00"])
def test_a_job_id_with_a_nul_is_simply_not_found(admin_client, page, object_id):
    url = reverse(f"admin:django_apscheduler_djangojob_{page}", args=[object_id])
    response = admin_client.get(url)
    assert response.status_code in (302, 404), response.status_code


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url_name, params",
    [
        ("admin:django_apscheduler_djangojob_changelist", {"q": "a\x00b"}),
        ("admin:django_apscheduler_djangojobexecution_changelist", {"q": "a\x00b"}),
        ("admin:django_apscheduler_djangojobexecution_changelist", {"job": "a\x00b"}),
        ("admin:django_apscheduler_schedulerinstance_changelist", {"q": "\x00"}),
    ],
)
def test_searching_or_filtering_for_a_nul_lists_nothing(admin_client, url_name, params):
    response = admin_client.get(reverse(url_name), params)
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


@pytest.mark.django_db
def test_keyword_arguments_no_column_could_hold_are_stored_escaped(admin_client):
    """A keyword with a NUL or a lone surrogate is the pickle's business; the plain columns show it escaped."""
    from datetime import datetime, timezone

    from apscheduler.triggers.interval import IntervalTrigger
    from django.contrib.admin.utils import quote

    from django_apscheduler.admin import audit
    from django_apscheduler.jobstores import DjangoJobStore
    from django_apscheduler.models import DjangoJob
    from tests.helpers import build_job

    kwargs = {"a\x00b": 1, "\ud800": 2, "plain": 3}
    job = build_job("odd-kwargs", datetime(2030, 1, 1, tzinfo=timezone.utc), IntervalTrigger(hours=1), kwargs=kwargs)
    DjangoJobStore().add_job(job)

    row = DjangoJob.objects.get(pk="odd-kwargs")
    assert row.details["arguments"] == "('a\\x00b'=1, '\\ud800'=2, plain=3)"
    page = admin_client.get(reverse("admin:django_apscheduler_djangojob_change", args=[quote("odd-kwargs")]))
    assert page.status_code == 200
    assert DjangoJobStore().lookup_job("odd-kwargs").kwargs == kwargs
    message = audit.created("m:f", [], kwargs, IntervalTrigger(hours=1), None)
    assert "\x00" not in message and '"a\\u0000b"=1' in message and "plain=3" in message
