"""What operators do to stored jobs from outside a scheduler: list, create, reschedule, pause, resume.

Used by the admin and ``manage.py apscheduler`` (and usable from a shell or a
view). Everything here reads and writes ``DjangoJob`` rows directly, with job state
going through ``jobstate``; no scheduler or job store is needed. Running
schedulers obey every change live: the ``next_run_time`` column is the truth (the
pickled copy inside the job state is ignored), and they reload a job's state at
each claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypedDict

from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery

from . import jobstate, limits
from .models import DjangoJob, DjangoJobExecution
from .timezones import to_db, utc_now

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class UnknownJob(LookupError):
    """No stored job has this id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job with id {job_id!r} is stored (see `manage.py apscheduler list`).")
        self.job_id = job_id


@dataclass
class JobSummary:
    id: str
    trigger: str
    next_run_time: datetime | None
    state: str  # "scheduled", "paused" or "broken"
    last_status: str | None


class _LastStatus(TypedDict):
    last_status: str | None  # the newest execution's status; None without executions


def list_jobs() -> list[JobSummary]:
    """Every stored job, soonest first, paused and broken ones last."""
    latest = DjangoJobExecution.objects.filter(job_id=OuterRef("pk")).order_by("-run_time")
    rows = DjangoJob.objects.annotate(last_status=Subquery(latest.values("status")[:1])).order_by("id")
    summaries = [_summarize(row) for row in rows]
    order = {"scheduled": 0, "paused": 1, "broken": 2}
    summaries.sort(
        key=lambda s: (order[s.state], s.next_run_time.timestamp() if s.next_run_time else math.inf, s.id)
    )
    return summaries


def _summarize(row: WithAnnotations[DjangoJob, _LastStatus]) -> JobSummary:
    """A row in words, from its plain columns: nothing is unpickled, no user code imported."""
    problem = jobstate.signature_problem(row.job_state)
    if row.broken or problem is not None:
        job_state = "broken"
    elif row.next_run_time is None:
        job_state = "paused"
    else:
        job_state = "scheduled"
    # The plain columns of a row that no key verifies were not written by this package.
    trigger = "(not verified)" if problem is not None else row.trigger_description or "(unknown)"
    return JobSummary(row.id, trigger, row.next_run_time, job_state, row.last_status)


def load_job(job_id: str) -> Job:
    """The stored job, restored (not bound to a scheduler); raises UnknownJob or JobStateError."""
    row = DjangoJob.objects.filter(pk=job_id).values_list("next_run_time", "job_state").first()
    if row is None:
        raise UnknownJob(job_id)
    return jobstate.restore(job_id, row[0], row[1], scheduler=None, alias=None)


def pause_job(job_id: str) -> bool:
    """Stop a job from firing until it is resumed; running schedulers obey at once.

    Returns False when the job was paused already (nothing changed), so callers
    that keep an audit trail record only real changes.
    """
    if DjangoJob.objects.filter(pk=job_id, next_run_time__isnull=False).update(next_run_time=None):
        return True
    if not DjangoJob.objects.filter(pk=job_id).exists():
        raise UnknownJob(job_id)
    return False


class NoFurtherRun(ValueError):
    """The job's trigger has no fire after now: resuming it would run nothing."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"Job {job_id!r} has no further run time (its trigger's last fire is past); it stays paused. "
            "Edit its schedule, or delete it."
        )


def resume_job(job_id: str) -> datetime:
    """Resume a paused job at its trigger's next fire time from now; returns that time.

    A job whose trigger has no further fire (a date job in the past) stays paused
    and ``NoFurtherRun`` says so: nothing is deleted without being asked.
    """
    try:
        job = load_job(job_id)
    except jobstate.JobStateError as error:
        raise ValueError(f"Job {job_id!r} {error}; fix its code first.") from None
    now = datetime.now(getattr(job.trigger, "timezone", None) or timezone.utc)
    next_run_time = job.trigger.get_next_fire_time(None, now)
    if next_run_time is None:
        raise NoFurtherRun(job_id)
    DjangoJob.objects.filter(pk=job_id).update(next_run_time=to_db(next_run_time))
    return next_run_time


def require_jobs(job_ids: list[str]) -> None:
    """Raise UnknownJob for the first id that is not stored (ValueError for one no job could have)."""
    for job_id in job_ids:
        limits.check_job_id(job_id)  # a NUL would be a database error on PostgreSQL, not "unknown"
    known = set(DjangoJob.objects.filter(pk__in=job_ids).values_list("pk", flat=True))
    for job_id in job_ids:
        if job_id not in known:
            raise UnknownJob(job_id)


def reschedule(
    job_id: str,
    trigger: Any,
    *,
    max_instances: int,
    coalesce: bool,
    misfire_grace_time: int | None,
    executor: str | None = None,
) -> datetime | None:
    """Give a stored job a new trigger and options; return its new next run time.

    A paused job stays paused (None is returned): resuming it applies the new
    trigger. ``executor``: a new executor alias (None keeps the job's). An active
    job whose new trigger has no further fire is kept, paused
    (None is returned too): nothing is deleted without being asked. Running
    schedulers obey the change live (the column is the truth). Options out of
    range, or a trigger whose next fire lies past what a date-time holds, raise
    ``jobstate.JobStateError`` and nothing is written.
    """
    row = DjangoJob.objects.filter(pk=job_id).values_list("next_run_time", "job_state").first()
    if row is None:
        raise UnknownJob(job_id)
    try:
        state = jobstate.load(row[1])
    except jobstate.JobStateError as error:
        raise ValueError(f"Job {job_id!r} {error}; fix its code first.") from None
    paused = row[0] is None
    next_run_time = None if paused else _next_fire(job_id, trigger)
    state.update(
        trigger=trigger,
        max_instances=max_instances,
        coalesce=coalesce,
        misfire_grace_time=misfire_grace_time,
        next_run_time=next_run_time,
    )
    if executor is not None:
        state["executor"] = executor
    columns = jobstate.dump_state(state, job_id=job_id)
    DjangoJob.objects.filter(pk=job_id).update(next_run_time=to_db(next_run_time), **columns)
    return next_run_time


def _next_fire(job_id: str, trigger: Any) -> datetime | None:
    """The trigger's first fire from now; ``JobStateError`` when it lies past what a date-time holds."""
    try:
        return trigger.get_next_fire_time(None, utc_now())
    except (OverflowError, ValueError) as error:
        raise jobstate.JobStateError(f"Job {job_id!r}: its next run time is beyond the dates a schedule can reach ({error})") from None


def create_job(
    job_id: str,
    func: Any,
    trigger: Any,
    *,
    args: list,
    kwargs: dict,
    name: str = "",
    max_instances: int = 1,
    coalesce: bool = False,
    misfire_grace_time: int | None = None,
    paused: bool = False,
    executor: str = "default",
) -> datetime | None:
    """Store a new job (raises APScheduler's ConflictingIdError if the id is taken); return its next run time.

    ``paused`` stores it without a next run time (None is returned): resuming it starts it.
    Whatever cannot be stored (options out of range, an id or a date a database
    cannot hold) raises ``jobstate.JobStateError`` and nothing is written.
    """
    next_run_time = None if paused else _next_fire(job_id, trigger)
    # A Job needs no scheduler to be built and stored; running schedulers pick the
    # row up from the database.
    job = Job(
        None,
        id=job_id,
        func=func,
        args=tuple(args),
        kwargs=dict(kwargs),
        trigger=trigger,
        executor=executor,
        name=name or None,
        misfire_grace_time=misfire_grace_time,
        coalesce=coalesce,
        max_instances=max_instances,
    )
    # Set directly: Job's own setter converts through its scheduler's time zone, and
    # this job has no scheduler; the value is already aware.
    job.next_run_time = next_run_time
    columns = jobstate.dump(job)
    try:
        with transaction.atomic():
            DjangoJob.objects.create(id=job_id, next_run_time=to_db(next_run_time), **columns)
    except IntegrityError:
        raise ConflictingIdError(job_id) from None
    return next_run_time


@dataclass
class ResignReport:
    """What ``resign_jobs`` did, row by row."""

    current: list[str]  # signed with SECRET_KEY already: left as they were
    resigned: list[str]  # signed with a fallback key (or trusted on request): now signed with SECRET_KEY
    refused: list[str]  # no key verifies them and they were not trusted: left as they were, never unpickled
    broken: dict[str, str]  # signed now, but cannot be loaded here (their code does not import): the reason


def resign_jobs(job_ids: list[str] | None = None, *, trust_unverified: bool = False) -> ResignReport:
    """Sign stored job states with the current ``SECRET_KEY``, after a key change.

    A state signed with one of ``SECRET_KEY_FALLBACKS`` is re-signed with
    ``SECRET_KEY``; once every row is, the old key can leave the fallbacks. A state
    that no key verifies (unsigned, or written with a key that is gone) is left
    alone unless ``trust_unverified`` says the operator checked where it came from:
    only then is it signed, which is what lets it be unpickled. Each re-signed
    state is loaded once (this process runs the project's code) to refresh its
    plain columns and its broken flag.
    """
    rows = DjangoJob.objects.order_by("pk")
    if job_ids:
        require_jobs(job_ids)
        rows = rows.filter(pk__in=job_ids)
    report = ResignReport([], [], [], {})
    for job_id in rows.values_list("pk", flat=True).iterator():
        job_state = DjangoJob.objects.filter(pk=job_id).values_list("job_state", flat=True).first()
        if job_state is None:
            continue  # deleted meanwhile
        which = jobstate.signed_with(job_state)
        if which == "current":
            report.current.append(job_id)
            continue
        if which is None and not trust_unverified:
            report.refused.append(job_id)
            continue
        reason = _store_resigned(job_id, bytes(job_state), jobstate.sign(jobstate.unsigned_payload(job_state)))
        report.resigned.append(job_id)
        if reason is not None:
            report.broken[job_id] = reason
    return report


def _store_resigned(job_id: str, old: bytes, signed: bytes) -> str | None:
    """Write a re-signed state with fresh plain columns; the reason when it cannot be loaded.

    Only over the state that was read (compare and set): a job saved meanwhile keeps
    its new state, which its writer signed with the current key anyway.
    """
    row = DjangoJob.objects.filter(pk=job_id, job_state=old)
    state, reason = jobstate.try_load(signed)
    if state is None:
        assert reason is not None
        if row.update(job_state=signed):
            DjangoJob.objects.filter(pk=job_id).mark_broken(reason)
        return reason
    row.mark_repaired(job_state=signed, **jobstate.plain_columns(state))
    return None
