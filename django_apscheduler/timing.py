"""Measuring when a job's function really starts and ends.

APScheduler reports a fire only when it is over, and its events carry the
scheduled time, not the start. Measuring ``finished - scheduled`` (what
django-apscheduler 0.7 did) counts queueing and scheduling lag as work. So the
job stores wrap each due job's function, in memory only, in a thin timer that
notes the wall-clock start and end of every call. The history listener picks the
timing up by (job id, scheduled run time).

APScheduler's executor calls the function once per run time that was not missed
(missed ones are skipped, and they are always the oldest), in order; the timer
mirrors that rule to know which run time each call belongs to.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from django.db import connections

from . import conf

# Completed timings waiting for their event. Bounded: a timing whose event never
# comes (the process is shutting down) must not grow memory for ever.
_MAX_PENDING = 10_000


class Timing(NamedTuple):
    started: datetime
    ended: datetime


class _Clock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timings: OrderedDict[tuple[str, datetime], Timing] = OrderedDict()

    def record(self, job_id: str, run_time: datetime, timing: Timing) -> None:
        with self._lock:
            self._timings[(job_id, run_time)] = timing
            while len(self._timings) > _MAX_PENDING:
                self._timings.popitem(last=False)

    def pop(self, job_id: str, run_time: datetime) -> Timing | None:
        with self._lock:
            return self._timings.pop((job_id, run_time), None)


clock = _Clock()


class _RunTimeTracker:
    """Tells which scheduled run time a call of the job's function belongs to."""

    def __init__(self, run_times: list[datetime], misfire_grace_time: float | None) -> None:
        self._pending = list(run_times)
        self._grace = None if misfire_grace_time is None else timedelta(seconds=misfire_grace_time)
        self._lock = threading.Lock()

    def next_run_time(self) -> datetime | None:
        now = datetime.now(timezone.utc)
        with self._lock:
            # Drop the run times the executor skipped as missed. The executor decided
            # a moment before us, so allow that moment: a run time that was just
            # within the grace time then may be just outside it now.
            while len(self._pending) > 1 and self._grace is not None:
                if now - self._pending[0] <= self._grace + timedelta(seconds=1):
                    break
                self._pending.pop(0)
            return self._pending.pop(0) if self._pending else None


# A connection idle for longer than this is checked (one round trip) before reuse.
_IDLE_CHECK_AFTER = 1.0


def connection_hygiene(check_idle: bool = True) -> None:
    """Drop this thread's database connections when broken or expired, as Django does per request.

    Job threads live for the scheduler's lifetime, outside Django's request cycle,
    which is what normally does this; a server-side timeout would otherwise surface
    as "server has gone away" in the next job. With ``CONN_MAX_AGE = 0`` (Django's
    default, meaning "one connection per request") a scheduler thread keeps its
    connection instead, because reconnecting for every fire costs more than most
    jobs (25 ms with MariaDB here); it is checked when it raised an error or sat idle
    for a few seconds, and replaced when the server closed it. A positive
    ``CONN_MAX_AGE`` recycles connections after that many seconds, as in Django.
    ``check_idle=False`` skips the idle check, for callers that retry a failed
    query on a fresh connection anyway (the heartbeat): one round trip saved.
    """
    if not conf.get("APSCHEDULER_CLOSE_OLD_CONNECTIONS"):
        return
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        # Never inside a transaction: the connection belongs to the code that opened it.
        if conn.in_atomic_block or conn.connection is None:
            continue
        if conn.settings_dict.get("CONN_MAX_AGE", 0) != 0:
            conn.close_if_unusable_or_obsolete()
            continue
        checked_at = getattr(conn, "_django_apscheduler_checked_at", 0.0)
        if conn.errors_occurred or (check_idle and now - checked_at > _IDLE_CHECK_AFTER):
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()
        conn._django_apscheduler_checked_at = now


def wrap_job_function(job: Any, run_times: list[datetime]) -> None:
    """Replace ``job.func`` (in memory only) with a timer around it.

    The stored job is untouched: APScheduler serializes ``func_ref``, not ``func``.
    Coroutine functions get a coroutine timer so the AsyncIO executor still awaits them.
    """
    func = job.func
    if getattr(func, "_django_apscheduler_timed", False):
        func = func.__wrapped__
    job_id = job.id
    tracker = _RunTimeTracker(run_times, job.misfire_grace_time)

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            connection_hygiene()
            run_time = tracker.next_run_time()
            started = datetime.now(timezone.utc)
            try:
                return await func(*args, **kwargs)
            finally:
                if run_time is not None:
                    clock.record(job_id, run_time, Timing(started, datetime.now(timezone.utc)))

    else:

        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            connection_hygiene()
            run_time = tracker.next_run_time()
            started = datetime.now(timezone.utc)
            try:
                return func(*args, **kwargs)
            finally:
                if run_time is not None:
                    clock.record(job_id, run_time, Timing(started, datetime.now(timezone.utc)))

    timed._django_apscheduler_timed = True  # type: ignore[attr-defined]
    job.func = timed


def strip_timer_frames(formatted_traceback: str | None) -> str | None:
    """Remove the timer's own frame from a traceback, so users see only their code."""
    if not formatted_traceback:
        return formatted_traceback
    marker = f'File "{__file__}"'
    kept: list[str] = []
    in_timer_frame = False
    for line in formatted_traceback.splitlines(keepends=True):
        if line.startswith("  File "):
            in_timer_frame = marker in line
        elif not line.startswith("    "):
            in_timer_frame = False
        if not in_timer_frame:
            kept.append(line)
    return "".join(kept)
