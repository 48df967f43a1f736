"""Hand fires to a Celery worker fleet.

The scheduler only sends a message: ``send_task`` by name to the one trampoline
task that ``django_apscheduler.contrib.celery.register_tasks`` puts on the user's
Celery app, so the scheduler process needs neither the worker's task modules nor
the job's code imported. The worker's trampoline runs the stored job and records
its outcome in the fire's own execution row (``executors.worker.run_fire``).

Each message carries:

- a task id derived from (job, run time) (``FleetFire.task_id``): the same fire is
  always the same Celery task, so results, logs and Flower line up with the row;
- the ``periodic_task_name`` header (the job id), the header django-celery-beat
  sets and django-celery-results stores, so its ``TaskResult`` rows can be joined
  with this package's executions;
- ``django_apscheduler_job`` / ``django_apscheduler_run_time`` headers for
  anything else that inspects messages.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from .. import conf
from ..contrib.celery import TASK_NAME
from .handoff import FleetFire, HandOffExecutor

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["TASK_NAME", "CeleryExecutor", "load_app", "message_headers"]

logger = logging.getLogger("django_apscheduler.executors.celery")

# Seconds a sending thread waits for a free connection of the app's broker pool.
_ACQUIRE_TIMEOUT = 10.0


def load_app(spec: Celery | str | None = None) -> Celery:
    """The Celery app to send through.

    ``spec``: an app, or the dotted path of one ("proj.celery:app" or
    "proj.celery.app"); by default ``APSCHEDULER_CELERY_APP``, and without it
    Celery's current app, the one the project's ``celery.py`` created (Celery's
    Django layout imports it from the project package, so every process has it).
    """
    if spec is None:
        spec = conf.get("APSCHEDULER_CELERY_APP")
    if spec is None:
        from celery import current_app

        return current_app._get_current_object()
    if isinstance(spec, str):
        app = import_string(spec.replace(":", "."))
    else:
        app = spec
    from celery import Celery

    if not isinstance(app, Celery):
        raise TypeError(f"{spec!r} is a {type(app).__name__}, not a Celery app")
    return app


class CeleryExecutor(HandOffExecutor):
    """An APScheduler executor whose jobs run on Celery workers.

    Configured like the other hand-off executors, by alias in
    ``APSCHEDULER_EXECUTORS`` (``{"celery": {"type": "celery"}}``), or by hand:
    ``scheduler.add_executor(CeleryExecutor(), "celery")``; then
    ``add_job(..., executor="celery")``, or make it the default executor.

    ``queue``: the Celery queue of this executor's fires (None: the app's own
    routing, ``task_routes`` or ``task_default_queue``); to send some jobs to
    another queue, configure a second alias with that queue. ``backend`` (or
    ``app``): the Celery app, or its dotted path (default:
    ``APSCHEDULER_CELERY_APP``, else Celery's current app).
    """

    def __init__(
        self, queue: str | None = None, backend: str | None = None, app: Celery | str | None = None, **options: Any
    ) -> None:
        super().__init__(queue=queue, backend=backend, **options)
        self._app_spec: Celery | str | None = app if app is not None else backend
        self._app: Celery | None = None
        # One producer (a broker connection and channel) per sending thread, kept:
        # acquiring one from Celery's pool for every message halves the rate of a
        # burst, and producers are not thread-safe.
        self._local = threading.local()
        self._producers: dict[Any, threading.Thread] = {}  # each producer, and the thread that uses it
        self._producers_lock = threading.Lock()

    def start(self, scheduler: Any, alias: str) -> None:
        # Each sending thread holds one of the app's pooled broker connections: leave
        # at least half of the pool to the project's own tasks.
        limit = self.app.conf.broker_pool_limit
        if limit:
            self.sender_threads = max(1, min(type(self).sender_threads, limit // 2))
        super().start(scheduler, alias)

    @property
    def app(self) -> Celery:
        # Resolved on first use: the executor is often built from settings, before
        # the project's Celery module has been imported.
        if self._app is None:
            self._app = load_app(self._app_spec)
        return self._app

    def enqueue(self, fire: FleetFire) -> None:
        options: dict[str, Any] = {"queue": fire.queue} if fire.queue else {}
        producer = self._producer()
        try:
            self.app.send_task(
                TASK_NAME,
                args=[fire.job_id, fire.run_time_iso],
                task_id=fire.task_id,
                headers=message_headers(fire),
                producer=producer,
                **options,
            )
        except Exception:
            self._release(producer)  # this thread's next fire starts from a fresh connection
            raise

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)  # with wait, the sending threads have ended and released theirs
        # The producers of threads that are done with them: this one's (run now sends from
        # the caller's thread), and those of threads that ended. A sending thread still
        # at work (wait=False) releases its own as it ends.
        current = threading.current_thread()
        with self._producers_lock:
            done = [p for p, thread in self._producers.items() if thread is current or not thread.is_alive()]
        for producer in done:
            self._release(producer)

    def _sender_thread_ends(self) -> None:
        producer = getattr(self._local, "producer", None)
        if producer is not None:
            self._release(producer)

    def _producer(self) -> Any:
        """This thread's producer, acquired from the app's pool at its first fire.

        With a timeout: a pool used up by others fails the fire (Error!) instead of
        blocking the thread for ever.
        """
        producer = getattr(self._local, "producer", None)
        if producer is None:
            producer = self.app.producer_pool.acquire(block=True, timeout=_ACQUIRE_TIMEOUT)
            self._local.producer = producer
            with self._producers_lock:
                self._producers[producer] = threading.current_thread()
        return producer

    def _release(self, producer: Any) -> None:
        """Give a producer back to the pool, once (whichever thread asks)."""
        if getattr(self._local, "producer", None) is producer:
            self._local.producer = None
        with self._producers_lock:
            if self._producers.pop(producer, None) is None:
                return  # released already
        try:
            producer.release()
        except Exception:  # noqa: BLE001 -- a broken producer's release may fail too; it is dropped either way
            logger.debug("Could not release a Celery producer", exc_info=True)


def message_headers(fire: FleetFire) -> dict[str, str]:
    """The headers a fire's message carries (see the module's docstring)."""
    return {
        "periodic_task_name": fire.job_id,
        "django_apscheduler_job": fire.job_id,
        "django_apscheduler_run_time": fire.run_time.isoformat(),
    }
