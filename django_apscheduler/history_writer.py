"""Writing execution rows in batches, off the threads that run jobs.

A job's result used to be written by the worker thread that ran it: one statement
and one commit per fire, each commit waiting for the database to flush its log.
In a burst that wait, not the jobs, set the pace, and a worker busy writing is a
worker not starting the next due job. Instead, the history listener hands each
write to one writer thread per job store, which takes everything queued so far
and writes it in one transaction: one upsert for all results, whatever their
number. Under light load a batch holds one write and goes out at once; under
heavy load batches grow by themselves (group commit), so there is no delay to
tune.

Five kinds of write, applied in this order within a batch:

- ``start``: a "Started execution" row, inserted unless the fire already has a row
  (the row may already hold the fire's result: a start never overwrites one);
- ``final``: the fire's final status and fields, updating its row or creating it;
- ``forget``: delete the fire's row (a success of a failures-only job);
- ``sent``: note when a Queued fire was handed to the workers (``fires.hand_off``);
- ``unqueue``: end a fire that is still Queued with its final status (a hand-off
  that missed or failed); a worker may have started it meanwhile, then it is left.

The rows are unique on (job, run_time); every write is keyed by it.

If the database is unreachable, the writer retries with back-off and keeps the
queue: nothing is lost while the process lives. A fire whose result never gets
written (the process was killed) keeps its "Started" row, which live peers mark
as lost once this scheduler's heartbeat expires.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from django.db import DatabaseError, close_old_connections, connection, transaction

from .database import is_transient, run_with_retry
from .models import DjangoJobExecution

logger = logging.getLogger("django_apscheduler.history")

# At most this many writes go into one transaction: keeps transactions (and SQLite's
# write lock) short while a long queue drains.
MAX_BATCH = 500
# After the first write of a batch, how long to wait for more before writing: fires
# due together end together, and writing each as it comes would take the interpreter
# from the job threads still starting (one batch of 50 results instead of a dozen
# small ones). The writer sleeps through it rather than waking at each write: 50
# wake-ups while 50 fires start took as much of the interpreter from their threads.
# A flush or a stop ends the wait at once.
LINGER = 0.02
# On shutdown, how often to try writes that fail because the database is
# unreachable before giving up on them (the process is about to exit).
SHUTDOWN_ATTEMPTS = 5
# Tries of a write made in the caller's thread (no writer thread running): bounded,
# so a worker thread is not held for ever; the fire itself is already safe.
CALLER_THREAD_ATTEMPTS = 8


class Write(NamedTuple):
    kind: str  # "start", "final", "forget", "sent" or "unqueue"
    job_id: str
    run_time: datetime  # as stored (see timezones.to_db)
    fields: dict[str, Any]


def start(job_id: str, run_time: datetime, **fields: Any) -> Write:
    return Write("start", job_id, run_time, fields)


def final(job_id: str, run_time: datetime, **fields: Any) -> Write:
    return Write("final", job_id, run_time, fields)


def forget(job_id: str, run_time: datetime) -> Write:
    return Write("forget", job_id, run_time, {})


def sent(job_id: str, run_time: datetime, at: datetime) -> Write:
    return Write("sent", job_id, run_time, {"last_seen": at})


def unqueue(job_id: str, run_time: datetime, **fields: Any) -> Write:
    return Write("unqueue", job_id, run_time, fields)


_STOP = object()
_WHAT = "recording job history"


class HistoryWriter:
    """Applies history writes: in its own thread once started, else in the caller's thread."""

    def __init__(self, name: str = "django-apscheduler-history") -> None:
        self._name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        # Set by flush and stop: a batch being gathered is written without lingering.
        self._hurry = threading.Event()
        # The last batch was cut at MAX_BATCH: more is queued, take it without lingering.
        self._backlog = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        self._hurry.clear()
        self._backlog = False
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        # A BackgroundScheduler that nobody shuts down dies with the interpreter; its
        # last results are still queued here. atexit runs after the job threads ended.
        atexit.register(self.stop)

    def submit(self, write: Write) -> None:
        if self.running and not self._stopping:
            self._queue.put(write)
        else:
            run_with_retry(lambda: apply_writes([write]), _WHAT, attempts=CALLER_THREAD_ATTEMPTS)

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the thread."""
        thread = self._thread
        if thread is None:
            return
        atexit.unregister(self.stop)
        self._stopping = True
        self._queue.put(_STOP)
        self._hurry.set()
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("The history writer did not finish within %ss; some results may be unrecorded.", timeout)
            return
        self._thread = None
        # Writes submitted while the thread was ending: apply them here.
        leftovers = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, Write):
                leftovers.append(item)
            elif isinstance(item, threading.Event):
                item.set()
        if leftovers:
            self._write(leftovers)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every write submitted so far is applied; False if ``timeout`` ran out."""
        if not self.running:
            return True
        done = threading.Event()
        self._queue.put(done)
        self._hurry.set()
        return done.wait(timeout)

    # --- the writer thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                batch, markers, stop = self._take_batch(item)
                if batch:
                    self._write(batch)
                for marker in markers:
                    marker.set()
                if stop:
                    return
        finally:
            close_old_connections()

    def _take_batch(self, first: Any) -> tuple[list[Write], list[threading.Event], bool]:
        """``first`` plus whatever else came within LINGER, up to MAX_BATCH writes."""
        if isinstance(first, Write) and not self._stopping and not self._backlog:
            self._hurry.wait(LINGER)
        self._hurry.clear()
        self._backlog = False
        batch: list[Write] = []
        markers: list[threading.Event] = []
        item = first
        while True:
            if item is _STOP:
                return batch, markers, True
            if isinstance(item, threading.Event):
                markers.append(item)
            else:
                batch.append(item)
            if len(batch) >= MAX_BATCH:
                self._backlog = True
                return batch, markers, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, markers, False

    def _write(self, batch: list[Write]) -> None:
        try:
            self._apply_with_retries(batch)
        except DatabaseError as error:
            if is_transient(error):  # still unreachable, and the scheduler is stopping
                logger.error("Could not record %d job result(s) before shutdown: %s", len(batch), error)
            else:
                # One bad write must not cost the others theirs: apply them one by one.
                self._write_one_by_one(batch)
        except Exception:
            logger.exception("Could not record %d job result(s)", len(batch))

    def _apply_with_retries(self, writes: list[Write]) -> None:
        """Retry transient errors until the writes succeed; once stopping, only a few more times."""
        try:
            run_with_retry(lambda: apply_writes(writes), _WHAT, should_stop=lambda: self._stopping)
        except DatabaseError as error:
            if not (is_transient(error) and self._stopping):
                raise
            run_with_retry(lambda: apply_writes(writes), _WHAT, attempts=SHUTDOWN_ATTEMPTS)

    def _write_one_by_one(self, batch: list[Write]) -> None:
        for write in batch:
            try:
                self._apply_with_retries([write])
            except Exception:
                logger.exception("Could not record %s of job %r at %s", write.kind, write.job_id, write.run_time)


# --- applying writes ------------------------------------------------------------------


def apply_writes(writes: Iterable[Write]) -> None:
    """Apply writes in one transaction: starts, then finals, then deletions."""
    starts: dict[tuple[str, datetime], Write] = {}
    finals: dict[tuple[str, datetime], Write] = {}
    forgets: dict[tuple[str, datetime], Write] = {}
    sends: dict[tuple[str, datetime], Write] = {}
    unqueues: dict[tuple[str, datetime], Write] = {}
    for write in writes:
        key = (write.job_id, write.run_time)
        if write.kind == "sent":
            sends.setdefault(key, write)
        elif write.kind == "unqueue":
            unqueues.setdefault(key, write)
        elif write.kind == "start":
            starts.setdefault(key, write)
        elif write.kind == "final":
            forgets.pop(key, None)
            finals[key] = write  # a later result for the same fire wins
        else:
            finals.pop(key, None)
            forgets[key] = write
    with transaction.atomic():
        if starts:
            _insert_starts(starts.values())
        if finals:
            _upsert_finals(finals.values())
        if forgets:
            _delete_rows(forgets.keys())
        if sends:
            _note_sends(sends.values())
        for write in unqueues.values():
            _end_if_queued(write.job_id, write.run_time, write.fields)


def _row(write: Write) -> DjangoJobExecution:
    return DjangoJobExecution(job_id=write.job_id, run_time=write.run_time, **write.fields)


def _insert_starts(writes: Iterable[Write]) -> None:
    DjangoJobExecution.objects.bulk_create([_row(w) for w in writes], ignore_conflicts=True)


def _upsert_finals(writes: Iterable[Write]) -> None:
    # One upsert per set of fields: a result without timing (a missed fire) must not
    # blank another row's timing. "scheduler" is only written when a row is created:
    # the scheduler that claimed the fire stays recorded.
    by_fields: dict[tuple[str, ...], list[Write]] = {}
    for write in writes:
        by_fields.setdefault(tuple(sorted(write.fields)), []).append(write)
    for field_names, group in by_fields.items():
        DjangoJobExecution.objects.bulk_create(
            [_row(w) for w in group],
            update_conflicts=True,
            update_fields=[name for name in field_names if name != "scheduler_id"],
            **_conflict_target(),
        )


def _conflict_target() -> dict[str, Any]:
    # MySQL and MariaDB cannot name the conflicting unique key (ON DUPLICATE KEY
    # UPDATE applies to any); (job, run_time) is the only one a new row can hit.
    if connection.features.supports_update_conflicts_with_target:
        return {"unique_fields": ["job", "run_time"]}
    return {}


def _delete_rows(keys: Iterable[tuple[str, datetime]]) -> None:
    by_run_time: dict[datetime, list[str]] = {}
    for job_id, run_time in keys:
        by_run_time.setdefault(run_time, []).append(job_id)
    for run_time, job_ids in by_run_time.items():
        DjangoJobExecution.objects.filter(run_time=run_time, job_id__in=job_ids).delete()


def _end_if_queued(job_id: str, run_time: datetime, fields: dict[str, Any]) -> int:
    """Compare-and-set: end a fire that is still Queued; return 1 if it was."""
    return DjangoJobExecution.objects.filter(
        job_id=job_id, run_time=run_time, status=DjangoJobExecution.QUEUED
    ).update(**fields)


def _note_sends(writes: Iterable[Write]) -> None:
    # Only a fire still Queued and not noted yet: a worker may have started it already.
    # One UPDATE per run time: jobs due together share theirs.
    by_run_time: dict[datetime, list[str]] = {}
    moment: dict[datetime, datetime] = {}
    for write in writes:
        by_run_time.setdefault(write.run_time, []).append(write.job_id)
        moment[write.run_time] = write.fields["last_seen"]
    for run_time, job_ids in by_run_time.items():
        DjangoJobExecution.objects.filter(
            run_time=run_time, job_id__in=job_ids, status=DjangoJobExecution.QUEUED, last_seen__isnull=True
        ).update(last_seen=moment[run_time])
