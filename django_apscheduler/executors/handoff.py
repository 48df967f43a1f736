"""The scheduler's side of a worker fleet: an APScheduler executor that sends fires instead of running them.

APScheduler 3 hands each due job to its executor (``submit_job``); the executors
it ships run the function in a thread or process pool of the scheduler. A
``HandOffExecutor`` instead sends every fire, as a small message naming the job
and the fire time (``FleetFire``), to a worker fleet the project already runs
(Django tasks, Celery). The worker loads the job from the database and runs it
(``executors.worker``).

Everything that happens to the fire's row is ``fires``' business: the claim has
written it "Queued" and committed before ``submit_job`` is called, and
``fires.hand_off`` calls ``enqueue`` once per fire. A subclass only says how to
enqueue.

The sends happen in the executor's own thread (``_Sender``), not in the
scheduler's loop that called ``submit_job``: the loop goes back to claiming while
the fires are sent (a burst is claimed and sent at once, not one after the
other), a broker that is slow to answer holds up no other executor's jobs, and on
an ``AsyncIOScheduler`` nothing of the hand-off (a database-backed queue is a
query) runs on the event loop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from django.db import connections

from .. import fires, history_writer
from ..asyncio_support import off_the_loop
from ..database import connection_hygiene

if TYPE_CHECKING:
    from ..jobstores import DjangoJobStore

__all__ = ["FleetFire", "HandOffExecutor", "SendingPaused", "task_id_for"]

logger = logging.getLogger("django_apscheduler.executors")

# uuid5 namespace of the task ids: fixed, so every scheduler derives the same id.
_TASK_ID_NAMESPACE = uuid.UUID("6f1c3d2e-4a8b-5c7d-9e0f-a1b2c3d4e5f6")


def task_id_for(job_id: str, run_time: datetime) -> str:
    """The same id for the same fire, whichever process computes it (brokers can drop duplicates)."""
    moment = run_time.astimezone(timezone.utc).isoformat()
    return str(uuid.uuid5(_TASK_ID_NAMESPACE, f"{job_id}\n{moment}"))


@dataclass(frozen=True)
class FleetFire:
    """One fire to send to the workers: all a message needs."""

    job_id: str
    run_time: datetime  # aware, UTC
    task_id: str  # deterministic per (job id, run time): see task_id_for
    job_name: str
    queue: str | None
    backend: str | None

    @property
    def run_time_iso(self) -> str:
        """The fire time as the worker's ``run_fire`` takes it."""
        return self.run_time.isoformat()

    @classmethod
    def of(cls, job: Job, run_time: datetime, *, queue: str | None = None, backend: str | None = None) -> FleetFire:
        moment = run_time.astimezone(timezone.utc)
        return cls(job.id, moment, task_id_for(job.id, moment), job.name or job.id, queue, backend)


class SendingPaused(Exception):
    """Not sent: the last send through this executor failed a moment ago (see ``HandOffExecutor``)."""

    # A known cause, already logged with its traceback when the pause began: the
    # fire's own log line needs none (``fires.hand_off``).
    needs_traceback = False


class HandOffExecutor(BaseExecutor):
    """Sends each claimed fire to a worker fleet; subclasses implement ``enqueue``.

    :param queue: the queue to send fires to (the backend's default when None)
    :param backend: the backend (or broker app) to send through, where the
        worker system has several (its default when None)

    Other keyword arguments are kept in ``options`` for subclasses. To send some
    jobs elsewhere, configure one more alias with another queue or backend and
    give those jobs that executor.

    Sends run in ``sender_threads`` threads of the executor's own, never in the
    scheduler's loop. When one fails (the broker is down, or times out), the
    executor pauses: for ``first_pause`` seconds, doubling at each further failure
    up to ``max_pause``, its fires end Error! at once without a try, so an
    unreachable broker costs one failed send per pause instead of one per fire.
    Only a send begun after the pause was set counts: sends already under way
    when it began neither lengthen nor end it. The first send after a pause is a
    real try; one that succeeds ends the pause.
    """

    # What ``fires`` asks to tell these executors from in-process ones.
    hands_off_fires = True
    first_pause = 1.0
    max_pause = 30.0
    # Threads sending at once: a send is mostly a wait for the broker's answer (or
    # the queue's INSERT and commit), and several waits overlap. Fires of one claim
    # of a job are sent by one thread, in order.
    sender_threads = 4

    def __init__(self, queue: str | None = None, backend: str | None = None, **options: Any) -> None:
        super().__init__()
        self.queue = queue
        self.backend = backend
        self.options = options
        self._pause_lock = threading.Lock()
        self._pause = 0.0  # seconds; 0: sending normally
        self._paused_until = 0.0  # time.monotonic()
        self._last_failure = ""
        # Counts the changes of pause: a send's outcome counts only if none happened since it began.
        self._pause_epoch = 0
        self.alias: str | None = None
        self._sender: _Sender | None = None

    def start(self, scheduler: Any, alias: str) -> None:
        """Started by the scheduler under ``alias`` (named in this executor's log lines)."""
        super().start(scheduler, alias)
        self.alias = alias
        self._sender = _Sender(self, f"django-apscheduler-send-{alias}", self.sender_threads)

    def shutdown(self, wait: bool = True) -> None:
        """Stop sending; with ``wait``, once every fire submitted so far is sent (or has ended Error!)."""
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.stop(wait)
        super().shutdown(wait)

    @abstractmethod
    def enqueue(self, fire: FleetFire) -> None:
        """Send one fire to the workers; raise if it could not be sent (the fire then ends Error!)."""

    def send(self, fire: FleetFire) -> None:
        """``enqueue`` the fire, unless a recent failure paused this executor (then raise ``SendingPaused``)."""
        with self._pause_lock:
            wait = self._paused_until - time.monotonic()
            if wait > 0:
                raise SendingPaused(
                    f"sending through this executor is paused for {wait:.1f} s more after a failed send "
                    f"({self._last_failure})"
                )
            epoch = self._pause_epoch
        try:
            self.enqueue(fire)
        except Exception as error:
            self._note_failure(error, epoch)
            raise
        if self._pause:
            self._note_success(epoch)

    def _note_failure(self, error: Exception, epoch: int) -> None:
        with self._pause_lock:
            if epoch != self._pause_epoch:
                return  # begun before the current pause: that failure is already counted
            self._pause_epoch += 1
            self._pause = min(self.max_pause, self._pause * 2 if self._pause else self.first_pause)
            self._paused_until = time.monotonic() + self._pause
            self._last_failure = f"{type(error).__name__}: {error}"[:300]
            pause = self._pause
        logger.warning(
            "Sending a fire through executor %r failed (%s). Its fires end Error! without a try for the next %g s; "
            "check that the broker or task backend is reachable.",
            self.alias, self._last_failure, pause,
        )

    def _note_success(self, epoch: int) -> None:
        with self._pause_lock:
            if epoch != self._pause_epoch or not self._pause:
                return  # begun before the current pause, or another send ended it already
            self._pause_epoch += 1
            self._pause = 0.0
            self._paused_until = 0.0
        logger.info("Sending fires through executor %r works again.", self.alias)

    def fleet_fire(self, job: Job, run_time: datetime) -> FleetFire:
        return FleetFire.of(job, run_time, queue=self.queue, backend=self.backend)

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        # No count of instances here, unlike APScheduler's executors: the fires run
        # elsewhere, and the claim already counted them across the cluster
        # (max_instances counts Queued fires and fires running on workers).
        assert self._lock is not None, "This executor has not been started yet"
        self._do_submit_job(job, run_times)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        store = self._django_store(job)
        options: dict[str, Any] = {"stored": store is not None, "record": store.fires.record if store else None}
        sender = self._sender
        if sender is not None and sender.put(job, run_times, options):
            return
        # Its sender has stopped (a claim made while the scheduler shuts down):
        # send here, as the fires are claimed already. Off the event loop, where
        # Django refuses queries (a database-backed queue is one).
        off_the_loop(self._hand_off, job, run_times, **options)

    def _sender_thread_ends(self) -> None:
        """Called in each sending thread as it ends: release what it holds (subclasses)."""

    def _hand_off(
        self, job: Job, run_times: list[datetime], *, stored: bool, record: Callable[[history_writer.Write], None] | None
    ) -> None:
        """Send the job's fires (in the sender's thread): ``fires.hand_off`` through ``send``."""
        fires.hand_off(job, run_times, lambda run_time: self.send(self.fleet_fire(job, run_time)), stored=stored, record=record)

    def _django_store(self, job: Job) -> DjangoJobStore | None:
        """The job's store, if it is a DjangoJobStore (the workers load the job from the database)."""
        from ..jobstores import DjangoJobStore

        if self._scheduler is None:
            return None
        try:
            # APScheduler's one lookup (private), as for executors.
            store = self._scheduler._lookup_jobstore(job._jobstore_alias)
        except KeyError:
            return None
        return store if isinstance(store, DjangoJobStore) else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(queue={self.queue!r}, backend={self.backend!r})>"


_STOP = object()


class _Sender:
    """One hand-off executor's threads: they hand off the fires submitted to it.

    Started at the first fire; ``stop`` lets them finish what was submitted before
    it. Each thread's database connection (a database-backed queue, the hand-off's
    own writes when no history writer runs) is tidied before each job and closed
    at the end.
    """

    def __init__(self, executor: HandOffExecutor, name: str, count: int) -> None:
        self._executor = executor
        self._name = name
        self._count = max(1, count)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopped = False

    def put(self, job: Job, run_times: list[datetime], options: dict[str, Any]) -> bool:
        """Queue the job's fires for sending; False once stopped."""
        with self._lock:
            if self._stopped:
                return False
            if not self._threads:
                for index in range(self._count):
                    thread = threading.Thread(target=self._run, name=f"{self._name}-{index}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
            self._queue.put((job, run_times, options))
        return True

    def stop(self, wait: bool) -> None:
        with self._lock:
            self._stopped = True
            threads = list(self._threads)
            for _ in threads:
                self._queue.put(_STOP)  # after everything submitted: each thread takes one
        if wait:
            for thread in threads:
                thread.join()

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                job, run_times, options = item
                try:
                    connection_hygiene()
                    self._executor._hand_off(job, run_times, **options)
                except Exception:  # noqa: BLE001 -- the thread must go on sending the other jobs' fires
                    logger.exception(
                        "Could not hand off the fires of job %r; they stay Queued, unsent, until this "
                        "scheduler stops (then they end Lost!)",
                        job.id,
                    )
                if self._queue.empty():
                    connections.close_all()  # idle: hold no database connection meanwhile
        finally:
            try:
                self._executor._sender_thread_ends()
            finally:
                connections.close_all()
