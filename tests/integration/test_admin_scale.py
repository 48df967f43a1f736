"""The jobs list stays cheap in a huge store: no count of the whole table per page load.

A million jobs are not seeded here (bench/million.py measures that); these tests pin
the shape that keeps the list flat: one count (of the filtered rows, or, unfiltered on
PostgreSQL above a threshold, the table's statistics instead) and at most six queries.
"""

import re
from datetime import datetime, timezone

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from django.contrib.admin import site
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_apscheduler import postgres
from django_apscheduler.admin.joblist import JobPaginator
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob
from tests.helpers import build_job

UTC = timezone.utc
JOBS_URL = reverse("admin:django_apscheduler_djangojob_changelist")
# A count of the jobs table: Django's own, or inside postgres.table_rows' CASE.
# A filtered list counts a LIMITed subquery of the table.
COUNT = re.compile(r"COUNT\(\*\)( AS \S+)? FROM (\(SELECT .*? FROM )?\W?django_apscheduler_djangojob\b", re.IGNORECASE)


def store_jobs(count, paused=0):
    store = DjangoJobStore()
    for index in range(count):
        when = None if index < paused else datetime(2030, 1, 1, 12, index % 60, tzinfo=UTC)
        store.add_job(build_job(f"job/{index:03}_x", when, IntervalTrigger(hours=1, timezone=UTC)))


def load(client, params=None):
    client.get(JOBS_URL)  # warm up the session and content-type caches
    with CaptureQueriesContext(connection) as captured:
        response = client.get(JOBS_URL, params or {})
    assert response.status_code == 200
    return response, [query["sql"] for query in captured.captured_queries]


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{}, {"state": "active"}, {"q": "job/00"}, {"state": "paused", "o": "1"}])
def test_job_list_counts_once_in_at_most_six_queries(admin_client, params):
    store_jobs(5, paused=2)
    response, queries = load(admin_client, params)

    assert len(queries) <= 6, "\n".join(sql[:120] for sql in queries)
    counts = [sql for sql in queries if COUNT.search(sql)]
    assert len(counts) == 1, counts  # the page's own count; never a second one of the whole table
    expected = DjangoJob.objects.count() if not params or "o" in params and len(params) == 1 else None
    if expected is not None:
        assert response.context["cl"].result_count == expected


@pytest.mark.django_db
def test_filtered_count_is_exact(admin_client):
    store_jobs(5, paused=2)
    response, _ = load(admin_client, {"state": "paused"})
    assert response.context["cl"].result_count == 2
    assert [job.pk for job in response.context["cl"].result_list] == ["job/000_x", "job/001_x"]


@pytest.mark.django_db
def test_unfiltered_count_takes_table_rows(admin_client, monkeypatch):
    store_jobs(3)
    monkeypatch.setattr(postgres, "table_rows", lambda using, table, above: 1_000_000)

    unfiltered, queries = load(admin_client)
    filtered, _ = load(admin_client, {"state": "active"})

    # On every database the paginator takes what table_rows says (it says None except
    # on PostgreSQL); a filtered list is counted exactly.
    assert unfiltered.context["cl"].result_count == 1_000_000
    assert not [sql for sql in queries if COUNT.search(sql)]
    assert filtered.context["cl"].result_count == 3


@pytest.mark.django_db
def test_small_store_is_counted_exactly(admin_client):
    store_jobs(3)
    response, _ = load(admin_client)
    assert response.context["cl"].result_count == 3  # under ESTIMATE_ABOVE: an exact count, on every database


@pytest.mark.django_db
def test_table_rows_estimates_only_above_the_threshold():
    store_jobs(3)
    table = DjangoJob._meta.db_table
    if connection.vendor != "postgresql":
        assert postgres.table_rows("default", table, 0) is None
        return
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", [table])
        reltuples = cursor.fetchone()[0]
    assert postgres.table_rows("default", table, JobPaginator.ESTIMATE_ABOVE) == 3  # exact below
    # At or above the threshold, the statistics' figure (-1 if ANALYZE saw none yet).
    assert postgres.table_rows("default", table, -1) == int(reltuples)


@pytest.fixture
def count_up_to_3(monkeypatch):
    """A cap of 3 and pages of 2: as a cap of 10,000 with pages of 100."""
    monkeypatch.setattr(JobPaginator, "COUNT_UP_TO", 3)
    monkeypatch.setattr(site._registry[DjangoJob], "list_per_page", 2)


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{"state": "active"}, {"q": "job/"}, {"last_status": "never"}])
def test_a_filter_matching_more_than_the_cap_is_counted_to_the_cap_and_says_more_than(admin_client, count_up_to_3, params):
    store_jobs(5)
    response, queries = load(admin_client, params)

    cl = response.context["cl"]
    assert cl.paginator.capped and cl.result_count == 3
    assert [job.pk for job in cl.result_list] == ["job/000_x", "job/001_x"]
    assert cl.paginator.num_pages == 2  # pages through the first 3
    page = response.content.decode()
    assert "more than 3 jobs" in page
    assert "Select all matching jobs (more than 3)" in page
    assert "All matching jobs selected (more than 3)" in page
    assert not re.search(r"\b3 (results|jobs)\b", page.replace("more than 3 jobs", ""))  # never shown as exact
    assert len(queries) <= 6
    [count] = [sql for sql in queries if COUNT.search(sql)]
    assert "LIMIT 4" in count.upper()  # one past the cap, never the whole match


@pytest.mark.django_db
def test_a_filter_matching_up_to_the_cap_is_counted_exactly_and_says_so(admin_client, count_up_to_3):
    store_jobs(5, paused=2)
    response, _ = load(admin_client, {"state": "active"})

    cl = response.context["cl"]
    assert not cl.paginator.capped and cl.result_count == 3
    page = response.content.decode()
    assert "more than" not in page and "matching jobs" not in page
    assert "3 results" in page or "3 jobs" in page


@pytest.mark.django_db
def test_selecting_all_of_a_capped_list_acts_on_every_matching_job(admin_client, count_up_to_3):
    store_jobs(5, paused=1)
    response = admin_client.post(
        JOBS_URL + "?state=active",
        {"action": "pause_selected_jobs", "select_across": "1", "index": "0", "_selected_action": ["job/001_x"]},
    )
    assert response.status_code == 302
    assert not DjangoJob.objects.filter(next_run_time__isnull=False).exists()  # all 4 active ones, past the cap of 3
