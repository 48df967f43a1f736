"""The named conditions on the package's tables, written once.

"Runnable", "due", "unfinished", "alive": every module that asks one of these
questions asks it through these QuerySets, so the rule behind each answer (what
counts as broken, what counts as dead) has one home.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import models, router
from django.utils import timezone

from . import conf, inserts
from .timezones import to_db, utc_now

if TYPE_CHECKING:
    # DjangoJob and DjangoJobExecution are named only in the QuerySet["..."] base
    # classes below, which mypy resolves but ruff does not read as annotations.
    from .models import DjangoJob, DjangoJobExecution, SchedulerInstance  # noqa: F401

_M = TypeVar("_M", bound=models.Model)


class JobQuerySet(models.QuerySet["DjangoJob"]):
    def runnable(self) -> JobQuerySet:
        """Jobs a scheduler may load and run: not flagged broken."""
        return self.filter(broken=False)

    def scheduled(self) -> JobQuerySet:
        """Runnable jobs with a next run time (not paused)."""
        return self.runnable().filter(next_run_time__isnull=False)

    def due(self, now: datetime) -> JobQuerySet:
        """Runnable jobs whose next fire is at or before ``now``."""
        return self.runnable().filter(next_run_time__lte=to_db(now))

    def requested(self, now: datetime) -> JobQuerySet:
        """Runnable jobs with a pending "run now" request made at or before ``now``."""
        return self.runnable().filter(run_requested_at__lte=to_db(now))

    def insert_one(self, job: DjangoJob) -> None:
        """Store a new job row as ``job.save(force_insert=True)`` would, faster (``inserts``).

        Raises ``IntegrityError`` for an id that exists.
        """
        inserts.insert_one(job, self._write_alias(job))

    def insert_many(self, jobs: list[DjangoJob], rows_per_statement: int) -> None:
        """Store new job rows as ``bulk_create(jobs)`` would, faster (``inserts``): all or none."""
        if jobs:
            inserts.insert_many(jobs, self._write_alias(jobs[0]), rows_per_statement)

    def _write_alias(self, job: DjangoJob) -> str:
        """The database ``save`` would write ``job`` to: the one named by ``using()``, else the router's."""
        return self._db or router.db_for_write(type(job), instance=job)  # type: ignore[attr-defined]

    def mark_broken(self, reason: str) -> int:
        return self.update(broken=True, broken_reason=reason[:10_000])

    def mark_repaired(self, **fields: Any) -> int:
        """Clear the broken flag (the code may have come back), writing ``fields`` too."""
        return self.update(broken=False, broken_reason="", **fields)


class ExecutionQuerySet(models.QuerySet["DjangoJobExecution"]):
    def unfinished(self) -> ExecutionQuerySet:
        """Fires claimed (or submitted, or queued for workers) whose final status is not written yet."""
        from .models import DjangoJobExecution

        return self.filter(status__in=(DjangoJobExecution.SENT, DjangoJobExecution.QUEUED))

    def in_schedulers(self) -> ExecutionQuerySet:
        """Unfinished fires running inside the scheduler that claimed them: they die with it."""
        from .models import DjangoJobExecution

        return self.filter(status=DjangoJobExecution.SENT, worker_pid__isnull=True)

    def on_workers(self) -> ExecutionQuerySet:
        """Unfinished fires handed to workers: queued, or running in a worker process.

        They live on when the scheduler that claimed them dies; their own clocks
        (``last_seen``) tell when they are lost.
        """
        from .models import DjangoJobExecution

        return self.filter(
            models.Q(status=DjangoJobExecution.QUEUED)
            | models.Q(status=DjangoJobExecution.SENT, worker_pid__isnull=False)
        )

    def finished(self) -> ExecutionQuerySet:
        from .models import DjangoJobExecution

        return self.filter(status__in=DjangoJobExecution.FINAL_STATUSES)

    def of_fire(self, job_id: str, run_time: datetime) -> ExecutionQuerySet:
        return self.filter(job_id=job_id, run_time=to_db(run_time))

    def delete_old_job_executions(self, max_age: int) -> int:
        """Delete executions whose run time is more than ``max_age`` seconds ago; return how many.

        django-apscheduler 0.7's name and behaviour, kept for its users.
        """
        try:
            cutoff = timezone.now() - timedelta(seconds=max_age)
        except OverflowError:
            raise ValueError(f"max_age={max_age!r} seconds reaches back before the year 1; nothing is that old") from None
        deleted, _per_model = self.filter(run_time__lt=cutoff).delete()
        return deleted


def heartbeat_cutoff(now: datetime | None = None) -> datetime:
    """A scheduler whose last heartbeat is older than this is dead (``APSCHEDULER_HEARTBEAT_TIMEOUT``)."""
    return to_db((now or utc_now()) - timedelta(seconds=float(conf.get("APSCHEDULER_HEARTBEAT_TIMEOUT"))))


class SchedulerQuerySet(models.QuerySet["SchedulerInstance"]):
    def alive(self, now: datetime | None = None) -> SchedulerQuerySet:
        """Running now: not stopped, not found dead, and a heartbeat younger than the timeout."""
        return self.filter(stopped=None, died=None, last_heartbeat__gte=heartbeat_cutoff(now))

    def silent(self, now: datetime | None = None) -> SchedulerQuerySet:
        """Found dead by a peer, or no heartbeat within the timeout (or stopped a while ago).

        Their unfinished fires are lost: nobody will finish them.
        """
        return self.filter(models.Q(died__isnull=False) | models.Q(last_heartbeat__lt=heartbeat_cutoff(now)))


def is_alive(instance: SchedulerInstance, now: datetime | None = None) -> bool:
    """``SchedulerQuerySet.alive``'s rule, for a row already in memory."""
    return instance.stopped is None and instance.died is None and instance.last_heartbeat >= heartbeat_cutoff(now)
