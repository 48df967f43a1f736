"""The admin control panel, through Django's test client with a superuser.

Jobs are stored through ``DjangoJobStore`` (the way schedulers store them) and
history rows are written directly, except in the "run now" tests, which run real
jobs in a real scheduler thread and therefore need a transactional database.
"""

import gc
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone as dj_timezone

from django_apscheduler.admin import is_alive
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution, SchedulerInstance
from django_apscheduler.util import get_local_dt_format
from tests import jobfuncs
from tests.helpers import build_job, wait_until

UTC = timezone.utc
FUTURE = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"

JOBS_URL = reverse("admin:django_apscheduler_djangojob_changelist")
EXECUTIONS_URL = reverse("admin:django_apscheduler_djangojobexecution_changelist")
SCHEDULERS_URL = reverse("admin:django_apscheduler_schedulerinstance_changelist")


# --- helpers ------------------------------------------------------------------------------


def store_job(job_id, func=jobfuncs.noop, args=(), next_run_time=FUTURE):
    """Store a job the way a scheduler does, far enough in the future not to fire."""
    job = build_job(job_id, next_run_time, IntervalTrigger(hours=1, timezone=UTC), func=func, args=args)
    DjangoJobStore().add_job(job)
    return DjangoJob.objects.get(pk=job_id)


def add_execution(job_id, status=DjangoJobExecution.SUCCESS, ago=timedelta(hours=1), **fields):
    return DjangoJobExecution.objects.create(job_id=job_id, status=status, run_time=dj_timezone.now() - ago, **fields)


def row_containing(html, text):
    """The changelist table row that contains ``text`` (fails the test if none does)."""
    for row in re.findall(r"<tr[^>]*>.*?</tr>", html, flags=re.S):
        if text in row:
            return row
    raise AssertionError(f"no row contains {text!r}")


def listed_ids(response):
    return sorted(obj.pk for obj in response.context["cl"].result_list)


def listed_in_order(response):
    return [obj.pk for obj in response.context["cl"].result_list]


@pytest.fixture
def release_run_now_connections():
    """Close the database connections that "run now" leaves in its finished threads.

    ``run_jobs_now`` runs jobs in a short-lived scheduler whose threads write history
    and end without closing their connections; the connections only close when the
    garbage collector frees them, and PostgreSQL refuses to drop the test database
    while they are open. Wait for those threads, then collect.
    """
    yield
    for thread in threading.enumerate():
        background = not thread.daemon or thread.name.startswith("django-apscheduler-run-now")
        if thread is not threading.current_thread() and background:
            thread.join(timeout=10)
    gc.collect()


def run_now(client, *job_ids):
    return client.post(
        JOBS_URL,
        {"action": "run_selected_jobs_now", "_selected_action": list(job_ids)},
        follow=True,
    )


def page_messages(response):
    return [(message.level_tag, str(message)) for message in response.context["messages"]]


IN_PROCESS_NOTICE = (
    "warning",
    "No scheduler is alive, so the jobs ran in this web process (blocking it while they ran). "
    "Start a scheduler: jobs do not run on schedule without one.",
)


def run_messages(response):
    """The run-now result messages, after checking that the in-process fallback was announced."""
    found = page_messages(response)
    assert IN_PROCESS_NOTICE in found, found
    return [message for message in found if message != IN_PROCESS_NOTICE]


def change_url(model_name, pk):
    return reverse(f"admin:django_apscheduler_{model_name}_change", args=[pk])


# --- jobs -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_job_list_shows_next_run_paused_last_status_and_average_duration(admin_client):
    store_job("active")
    store_job("sleeping", next_run_time=None)
    add_execution("active", DjangoJobExecution.SUCCESS, ago=timedelta(hours=3), duration=Decimal("1.00"))
    add_execution("active", DjangoJobExecution.MISSED, ago=timedelta(hours=2))  # no duration: not averaged
    add_execution("active", DjangoJobExecution.ERROR, ago=timedelta(hours=1), duration=Decimal("3.00"))

    html = admin_client.get(JOBS_URL).content.decode()

    active = row_containing(html, ">active<")
    assert get_local_dt_format(FUTURE) in active
    assert "Error!" in active and "das-status-error" in active  # the latest status, in red
    assert "2.00 s" in active  # (1.00 + 3.00) / 2
    sleeping = row_containing(html, ">sleeping<")
    assert "paused" in sleeping
    assert "Executed" not in sleeping and "Error!" not in sleeping


@pytest.mark.django_db
def test_job_list_shows_broken_flag(admin_client):
    store_job("fine")
    store_job("bad")
    DjangoJob.objects.filter(pk="bad").update(broken=True, broken_reason="ImportError: gone")

    html = admin_client.get(JOBS_URL).content.decode()

    assert 'title="ImportError: gone">broken</strong>' in row_containing(html, ">bad<")
    assert ">broken</strong>" not in row_containing(html, ">fine<")
    assert listed_ids(admin_client.get(JOBS_URL, {"broken__exact": "1"})) == ["bad"]


def _job_list_queries(client, count):
    DjangoJob.objects.all().delete()
    for index in range(count):
        job_id = f"job-{index:03}"
        store_job(job_id)
        add_execution(job_id, ago=timedelta(hours=2), duration=Decimal("1.50"))
        add_execution(job_id, DjangoJobExecution.ERROR, ago=timedelta(hours=1), duration=Decimal("0.50"))
    with CaptureQueriesContext(connection) as captured:
        response = client.get(JOBS_URL)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == count
    return len(captured)


@pytest.mark.django_db
def test_job_list_query_count_does_not_grow_with_jobs(admin_client):
    admin_client.get(JOBS_URL)  # warm up the session and content-type caches
    few = _job_list_queries(admin_client, 3)
    many = _job_list_queries(admin_client, 30)
    assert many == few


@pytest.mark.django_db
def test_job_list_sorts_by_every_column(admin_client):
    store_job("a", next_run_time=None)
    store_job("b")
    add_execution("a", DjangoJobExecution.ERROR, duration=Decimal("9.00"))
    add_execution("b", DjangoJobExecution.SUCCESS, duration=Decimal("1.00"))

    assert listed_in_order(admin_client.get(JOBS_URL)) == ["b", "a"]  # paused last by default
    add_execution("b", DjangoJobExecution.SUCCESS, ago=timedelta(hours=2), duration=Decimal("1.00"))
    add_execution("a", DjangoJobExecution.SUCCESS, ago=timedelta(hours=2), duration=Decimal("1.00"))
    # Columns (after the checkbox): id, next run, last status, trigger, name, runs.
    for column, ascending in [(2, ["b", "a"]), (3, ["a", "b"]), (6, ["a", "b"])]:
        response = admin_client.get(JOBS_URL, {"o": str(column)})
        assert listed_in_order(response) == ascending, column


@pytest.mark.django_db
def test_runs_column_joins_success_rate_and_average_duration(admin_client):
    store_job("mixed")
    store_job("never")
    add_execution("mixed", DjangoJobExecution.SUCCESS, ago=timedelta(hours=2), duration=Decimal("1.00"))
    add_execution("mixed", DjangoJobExecution.ERROR, ago=timedelta(hours=1), duration=Decimal("3.00"))
    html = admin_client.get(JOBS_URL).content.decode()
    assert '<td class="field-runs">50% of 2, 2.00 s on average</td>' in row_containing(html, ">mixed<")
    assert '<td class="field-runs">-</td>' in row_containing(html, ">never<")


@pytest.mark.django_db
def test_job_search_by_id(admin_client):
    for job_id in ("reports.daily", "reports.weekly", "cleanup"):
        store_job(job_id)
    assert listed_ids(admin_client.get(JOBS_URL, {"q": "reports"})) == ["reports.daily", "reports.weekly"]


@pytest.mark.django_db
def test_job_change_page_is_read_only_and_describes_the_job(admin_client):
    store_job("report", func=jobfuncs.sleep_for, args=(5,))
    DjangoJob.objects.filter(pk="report").update(broken=True, broken_reason="ModuleNotFoundError: reports")
    url = change_url("djangojob", "report")

    response = admin_client.get(url)

    html = response.content.decode()
    assert response.status_code == 200
    assert "ModuleNotFoundError: reports" in html
    assert "tests.jobfuncs:sleep_for" in html
    assert "Every hour" in html and "interval[1:00:00]" not in html  # the trigger in words
    assert "(5)" in html
    assert f"{EXECUTIONS_URL}?job=report" in html
    assert 'name="_save"' not in html
    assert 'name="job_state"' not in html
    assert admin_client.post(url, {"id": "other"}).status_code == 403
    assert DjangoJob.objects.filter(pk="report").exists()


@pytest.mark.django_db
def test_job_change_page_survives_an_unloadable_state(admin_client):
    store_job("corrupt")
    DjangoJob.objects.filter(pk="corrupt").update(job_state=b"not a pickle")

    response = admin_client.get(change_url("djangojob", "corrupt"))

    assert response.status_code == 200
    assert "Cannot be loaded" in response.content.decode()


@pytest.mark.django_db
def test_only_users_who_may_add_jobs_see_the_create_page(client):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_djangojob"))
    client.force_login(viewer)
    add_url = reverse("admin:django_apscheduler_djangojob_add")
    assert add_url not in client.get(JOBS_URL).content.decode()
    assert client.get(add_url).status_code == 403


@pytest.mark.django_db
def test_deleting_a_job_keeps_its_history(admin_client):
    store_job("one-off")
    store_job("other")
    execution = add_execution("one-off", duration=Decimal("0.10"))

    response = admin_client.post(
        JOBS_URL, {"action": "delete_selected", "_selected_action": ["one-off"], "post": "yes"}, follow=True
    )

    assert response.status_code == 200
    assert list(DjangoJob.objects.values_list("id", flat=True)) == ["other"]
    assert DjangoJobExecution.objects.filter(pk=execution.pk).exists()
    # The history of the deleted job is still listed, searchable and readable.
    assert listed_ids(admin_client.get(EXECUTIONS_URL)) == [execution.pk]
    assert listed_ids(admin_client.get(EXECUTIONS_URL, {"q": "one-off"})) == [execution.pk]
    detail = admin_client.get(change_url("djangojobexecution", execution.pk)).content.decode()
    assert "one-off (deleted)" in detail


@pytest.mark.django_db
def test_deleting_one_job_from_its_page(admin_client):
    store_job("gone")
    add_execution("gone")

    response = admin_client.post(reverse("admin:django_apscheduler_djangojob_delete", args=["gone"]), {"post": "yes"})

    assert response.status_code == 302
    assert not DjangoJob.objects.exists()
    assert DjangoJobExecution.objects.filter(job_id="gone").count() == 1


# --- run now --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("release_run_now_connections")
def test_run_now_reports_success_and_leaves_the_schedule(admin_client):
    store_job("quick")

    response = run_now(admin_client, "quick")

    [(level, text)] = run_messages(response)
    assert level == "success"
    assert "quick" in text and "Executed in" in text and re.search(r"\d\.\d\d s", text)
    execution = DjangoJobExecution.objects.get(job_id="quick")
    assert execution.status == DjangoJobExecution.SUCCESS
    assert DjangoJob.objects.get(pk="quick").next_run_time == FUTURE


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("release_run_now_connections")
def test_run_now_reports_the_error_escaped(admin_client):
    store_job("failing", func=jobfuncs.fail_with, args=(SCRIPT,))

    response = run_now(admin_client, "failing")

    [(level, text)] = run_messages(response)
    assert level == "error"
    assert "Error!" in text and f"ValueError: {ESCAPED_SCRIPT}" in text  # the message is HTML: a link to the execution
    execution_link = f'<a href="{change_url("djangojobexecution", DjangoJobExecution.objects.get(job_id="failing").pk)}">'
    assert execution_link + "Its execution and traceback</a>" in text
    html = response.content.decode()
    assert ESCAPED_SCRIPT in html and SCRIPT not in html

    execution = DjangoJobExecution.objects.get(job_id="failing")
    for url in (EXECUTIONS_URL, change_url("djangojobexecution", execution.pk)):
        html = admin_client.get(url).content.decode()
        assert ESCAPED_SCRIPT in html
        assert SCRIPT not in html


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("release_run_now_connections")
def test_run_now_names_the_jobs_still_pending_after_the_timeout(admin_client):
    store_job("slow", func=jobfuncs.sleep_for, args=(3,))
    store_job("quick")

    started = time.monotonic()
    with override_settings(APSCHEDULER_RUN_NOW_TIMEOUT=1):
        response = run_now(admin_client, "slow", "quick")
    waited = time.monotonic() - started

    found = run_messages(response)
    assert ("success", next(text for level, text in found if "quick" in text)) in found
    warnings = [text for level, text in found if level == "warning"]
    assert len(warnings) == 1
    assert "slow" in warnings[0] and "quick" not in warnings[0] and "1 seconds" in warnings[0]
    assert waited < 2.9  # it gave up at the timeout, without waiting for the job
    # The job finishes in the background and its result is still recorded.
    wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id="slow", status=DjangoJobExecution.SUCCESS).exists(),
        timeout=10,
        message="the late result of the slow job",
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("release_run_now_connections")
def test_run_now_of_a_job_deleted_meanwhile_says_so(admin_client):
    store_job("vanishing")
    DjangoJob.objects.filter(pk="vanishing").update(job_state=b"not a pickle")

    response = run_now(admin_client, "vanishing")

    [(level, text)] = run_messages(response)
    assert level == "error" and "vanishing" in text and "could not run" in text


@pytest.mark.django_db
def test_run_now_needs_the_change_permission(client):
    store_job("guarded")
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_djangojob"))
    client.force_login(viewer)

    page = client.get(JOBS_URL)
    assert page.status_code == 200
    assert "run_selected_jobs_now" not in page.content.decode()
    run_now(client, "guarded")
    assert not DjangoJobExecution.objects.exists()


# --- executions -----------------------------------------------------------------------------


@pytest.fixture
def history(db):
    """A small history over three jobs (one of them deleted), today and ten days ago."""
    store_job("alpha")
    store_job("beta")
    return {
        "alpha_ok": add_execution(
            "alpha", DjangoJobExecution.SUCCESS, ago=timedelta(minutes=5), duration=Decimal("1.25")
        ),
        "alpha_old": add_execution("alpha", DjangoJobExecution.MISSED, ago=timedelta(days=10)),
        "beta_error": add_execution(
            "beta",
            DjangoJobExecution.ERROR,
            ago=timedelta(minutes=10),
            duration=Decimal("0.50"),
            exception="ValueError: boom",
            traceback='Traceback (most recent call last):\n  File "jobs.py", line 3, in beta\nValueError: boom\n',
        ),
        "ghost_lost": add_execution("ghost", DjangoJobExecution.LOST, ago=timedelta(minutes=15)),
        "beta_running": add_execution("beta", DjangoJobExecution.SENT, ago=timedelta(seconds=1)),
    }


def ids_of(history, *names):
    return sorted(history[name].pk for name in names)


def test_execution_list_shows_coloured_statuses_and_durations(admin_client, history):
    html = admin_client.get(EXECUTIONS_URL).content.decode()

    assert "das-status-success" in row_containing(html, "Executed")
    assert "das-status-error" in row_containing(html, "Error!")
    assert "das-status-error" in row_containing(html, "Lost!")
    assert "das-status-skipped" in row_containing(html, "Missed!")
    assert "das-status-running" in row_containing(html, "Started execution")
    error_row = row_containing(html, "Error!")
    assert "0.50 s" in error_row and "ValueError: boom" in error_row
    assert get_local_dt_format(history["beta_error"].run_time) in error_row
    assert "1.25 s" in row_containing(html, "Executed")


def test_execution_list_does_not_query_per_row(admin_client, history):
    admin_client.get(EXECUTIONS_URL)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(EXECUTIONS_URL)
    for minutes in range(20, 50):
        add_execution("alpha", ago=timedelta(minutes=minutes), duration=Decimal("0.01"))
    with CaptureQueriesContext(connection) as many:
        admin_client.get(EXECUTIONS_URL)
    assert len(many) == len(few)


def test_execution_list_truncates_long_exceptions(admin_client, history):
    add_execution("alpha", DjangoJobExecution.ERROR, ago=timedelta(minutes=1), exception="RuntimeError: " + "x" * 500)
    html = admin_client.get(EXECUTIONS_URL).content.decode()
    row = row_containing(html, "RuntimeError")
    assert "x" * 80 in row and "x" * 200 not in row and "…" in row


def test_execution_filter_by_job_lists_history_job_ids(admin_client, history):
    response = admin_client.get(EXECUTIONS_URL)
    job_filter = next(spec for spec in response.context["cl"].filter_specs if spec.parameter_name == "job")
    assert [value for value, _label in job_filter.lookup_choices] == ["alpha", "beta", "ghost"]

    assert listed_ids(admin_client.get(EXECUTIONS_URL, {"job": "alpha"})) == ids_of(history, "alpha_ok", "alpha_old")
    assert listed_ids(admin_client.get(EXECUTIONS_URL, {"job": "ghost"})) == ids_of(history, "ghost_lost")


def test_execution_filter_by_status(admin_client, history):
    for status, expected in [
        (DjangoJobExecution.ERROR, ["beta_error"]),
        (DjangoJobExecution.MISSED, ["alpha_old"]),
        (DjangoJobExecution.LOST, ["ghost_lost"]),
    ]:
        response = admin_client.get(EXECUTIONS_URL, {"status__exact": status})
        assert listed_ids(response) == ids_of(history, *expected)


def test_execution_filter_by_run_time(admin_client, history):
    changelist = admin_client.get(EXECUTIONS_URL).context["cl"]
    run_time_filter = next(spec for spec in changelist.filter_specs if getattr(spec, "field_path", None) == "run_time")
    choices = {str(choice["display"]): choice["query_string"] for choice in run_time_filter.choices(changelist)}

    recent = admin_client.get(EXECUTIONS_URL + choices["Past 7 days"])

    assert listed_ids(recent) == ids_of(history, "alpha_ok", "beta_error", "ghost_lost", "beta_running")


def test_execution_search_by_job_id(admin_client, history):
    assert listed_ids(admin_client.get(EXECUTIONS_URL, {"q": "bet"})) == ids_of(history, "beta_error", "beta_running")
    assert listed_ids(admin_client.get(EXECUTIONS_URL, {"q": "ghost"})) == ids_of(history, "ghost_lost")


def test_execution_detail_shows_everything_read_only(admin_client, history):
    execution = history["beta_error"]
    url = change_url("djangojobexecution", execution.pk)

    html = admin_client.get(url).content.decode()

    assert re.search(r"<pre[^>]*>Traceback \(most recent call last\):\n.*ValueError: boom\n</pre>", html, flags=re.S)
    assert "0.50 s" in html and "Error!" in html
    assert f'href="{change_url("djangojob", "beta")}"' in html
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert admin_client.post(url, {"status": DjangoJobExecution.SUCCESS}).status_code == 403
    execution.refresh_from_db()
    assert execution.status == DjangoJobExecution.ERROR


def test_executions_cannot_be_added(admin_client, history):
    add_url = reverse("admin:django_apscheduler_djangojobexecution_add")
    assert add_url not in admin_client.get(EXECUTIONS_URL).content.decode()
    assert admin_client.get(add_url).status_code == 403
    assert admin_client.post(add_url, {"job": "alpha", "status": "Executed"}).status_code == 403


def test_executions_can_be_deleted(admin_client, history):
    execution = history["alpha_old"]
    response = admin_client.post(
        reverse("admin:django_apscheduler_djangojobexecution_delete", args=[execution.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not DjangoJobExecution.objects.filter(pk=execution.pk).exists()


# --- escaping -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_user_strings_are_escaped_everywhere(admin_client):
    job_id = f"job{SCRIPT}"
    store_job(job_id)
    execution = add_execution(
        job_id,
        DjangoJobExecution.ERROR,
        exception=f"ValueError: {SCRIPT}",
        traceback=f"Traceback (most recent call last):\nValueError: {SCRIPT}\n",
    )
    DjangoJob.objects.filter(pk=job_id).update(broken=True, broken_reason=f"ImportError: {SCRIPT}")

    for url in (
        JOBS_URL,
        change_url("djangojob", job_id),
        EXECUTIONS_URL,
        change_url("djangojobexecution", execution.pk),
    ):
        html = admin_client.get(url).content.decode()
        assert ESCAPED_SCRIPT in html, url
        assert SCRIPT not in html, url


# --- schedulers -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_scheduler_list_shows_who_is_alive(admin_client):
    now = dj_timezone.now()
    live = SchedulerInstance.objects.create(host="web-1", pid=101, version="1.0", started=now, last_heartbeat=now)
    SchedulerInstance.objects.create(
        host="web-2",
        pid=102,
        version="1.0",
        started=now - timedelta(hours=1),
        last_heartbeat=now - timedelta(minutes=5),
    )
    SchedulerInstance.objects.create(host="web-3", pid=103, started=now, last_heartbeat=now, stopped=now)

    html = admin_client.get(SCHEDULERS_URL).content.decode()

    assert 'alt="True"' in row_containing(html, "web-1")
    assert 'alt="False"' in row_containing(html, "web-2")
    assert 'alt="False"' in row_containing(html, "web-3")
    assert get_local_dt_format(live.last_heartbeat) in row_containing(html, "web-1")
    with override_settings(APSCHEDULER_HEARTBEAT_TIMEOUT=3600):
        assert is_alive(SchedulerInstance.objects.get(host="web-2"))


@pytest.mark.django_db
def test_schedulers_are_read_only(admin_client):
    now = dj_timezone.now()
    instance = SchedulerInstance.objects.create(host="web-1", pid=101, started=now, last_heartbeat=now)
    url = change_url("schedulerinstance", instance.pk)

    html = admin_client.get(url).content.decode()

    assert "web-1" in html and 'name="_save"' not in html
    assert admin_client.get(reverse("admin:django_apscheduler_schedulerinstance_add")).status_code == 403
    assert admin_client.post(url, {"host": "x", "pid": 1}).status_code == 403
    delete_url = reverse("admin:django_apscheduler_schedulerinstance_delete", args=[instance.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert SchedulerInstance.objects.filter(pk=instance.pk, host="web-1").exists()


# --- control-panel actions and columns ----------------------------------------------------


def job_action(client, action, *job_ids):
    return client.post(JOBS_URL, {"action": action, "_selected_action": list(job_ids)}, follow=True)


@pytest.mark.django_db
def test_list_shows_trigger_in_words_and_success_rate(admin_client):
    store_job("hourly")
    for status in (DjangoJobExecution.SUCCESS, DjangoJobExecution.SUCCESS, DjangoJobExecution.SUCCESS):
        add_execution("hourly", status, ago=timedelta(hours=len(DjangoJobExecution.objects.all()) + 1))
    add_execution("hourly", DjangoJobExecution.ERROR, ago=timedelta(minutes=5))
    row = row_containing(admin_client.get(JOBS_URL).content.decode(), "hourly")
    assert "Every hour" in row
    assert '<td class="field-job_name">-</td>' in row  # the name is the function's: not repeated
    assert "75% of 4" in row


@pytest.mark.django_db
def test_list_names_a_job_only_where_the_name_says_more(admin_client):
    job = build_job("named", FUTURE, IntervalTrigger(hours=1, timezone=UTC), name="Nightly export")
    DjangoJobStore().add_job(job)
    store_job("unnamed")
    html = admin_client.get(JOBS_URL).content.decode()
    assert '<td class="field-job_name">Nightly export</td>' in row_containing(html, ">named<")
    assert '<td class="field-job_name">-</td>' in row_containing(html, ">unnamed<")


@pytest.mark.django_db
def test_the_sort_indicator_is_on_next_run_the_order_of_the_rows(admin_client):
    store_job("later", next_run_time=FUTURE + timedelta(days=1))
    store_job("sooner")
    response = admin_client.get(JOBS_URL)
    cl = response.context["cl"]
    assert cl.get_ordering_field_columns() == {list(cl.list_display).index("next_run"): "asc"}
    assert listed_in_order(response) == ["sooner", "later"]
    html = response.content.decode()
    assert re.search(r'<th scope="col" class="sortable column-next_run sorted ascending', html)
    assert not re.search(r'<th scope="col" class="sortable column-id sorted', html)
    by_id = admin_client.get(JOBS_URL, {"o": "1"}).context["cl"]  # a click on a column still works
    assert by_id.get_ordering_field_columns() == {1: "asc"}


@pytest.mark.django_db
def test_pause_and_resume_actions(admin_client):
    store_job("a")
    store_job("b")
    response = job_action(admin_client, "pause_selected_jobs", "a", "b")
    assert ("success", "Paused 2 jobs: a, b.") in page_messages(response)
    assert set(DjangoJob.objects.values_list("next_run_time", flat=True)) == {None}
    response = job_action(admin_client, "resume_selected_jobs", "a")
    assert any("Resumed 1 job" in text for _level, text in page_messages(response))
    assert DjangoJob.objects.get(pk="a").next_run_time is not None
    assert DjangoJob.objects.get(pk="b").next_run_time is None


@pytest.mark.django_db
def test_view_only_staff_see_jobs_but_cannot_act(client):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_djangojob"))
    client.force_login(viewer)
    store_job("guarded")
    page = client.get(JOBS_URL)
    assert page.status_code == 200 and "guarded" in page.content.decode()
    form = page.context["action_form"]
    actions = dict(form.fields["action"].choices) if form else {}
    assert not {"run_selected_jobs_now", "pause_selected_jobs", "resume_selected_jobs"} & set(actions)
    job_action(client, "pause_selected_jobs", "guarded")
    assert DjangoJob.objects.get(pk="guarded").next_run_time is not None


@pytest.mark.django_db
def test_running_needs_its_own_permission(client):
    editor = User.objects.create_user("editor", password="pw", is_staff=True)
    editor.user_permissions.add(*Permission.objects.filter(codename__in=["view_djangojob", "change_djangojob"]))
    client.force_login(editor)
    store_job("guarded")
    actions = dict(client.get(JOBS_URL).context["action_form"].fields["action"].choices)
    assert "pause_selected_jobs" in actions and "run_selected_jobs_now" not in actions
    editor.user_permissions.add(Permission.objects.get(codename="run_djangojob"))
    editor = User.objects.get(pk=editor.pk)  # fresh permission cache
    client.force_login(editor)
    actions = dict(client.get(JOBS_URL).context["action_form"].fields["action"].choices)
    assert "run_selected_jobs_now" in actions


@pytest.mark.django_db
def test_schedulers_page_counts_running_executions(admin_client):
    now = dj_timezone.now()
    busy = SchedulerInstance.objects.create(host="busy-host", pid=7, started=now, last_heartbeat=now)
    DjangoJobExecution.objects.create(job_id="x", run_time=now, status=DjangoJobExecution.SENT, scheduler=busy)
    DjangoJobExecution.objects.create(job_id="y", run_time=now, status=DjangoJobExecution.SUCCESS, scheduler=busy)
    row = row_containing(admin_client.get(SCHEDULERS_URL).content.decode(), "busy-host")
    assert re.search(r'<td class="field-running">1</td>', row), row


@pytest.mark.django_db
def test_job_page_lists_its_recent_runs(admin_client):
    store_job("busy")
    for hours in range(1, 13):
        add_execution("busy", DjangoJobExecution.ERROR if hours == 1 else DjangoJobExecution.SUCCESS,
                      ago=timedelta(hours=hours), duration=Decimal("0.25"))
    html = admin_client.get(change_url("djangojob", "busy")).content.decode()
    recent = html[html.index("field-recent_runs"):]
    recent = recent[: recent.index("</table>")]
    assert recent.count("<tr>") == 10
    assert "Error!" in recent and "0.25 s" in recent


@pytest.mark.parametrize("job_id", ["a\nb", "a_2Fb", "users_24h", "../../../logout", "with space/and?query#frag"])
def test_an_execution_page_links_to_its_job_whatever_the_id(admin_client, job_id):
    import html
    import re

    from django.contrib.admin.utils import quote
    from django.urls import reverse

    DjangoJob.objects.create(id=job_id, job_state=b"")
    execution = DjangoJobExecution.objects.create(
        job_id=job_id, run_time=dj_timezone.now(), status=DjangoJobExecution.SUCCESS
    )
    page = admin_client.get(reverse("admin:django_apscheduler_djangojobexecution_change", args=[execution.pk]))
    assert page.status_code == 200
    job_url = reverse("admin:django_apscheduler_djangojob_change", args=[quote(job_id)])
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]*djangojob/[^"]*/change/)"', page.content.decode())]
    assert job_url in hrefs
    job_page = admin_client.get(job_url)
    assert job_page.status_code == 200
    assert html.escape(job_id) in job_page.content.decode()
