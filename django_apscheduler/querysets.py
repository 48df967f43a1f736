"""The named conditions on the package's tables, written once.

"Runnable", "due", "unfinished", "alive": every module that asks one of these
questions asks it through these QuerySets, so the rule behind each answer (what
counts as broken, what counts as dead) has one home.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connections, models, router
from django.db.models import signals
from django.utils import timezone

from . import conf
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
        """``job.save(force_insert=True)``, without compiling the same INSERT again at every call.

        ``add_job`` stores one job per call, and the ORM's building of the statement
        cost about as much as the database's own work (0.2 ms of a 0.55 ms save on
        PostgreSQL). The statement is built once per database vendor; each value goes
        through its field's own preparation, as in ``save``. While a ``pre_save`` or
        ``post_save`` receiver is connected to the model, ``save`` itself runs, so
        that it is called. Raises ``IntegrityError`` for an id that exists.
        """
        model = type(job)
        using = self._write_alias(job)
        if signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model):
            job.save(force_insert=True, using=using)
            return
        _insert_rows(connections[using], [job])
        _mark_saved([job], using)

    def insert_many(self, jobs: list[DjangoJob], rows_per_statement: int) -> None:
        """``bulk_create(jobs)`` (no signals, no keys returned), as fast as the database takes rows.

        On PostgreSQL with psycopg 3, one ``COPY``: the multi-row INSERTs cost 3.5
        times as long, most of it psycopg quoting every value into the statement's
        text in Python (Django binds on the client). Elsewhere, INSERTs of
        ``rows_per_statement`` rows, each statement built once per size.
        """
        if not jobs:
            return
        using = self._write_alias(jobs[0])
        connection = connections[using]
        if connection.vendor == "postgresql" and _has_copy(connection):
            _copy_rows(connection, jobs)
        else:
            for start in range(0, len(jobs), rows_per_statement):
                _insert_rows(connection, jobs[start : start + rows_per_statement])
        _mark_saved(jobs, using)

    def _write_alias(self, job: DjangoJob) -> str:
        """The database ``save`` would write ``job`` to: the one named by ``using()``, else the router's."""
        return self._db or router.db_for_write(type(job), instance=job)  # type: ignore[attr-defined]

    def mark_broken(self, reason: str) -> int:
        return self.update(broken=True, broken_reason=reason[:10_000])

    def mark_repaired(self, **fields: Any) -> int:
        """Clear the broken flag (the code may have come back), writing ``fields`` too."""
        return self.update(broken=False, broken_reason="", **fields)


_INSERT_STATEMENTS: dict[tuple[str, type[models.Model], int], str] = {}


def _insert_statement(connection: Any, model: type[models.Model], rows: int) -> str:
    """``INSERT INTO table (every column) VALUES (%s, ...), ...`` for ``rows`` rows, in this database's quoting."""
    key = (connection.vendor, model, rows)
    statement = _INSERT_STATEMENTS.get(key)
    if statement is None:
        row = f"({', '.join(['%s'] * len(model._meta.local_concrete_fields))})"
        statement = f"INSERT INTO {_table_and_columns(connection, model)} VALUES {', '.join([row] * rows)}"
        _INSERT_STATEMENTS[key] = statement
    return statement


def _table_and_columns(connection: Any, model: type[models.Model]) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in model._meta.local_concrete_fields)
    return f"{quote(model._meta.db_table)} ({columns})"


def _values(connection: Any, jobs: list[Any]) -> list[Any]:
    """Every column of every row, prepared by its field as ``save`` prepares it, row after row."""
    fields = type(jobs[0])._meta.local_concrete_fields
    return [field.get_db_prep_save(field.pre_save(job, True), connection) for job in jobs for field in fields]


def _insert_rows(connection: Any, jobs: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_insert_statement(connection, type(jobs[0]), len(jobs)), _values(connection, jobs))


def _has_copy(connection: Any) -> bool:
    """Whether the PostgreSQL driver is psycopg 3 (psycopg2's COPY takes a file, not rows)."""
    with connection.cursor() as cursor:
        return hasattr(cursor.cursor, "copy")


def _copy_rows(connection: Any, jobs: list[Any]) -> None:
    fields = type(jobs[0])._meta.local_concrete_fields
    statement = f"COPY {_table_and_columns(connection, type(jobs[0]))} FROM STDIN"
    # Django's cursor wrapper has no COPY: the driver's errors are made Django's here
    # (a taken id raises IntegrityError, as from an INSERT).
    with connection.cursor() as cursor, connection.wrap_database_errors, cursor.cursor.copy(statement) as copy:
        for job in jobs:
            copy.write_row([field.get_db_prep_save(field.pre_save(job, True), connection) for field in fields])


def _mark_saved(jobs: list[Any], using: str) -> None:
    for job in jobs:
        job._state.adding, job._state.db = False, using


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
