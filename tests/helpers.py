"""Small helpers shared by tests that run real schedulers."""

import time


def wait_until(condition, timeout=15.0, interval=0.05, message="condition"):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def build_job(job_id, next_run_time, trigger, func=None, scheduler=None, **options):
    """An APScheduler Job with every option set, as a scheduler would hand it to a job store."""
    from datetime import timezone

    from apscheduler.job import Job
    from apscheduler.schedulers.background import BackgroundScheduler

    from tests import jobfuncs

    values = dict(
        id=job_id,
        func=func or jobfuncs.noop,
        args=(),
        kwargs={},
        trigger=trigger,
        executor="default",
        name=None,
        misfire_grace_time=1,
        coalesce=False,
        max_instances=1,
        next_run_time=next_run_time,
    )
    values.update(options)
    return Job(scheduler or BackgroundScheduler(timezone=timezone.utc), **values)


def signed_pickle(value):
    """``value`` pickled and signed, as this package stores job state (a trusted row)."""
    import pickle

    from django_apscheduler import jobstate

    return jobstate.sign(pickle.dumps(value))


# The add-job form's fields as a browser posts them: an interval job of
# tests.jobfuncs.sleep_for, every 10 minutes. Tests override what they test.
ADD_JOB_FIELDS = {
    "function": "tests.jobfuncs:sleep_for",
    "job_id": "made-in-admin",
    "name": "",
    "args": "[1]",
    "kwargs": "{}",
    "kind": "interval",
    "crontab": "",
    "every": "10",
    "unit": "minutes",
    "run_date": "",
    "max_instances": "1",
    "misfire_grace_time": "",
}


def post_add_job(client, **fields):
    """Post the admin's add-job form with ``fields`` over ``ADD_JOB_FIELDS`` (values as text, as a browser sends them)."""
    from django.urls import reverse

    data = {**ADD_JOB_FIELDS, **{key: str(value) for key, value in fields.items()}}
    return client.post(reverse("admin:django_apscheduler_djangojob_add"), data)
