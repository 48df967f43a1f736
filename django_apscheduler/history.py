"""Turning APScheduler's events into execution rows.

One row per (job, scheduled run time). It starts as "Started execution" (written
by the job store when it claims the fire, or here on submission for in-memory
jobs) and ends with a final status. Events can arrive in any order (a fast job's
"executed" event can beat the scheduler's "submitted" event), so a start never
overwrites a final status, and a final status creates the row if it is missing.
Every write is an UPDATE first and an INSERT only when nothing matched, guarded by
the (job, run_time) unique constraint: no IntegrityError or MultipleObjectsReturned
reaches the logs.
"""

from __future__ import annotations

import logging
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
from django.db import IntegrityError, transaction

from . import timing
from .database import run_with_retry
from .models import DjangoJobExecution
from .timezones import to_db

logger = logging.getLogger("django_apscheduler.history")

HISTORY_EVENTS = (
    EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
)

# Retries for history writes: bounded, because they run in executor threads and
# must not hold a worker for ever; the fire itself is already safe in the store.
_HISTORY_ATTEMPTS = 8
_MAX_REMEMBERED_FIRES = 100_000
_MAX_EXCEPTION_LENGTH = DjangoJobExecution._meta.get_field("exception").max_length


class HistoryRecorder:
    """An APScheduler listener that records the executions of one job store's jobs."""

    def __init__(self, jobstore_alias: str, scheduler_instance_id: int | None = None) -> None:
        self.jobstore_alias = jobstore_alias
        self.scheduler_instance_id = scheduler_instance_id
        # Fires whose "Started execution" row the job store already wrote when it
        # claimed them: their submission event needs no query, and must not write a
        # start row even when it arrives after the result (a fast job's "executed"
        # event can come first). Consumed by that submission (or refusal) event;
        # bounded in case an event never comes (ordered, oldest dropped first).
        self._already_recorded: dict[tuple[str, datetime], None] = {}
        # Jobs whose history keeps failures only (DjangoJob.history): a successful
        # fire's row is deleted instead of being marked Executed.
        self._failures_only: set[str] = set()

    def mark_recorded(self, job_id: str, run_times: Iterable[datetime], keep_successes: bool = True) -> None:
        for run_time in run_times:
            self._already_recorded[(job_id, run_time)] = None
        while len(self._already_recorded) > _MAX_REMEMBERED_FIRES:
            del self._already_recorded[next(iter(self._already_recorded))]
        if keep_successes:
            self._failures_only.discard(job_id)
        else:
            self._failures_only.add(job_id)

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
        missing = [
            run_time
            for run_time in event.scheduled_run_times
            if (event.job_id, run_time) not in self._already_recorded
        ]
        for run_time in event.scheduled_run_times:
            self._already_recorded.pop((event.job_id, run_time), None)
        for run_time in missing:
            run_with_retry(
                lambda run_time=run_time: _insert_if_absent(
                    event.job_id,
                    to_db(run_time),
                    status=DjangoJobExecution.SENT,
                    scheduler_id=self.scheduler_instance_id,
                ),
                "recording a job start",
                attempts=_HISTORY_ATTEMPTS,
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
        run_with_retry(
            lambda: _upsert_final(job_id, to_db(run_time), status=status, scheduler_id=self.scheduler_instance_id, **fields),
            "recording a job result",
            attempts=_HISTORY_ATTEMPTS,
        )


    def _forget(self, job_id: str, run_time: datetime) -> None:
        run_with_retry(
            lambda: DjangoJobExecution.objects.filter(job_id=job_id, run_time=to_db(run_time)).delete(),
            "dropping a successful run of a failures-only job",
            attempts=_HISTORY_ATTEMPTS,
        )


def _describe_exception(exception: BaseException | None) -> str:
    text = f"{type(exception).__name__}: {exception}" if exception is not None else ""
    if len(text) > _MAX_EXCEPTION_LENGTH:
        text = text[: _MAX_EXCEPTION_LENGTH - 1] + "…"
    return text


def _insert_if_absent(job_id: str, run_time: datetime, **fields: Any) -> None:
    if DjangoJobExecution.objects.filter(job_id=job_id, run_time=run_time).exists():
        return
    try:
        with transaction.atomic():
            DjangoJobExecution.objects.create(job_id=job_id, run_time=run_time, **fields)
    except IntegrityError:
        # Another thread recorded the same fire a moment ago: that row wins.
        pass


def _upsert_final(job_id: str, run_time: datetime, *, status: str, scheduler_id: int | None, **fields: Any) -> None:
    rows = DjangoJobExecution.objects.filter(job_id=job_id, run_time=run_time)
    if rows.update(status=status, **fields):
        return
    try:
        with transaction.atomic():
            DjangoJobExecution.objects.create(
                job_id=job_id, run_time=run_time, status=status, scheduler_id=scheduler_id, **fields
            )
    except IntegrityError:
        # The start was recorded between our UPDATE and INSERT: update it now.
        rows.update(status=status, **fields)


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
