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
