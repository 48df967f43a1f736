"""The original django-apscheduler quick-start runs unchanged against this package.

A throw-away project gets an app, listed after django_apscheduler, with the
``runapscheduler`` command users wrote from that quick-start. It must be that
command that runs (not one of ours), fire its 10-second job twice, and stop
cleanly on Ctrl+C (SIGINT).
"""

import signal
import subprocess
import sys
import textwrap

import pytest

from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests.helpers import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

USER_COMMAND = '''
import logging

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from django.conf import settings
from django.core.management.base import BaseCommand
from django_apscheduler import util
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJobExecution

logger = logging.getLogger(__name__)


def my_job():
    print("my_job ran", flush=True)


@util.close_old_connections
def delete_old_job_executions(max_age=604_800):
    DjangoJobExecution.objects.delete_old_job_executions(max_age)


class Command(BaseCommand):
    help = "Runs APScheduler."

    def handle(self, *args, **options):
        scheduler = BlockingScheduler(timezone=settings.TIME_ZONE)
        scheduler.add_jobstore(DjangoJobStore(), "default")

        scheduler.add_job(
            my_job,
            trigger=CronTrigger(second="*/10"),
            id="my_job",
            max_instances=1,
            replace_existing=True,
        )
        scheduler.add_job(
            delete_old_job_executions,
            trigger=CronTrigger(day_of_week="mon", hour="00", minute="00"),
            id="delete_old_job_executions",
            max_instances=1,
            replace_existing=True,
        )
        print("USER COMMAND STARTING", flush=True)
        try:
            scheduler.start()
        except KeyboardInterrupt:
            scheduler.shutdown()
            print("USER COMMAND STOPPED CLEANLY", flush=True)
'''


def write_project(root):
    app = root / "quickstart_app"
    (app / "management" / "commands").mkdir(parents=True)
    for package in (app, app / "management", app / "management" / "commands"):
        (package / "__init__.py").write_text("")
    (app / "management" / "commands" / "runapscheduler.py").write_text(USER_COMMAND)
    (root / "quickstart_settings.py").write_text(
        textwrap.dedent(
            """
            from tests.settings import *  # noqa: F401,F403 (database of the running test)

            INSTALLED_APPS = INSTALLED_APPS + ["quickstart_app"]  # after django_apscheduler
            """
        )
    )


def test_original_quickstart_command_runs_unchanged(tmp_path, subprocess_env):
    write_project(tmp_path)
    env = dict(subprocess_env)
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    env["DJANGO_SETTINGS_MODULE"] = "quickstart_settings"
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "runapscheduler"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: DjangoJobExecution.objects.filter(job_id="my_job", status=DjangoJobExecution.SUCCESS).count() >= 2,
            timeout=40,
            interval=0.5,
            message="my_job to fire twice",
        )
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert "USER COMMAND STARTING" in output, output  # the user's command, not ours, ran
    assert "USER COMMAND STOPPED CLEANLY" in output, output
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    assert output.count("my_job ran") >= 2
    rows = DjangoJobExecution.objects.filter(job_id="my_job")
    assert {row.status for row in rows} == {DjangoJobExecution.SUCCESS}
    assert all(row.run_time.second % 10 == 0 for row in rows)
    assert set(DjangoJob.objects.values_list("id", flat=True)) == {"my_job", "delete_old_job_executions"}
