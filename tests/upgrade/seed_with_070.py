"""Run by django-apscheduler 0.7.0's own environment: build and use a database the old way.

Usage: python seed_with_070.py FIRES_LOG SNAPSHOT_JSON

Migrates a fresh database, schedules jobs through 0.7.0's DjangoJobStore, lets a
scheduler run them until 0.7.0 itself has recorded executions (a few seconds), adds
execution rows of every status through 0.7.0's models, and writes a snapshot.
"""

import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import upgrade_snapshot

# The scheduler runs until it has recorded at least this many executions of each
# kind (a few seconds), or gives up after DEADLINE_SECONDS.
WANTED = {("interval_job", "Executed"): 2, ("cron_job", "Executed"): 1, ("failing_job", "Error!"): 1}
DEADLINE_SECONDS = 20


def main(fires_log, snapshot_path):
    upgrade_snapshot.setup_django()

    from apscheduler.schedulers.background import BackgroundScheduler
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)

    from django_apscheduler.jobstores import DjangoJobStore
    from django_apscheduler.models import DjangoJobExecution

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_jobstore(DjangoJobStore(), "default")
    scheduler.start()
    scheduler.add_job("upgrade_jobs:append_line", "interval", seconds=1, id="interval_job", args=[fires_log, "interval"])
    scheduler.add_job("upgrade_jobs:append_line", "cron", second="*/2", id="cron_job", args=[fires_log, "cron"])
    scheduler.add_job("upgrade_jobs:fail", "interval", seconds=2, id="failing_job", args=["boom <b>from</b> a job"])
    scheduler.add_job("upgrade_jobs:append_line", "interval", seconds=1, id="paused_job", args=[fires_log, "paused"])
    scheduler.pause_job("paused_job")
    in_an_hour = datetime.now(timezone.utc) + timedelta(hours=1)
    scheduler.add_job(
        "upgrade_jobs:append_line", "date", run_date=in_an_hour, id="date_job", args=[fires_log, "date"]
    )
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        time.sleep(0.5)
        recorded = {
            key: DjangoJobExecution.objects.filter(job_id=key[0], status=key[1]).count() for key in WANTED
        }
        if all(recorded[key] >= wanted for key, wanted in WANTED.items()):
            break
        if time.monotonic() > deadline or not scheduler.running:
            sys.exit(f"django-apscheduler 0.7.0 did not record the wanted executions: {recorded}")
    scheduler.shutdown(wait=True)

    # Rows of every status, with every field filled, in a past where the
    # scheduler above cannot have written (unique on job and run time).
    past = datetime(2021, 3, 4, 5, 6, 7, 890000, tzinfo=timezone.utc)
    DjangoJobExecution.objects.create(
        job_id="paused_job", status=DjangoJobExecution.SUCCESS, run_time=past,
        duration=Decimal("1.25"), finished=Decimal("1614834368.14"),
    )
    DjangoJobExecution.objects.create(
        job_id="paused_job", status=DjangoJobExecution.ERROR, run_time=past + timedelta(minutes=1),
        duration=Decimal("0.50"), finished=Decimal("1614834427.39"),
        exception="ValueError('<script>alert(1)</script> ünïcode')",
        traceback='Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: boom\n',
    )
    DjangoJobExecution.objects.create(
        job_id="date_job", status=DjangoJobExecution.SENT, run_time=past + timedelta(minutes=2)
    )
    DjangoJobExecution.objects.create(
        job_id="cron_job", status=DjangoJobExecution.MISSED, run_time=past + timedelta(minutes=3),
        exception="Run time was missed!",
    )
    DjangoJobExecution.objects.create(
        job_id="cron_job", status=DjangoJobExecution.MAX_INSTANCES, run_time=past + timedelta(minutes=4),
        exception="Maximum number of running instances reached",
    )

    upgrade_snapshot.write(snapshot_path, upgrade_snapshot.snapshot())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
