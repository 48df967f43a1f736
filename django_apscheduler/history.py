"""Turning APScheduler's events into execution rows.

One row per (job, scheduled run time). It starts as "Started execution" (written
by the job store when it claims the fire, or here on submission for in-memory
jobs) and ends with a final status. Events can arrive in any order (a fast job's
"executed" event can beat the scheduler's "submitted" event), so a start never
overwrites a final status, and a final status creates the row if it is missing.
The writes themselves go through a ``HistoryWriter`` (see ``history_writer``),
which batches them in its own thread: the threads that run jobs never wait for
the database to record a result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    JobSubmissionEvent,
    SchedulerEvent,
)

from . import history_writer, timing
from .history_writer import HistoryWriter
from .models import DjangoJobExecution
from .timezones import to_db

logger = logging.getLogger("django_apscheduler.history")

HISTORY_EVENTS = (
    EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
)

_MAX_REMEMBERED_FIRES = 100_000
_MAX_EXCEPTION_LENGTH = DjangoJobExecution._meta.get_field("exception").max_length
_MISSING = object()


class HistoryRecorder:
    """An APScheduler listener that records the executions of one job store's jobs.

    ``start()`` gives it a writer thread (the job stores do); until then, and after
    ``stop()``, every write is made at once in the thread that reports the event.
    """

    def __init__(self, jobstore_alias: str, scheduler_instance_id: int | None = None) -> None:
        self.jobstore_alias = jobstore_alias
        self.scheduler_instance_id = scheduler_instance_id
        self.writer = HistoryWriter(f"django-apscheduler-history-{jobstore_alias}")
        # Fires whose "Started execution" row the job store already wrote when it
        # claimed them: their submission event writes nothing. (A start that does
        # reach the writer never overwrites a result, whichever event came first.)
        # Consumed by that submission (or refusal) event; bounded in case an event
        # never comes (ordered, oldest dropped first).
        self._already_recorded: dict[tuple[str, datetime], None] = {}
        self._remember_lock = threading.Lock()
        # Jobs whose history keeps failures only (DjangoJob.history): a successful
        # fire's row is deleted instead of being marked Executed.
        self._failures_only: set[str] = set()

    def start(self) -> None:
        self.writer.start()

    def stop(self) -> None:
        """Write every queued result, then stop the writer thread."""
        self.writer.stop()

    def mark_recorded(self, job_id: str, run_times: Iterable[datetime], keep_successes: bool = True) -> None:
        for run_time in run_times:
            self._remember((job_id, run_time))
        if keep_successes:
            self._failures_only.discard(job_id)
        else:
            self._failures_only.add(job_id)

    def _remember(self, key: tuple[str, datetime]) -> None:
        with self._remember_lock:
            self._already_recorded[key] = None
            while len(self._already_recorded) > _MAX_REMEMBERED_FIRES:
                del self._already_recorded[next(iter(self._already_recorded))]

    def __call__(self, event: SchedulerEvent) -> None:
        if getattr(event, "jobstore", None) != self.jobstore_alias:
            return
        try:
            self._record(event)
        except Exception:
            # A history write that failed after its retries must not disturb the
            # scheduler; the fire itself already happened.
            logger.exception("Could not record event %s of job %r", event, getattr(event, "job_id", None))
        if event.code != EVENT_JOB_SUBMITTED:
            # The fire is over in this (worker) thread: tidy its connection.
            timing.connection_hygiene()

    def _record(self, event: SchedulerEvent) -> None:
        if event.code == EVENT_JOB_SUBMITTED:
            self._record_started(event)
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            for run_time in event.scheduled_run_times:
                self._already_recorded.pop((event.job_id, run_time), None)
                self._finish(event.job_id, run_time, status=DjangoJobExecution.MAX_INSTANCES)
        elif event.code == EVENT_JOB_MISSED:
            self._finish(event.job_id, event.scheduled_run_time, status=DjangoJobExecution.MISSED)
        elif event.code in (EVENT_JOB_EXECUTED, EVENT_JOB_ERROR):
            self._record_outcome(event)

    def _record_started(self, event: JobSubmissionEvent) -> None:
        for run_time in event.scheduled_run_times:
            if self._already_recorded.pop((event.job_id, run_time), _MISSING) is _MISSING:
                self.writer.submit(
                    history_writer.start(
                        event.job_id, to_db(run_time), status=DjangoJobExecution.SENT, scheduler_id=self.scheduler_instance_id
                    )
                )

    def _record_outcome(self, event: JobExecutionEvent) -> None:
        measured = timing.clock.pop(event.job_id, event.scheduled_run_time)
        ended = measured.ended if measured else datetime.now(timezone.utc)
        fields: dict[str, Any] = {
            "finished": Decimal(f"{ended.timestamp():.2f}"),
            "started_at": to_db(measured.started) if measured else None,
            "duration": Decimal(f"{(ended - measured.started).total_seconds():.2f}") if measured else None,
        }
        if event.code == EVENT_JOB_ERROR:
            fields["exception"] = _describe_exception(event.exception)
            fields["traceback"] = timing.strip_timer_frames(event.traceback)
            status = DjangoJobExecution.ERROR
        elif event.job_id in self._failures_only:
            self._forget(event.job_id, event.scheduled_run_time)
            return
        else:
            status = DjangoJobExecution.SUCCESS
        self._finish(event.job_id, event.scheduled_run_time, status=status, **fields)

    def _finish(self, job_id: str, run_time: datetime, *, status: str, **fields: Any) -> None:
        self.writer.submit(
            history_writer.final(
                job_id, to_db(run_time), status=status, scheduler_id=self.scheduler_instance_id, **fields
            )
        )

    def _forget(self, job_id: str, run_time: datetime) -> None:
        self.writer.submit(history_writer.forget(job_id, to_db(run_time)))


def _describe_exception(exception: BaseException | None) -> str:
    text = f"{type(exception).__name__}: {exception}" if exception is not None else ""
    if len(text) > _MAX_EXCEPTION_LENGTH:
        text = text[: _MAX_EXCEPTION_LENGTH - 1] + "…"
    return text


def wait_for_results(execution_keys: list[tuple[str, datetime]], timeout: float, poll: float = 0.25) -> dict:
    """Wait until the given fires have a final status, or ``timeout`` seconds pass.

    Returns {(job_id, run_time): execution or None}; None or a non-final status
    means the fire is still pending.
    """
    deadline = time.monotonic() + timeout
    results: dict[tuple[str, datetime], DjangoJobExecution | None] = {key: None for key in execution_keys}
    while True:
        for key, execution in list(results.items()):
            if execution is not None and execution.status in DjangoJobExecution.FINAL_STATUSES:
                continue
            results[key] = DjangoJobExecution.objects.filter(job_id=key[0], run_time=key[1]).first()
        done = all(e is not None and e.status in DjangoJobExecution.FINAL_STATUSES for e in results.values())
        if done or time.monotonic() >= deadline:
            return results
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
