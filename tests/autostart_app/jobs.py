"""A declared job for the autostart tests: each real run appends a line to $AUTOSTART_LOG."""

import os

from django_apscheduler.registry import job
from tests.procs.scheduler_process import record


@job("interval", seconds=1, id="autostart.tick", misfire_grace_time=30)
def tick():
    record(os.environ["AUTOSTART_LOG"], "tick")
