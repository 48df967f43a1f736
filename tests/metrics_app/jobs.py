"""Declared jobs for the metrics scrape test: one that succeeds and one that fails, every second."""

from django_apscheduler.registry import job


@job("interval", seconds=1, id="metrics/tick", misfire_grace_time=30)
def tick():
    return None


@job("interval", seconds=1, id="metrics/fails", misfire_grace_time=30)
def fails():
    raise RuntimeError("this job fails on purpose")
