"""The worker side of ``executors.celery``: the trampoline task, on the project's Celery app.

In the project's ``celery.py``, after the app is created::

    from django_apscheduler.contrib.celery import register_tasks

    register_tasks(app)

Every Celery worker of that app can then run any job handed to it: the message
names only the job and the fire time, and the trampoline loads the stored job (its
function, arguments and options, from the database) and runs it through
``executors.worker.run_fire``, which records the start, the outcome and this
worker's host and pid in the fire's execution row. One task serves every job, so
adding a job never needs a worker deployment, only the job's code on the workers.

Importing this module needs neither Django set up nor the database: a worker
imports the project's ``celery.py`` before Celery's Django fix-up runs
``django.setup()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery, Task

__all__ = ["TASK_NAME", "register_tasks", "run_fire"]

#: The trampoline's name: stable, the one contract between the schedulers, which
#: send to it by name (``executors.celery``), and the workers.
TASK_NAME = "django_apscheduler.run_fire"


def run_fire(job_id: str, run_time_iso: str) -> str:
    """The trampoline's body: run one fire of a stored job on this worker."""
    from ..executors import worker  # Django models: imported once Django is set up

    return worker.run_fire(job_id, run_time_iso)


def register_tasks(app: Celery, **task_options: Any) -> Task:
    """Register the trampoline on ``app`` under ``TASK_NAME``; return the task.

    Calling it again returns the task already registered. ``task_options`` go to
    ``app.task`` (e.g. ``acks_late=True``; see the docs for what that changes:
    the trampoline never runs a fire twice either way).
    """
    # shared=False: on this app only; Celery's default would also put it, with these
    # options, on every app created later in the process.
    options: dict[str, Any] = {"name": TASK_NAME, "shared": False}
    options.update(task_options)
    return app.task(**options)(run_fire)
