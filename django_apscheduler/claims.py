"""Claiming due fires, so that each (job, scheduled run time) runs exactly once.

Any number of schedulers may share the database. A scheduler that finds jobs due
claims them in one transaction:

1. it selects the due jobs in run-time order, row-locked and skipping rows that
   another scheduler has locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL and
   MariaDB; on SQLite the transaction holds the database's write lock instead);
2. it advances each job's ``next_run_time`` past the fires it takes, or deletes a
   job that has no further fire (a date job), so no other scheduler sees them due;
3. it writes a "Started execution" row for every fire it takes ("Queued" for a
   job whose executor hands its fires to a worker fleet). That row is unique on
   (job, run time), so even a job whose schedule was moved backwards cannot run
   the same fire twice: fires that already have a row are skipped.

A running scheduler also claims *ahead*: a job not due yet whose next fire comes
within ``ahead`` has that one fire claimed now, exactly as it would be at its
instant (``Claim.early``), so the claim's round trip is paid before the fire is
due. Only jobs whose fires can be given back unstarted qualify (``may_claim_early``):
they continue after the fire (a finished date job's row is deleted by its claim)
and their executor runs them in this process. A job that the cluster's
``max_instances`` would refuse now is left to be claimed at its instant.

Only ``fires`` calls this module: it owns what happens to a fire after the
claim (the hand-off to the executor, the outcome). Every job is prepared (its
state loaded, its options checked, its fires computed) before anything is
written: a job that fails any of that is flagged broken, and the rest of the
batch is claimed as if it were not there. Nothing of the broken job is consumed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from apscheduler.job import Job
from apscheduler.triggers.date import DateTrigger
from django.db import connection
from django.db.models import Count, Q

from . import metrics
from .database import supports_skip_locked, write_transaction
from .models import DjangoJob, DjangoJobExecution
from .timezones import from_db, to_db

logger = logging.getLogger("django_apscheduler.claims")


_ONE_MICROSECOND = timedelta(microseconds=1)


def instant(value: datetime) -> float:
    """A date-time as an instant, for comparisons.

    Two aware date-times in the same zone compare by wall clock, ignoring ``fold``:
    in the hour repeated in autumn, 01:00 EST would not come after 01:50 EDT.
    """
    return value.timestamp()


def due_run_times(job: Job, now: datetime) -> list[datetime]:
    """The job's fire times up to ``now``, as APScheduler's scheduler computes them."""
    run_times: list[datetime] = []
    next_time = job.next_run_time
    while next_time is not None and instant(next_time) <= instant(now):
        run_times.append(next_time)
        next_time = job.trigger.get_next_fire_time(next_time, now)
        if next_time is not None and instant(next_time) <= instant(run_times[-1]):
            # A trigger must move forward; never loop on the same instant.
            next_time = job.trigger.get_next_fire_time(run_times[-1], run_times[-1] + _ONE_MICROSECOND)
            if next_time is not None and instant(next_time) <= instant(run_times[-1]):
                break
    return run_times


@dataclass
class Claim:
    """A job this scheduler may run now, with the fires it claimed."""

    job: Job
    run_times: list[datetime]
    next_run_time: datetime | None
    keep_successes: bool = True
    # An extra run someone requested (admin, `apscheduler run`): the job handed to
    # the scheduler is an in-memory copy with a one-off trigger; the stored schedule
    # is not touched, and the scheduler's follow-up removal of that copy is skipped.
    run_now: bool = False
    # Its executor hands fires to a worker fleet: the fires were written "Queued".
    hands_off: bool = False
    # Claimed ahead of its instant: its one fire must not start before then.
    early: bool = False


@dataclass
class _Candidate:
    job_id: str
    # The column value this claim read, for compare-and-set: next_run_time for a
    # due fire, run_requested_at for a run request.
    stored_next_run_time: datetime
    job: Job
    run_times: list[datetime]
    next_run_time: datetime | None
    keep_successes: bool
    run_now: bool = False
    hands_off: bool = False
    early: bool = False


JobLoader = Callable[[str, datetime | None, bytes], Job]
BrokenJobHandler = Callable[[str, Exception], None]
# Given schedulers that look alive, returns those found dead, whose fires it ended as Lost!.
DeadPeersHandler = Callable[[set[int]], set[int]]
# Whether a job's executor hands its fires to a worker fleet; raises for an executor it cannot find.
HandOffTest = Callable[[Job], bool]
# Whether a fire of this job may be claimed before its instant (see the module docstring).
EarlyClaimTest = Callable[[Job], bool]


@metrics.timed_claim
def claim_due_jobs(
    now: datetime,
    *,
    limit: int,
    scheduler_id: int | None,
    load_job: JobLoader,
    on_broken_job: BrokenJobHandler,
    release_dead_peers: DeadPeersHandler = lambda ids: set(),
    hands_off: HandOffTest = lambda job: False,
    ahead: timedelta = timedelta(0),
    may_claim_early: EarlyClaimTest = lambda job: False,
    held: frozenset[str] = frozenset(),
) -> list[Claim]:
    """Claim up to ``limit`` due jobs in one transaction; return what this scheduler may run.

    With ``ahead``, also the next fire of jobs due by ``now + ahead`` (``Claim.early``);
    jobs in ``held`` already have such a fire claimed, and are left alone.
    """
    handing_off: set[str] = set()
    load_job = _noting_hand_off(load_job, hands_off, handing_off)
    with write_transaction():
        candidates = _lock_due_jobs(now, now + max(ahead, timedelta(0)), limit, load_job, on_broken_job, held)
        claimed = []
        if candidates:
            _note_hand_off(candidates, handing_off)
            candidates = _early_claims_allowed(candidates, may_claim_early, scheduler_id, release_dead_peers)
        if candidates:
            _skip_fires_already_recorded(candidates)
            claimed = _advance_schedules(candidates)
        busy = {c.job_id for c in candidates}
        requests = _take_run_requests(now, limit - len(candidates), busy, load_job, on_broken_job)
        _note_hand_off(requests, handing_off)
        claimed += requests
        if not claimed:
            return []
        refused = _over_cluster_max_instances(claimed, scheduler_id, release_dead_peers)
        _record_claimed_fires(claimed, refused, scheduler_id)
    return [
        Claim(c.job, c.run_times, c.next_run_time, c.keep_successes, c.run_now, c.hands_off, c.early)
        for c in claimed
        if c.run_times and c.job_id not in refused
    ]


def _noting_hand_off(load_job: JobLoader, hands_off: HandOffTest, handing_off: set[str]) -> JobLoader:
    """``load_job``, also asking whether the job hands off (an error there is the job's, like a load error)."""

    def load(job_id: str, next_run_time: datetime | None, job_state: bytes) -> Job:
        job = load_job(job_id, next_run_time, job_state)
        if hands_off(job):
            handing_off.add(job_id)
        else:
            handing_off.discard(job_id)
        return job

    return load


def _note_hand_off(candidates: list[_Candidate], handing_off: set[str]) -> None:
    for candidate in candidates:
        candidate.hands_off = candidate.job_id in handing_off


def _lock_due_jobs(
    now: datetime,
    horizon: datetime,
    limit: int,
    load_job: JobLoader,
    on_broken_job: BrokenJobHandler,
    held: frozenset[str],
) -> list[_Candidate]:
    due = DjangoJob.objects.due(horizon).order_by("next_run_time", "id")
    if supports_skip_locked():
        due = due.select_for_update(skip_locked=True)
    candidates = []
    for job_id, stored_next_run_time, job_state, history in due.values_list("id", "next_run_time", "job_state", "history")[:limit]:
        assert stored_next_run_time is not None  # due() selects rows with next_run_time <= horizon
        if job_id in held:
            continue  # its next fire is claimed already, and waits for its instant
        # A fire still to come is claimed as it would be at its instant: one fire,
        # its successor asked for as of then (a cron trigger asked "after t, as of
        # an earlier now" gives t itself back).
        as_of = max(now, from_db(stored_next_run_time), key=instant)
        try:
            candidate = _prepare_due_job(job_id, stored_next_run_time, job_state, history, as_of, load_job)
        except Exception as error:  # noqa: BLE001 -- anything about this one job: its state, trigger, options
            on_broken_job(job_id, error)
            continue
        if candidate is not None:
            candidate.early = instant(candidate.run_times[0]) > instant(now)
            candidates.append(candidate)
    return candidates


def _early_claims_allowed(
    candidates: list[_Candidate],
    may_claim_early: EarlyClaimTest,
    scheduler_id: int | None,
    release_dead_peers: DeadPeersHandler,
) -> list[_Candidate]:
    """The candidates without the early ones that must wait for their instant (module docstring)."""
    early = [c for c in candidates if c.early]
    if not early:
        return candidates
    unfit = {c.job_id for c in early if c.next_run_time is None or c.hands_off or not may_claim_early(c.job)}
    fit = [c for c in early if c.job_id not in unfit]
    # Refused now, a fire might not be at its instant: the instances running now may
    # have ended by then.
    unfit |= set(_over_cluster_max_instances(fit, scheduler_id, release_dead_peers)) if fit else set()
    return [c for c in candidates if not (c.early and c.job_id in unfit)]


def _prepare_due_job(
    job_id: str,
    stored_next_run_time: datetime,
    job_state: bytes | memoryview,
    history: str,
    now: datetime,
    load_job: JobLoader,
) -> _Candidate | None:
    """Everything that can fail about one due job, computed before the claim writes anything."""
    job = load_job(job_id, stored_next_run_time, bytes(job_state))
    run_times = due_run_times(job, now)
    if not run_times:
        return None
    next_run_time = job.trigger.get_next_fire_time(run_times[-1], now)
    if next_run_time is not None and instant(next_run_time) <= instant(now):
        raise ValueError(f"its trigger does not move forward: after {run_times[-1]} it gives {next_run_time}")
    if job.coalesce:
        run_times = run_times[-1:]
    keep_successes = history != DjangoJob.HISTORY_FAILURES
    return _Candidate(job_id, stored_next_run_time, job, run_times, next_run_time, keep_successes)


def _take_run_requests(
    now: datetime, limit: int, busy: set[str], load_job: JobLoader, on_broken_job: BrokenJobHandler
) -> list[_Candidate]:
    """Claim requested extra runs ("run now"), leaving the jobs' schedules alone.

    A job that is also due in this claim keeps its request for the next round, so
    one claim never holds two fires of one job.
    """
    if limit <= 0:
        return []
    requested = DjangoJob.objects.requested(now).exclude(pk__in=busy).order_by("run_requested_at", "id")
    if supports_skip_locked():
        requested = requested.select_for_update(skip_locked=True)
    candidates = []
    for job_id, requested_at, job_state, history in requested.values_list(
        "id", "run_requested_at", "job_state", "history"
    )[:limit]:
        assert requested_at is not None  # requested() selects rows with run_requested_at <= now
        try:
            job = load_job(job_id, None, bytes(job_state))
        except Exception as error:  # noqa: BLE001 -- unpickling runs user code: one broken job, not the claim
            on_broken_job(job_id, error)
            continue
        run_time = from_db(requested_at).astimezone(timezone.utc)
        # The copy runs once at the requested instant, however late it is picked up.
        job.trigger = DateTrigger(run_date=run_time, timezone=timezone.utc)
        job.next_run_time = run_time
        job.misfire_grace_time = None
        keep_successes = history != DjangoJob.HISTORY_FAILURES
        candidates.append(_Candidate(job_id, requested_at, job, [run_time], None, keep_successes, run_now=True))
    for candidate in candidates:
        # Compare-and-set: a newer request made meanwhile stays pending.
        DjangoJob.objects.filter(pk=candidate.job_id, run_requested_at=candidate.stored_next_run_time).update(
            run_requested_at=None
        )
    return candidates


def _skip_fires_already_recorded(candidates: list[_Candidate]) -> None:
    """Drop fires that already have an execution row: they ran (or are running) already."""
    # Jobs due together share their range of claimed run times (a burst, jobs on the
    # same cadence): one "job IN (...) AND run_time BETWEEN ..." term per range,
    # served by the (job, run_time) unique index, keeps the query short to build.
    jobs_by_range: dict[tuple[datetime, datetime], list[str]] = {}
    for candidate in candidates:
        claimed_range = (to_db(candidate.run_times[0]), to_db(candidate.run_times[-1]))
        jobs_by_range.setdefault(claimed_range, []).append(candidate.job_id)
    in_claimed_ranges = Q()
    for claimed_range, job_ids in jobs_by_range.items():
        in_claimed_ranges |= Q(job_id__in=job_ids, run_time__range=claimed_range)
    recorded = set(DjangoJobExecution.objects.filter(in_claimed_ranges).values_list("job_id", "run_time"))
    if not recorded:
        return
    for candidate in candidates:
        kept = [t for t in candidate.run_times if (candidate.job_id, to_db(t)) not in recorded]
        if len(kept) != len(candidate.run_times):
            logger.info(
                "Job %r: skipping %d fire(s) that already ran (its schedule was moved back)",
                candidate.job_id,
                len(candidate.run_times) - len(kept),
            )
        candidate.run_times = kept


def _advance_schedules(candidates: list[_Candidate]) -> list[_Candidate]:
    """Move each job's stored next run time past the claimed fires; delete finished jobs.

    Returns the candidates this transaction really owns. With row locks (or SQLite's
    write lock) that is all of them; without SKIP LOCKED (old MySQL) each update is a
    compare-and-set on the next run time we read, and a lost race drops the job.

    A finished job whose fire goes to a worker is kept, with no next run time: the
    worker loads it from its row, and deletes it once the fire ran (``fires``).
    """
    finished = [c for c in candidates if c.next_run_time is None]
    continuing = [c for c in candidates if c.next_run_time is not None]
    deleted = [c.job_id for c in finished if not c.hands_off]
    if deleted:
        DjangoJob.objects.filter(pk__in=deleted).delete()
    kept = [c.job_id for c in finished if c.hands_off]
    if kept:
        DjangoJob.objects.filter(pk__in=kept).update(next_run_time=None)
    if not continuing:
        return finished
    if supports_skip_locked() or _holds_database_lock():
        _store_next_run_times(continuing)
        return finished + continuing
    owned = []
    for candidate in continuing:
        updated = DjangoJob.objects.filter(
            pk=candidate.job_id, next_run_time=candidate.stored_next_run_time
        ).update(next_run_time=to_db(candidate.next_run_time))
        if updated:
            owned.append(candidate)
    return finished + owned


# Above this many distinct next run times, one CASE-per-row UPDATE is cheaper than
# one UPDATE per distinct time.
_MAX_GROUPED_UPDATES = 8


def _store_next_run_times(candidates: list[_Candidate]) -> None:
    """Write the candidates' next run times, knowing nobody else can claim them meanwhile."""
    # Jobs due together usually move on together (the same interval or cron
    # schedule): then one UPDATE per distinct next run time is cheaper, to build
    # and to run, than a CASE over every row.
    jobs_by_time: dict[datetime, list[str]] = {}
    for candidate in candidates:
        assert candidate.next_run_time is not None  # only jobs that continue are given
        jobs_by_time.setdefault(to_db(candidate.next_run_time), []).append(candidate.job_id)
    if len(jobs_by_time) <= _MAX_GROUPED_UPDATES:
        for next_run_time, job_ids in jobs_by_time.items():
            DjangoJob.objects.filter(pk__in=job_ids).update(next_run_time=next_run_time)
        return
    rows = [DjangoJob(pk=c.job_id, next_run_time=to_db(c.next_run_time)) for c in candidates]
    DjangoJob.objects.bulk_update(rows, ["next_run_time"])


def _holds_database_lock() -> bool:
    return connection.vendor == "sqlite"


def _over_cluster_max_instances(
    claimed: list[_Candidate], scheduler_id: int | None, release_dead_peers: DeadPeersHandler
) -> dict[str, int]:
    """Jobs already running ``max_instances`` times across the cluster.

    Returns {job id: running count}. Counted: fires running inside other schedulers,
    and every fire handed to workers (queued, or running on a worker), whoever
    claimed it. This scheduler's own in-process instances are left to its executor,
    which counts them exactly (its own rows may still read "Started" for a moment
    after a job ended, until the result is written). Rows without a scheduler (left
    "Started" by django-apscheduler 0.7) are not counted: nobody is running them.
    Before a fire is refused, the schedulers running the other in-process instances
    are checked: one whose session or process is gone runs nothing, so its fires
    end as Lost! (``release_dead_peers``) and do not count. Fires on workers are
    judged by their own clocks (``fires.mark_lost``), not by their scheduler's.
    """
    with_fires = [c for c in claimed if c.run_times]
    if not with_fires:
        return {}
    in_other_schedulers: dict[str, dict[int, int]] = {}
    on_workers: dict[str, int] = {}
    # One grouped query for both counts (the claim's statement count matters).
    in_scheduler = Q(status=DjangoJobExecution.SENT, worker_pid__isnull=True)
    rows = (
        DjangoJobExecution.objects.unfinished()
        .filter(job_id__in=[c.job_id for c in with_fires])
        .exclude(in_scheduler & (Q(scheduler__isnull=True) | Q(scheduler_id=scheduler_id)))
        .values("job_id", "scheduler_id")
        .annotate(in_schedulers=Count("id", filter=in_scheduler), on_workers=Count("id", filter=~in_scheduler))
        .values_list("job_id", "scheduler_id", "in_schedulers", "on_workers")
    )
    for job_id, owner, in_schedulers, workers in rows:
        if in_schedulers:
            in_other_schedulers.setdefault(job_id, {})[owner] = in_schedulers
        on_workers[job_id] = on_workers.get(job_id, 0) + workers

    def refusals(ignored: set[int]) -> dict[str, int]:
        counts = {
            c.job_id: on_workers.get(c.job_id, 0)
            + sum(n for owner, n in in_other_schedulers.get(c.job_id, {}).items() if owner not in ignored)
            for c in with_fires
        }
        return {c.job_id: counts[c.job_id] for c in with_fires if counts[c.job_id] >= c.job.max_instances}

    refused = refusals(set())
    if refused:
        blocking = {owner for job_id in refused for owner in in_other_schedulers.get(job_id, {})}
        gone = release_dead_peers(blocking) if blocking else set()
        if gone:
            refused = refusals(gone)
    return refused


def _record_claimed_fires(claimed: list[_Candidate], refused: dict[str, int], scheduler_id: int | None) -> None:
    rows = []
    for candidate in claimed:
        if candidate.job_id in refused:
            status = DjangoJobExecution.MAX_INSTANCES
        elif candidate.hands_off:
            # Queued now, before the hand-off (which notes when it sent the fire): if
            # this scheduler dies before it sends the fire, nobody sends it again; the
            # fire ends Lost! (fires.mark_lost).
            status = DjangoJobExecution.QUEUED
        else:
            status = DjangoJobExecution.SENT
        for run_time in candidate.run_times:
            rows.append(
                DjangoJobExecution(job_id=candidate.job_id, run_time=to_db(run_time), status=status, scheduler_id=scheduler_id)
            )
        if candidate.job_id in refused:
            metrics.fire_finished(candidate.job_id, DjangoJobExecution.MAX_INSTANCES, count=len(candidate.run_times))
            logger.warning(
                'Execution of job "%s" skipped: it already runs %d instance(s) across all schedulers '
                "(max_instances=%d)",
                candidate.job_id,
                refused[candidate.job_id],
                candidate.job.max_instances,
            )
    if rows:
        DjangoJobExecution.objects.bulk_create(rows)


@dataclass
class Unstarted:
    """A job's claimed fires that its scheduler stopped before starting."""

    job_id: str
    run_times: list[datetime]
    # The next run time the claim stored: the give-back is a compare-and-set on it.
    stored_next_run_time: datetime


class _NotAllThere(Exception):
    """A fire being given back has no "Started execution" row any more: undo nothing."""


def give_back(unstarted: Unstarted) -> bool:
    """Undo the claim of fires that never started: their rows go, the job is due at the first again.

    A compare-and-set on the next run time the claim stored: if a peer has claimed
    the job's later fires since, or someone edited its schedule, nothing changes
    and ``False`` is returned (the caller then records the fires as lost). So is
    it when a fire's row is no longer "Started execution" (a peer ended it): its
    fire would otherwise be skipped as recorded, not run. Fires a peer already ran
    are not run twice: the next claim skips recorded fires.
    """
    first = min(unstarted.run_times)
    try:
        with write_transaction():
            restored = DjangoJob.objects.filter(
                pk=unstarted.job_id, next_run_time=to_db(unstarted.stored_next_run_time)
            ).update(next_run_time=to_db(first))
            if not restored:
                return False
            deleted, _ = DjangoJobExecution.objects.filter(
                job_id=unstarted.job_id,
                run_time__in=[to_db(t) for t in unstarted.run_times],
                status=DjangoJobExecution.SENT,
            ).delete()
            if deleted != len(set(unstarted.run_times)):
                raise _NotAllThere  # rolls the transaction back
    except _NotAllThere:
        return False
    return True
