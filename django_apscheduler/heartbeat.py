"""A running scheduler's life signs, and what it does for its peers.

Each scheduler that uses ``DjangoJobStore`` registers a ``SchedulerInstance`` row
and runs one small background thread that, every few seconds:

- refreshes its heartbeat;
- marks as "Lost!" the unfinished fires of schedulers whose heartbeat expired
  (they were killed, or their host died), so none stays "Started" for ever;
- asks the database for the earliest next run time (one indexed query) and wakes
  its scheduler when another process made a job due sooner than the scheduler
  planned to look: changes made elsewhere are obeyed without a restart. On
  PostgreSQL, notifications (``postgres.Listener``) do that at once; the thread
  then polls only with its heartbeats, and polls every interval again while the
  listening connection is down.

An idle scheduler costs its database what this thread does, so each of its ticks
is one statement: a poll is one SELECT, and a heartbeat is one UPDATE that is
written only if nothing needs the scheduler's attention (no job due sooner than
planned, no dead peer's unfinished fire). Only when something does, it takes a
closer look: writes the heartbeat, marks the lost fires and polls. On MySQL and
MariaDB, whose UPDATEs lock the rows their subqueries read, a heartbeat is always
that closer look, with the lost-fire check every half heartbeat timeout.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import close_old_connections
from django.db.models import Exists

from . import __version__, conf
from .database import run_with_retry, writes_read_subqueries_without_locks
from .models import DjangoJob, DjangoJobExecution, SchedulerInstance
from .timezones import to_db, utc_now
from .timing import connection_hygiene

logger = logging.getLogger("django_apscheduler.heartbeat")


def is_alive(instance: SchedulerInstance, now: datetime | None = None) -> bool:
    """Alive: not stopped, and its heartbeat is younger than the heartbeat timeout.

    The same rule peers use before they mark a scheduler's fires as lost.
    """
    if instance.stopped is not None:
        return False
    now = now or utc_now()
    return instance.last_heartbeat >= now - timedelta(seconds=float(conf.get("APSCHEDULER_HEARTBEAT_TIMEOUT")))


def alive_schedulers():
    """Schedulers that are running now, by the same rule as ``is_alive``."""
    cutoff = utc_now() - timedelta(seconds=float(conf.get("APSCHEDULER_HEARTBEAT_TIMEOUT")))
    return SchedulerInstance.objects.filter(stopped=None, last_heartbeat__gte=cutoff)


def register_scheduler() -> SchedulerInstance:
    now = utc_now()
    instance = run_with_retry(
        lambda: SchedulerInstance.objects.create(
            host=socket.gethostname()[:255],
            pid=os.getpid(),
            version=__version__,
            started=now,
            last_heartbeat=now,
        ),
        "registering the scheduler",
    )
    logger.info("Scheduler registered as %s (id %s)", instance, instance.pk)
    return instance


def mark_stopped(instance_id: int) -> None:
    SchedulerInstance.objects.filter(pk=instance_id).update(stopped=utc_now(), last_heartbeat=utc_now())


# Rows of schedulers gone for this long are deleted (their executions keep their
# history, without the link to the scheduler), so the table does not grow for ever.
DEAD_SCHEDULER_RETENTION = timedelta(days=7)
_PRUNE_EVERY = 3600.0  # seconds


def prune_dead_schedulers() -> int:
    """Delete scheduler rows silent for a week that have nothing left running."""
    cutoff = utc_now() - DEAD_SCHEDULER_RETENTION
    running = DjangoJobExecution.objects.filter(status=DjangoJobExecution.SENT).values("scheduler_id")
    deleted, _ = SchedulerInstance.objects.filter(last_heartbeat__lt=cutoff).exclude(pk__in=running).delete()
    if deleted:
        logger.info("Removed %d scheduler row(s) silent for over %s days", deleted, DEAD_SCHEDULER_RETENTION.days)
    return deleted


def enforce_history_retention() -> int:
    """Delete executions older than ``APSCHEDULER_HISTORY_RETENTION`` seconds, if set."""
    retention = conf.get("APSCHEDULER_HISTORY_RETENTION")
    if retention is None:
        return 0
    deleted = DjangoJobExecution.objects.delete_old_job_executions(int(retention))
    if deleted:
        logger.info("Deleted %d execution(s) older than APSCHEDULER_HISTORY_RETENTION (%ss)", deleted, retention)
    return deleted


def _dead_schedulers(timeout: float):
    return SchedulerInstance.objects.filter(last_heartbeat__lt=utc_now() - timedelta(seconds=timeout))


def _unfinished_fires_of_dead_schedulers(timeout: float):
    return DjangoJobExecution.objects.filter(status=DjangoJobExecution.SENT, scheduler__in=_dead_schedulers(timeout))


def mark_lost_executions(timeout: float) -> int:
    """Mark unfinished fires of dead schedulers as Lost!; return how many."""
    lost = _unfinished_fires_of_dead_schedulers(timeout).update(status=DjangoJobExecution.LOST)
    if lost:
        logger.warning(
            "Marked %d execution(s) as Lost!: their scheduler stopped sending heartbeats "
            "for over %ss (killed or crashed) before they finished.",
            lost,
            timeout,
        )
    return lost


def _jobs_due_before(moment: datetime | None) -> Exists:
    """Jobs that can run with a fire or run request before ``moment`` (None: at any time)."""
    jobs = DjangoJob.objects.filter(broken=False)
    if moment is None:
        return Exists(jobs.filter(next_run_time__isnull=False)) | Exists(jobs.filter(run_requested_at__isnull=False))
    moment = to_db(moment)
    return Exists(jobs.filter(next_run_time__lt=moment)) | Exists(jobs.filter(run_requested_at__lt=moment))


def beat_unless_needed(instance_id: int, planned_wakeup: datetime | None, timeout: float) -> bool:
    """Write the heartbeat, in one statement, unless something needs the scheduler.

    Something does when a job is due before the scheduler's ``planned_wakeup``
    (another process changed it) or a dead scheduler left unfinished fires. Returns
    whether the heartbeat was written; if not, the caller looks closer. Only where
    ``writes_read_subqueries_without_locks()``: elsewhere the subqueries would lock
    the jobs that claims lock.
    """
    needed = _jobs_due_before(planned_wakeup) | Exists(_unfinished_fires_of_dead_schedulers(timeout))
    return bool(SchedulerInstance.objects.filter(~needed, pk=instance_id).update(last_heartbeat=utc_now()))


class Heartbeat(threading.Thread):
    """The background thread described in the module docstring."""

    def __init__(
        self,
        instance_id: int,
        earliest_next_run_time: Callable[[], datetime | None],
        planned_wakeup: Callable[[], datetime | None],
        wake_scheduler: Callable[[], None],
        notifications_live: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(name="django-apscheduler-heartbeat", daemon=True)
        self.instance_id = instance_id
        self._earliest_next_run_time = earliest_next_run_time
        self._planned_wakeup = planned_wakeup
        self._wake_scheduler = wake_scheduler
        self._notifications_live = notifications_live
        self._stop_event = threading.Event()
        self._last_beat = 0.0
        self._last_lost_check = 0.0
        self._last_prune = 0.0

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.wait(self._tick_interval()):
            # No "is the connection alive?" ping first: that would double the idle
            # cost. A query on a dropped connection fails, and the retry reconnects.
            connection_hygiene(check_idle=False)
            try:
                if time.monotonic() - self._last_beat >= float(conf.get("APSCHEDULER_HEARTBEAT_INTERVAL")):
                    run_with_retry(self._beat, "sending the scheduler heartbeat", should_stop=self._stop_event.is_set)
                    self._last_beat = time.monotonic()
                elif not self._notifications_live():
                    run_with_retry(self._poll, "checking for job changes", should_stop=self._stop_event.is_set)
            except Exception:
                if self._stop_event.is_set():
                    break
                logger.exception("Heartbeat failed; trying again in %ss", self._tick_interval())
        close_old_connections()

    def _tick_interval(self) -> float:
        if self._notifications_live():
            return float(conf.get("APSCHEDULER_HEARTBEAT_INTERVAL"))
        return min(float(conf.get("APSCHEDULER_POLL_INTERVAL")), float(conf.get("APSCHEDULER_HEARTBEAT_INTERVAL")))

    def _beat(self) -> None:
        timeout = float(conf.get("APSCHEDULER_HEARTBEAT_TIMEOUT"))
        if writes_read_subqueries_without_locks():
            if not beat_unless_needed(self.instance_id, self._planned_wakeup(), timeout):
                self._beat_and_look(timeout, lost_check_due=True)
        else:
            # MySQL and MariaDB: separate statements, the lost-fire check every half timeout.
            self._beat_and_look(timeout, lost_check_due=time.monotonic() - self._last_lost_check >= timeout / 2)
        if time.monotonic() - self._last_prune >= _PRUNE_EVERY:
            prune_dead_schedulers()
            enforce_history_retention()
            self._last_prune = time.monotonic()

    def _beat_and_look(self, timeout: float, lost_check_due: bool) -> None:
        """The heartbeat, the lost-fire check and a poll, each its own statement."""
        SchedulerInstance.objects.filter(pk=self.instance_id).update(last_heartbeat=utc_now())
        if lost_check_due:
            mark_lost_executions(timeout)
            self._last_lost_check = time.monotonic()
        self._poll()

    def _poll(self) -> None:
        earliest = self._earliest_next_run_time()
        planned = self._planned_wakeup()
        if earliest is not None and (planned is None or earliest < planned):
            logger.debug("A job is due at %s, before the planned wake-up at %s: waking the scheduler", earliest, planned)
            self._wake_scheduler()
