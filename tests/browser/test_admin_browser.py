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
    page.wait_for_load_state("load")  # the whole page, not the part parsed so far (a loaded machine)
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
    assert "Paused 1 job: tick." in page.inner_text("ul.messagelist")
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
    assert "Resumed 1 job: tick (next run " in page.inner_text("ul.messagelist")

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


# --- the forms, the job page and the messages (issue 14, points 3 and 4) --------------------

# The messages of the last action (not the health banner, which is a message list too).
MESSAGES = "ul.messagelist:not(.apscheduler-health)"

LAYOUT_JS = """
() => {
  const shown = (element) => element.getClientRects().length > 0;
  const kinds = {};
  for (const fieldset of document.querySelectorAll('fieldset[data-trigger-kind]')) {
    kinds[fieldset.dataset.triggerKind] = {
      shown: shown(fieldset),
      heading: fieldset.querySelector('h2').innerText.trim(),
      focusable: [...fieldset.querySelectorAll('input, select')].some((input) => !input.disabled && shown(input)),
    };
  }
  const label = document.querySelector('label[for="id_job_id"]').getBoundingClientRect();
  const input = document.querySelector('#id_job_id').getBoundingClientRect();
  return {
    aligned: document.querySelectorAll('form.das-schedule-form fieldset.module.aligned div.form-row').length,
    labelBeside: label.right <= input.left && Math.abs(label.top - input.top) < 20,
    labelAbove: label.bottom <= input.top + 2,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    kinds,
  };
}
"""


def _seed_forms_and_job_page(registry):
    """A declared function for the add form, a healthy job whose last run failed, a paused job."""
    from apscheduler.triggers.interval import IntervalTrigger
    from django.utils import timezone as dj_timezone

    from django_apscheduler.jobstores import DjangoJobStore
    from django_apscheduler.models import DjangoJob
    from tests.helpers import build_job

    registry.job("interval", hours=1, args=[1])(jobfuncs.sleep_for)
    User.objects.create_superuser("admin", "admin@example.com", "secret-pass")
    now = datetime.now(timezone.utc)
    store = DjangoJobStore()
    store.add_job(build_job("report", now + timedelta(hours=1), IntervalTrigger(seconds=15, timezone=timezone.utc), misfire_grace_time=None))
    store.add_job(build_job("resting", now + timedelta(hours=1), IntervalTrigger(hours=1, timezone=timezone.utc)))
    DjangoJob.objects.filter(pk="resting").update(next_run_time=None)
    DjangoJobExecution.objects.create(job_id="report", status=DjangoJobExecution.SUCCESS, run_time=dj_timezone.now() - timedelta(minutes=2))
    return DjangoJobExecution.objects.create(
        job_id="report",
        status=DjangoJobExecution.ERROR,
        run_time=dj_timezone.now() - timedelta(minutes=1),
        exception="ValueError: the report failed",
        traceback='Traceback (most recent call last):\n  File "reports.py", line 3\nValueError: the report failed',
    )


def _session(browser, base_url):
    """A logged-in session's cookies, so that each browser context starts on the page it tests."""
    context = browser.new_context()
    log_in(context.new_page(), base_url)
    state = context.storage_state()
    context.close()
    return state


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_forms_job_page_and_messages(live_server, browser, isolated_registry, scheme, width):
    failed = _seed_forms_and_job_page(isolated_registry)
    base = f"{live_server.url}/admin/django_apscheduler/djangojob"
    session = _session(browser, live_server.url)

    where = (scheme, width)
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme, storage_state=session)
    page = context.new_page()

    # The add form: aligned rows, only the chosen kind's fields shown and in the tab order.
    page.goto(f"{base}/add/")
    layout = page.evaluate(LAYOUT_JS)
    assert layout["aligned"] >= 10, (where, layout)
    assert layout["labelBeside"] if width >= 1280 else layout["labelAbove"], (where, layout)
    assert layout["overflow"] <= 0, (where, layout)
    assert {kind: (v["shown"], v["focusable"]) for kind, v in layout["kinds"].items()} == {
        "cron": (True, True),
        "interval": (False, False),
        "date": (False, False),
    }, where
    assert page.is_checked("#id_coalesce") and page.input_value("#id_misfire_grace_time") == "1"  # @job's defaults
    page.check("input[name=kind][value=interval]")
    kinds = page.evaluate(LAYOUT_JS)["kinds"]
    assert [kind for kind, v in kinds.items() if v["shown"] and v["focusable"]] == ["interval"], where

    # Preview: five run times, nothing created.
    page.check("input[name=kind][value=cron]")
    page.fill("#id_args", "[1]")
    page.fill("#id_crontab", "*/10 * * * *")
    page.click("input[name=_preview]")
    runs = page.locator(".das-preview li")
    assert runs.count() == 5, where
    assert "Please correct" not in page.inner_text("#content")
    assert page.evaluate(LAYOUT_JS)["kinds"]["cron"]["shown"]  # the posted kind stays chosen
    if width == 1280 and scheme == "light":
        page.screenshot(path=str(SCREENSHOTS / "add-job-preview.png"), full_page=True)

    # Errors: summarised, and the focus on the first field (in page order) with one.
    page.fill("#id_job_id", "")
    page.fill("#id_args", "not json")
    page.click("input[name=_save]")
    assert page.locator("p.errornote").inner_text() == "Please correct the errors below.", where
    assert page.evaluate("() => document.activeElement.id") == "id_job_id", where
    if width == 1280 and scheme == "light":
        page.screenshot(path=str(SCREENSHOTS / "add-job-errors.png"), full_page=True)

    # The job page in words; Last status leads to the execution and its traceback.
    page.goto(f"{base}/report/change/")
    content = page.inner_text("#content")
    assert "Every 15 seconds" in content and "interval[" not in content, where
    assert "None" not in content and "Broken" not in content, where
    assert "runs however late" in content
    assert page.locator("a.historylink").inner_text().lower() == "change history"
    if width == 1280:
        page.screenshot(path=str(SCREENSHOTS / f"job-page-{scheme}.png"), full_page=True)
    page.click(".field-last_status a")
    assert page.url.endswith(f"/djangojobexecution/{failed.pk}/change/"), where
    assert "ValueError: the report failed" in page.inner_text(".field-traceback_block"), where

    # Messages: pausing a paused job says so; resuming names the job and its next run.
    page.goto(f"{base}/")
    page.check("#result_list tr:has-text('resting') input.action-select")
    page.select_option("select[name=action]", "pause_selected_jobs")
    page.click("button[name=index]")
    assert page.inner_text(MESSAGES) == "1 job was paused already and is left as it was: resting.", where
    page.check("#result_list tr:has-text('resting') input.action-select")
    page.select_option("select[name=action]", "resume_selected_jobs")
    page.click("button[name=index]")
    assert page.inner_text(MESSAGES).startswith("Resumed 1 job: resting (next run "), where
    low = [c for c in page.evaluate(CONTRASTS_JS) if c["ratio"] < 4.5]
    assert not low, (where, low)
    context.close()

    # Without JavaScript: every kind shows under its heading; the chosen kind's fields are the ones used.
    context = browser.new_context(
        viewport={"width": width, "height": 900}, color_scheme=scheme, java_script_enabled=False, storage_state=session
    )
    page = context.new_page()
    page.goto(f"{base}/add/")
    kinds = page.evaluate(LAYOUT_JS)["kinds"]
    assert {kind: v["heading"] for kind, v in kinds.items() if v["shown"] and v["focusable"]} == {
        "cron": "Cron (a crontab line)",
        "interval": "Interval",
        "date": "Once, at a date",
    }, where
    job_id = f"no-js-{scheme}-{width}"
    page.fill("#id_job_id", job_id)
    page.fill("#id_args", "[1]")
    page.check("input[name=kind][value=interval]")
    page.fill("#id_crontab", "left over from another kind")
    page.fill("#id_every", "5")
    page.click("input[name=_save]")
    assert page.url.endswith("/djangojob/"), where
    assert f"Job “{job_id}” created: Every 5 minutes" in page.inner_text(MESSAGES), where
    context.close()
    connections.close_all()


# --- a list whose filter matches more jobs than it counts (JobPaginator.COUNT_UP_TO) ----------


@pytest.mark.parametrize(("scheme", "width"), [("light", 1280), ("dark", 390)])
def test_a_capped_list_says_more_than_and_select_all_acts_on_every_match(live_server, browser, monkeypatch, scheme, width):
    from apscheduler.triggers.interval import IntervalTrigger
    from django.contrib.admin import site

    from django_apscheduler.admin.joblist import JobPaginator
    from django_apscheduler.jobstores import DjangoJobStore
    from django_apscheduler.models import DjangoJob
    from tests.helpers import build_job

    # As a cap of 10,000 with pages of 100; the live server runs in this process.
    monkeypatch.setattr(JobPaginator, "COUNT_UP_TO", 3)
    monkeypatch.setattr(site._registry[DjangoJob], "list_per_page", 2)
    User.objects.create_superuser("admin", "admin@example.com", "secret-pass")
    store = DjangoJobStore()
    later = datetime.now(timezone.utc) + timedelta(days=1)
    for index in range(5):
        store.add_job(build_job(f"job-{index}", later, IntervalTrigger(hours=1, timezone=timezone.utc)))

    context = browser.new_context(viewport={"width": width, "height": 800}, color_scheme=scheme)
    page = context.new_page()
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/django_apscheduler/djangojob/?state=active")
    assert "more than 3 jobs" in page.locator("p.paginator").inner_text()
    page.check("#action-toggle")
    question = page.locator(".actions .question")
    assert question.is_visible() and "Select all matching jobs (more than 3)" in question.inner_text()
    question.locator("a").click()
    assert "All matching jobs selected (more than 3)" in page.locator(".actions .all").inner_text()
    page.select_option("select[name=action]", "pause_selected_jobs")
    page.click(".actions button[name=index]")
    page.wait_for_selector(MESSAGES)
    assert "Paused 5 jobs" in page.locator(MESSAGES).inner_text()
    assert not DjangoJob.objects.filter(next_run_time__isnull=False).exists()
    context.close()
    connections.close_all()
