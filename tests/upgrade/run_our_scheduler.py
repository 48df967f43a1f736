"""Run by this package's environment: start a scheduler on the upgraded database.

Usage: python run_our_scheduler.py SECONDS RESULT_JSON

Loads the jobs 0.7.0 stored, runs them for SECONDS with this package's
DjangoJobStore, then writes what the scheduler saw and a snapshot of the database.
"""

import sys
import time

import upgrade_snapshot


def main(seconds, result_path):
    upgrade_snapshot.setup_django()

    from apscheduler.schedulers.background import BackgroundScheduler

    from django_apscheduler.jobstores import DjangoJobStore

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_jobstore(DjangoJobStore(), "default")
    scheduler.start()
    loaded = {
        job.id: {
            "func_ref": job.func_ref,
            "trigger": str(job.trigger),
            "next_run_time": None if job.next_run_time is None else job.next_run_time.isoformat(),
        }
        for job in scheduler.get_jobs()
    }
    time.sleep(seconds)
    scheduler.shutdown(wait=True)

    from django_apscheduler.models import DjangoJobExecution

    extra = list(
        DjangoJobExecution.objects.order_by("id").values("id", "job_id", "status", "started_at", "scheduler_id")
    )
    for row in extra:
        row["started_at"] = None if row["started_at"] is None else row["started_at"].isoformat()
    upgrade_snapshot.write(
        result_path, {"loaded_jobs": loaded, "new_columns": extra, "snapshot": upgrade_snapshot.snapshot()}
    )


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2])
