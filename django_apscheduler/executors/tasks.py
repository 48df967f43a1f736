"""Handing fires to Django's tasks framework: ``django.tasks`` (Django 6+) or the ``django-tasks`` backport.

Task functions must be module-level and registered, so one task serves every job:
``run_scheduled_fire`` takes the job id and the fire time, and runs the stored
job (``worker.run_fire``). Configure an executor alias with ``"type": "tasks"``
in ``APSCHEDULER_EXECUTORS``, optionally naming the tasks backend (an alias of
the ``TASKS`` setting) and the queue; a worker of that backend (for the database
backend, ``manage.py db_worker``) then runs the fires.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from .handoff import FleetFire, HandOffExecutor
from .worker import run_fire

if find_spec("django.tasks") is not None:  # Django 6 and later
    from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, DEFAULT_TASK_QUEUE_NAME, task
else:
    try:
        from django_tasks import (  # type: ignore[no-redef,assignment,unused-ignore]
            DEFAULT_TASK_BACKEND_ALIAS,
            DEFAULT_TASK_QUEUE_NAME,
            task,
        )
    except ImportError as error:  # pragma: no cover - depends on what is installed
        raise ImportError(
            "The 'tasks' executor needs Django's tasks framework: Django 6 or later, or the "
            'django-tasks backport (pip install "django-apscheduler[tasks]").'
        ) from error

__all__ = ["DjangoTasksExecutor", "run_scheduled_fire"]


@task()
def run_scheduled_fire(job_id: str, run_time: str) -> str:
    """The trampoline: run the fire of ``job_id`` at ``run_time`` (ISO 8601) that a scheduler handed off."""
    return run_fire(job_id, run_time)


class DjangoTasksExecutor(HandOffExecutor):
    """Enqueues each fire as ``run_scheduled_fire`` on a Django tasks backend.

    :param backend: an alias of the ``TASKS`` setting (default: ``"default"``)
    :param queue: a queue that backend accepts (default: ``"default"``)
    :param priority: the tasks' priority, where the backend supports priorities
    """

    def __init__(self, queue: str | None = None, backend: str | None = None, **options: Any) -> None:
        super().__init__(queue=queue or DEFAULT_TASK_QUEUE_NAME, backend=backend or DEFAULT_TASK_BACKEND_ALIAS, **options)
        # Built (and so checked: the backend exists and takes the queue) now, when the
        # scheduler is configured, rather than at the first fire.
        self._task = run_scheduled_fire.using(backend=self.backend, queue_name=self.queue, **self._task_options())

    def _task_options(self) -> dict[str, Any]:
        unknown = set(self.options) - {"priority"}
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; the tasks executor takes queue, backend and priority")
        return {"priority": self.options["priority"]} if "priority" in self.options else {}

    def enqueue(self, fire: FleetFire) -> None:
        self._task.enqueue(fire.job_id, fire.run_time_iso)
