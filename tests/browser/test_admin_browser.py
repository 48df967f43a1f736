"""The admin in a real browser: Debian's Chromium driven by Playwright.

A live scheduler runs real jobs against the live test server's database; the
browser logs in, watches the jobs and their executions, checks that an exception
carrying HTML is shown as text (and never runs), and runs a job from the admin.
Screenshots of the pages go to docs/screenshots/ for the README.
"""

import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connections

from django_apscheduler.models import DjangoJobExecution
from tests import jobfuncs
from tests.helpers import wait_until

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SCRIPT = "<script>alert(1)</script>"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _browser_or_skip():
    if shutil.which(CHROMIUM) is None or pytest.importorskip("playwright") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is required under CI (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")


@pytest.fixture
def browser(monkeypatch):
    _browser_or_skip()
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test
    # makes between browser steps are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    return page


def log_in(page, base_url, username="admin", password="secret-pass"):
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


# The WCAG contrast ratio of each coloured status against the background it is shown on
# (the nearest ancestor with an opaque background).
CONTRASTS_JS = """
() => {
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const background = (element) => {
    for (let node = element; node; node = node.parentElement) {
      const color = rgb(getComputedStyle(node).backgroundColor);
      if (color.length < 4 || color[3] > 0) return color.slice(0, 3);
    }
    return [255, 255, 255];
  };
  return [...document.querySelectorAll('.das-status, .das-overdue, [class^="das-status-"]')].map((element) => {
    const [a, b] = [luminance(rgb(getComputedStyle(element).color)), luminance(background(element))];
    return {text: element.textContent.trim(), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)};
  });
}
"""


def test_watch_jobs_and_run_one_now(live_server, scheduler_factory, browser_page):
    # scheduler_factory before browser_page: the scheduler is shut down after the
    # browser's event loop has ended, on this thread's own database connection.
    page = browser_page
    User.objects.create_superuser("admin", "admin@example.com", "secret-pass")
    scheduler = scheduler_factory()
    scheduler.start()
    now = datetime.now(timezone.utc)
    scheduler.add_job(jobfuncs.noop, "interval", seconds=1, next_run_time=now, id="tick")
    scheduler.add_job(jobfuncs.fail_with, "date", run_date=now, args=[SCRIPT], id="xss")
    scheduler.add_job(jobfuncs.noop, "cron", hour=3, id="nightly")
    scheduler.add_job(jobfuncs.noop, "interval", hours=1, id="paused-one")
    scheduler.pause_job("paused-one")
    wait_until(lambda: DjangoJobExecution.objects.filter(job_id="xss").exclude(status=DjangoJobExecution.SENT).exists())
    wait_until(lambda: DjangoJobExecution.objects.filter(job_id="tick", status=DjangoJobExecution.SUCCESS).count() >= 2)

    log_in(page, live_server.url)

    page.goto(f"{live_server.url}/admin/django_apscheduler/djangojob/")
    table = page.inner_text("#result_list")
    for job_id in ("tick", "nightly", "paused-one"):
        assert job_id in table
    assert "paused" in table
    page.screenshot(path=str(SCREENSHOTS / "jobs.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/django_apscheduler/djangojobexecution/")
    table = page.inner_text("#result_list")
    assert "Executed" in table and "Error!" in table
    assert SCRIPT in table  # shown as text...
    page.screenshot(path=str(SCREENSHOTS / "executions.png"), full_page=True)

    page.click("#result_list tr:has-text('xss') a")
    detail = page.inner_text("#content")
    assert "Traceback" in detail or "fail_with" in detail
    assert SCRIPT in detail
    assert page.dialogs == []  # ...and never executed

    page.goto(f"{live_server.url}/admin/django_apscheduler/schedulerinstance/")
    assert "True" in page.inner_html("#result_list") or "icon-yes" in page.inner_html("#result_list")
    page.screenshot(path=str(SCREENSHOTS / "schedulers.png"), full_page=True)

    # Run a job now from the jobs page: the result is reported on the page.
    page.goto(f"{live_server.url}/admin/django_apscheduler/djangojob/")
    page.check("#result_list tr:has-text('nightly') input.action-select")
    page.select_option("select[name=action]", "run_selected_jobs_now")
    page.click("button[name=index]")
    message = page.inner_text("ul.messagelist")
    assert "nightly" in message and "Executed" in message
    runs = DjangoJobExecution.objects.filter(job_id="nightly", status=DjangoJobExecution.SUCCESS)
    assert runs.count() == 1
    page.goto(f"{live_server.url}/admin/django_apscheduler/djangojobexecution/?job=nightly")
    assert "Executed" in page.inner_text("#result_list tr:has-text('nightly')")  # the run appears
    # Its schedule is untouched: still the next 03:00.
    assert scheduler.get_job("nightly").next_run_time.hour == 3
    assert page.dialogs == []

    # Pause and resume from the list; the running scheduler obeys.
    page.goto(f"{live_server.url}/admin/django_apscheduler/djangojob/")
    page.check("#result_list tr:has-text('tick') input.action-select")
    page.select_option("select[name=action]", "pause_selected_jobs")
    page.click("button[name=index]")
    assert "Paused: tick." in page.inner_text("ul.messagelist")
    assert "paused" in page.inner_text("#result_list tr:has-text('tick')")
    paused_runs = DjangoJobExecution.objects.filter(job_id="tick").count()
    time.sleep(2.5)
    assert DjangoJobExecution.objects.filter(job_id="tick").count() <= paused_runs + 1
    # The pause is in the job's History, the admin's audit trail.
    page.goto(f"{live_server.url}/admin/django_apscheduler/djangojob/tick/history/")
    assert "Paused (its next run was" in page.inner_text("#content")
    page.goto(f"{live_server.url}/admin/django_apscheduler/djangojob/")
    page.check("#result_list tr:has-text('tick') input.action-select")
    page.select_option("select[name=action]", "resume_selected_jobs")
    page.click("button[name=index]")
    assert "resumed" in page.inner_text("ul.messagelist")

    # Change the nightly cron schedule to every minute: the next run changes, and
    # the live scheduler runs it at the new time.
    page.goto(f"{live_server.url}/admin/django_apscheduler/djangojob/nightly/change/")
    page.click("text=Edit schedule")
    page.check("input[name=kind][value=cron]")
    page.fill("input[name=crontab]", "* * * * *")
    page.screenshot(path=str(SCREENSHOTS / "edit-schedule.png"), full_page=True)
    page.click("input[name=_save]")
    assert "Every minute" in page.inner_text("ul.messagelist")
    page.goto(f"{live_server.url}/admin/django_apscheduler/djangojob/")
    assert "Every minute" in page.inner_text("#result_list tr:has-text('nightly')")
    next_minute = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
    scheduled = wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id="nightly", run_time__gte=next_minute).first(),
        timeout=90,
        interval=0.5,
        message="the nightly job to run at its new schedule",
    )
    assert scheduled.run_time == next_minute
    assert page.dialogs == []
    # The ORM calls above ran inside Playwright's event loop, on a connection of
    # their own (Django keeps one per async context): close it.
    connections.close_all()


FITS_JS = """
() => {
  const results = document.querySelector('#changelist .results');
  const visible = (selector) => [...document.querySelectorAll(selector)].every((cell) => {
    const box = cell.getBoundingClientRect();
    return box.width > 0 && box.left >= 0 && box.right <= window.innerWidth;
  });
  return {
    overflow: results.scrollWidth - results.clientWidth,
    essentials: visible('th.column-id, th.column-next_run, th.column-last_status, td.field-next_run, td.field-last_status'),
    hidden: [...document.querySelectorAll('th.column-trigger_words, th.column-job_name, th.column-runs')]
      .every((cell) => cell.getBoundingClientRect().width === 0),
  };
}
"""


def assert_jobs_list_fits(page, width):
    """At 1280 px every column fits without a scroll bar; at 390 px the essentials stay on screen."""
    fit = page.evaluate(FITS_JS)
    if width >= 1280:
        assert fit["overflow"] <= 0, fit
    else:
        assert fit["essentials"] and fit["hidden"], fit


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_scheduler_banner_and_readable_statuses_in_both_themes(live_server, browser, scheme):
    from apscheduler.triggers.interval import IntervalTrigger
    from django.utils import timezone as dj_timezone

    from django_apscheduler.jobstores import DjangoJobStore
    from tests.helpers import build_job

    User.objects.create_superuser("admin", "admin@example.com", "secret-pass")
    now = datetime.now(timezone.utc)
    store = DjangoJobStore()
    store.add_job(build_job("overdue", now - timedelta(minutes=10), IntervalTrigger(hours=1, timezone=timezone.utc)))
    store.add_job(build_job("broken-one", now + timedelta(hours=1), IntervalTrigger(hours=1, timezone=timezone.utc)))
    from django_apscheduler.models import DjangoJob

    DjangoJob.objects.filter(pk="broken-one").update(broken=True, broken_reason="ImportError: gone")
    for status in (DjangoJobExecution.SUCCESS, DjangoJobExecution.ERROR, DjangoJobExecution.MISSED, DjangoJobExecution.SENT):
        DjangoJobExecution.objects.create(job_id="overdue", status=status, run_time=dj_timezone.now() - timedelta(minutes=len(status)))

    for width in (1280, 390):
        context = browser.new_context(viewport={"width": width, "height": 800}, color_scheme=scheme)
        page = context.new_page()
        log_in(page, live_server.url)
        for path in ("djangojob/", "djangojobexecution/"):
            page.goto(f"{live_server.url}/admin/django_apscheduler/{path}")
            banner = page.locator(".apscheduler-health")
            assert banner.is_visible(), (scheme, width, path)
            assert "No scheduler has ever reported" in banner.inner_text()
            contrasts = page.evaluate(CONTRASTS_JS)
            assert len(contrasts) >= 3, contrasts  # overdue, statuses, broken
            low = [c for c in contrasts if c["ratio"] < 4.5]
            assert not low, (scheme, width, path, low)
            if path == "djangojob/":
                assert_jobs_list_fits(page, width)
            if width == 1280 and path == "djangojob/":
                page.screenshot(path=str(SCREENSHOTS / f"jobs-no-scheduler-{scheme}.png"), full_page=True)
        context.close()
    connections.close_all()
