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
