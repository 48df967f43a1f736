"""Job functions for the tests: importable by their dotted path, as stored jobs require."""

import os
import time


def noop(*args, **kwargs):
    return "ok"


def sleep_for(seconds):
    time.sleep(seconds)


def wait_for_file(path, timeout=60.0, started=None):
    """Run until ``path`` exists (or ``timeout``): a job that is still running when a test wants.

    ``started``: a file created as the function begins, for the test to know it runs.
    """
    if started:
        open(started, "a").close()
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


def fail_with(message):
    raise ValueError(message)


class Greeter:
    greeting = "hello"

    def __init__(self, name="world"):
        self.name = name

    def greet(self):
        return f"{self.greeting} {self.name}"

    @classmethod
    def class_greet(cls):
        return cls.greeting


def record_call(path, label="x"):
    """Append one line to a file: lets a test count real executions across processes."""
    with open(path, "a") as handle:
        handle.write(f"{label}\n")


def record_call_time(path, label="x"):
    """Append "label epoch-seconds": when each real execution began."""
    with open(path, "a") as handle:
        handle.write(f"{label} {time.time()!r}\n")


_alternation = {}


def fail_every_other(label):
    """Succeeds, fails, succeeds, ... (per label): a job with some failures in its history."""
    count = _alternation[label] = _alternation.get(label, 0) + 1
    if count % 2 == 0:
        raise RuntimeError(f"{label} failed on call {count}")
    return count


def count_stored_jobs():
    """A job that uses the ORM, as most real jobs do."""
    from django_apscheduler.models import DjangoJob

    return DjangoJob.objects.count()


from apscheduler.triggers.base import BaseTrigger  # noqa: E402


class ExplodingTrigger(BaseTrigger):
    """A trigger whose next fire time cannot be computed: a broken plug-in or a bad edit."""

    def get_next_fire_time(self, previous_fire_time, now):
        raise RuntimeError("this trigger is broken")

    def __str__(self):
        return "exploding"


def delete_old_history(max_age=604_800):
    """The maintenance job of the original quick-start: deletes history older than ``max_age`` seconds."""
    from django_apscheduler.models import DjangoJobExecution

    return DjangoJobExecution.objects.delete_old_job_executions(max_age)
