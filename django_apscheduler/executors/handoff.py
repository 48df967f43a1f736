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
"""

from __future__ import annotations

import uuid
from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job

from .. import fires
from ..asyncio_support import off_the_loop

if TYPE_CHECKING:
    from ..jobstores import DjangoJobStore

__all__ = ["FleetFire", "HandOffExecutor", "task_id_for"]

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


class HandOffExecutor(BaseExecutor):
    """Sends each claimed fire to a worker fleet; subclasses implement ``enqueue``.

    :param queue: the queue to send fires to (the backend's default when None)
    :param backend: the backend (or broker app) to send through, where the
        worker system has several (its default when None)

    Other keyword arguments are kept in ``options`` for subclasses. To send some
    jobs elsewhere, configure one more alias with another queue or backend and
    give those jobs that executor.
    """

    # What ``fires`` asks to tell these executors from in-process ones.
    hands_off_fires = True

    def __init__(self, queue: str | None = None, backend: str | None = None, **options: Any) -> None:
        super().__init__()
        self.queue = queue
        self.backend = backend
        self.options = options

    @abstractmethod
    def enqueue(self, fire: FleetFire) -> None:
        """Send one fire to the workers; raise if it could not be sent (the fire then ends Error!)."""

    def fleet_fire(self, job: Job, run_time: datetime) -> FleetFire:
        return FleetFire.of(job, run_time, queue=self.queue, backend=self.backend)

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        # No count of instances here, unlike APScheduler's executors: the fires run
        # elsewhere, and the claim already counted them across the cluster
        # (max_instances counts Queued fires and fires running on workers).
        assert self._lock is not None, "This executor has not been started yet"
        self._do_submit_job(job, run_times)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        # On an AsyncIOScheduler this runs on the event loop, where Django refuses
        # queries (a database-backed queue is one): off the loop, then.
        store = self._django_store(job)
        off_the_loop(
            fires.hand_off,
            job,
            run_times,
            lambda run_time: self.enqueue(self.fleet_fire(job, run_time)),
            stored=store is not None,
            note_sent=store.fires.note_sent if store is not None else None,
        )

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
