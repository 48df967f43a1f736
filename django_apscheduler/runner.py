"""Running a dedicated scheduler process: what ``manage.py apscheduler start`` does."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from django.conf import settings

from . import registry
from .database import ensure_schema_ready
from .executors import configured_executors
from .jobstores import DjangoJobStore

logger = logging.getLogger("django_apscheduler.runner")


def build_scheduler(max_workers: int = 10) -> BlockingScheduler:
    """A BlockingScheduler in the project's time zone with DjangoJobStore as its default store.

    Its executors are the settings' (``executors.configured_executors``): a thread
    pool of ``max_workers`` threads, and the aliases that hand fires to workers.
    """
    return BlockingScheduler(
        timezone=settings.TIME_ZONE,
        jobstores={"default": DjangoJobStore()},
        executors=configured_executors(max_workers),
    )


def run_scheduler(max_workers: int = 10) -> None:
    """Start a scheduler with the declared jobs; return after a graceful stop.

    SIGTERM and SIGINT (Ctrl+C) stop it: no new fires are started, running jobs
    are allowed to finish, then the process exits.
    """
    ensure_schema_ready()
    registry.autodiscover()
    scheduler = build_scheduler(max_workers)
    registry.sync_when_started(scheduler)
    _stop_on_signals(scheduler)
    logger.info(
        "Starting scheduler: %d declared job(s), time zone %s, %d worker thread(s). Stop with Ctrl+C or SIGTERM.",
        len(registry.declared_jobs()),
        scheduler.timezone,
        max_workers,
    )
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        _shutdown(scheduler, "interrupted")
    logger.info("Scheduler stopped.")


def _stop_on_signals(scheduler: BlockingScheduler) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        # Shut down from another thread: the signal handler runs in the main thread,
        # which is the scheduler's loop, and must return for the loop to end.
        name = signal.Signals(signum).name
        threading.Thread(target=_shutdown, args=(scheduler, name), name="django-apscheduler-stop").start()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _shutdown(scheduler: BlockingScheduler, reason: str) -> None:
    if not scheduler.running:
        return
    logger.info("Stopping scheduler (%s): waiting for running jobs to finish…", reason)
    scheduler.shutdown(wait=True)
