"""What operators do to jobs from outside a scheduler: list, pause, resume, run now, prune.

Used by ``manage.py apscheduler`` (and usable from a shell or a view). Pausing and
resuming write the ``next_run_time`` column, which running schedulers obey live
(it is the truth; the pickled copy inside the job state is ignored).
"""

from __future__ import annotations

import math
import pickle
from typing import Any
from dataclasses import dataclass
from datetime import datetime, timezone

from django.db.models import OuterRef, Subquery

from .claims import load_job_state
from .describe import describe_trigger
from .jobstores import DjangoJobStore
from .models import DjangoJob, DjangoJobExecution
from .timezones import to_db, utc_now


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


def _summarize(row: DjangoJob) -> JobSummary:
    try:
        state = load_job_state(bytes(row.job_state))
        trigger = describe_trigger(state["trigger"])
    except Exception:
        trigger = "(cannot be loaded)"
    if row.broken:
        job_state = "broken"
    elif row.next_run_time is None:
        job_state = "paused"
    else:
        job_state = "scheduled"
    return JobSummary(row.id, trigger, row.next_run_time, job_state, row.last_status)


def pause_job(job_id: str) -> None:
    """Stop a job from firing until it is resumed; running schedulers obey at once."""
    if not DjangoJob.objects.filter(pk=job_id).update(next_run_time=None):
        raise UnknownJob(job_id)


def resume_job(job_id: str) -> datetime | None:
    """Resume a paused job at its trigger's next fire time from now; returns that time.

    A job whose trigger has no further fire (a date job in the past) is removed, as
    APScheduler's own ``resume_job`` does.
    """
    job = DjangoJobStore().lookup_job(job_id)
    if job is None:
        if DjangoJob.objects.filter(pk=job_id).exists():
            raise ValueError(f"Job {job_id!r} cannot be loaded (it is flagged broken); fix its code first.")
        raise UnknownJob(job_id)
    now = datetime.now(getattr(job.trigger, "timezone", None) or timezone.utc)
    next_run_time = job.trigger.get_next_fire_time(None, now)
    if next_run_time is None:
        DjangoJob.objects.filter(pk=job_id).delete()
        return None
    DjangoJob.objects.filter(pk=job_id).update(next_run_time=to_db(next_run_time))
    return next_run_time


def require_jobs(job_ids: list[str]) -> None:
    """Raise UnknownJob for the first id that is not stored."""
    known = set(DjangoJob.objects.filter(pk__in=job_ids).values_list("pk", flat=True))
    for job_id in job_ids:
        if job_id not in known:
            raise UnknownJob(job_id)


def reschedule(job_id: str, trigger: Any, *, max_instances: int, coalesce: bool, misfire_grace_time: int | None) -> datetime | None:
    """Give a stored job a new trigger and options; return its new next run time.

    A paused job stays paused (None is returned): resuming it applies the new
    trigger. Running schedulers obey the change live (the column is the truth).
    """
    row = DjangoJob.objects.filter(pk=job_id).values_list("next_run_time", "job_state").first()
    if row is None:
        raise UnknownJob(job_id)
    try:
        state = load_job_state(bytes(row[1]))
    except Exception as error:
        raise ValueError(f"Job {job_id!r} cannot be loaded ({error}); fix its code first.") from None
    paused = row[0] is None
    next_run_time = None if paused else trigger.get_next_fire_time(None, utc_now())
    state.update(
        trigger=trigger,
        max_instances=max_instances,
        coalesce=coalesce,
        misfire_grace_time=misfire_grace_time,
        next_run_time=next_run_time,
    )
    DjangoJob.objects.filter(pk=job_id).update(
        job_state=pickle.dumps(state, pickle.HIGHEST_PROTOCOL), next_run_time=to_db(next_run_time)
    )
    return next_run_time


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
) -> datetime | None:
    """Store a new job (raises APScheduler's ConflictingIdError if the id is taken); return its next run time."""
    from apscheduler.job import Job
    from apscheduler.schedulers.background import BackgroundScheduler
    from django.conf import settings

    # A Job needs a scheduler to be built; this one is never started, and the job
    # goes straight into the database, where running schedulers pick it up.
    builder = BackgroundScheduler(timezone=settings.TIME_ZONE or "UTC")
    next_run_time = trigger.get_next_fire_time(None, utc_now())
    job = Job(
        builder,
        id=job_id,
        func=func,
        args=tuple(args),
        kwargs=dict(kwargs),
        trigger=trigger,
        executor="default",
        name=name or None,
        misfire_grace_time=misfire_grace_time,
        coalesce=coalesce,
        max_instances=max_instances,
        next_run_time=next_run_time,
    )
    DjangoJobStore().add_job(job)
    return next_run_time
