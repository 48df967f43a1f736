"""Adding many jobs at once: one transaction, one COPY or a few multi-row INSERTs (``inserts``).

``scheduler.add_job`` stores one job per transaction, so its rate is bounded by the
database's commit (a disk flush on PostgreSQL and SQLite). A site that creates a
reminder per user needs tens of thousands of jobs at once; ``add_jobs`` builds and
checks every job exactly as ``add_job`` would (APScheduler's own ``Job`` checks, the
id length, the options' bounds, the signed state and its plain columns), then
writes them all in one transaction (multi-row INSERTs; one COPY on PostgreSQL with
psycopg 3): all of them or none.

Usage::

    from django_apscheduler.bulk import add_jobs

    add_jobs(scheduler, [
        {"func": remind, "trigger": "date", "run_date": when, "args": [user.pk], "id": f"remind-{user.pk}"}
        for user, when in reminders
    ])

Each item holds ``scheduler.add_job``'s keyword arguments (``func``, ``trigger`` and
the trigger's own arguments, ``args``, ``kwargs``, ``id``, ``name``,
``misfire_grace_time``, ``coalesce``, ``max_instances``, ``next_run_time``,
``executor``). ``jobstore`` is an argument of the whole call; there is no
``replace_existing``: an id already stored raises ``ConflictingIdError`` and nothing
is written. Call it from synchronous code (under an ``AsyncIOScheduler``, from a
coroutine through ``sync_to_async``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from apscheduler.events import EVENT_JOB_ADDED, JobEvent
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.schedulers.base import STATE_RUNNING, BaseScheduler
from django.db import IntegrityError, transaction

from . import jobstate
from .database import run_with_retry, write_transaction
from .jobstores import DjangoJobStore, _check_job_id
from .models import DjangoJob
from .timezones import to_db

__all__ = ["BulkAddError", "add_jobs"]

# Rows per INSERT statement at most (PostgreSQL takes one COPY instead); fewer where
# the backend's limit on parameters says so (SQLite: 999 parameters, 83 rows).
_ROWS_PER_INSERT = 250
# add_job's own keyword arguments; any other key is the trigger's.
_JOB_OPTIONS = ("func", "args", "kwargs", "id", "name", "misfire_grace_time", "coalesce", "max_instances",
                "next_run_time", "executor")


class BulkAddError(ValueError):
    """A job of the batch is invalid; nothing of the batch was written."""

    def __init__(self, index: int, job_id: Any, error: Exception) -> None:
        self.index, self.job_id, self.error = index, job_id, error
        super().__init__(
            f"Job #{index} (id {job_id!r}) cannot be added: {type(error).__name__}: {error}. "
            "No job of this batch was added."
        )


def add_jobs(
    scheduler: BaseScheduler, jobs: Iterable[Mapping[str, Any]], *, jobstore: str = "default"
) -> list[Job]:
    """Add many jobs to the scheduler's ``DjangoJobStore`` in one transaction; return them.

    Raises ``BulkAddError`` (naming the item) for an invalid job, and APScheduler's
    ``ConflictingIdError`` for ids that exist already or repeat in the batch; in both
    cases nothing is written. Works whether or not the scheduler is running: the
    database is the store, and a running scheduler is woken up to look at the new jobs.
    """
    store = _django_store(scheduler, jobstore)
    built = [_build(scheduler, index, spec) for index, spec in enumerate(jobs)]
    rows = [_row(index, job, store.pickle_protocol) for index, job in enumerate(built)]
    _refuse_repeated_ids(built)
    run_with_retry(lambda: _insert(rows), "adding jobs", attempts=5)
    for job in built:
        job._jobstore_alias = jobstore  # what APScheduler's add_job marks: no longer pending
        _announce(scheduler, job.id, jobstore)
    if scheduler.state == STATE_RUNNING:
        scheduler.wakeup()
    return built


def _build(scheduler: BaseScheduler, index: int, spec: Mapping[str, Any]) -> Job:
    """The Job ``scheduler.add_job(**spec)`` would store, defaults applied."""
    try:
        options = {key: spec[key] for key in _JOB_OPTIONS if key in spec}
        trigger_args = {key: value for key, value in spec.items() if key not in _JOB_OPTIONS and key != "trigger"}
        options["trigger"] = _create_trigger(scheduler, spec.get("trigger"), trigger_args)
        options["args"] = tuple(options.get("args") or ())
        options["kwargs"] = dict(options.get("kwargs") or {})
        options.setdefault("executor", "default")
        for key, value in _job_defaults(scheduler).items():
            options.setdefault(key, value)
        if "next_run_time" not in options:
            options["next_run_time"] = options["trigger"].get_next_fire_time(None, datetime.now(scheduler.timezone))
        job = Job(scheduler, **options)
        _check_job_id(job.id)
    except Exception as error:  # noqa: BLE001 -- any error about one item names the item
        raise BulkAddError(index, spec.get("id") if isinstance(spec, Mapping) else None, error) from error
    return job


def _row(index: int, job: Job, protocol: int) -> DjangoJob:
    try:
        columns = jobstate.dump(job, protocol)
    except Exception as error:  # noqa: BLE001 -- unpicklable arguments, options out of range, ...
        raise BulkAddError(index, job.id, error) from error
    return DjangoJob(id=job.id, next_run_time=to_db(job.next_run_time), **columns)


def _refuse_repeated_ids(jobs: list[Job]) -> None:
    seen: set[str] = set()
    for job in jobs:
        if job.id in seen:
            raise ConflictingIdError(job.id)
        seen.add(job.id)


def _insert(rows: list[DjangoJob]) -> None:
    """All rows or none; an id already stored is refused by name."""
    with write_transaction():  # on SQLite, the write lock from the start: no failed lock upgrade
        try:
            with transaction.atomic():  # a savepoint: the error below leaves a usable transaction
                DjangoJob.objects.insert_many(rows, _ROWS_PER_INSERT)
        except IntegrityError as error:
            # Looked up only now, by primary key: the error then names the job on every
            # backend. None found: ids the database's collation takes for equal ("Job"
            # and "job" on MySQL), or an id another process added and removed meanwhile.
            raise ConflictingIdError(_a_stored_id([row.pk for row in rows]) or f"one of this batch ({error})") from error


def _a_stored_id(ids: list[str]) -> str | None:
    for start in range(0, len(ids), _ROWS_PER_INSERT):
        taken = DjangoJob.objects.filter(pk__in=ids[start : start + _ROWS_PER_INSERT]).values_list("pk", flat=True)
        for job_id in taken[:1]:
            return job_id
    return None


# --- APScheduler's private parts, touched here only -------------------------------------
# add_job's own steps are not public in APScheduler 3: creating a trigger from an
# alias, the scheduler's job defaults, finding a job store, and announcing a new job
# to listeners. Using them keeps a bulk-added job identical to one add_job stores.


def _create_trigger(scheduler: BaseScheduler, trigger: Any, trigger_args: dict[str, Any]) -> Any:
    return scheduler._create_trigger(trigger, trigger_args)


def _job_defaults(scheduler: BaseScheduler) -> dict[str, Any]:
    return dict(scheduler._job_defaults)


def _django_store(scheduler: BaseScheduler, alias: str) -> DjangoJobStore:
    store = scheduler._jobstores.get(alias)
    if not isinstance(store, DjangoJobStore):
        raise ValueError(f"add_jobs needs a DjangoJobStore; the scheduler's job store {alias!r} is {store!r}")
    return store


def _announce(scheduler: BaseScheduler, job_id: str, alias: str) -> None:
    scheduler._dispatch_event(JobEvent(EVENT_JOB_ADDED, job_id, alias))
