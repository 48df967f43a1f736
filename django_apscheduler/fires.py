"""A fire's life, from claim to final status. This module is its one owner.

A fire is one (job, scheduled run time). Its life, and who moves it on::

    claimed ─► handed off ─► started ─► Executed | Error! | Missed! | Max instances!
       │           │            │
       │           │            └─ the scheduler that claimed it (or the worker
       │           │               running it) died: Lost!
       │           └─ to a worker fleet: Queued ─► started by one worker ─► ...
       │              (never started in time, or could not be sent: Lost! / Error!)
       │ (over the cluster's max_instances)
       └─► Max instances!

- **claimed**: ``Fires.claim`` runs the claim transaction (``claims``), which
  writes the fire's "Started execution" row, unique on (job, run time): the
  database fences every fire exactly once across all schedulers.
- **handed off**: in the same call, each claimed job is handed to APScheduler
  with a trigger that yields exactly the claimed fires (``_ClaimedFiresTrigger``)
  and a timer around its function. Whatever the stored ``next_run_time`` says,
  APScheduler can only run what was claimed: a schedule moved back never re-runs
  a fire. A job that cannot be handed off gets Error! for its claimed fires and
  is flagged broken; the rest of the batch runs.
- **started / outcome**: the executor runs the function; the timer notes the real
  start and end; APScheduler's events (``Fires`` is their listener) give the
  outcome, written in batches by ``history_writer``.
- **Lost!**: ``mark_lost`` marks the unfinished fires of schedulers that stopped
  sending heartbeats; ``membership`` calls it.
- **claimed ahead** (``APSCHEDULER_CLAIM_AHEAD``): a running scheduler claims a
  job's next fire shortly before its instant and holds it here (``release_held``
  hands it to APScheduler once due), so no fire waits for its claim's round trip.
  A held fire that does not happen after all (the scheduler stops or is paused,
  or its job is changed or removed in this process) has its claim undone
  (``claims.give_back``): as if it had never been claimed.

A job whose executor hands fires to a worker fleet (``executors.handoff``) takes
another path after the claim, which wrote its fires "Queued":

- **hand-off** (``hand_off``, in the scheduler): after the claim committed, each
  fire is sent once, and the time it was sent noted (``last_seen``, through the
  history writer); one that cannot be sent ends Error! at once. Nobody sends a
  fire again: one its scheduler died before noting as sent ends Lost! once the
  scheduler is found dead, and a fire sent that no worker starts within
  ``APSCHEDULER_HANDOFF_TIMEOUT`` ends Lost! too. (A fire sent just before its
  scheduler died, but not noted yet, may thus end Lost! while its message is
  queued: the worker's compare-and-set then refuses it, so it never runs.)
- **start on a worker** (``start_on_worker``): a compare-and-set from Queued to
  started, so a message delivered twice, or to two workers, runs once. The row
  then names the worker (host, pid), whose process renews ``last_seen`` while it
  runs (``renew_leases``); a lease older than ``APSCHEDULER_HEARTBEAT_TIMEOUT``
  means the worker died: Lost!, by ``mark_lost``.
- **outcome** (``finish_on_worker``): in the same row, as for any fire.

Rows are written only here (and through ``history_writer`` and ``claims``, which
only this module calls). ``record_start`` and ``record_outcome`` are the seam
for an executor whose fires start and finish in another process.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    EVENT_SCHEDULER_PAUSED,
    JobExecutionEvent,
    JobSubmissionEvent,
    SchedulerEvent,
)
from apscheduler.job import Job
from apscheduler.schedulers.base import STATE_PAUSED, BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from asgiref.sync import sync_to_async
from django.db import connections, transaction
from django.db.models import Q, QuerySet

from . import conf, history_writer, metrics
from .asyncio_support import awaits_coroutines, in_event_loop
from .claims import Claim, Unstarted, claim_due_jobs, due_run_times, give_back, instant
from .database import connection_hygiene, run_with_retry
from .history_writer import HistoryWriter
from .jobstate import JobStateError
from .models import DjangoJob, DjangoJobExecution, SchedulerInstance
from .timezones import db_now, to_db, utc_now

logger = logging.getLogger("django_apscheduler.fires")

# Everything a scheduler's events can report about a fire.
HISTORY_EVENTS = (
    EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
)

# Memory bounds for what waits for an event that may never come (a process shutting
# down): oldest entries are dropped first.
_MAX_REMEMBERED_FIRES = 100_000
_NEVER_STARTED = "The scheduler {when} before this fire started, and its claim could not be undone."
_MAX_PENDING_TIMINGS = 10_000
_exception_max_length = DjangoJobExecution._meta.get_field("exception").max_length
assert _exception_max_length is not None  # a CharField, declared with max_length
_MAX_EXCEPTION_LENGTH: int = _exception_max_length


# --- claim and hand-off ---------------------------------------------------------------


class _ClaimedFiresTrigger(BaseTrigger):
    """In memory only: yields exactly the claimed fires, then the stored next run time.

    APScheduler recomputes a due job's run times from its ``next_run_time`` with
    its trigger (``Job._get_run_times``); with this trigger that computation gives
    back the claim, no more. ``jobstate`` stores the trigger it ``stands_for``, so
    an update of the job never stores this one.
    """

    def __init__(self, original: BaseTrigger, run_times: list[datetime], next_run_time: datetime | None) -> None:
        self.original = original
        self.stands_for = original
        self.run_times = list(run_times)
        self.next_run_time = next_run_time

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        # As instants: in the hour repeated in autumn, wall clocks go backwards.
        after = None if previous_fire_time is None else instant(previous_fire_time)
        for run_time in self.run_times:
            if after is None or instant(run_time) > after:
                return run_time
        return self.next_run_time

    def __getattr__(self, name: str) -> Any:  # timezone, jitter, ...: the original's
        if name == "original":
            raise AttributeError(name)
        return getattr(self.original, name)

    def __str__(self) -> str:
        return str(self.original)

    def __repr__(self) -> str:
        return repr(self.original)


@dataclass
class _Echoes:
    """What the last claim already wrote, so APScheduler's follow-up write of it costs nothing."""

    next_run_times: dict[str, datetime] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)

    def clear(self) -> None:
        self.next_run_times.clear()
        self.finished.clear()


class Timing(NamedTuple):
    started: datetime
    ended: datetime


class Fires:
    """The fires of one job store's jobs in this process: claimed, handed off, recorded.

    ``start(scheduler)`` makes it the scheduler's listener for fire events and
    starts the history writer thread; until then (and after ``stop``) every
    write is made in the calling thread.
    """

    def __init__(self, alias: str, scheduler_id: int | None = None) -> None:
        self.alias = alias
        self.scheduler_id = scheduler_id
        self._writer = HistoryWriter(f"django-apscheduler-history-{alias}")
        self._echoes = _Echoes()
        self._lock = threading.Lock()
        # Fires whose "Started execution" row the claim wrote: their submission
        # event writes nothing. Consumed by that event.
        self._started_by_claim: OrderedDict[tuple[str, datetime], None] = OrderedDict()
        # Fires claimed for this process's executors whose function has not started,
        # with the next run time their claim stored (None: the claim cannot be undone,
        # a run request or a job with no further fire). Settled at ``stop``.
        self._not_started: OrderedDict[tuple[str, datetime], datetime | None] = OrderedDict()
        # Fires settled at ``stop`` before they started: they must not start after all.
        self._settled: set[tuple[str, datetime]] = set()
        # Fires claimed ahead of their instant, one per job, until ``release_held``
        # hands them to APScheduler; and the jobs handed over this round (claimed
        # again only in the next).
        self._held: dict[str, Claim] = {}
        self._released: frozenset[str] = frozenset()
        # Jobs whose history keeps failures only: a success deletes the fire's row.
        self._failures_only: set[str] = set()
        self._timings: OrderedDict[tuple[str, datetime], Timing] = OrderedDict()
        self._scheduler: BaseScheduler | None = None
        # Writes made in the calling thread instead of the writer's (record_event).
        self._in_caller = threading.local()
        # Set by the scheduler's membership: which of these live-looking peers are dead.
        self.peers_gone: Callable[[set[int]], set[int]] = lambda ids: set()

    # --- lifecycle ----------------------------------------------------------------

    def start(self, scheduler: BaseScheduler) -> None:
        self._scheduler = scheduler
        with self._lock:
            self._settled.clear()
            self._held.clear()
        self._writer.start()
        scheduler.add_listener(self, HISTORY_EVENTS)
        scheduler.add_listener(self._on_paused, EVENT_SCHEDULER_PAUSED)

    def stop(self) -> None:
        """Stop listening, settle the fires that never started, and write every queued result."""
        if self._scheduler is not None:
            self._scheduler.remove_listener(self)
            self._scheduler.remove_listener(self._on_paused)
        self._settle_not_started()
        self._writer.stop()

    def _settle_not_started(self) -> None:
        """Give back the claimed fires that never started, or record them Lost!.

        Called once the executors have shut down (APScheduler stops them before the
        job stores): a claimed fire whose function has not started by now never
        will. An AsyncIOScheduler cancels the tasks of the fires it had not run yet;
        a thread pool refuses a fire submitted after it shut down. Such a fire did
        not happen, so its claim is undone and a peer (or the next start) runs it;
        where the claim cannot be undone, its row says why it never ran.
        """
        with self._lock:
            not_started, self._not_started = self._not_started, OrderedDict()
            self._settled.update(not_started)
            self._held.clear()  # their fires are among the unstarted
        self._settle(not_started, when="stopped")

    def _settle(self, not_started: dict[tuple[str, datetime], datetime | None], *, when: str) -> int:
        """Give back these unstarted fires, or record them Lost! where that cannot be done; returns how many went back.

        ``not_started`` maps each fire to the next run time its claim stored (None: not undoable).
        """
        if not not_started:
            return 0
        returnable: dict[str, Unstarted] = {}
        lost: list[tuple[str, datetime]] = []
        for (job_id, run_time), stored_next_run_time in not_started.items():
            if stored_next_run_time is None:
                lost.append((job_id, run_time))
                continue
            entry = returnable.setdefault(job_id, Unstarted(job_id, [], stored_next_run_time))
            entry.run_times.append(run_time)
            if instant(stored_next_run_time) > instant(entry.stored_next_run_time):  # a later claim of the job
                entry.stored_next_run_time = stored_next_run_time
        given_back = 0
        for entry in returnable.values():
            try:
                returned = run_with_retry(functools.partial(give_back, entry), "giving back unstarted fires", attempts=3)
            except Exception:  # noqa: BLE001 -- the shutdown goes on; the rows end Lost! when the heartbeat expires
                logger.exception("Could not give back the unstarted fires of job %r", entry.job_id)
                continue
            if returned:
                given_back += len(entry.run_times)
            else:
                lost += [(entry.job_id, run_time) for run_time in entry.run_times]
        if given_back and when in ("stopped", "was paused"):
            logger.info(
                "Gave back %d claimed fire(s) that had not started when the scheduler %s; "
                "a running peer, or the next scheduler to start, runs them (within their misfire_grace_time).",
                given_back,
                when,
            )
        if lost:
            try:
                marked = run_with_retry(
                    lambda: _mark_never_started(lost, when), "recording unstarted fires", attempts=3
                )
            except Exception:  # noqa: BLE001 -- as above
                logger.exception("Could not record %d unstarted fire(s) as Lost!", len(lost))
                return given_back
            if marked:
                metrics.fires_lost(marked)
                logger.warning(
                    "Marked %d execution(s) as Lost!: the scheduler %s before they started and their claim "
                    "could not be undone (a run-now request, a job with no later fire, or a schedule changed "
                    "meanwhile). Run the jobs again from the admin if they must run.",
                    marked,
                    when,
                )
        return given_back

    def _starts(self, job_id: str, run_time: datetime | None) -> bool:
        """The function of this fire starts now, unless the fire was settled at ``stop``."""
        if run_time is None:
            return True
        with self._lock:
            if (job_id, run_time) in self._settled:
                return False
            self._not_started.pop((job_id, run_time), None)
        return True

    def _ended_unstarted(self, job_id: str, run_time: datetime) -> None:
        """The executor finished this fire without starting it (missed, too many instances)."""
        with self._lock:
            self._not_started.pop((job_id, run_time), None)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every result reported so far is written."""
        return self._writer.flush(timeout)

    # --- claim -> hand-off --------------------------------------------------------

    def release_held(self, now: datetime) -> list[Job]:
        """Begin a round of the scheduler's loop: the jobs whose fires were claimed ahead and are due by ``now``.

        No database work: their claim is made. Call it before ``claim`` in every round.
        """
        self._echoes.clear()
        with self._lock:
            due = [claim for claim in self._held.values() if instant(claim.run_times[0]) <= instant(now)]
            for claim in due:
                del self._held[claim.job.id]
        self._released = frozenset(claim.job.id for claim in due)
        for claim in due:
            if claim.next_run_time is not None and instant(claim.next_run_time) <= instant(now):
                # Handed over late (a busy loop): APScheduler would also run the stored
                # next fire, which nobody claimed. It is shown a next fire just after
                # ``now`` instead, whose write is skipped as an echo: the stored one
                # stays due, for the next claim.
                trigger = claim.job.trigger
                assert isinstance(trigger, _ClaimedFiresTrigger)
                # In UTC: a local time plus a delta loses its ``fold`` (the hour repeated in autumn).
                trigger.next_run_time = now.astimezone(timezone.utc) + timedelta(microseconds=1)
                self._echoes.next_run_times[claim.job.id] = trigger.next_run_time
            else:
                self._expect_echo(claim)
        return [claim.job for claim in due]

    def claim(
        self,
        now: datetime,
        *,
        limit: int,
        load_job: Callable[[str, datetime | None, bytes], Job],
        ahead: float = 0.0,
    ) -> list[Job]:
        """Claim due fires (and run requests) and return the jobs to hand to APScheduler now.

        With ``ahead`` (seconds), fires due by ``now + ahead`` are claimed too and held
        until ``release_held`` finds them due.
        """
        with self._lock:
            held = frozenset(self._held) | self._released
        claims = claim_due_jobs(
            now,
            limit=limit,
            scheduler_id=self.scheduler_id,
            load_job=load_job,
            on_broken_job=flag_broken,
            release_dead_peers=self._release_dead_peers,
            hands_off=self._hands_off,
            ahead=timedelta(seconds=max(ahead, 0.0)),
            may_claim_early=self._runs_in_this_process,
            held=held,
        )
        jobs = []
        for claim in claims:
            try:
                job = self._hand_off(claim)
            except Exception as error:  # noqa: BLE001 -- one job's failure must not cost the batch its fires
                self._fail_claimed(claim, error)
                continue
            if claim.early:
                with self._lock:
                    self._held[job.id] = claim
            else:
                self._expect_echo(claim)
                jobs.append(job)
        return jobs

    def held_job_ids(self) -> list[str]:
        """The jobs with a fire claimed ahead, held until its instant."""
        with self._lock:
            return list(self._held)

    def next_held(self) -> datetime | None:
        """The instant of the earliest fire claimed ahead, if any."""
        with self._lock:
            return min((claim.run_times[0] for claim in self._held.values()), key=instant, default=None)

    def give_back_early(self, job_id: str, *, when: str | None = None) -> Claim | None:
        """Undo the claim of ``job_id``'s fire held ahead of its instant (the job is changed or removed here).

        Returns the claim given back (its fire is due again in the database, as if never
        claimed); None if none was held, or if the claim could not be undone (a peer or
        another process moved the job on meanwhile: its row then ends Lost!). If the
        database fails, the fire stays held (it runs at its instant, or is settled at
        the stop) and the error is raised.
        """
        with self._lock:
            claim = self._held.pop(job_id, None)
            if claim is None:
                return None
            # Taken out of the unstarted fires at once: a stop settling them meanwhile
            # (from another thread) must not give this one back a second time.
            not_started = {key: self._not_started.pop(key) for key in self._keys(claim) if key in self._not_started}
        assert claim.next_run_time is not None  # only jobs that continue are claimed early
        unstarted = Unstarted(job_id, list(claim.run_times), claim.next_run_time)
        try:
            returned = run_with_retry(functools.partial(give_back, unstarted), "giving back a fire claimed ahead", attempts=3)
        except Exception:
            with self._lock:
                self._held.setdefault(job_id, claim)
                self._not_started.update(not_started)
            raise
        with self._lock:
            for key in self._keys(claim):
                self._started_by_claim.pop(key, None)
        if returned:
            return claim
        when = when or f"saw job {job_id!r} changed or removed"
        self._settle({(job_id, run_time): None for run_time in claim.run_times}, when=when)
        return None

    @staticmethod
    def _keys(claim: Claim) -> list[tuple[str, datetime]]:
        return [(claim.job.id, run_time) for run_time in claim.run_times]

    def give_back_all_early(self, *, when: str) -> int:
        """Undo the claims of every fire held ahead of its instant; returns how many went back.

        A claim the database did not let go of stays held, and is settled at the stop.
        """
        given_back = 0
        for job_id in self.held_job_ids():
            try:
                given_back += self.give_back_early(job_id, when=when) is not None
            except Exception:  # noqa: BLE001 -- the others go back all the same
                logger.exception("Could not give back the fire of job %r claimed ahead; it stays claimed", job_id)
        if given_back:
            logger.info("Gave back %d fire(s) claimed ahead of their time: the scheduler %s.", given_back, when)
        return given_back

    def give_back_if_paused(self) -> None:
        """After a claim (scheduler's loop): a pause that came during it left the claimed-ahead fires held."""
        if self._scheduler is not None and self._scheduler.state == STATE_PAUSED and self._held:
            self.give_back_all_early(when="was paused")

    def _on_paused(self, event: SchedulerEvent) -> None:
        """A paused scheduler runs nothing: its fires claimed ahead go back, for peers to run.

        ``pause()`` may be called on an event loop's thread, where Django refuses
        database work: there, a thread of its own does it.
        """
        with self._lock:
            if not self._held:
                return
        if not in_event_loop():
            self.give_back_all_early(when="was paused")
            return

        def give_back_all() -> None:
            try:
                self.give_back_all_early(when="was paused")
            finally:
                connections.close_all()  # this thread's own

        threading.Thread(target=give_back_all, name="django-apscheduler-give-back", daemon=True).start()

    def _hands_off(self, job: Job) -> bool:
        """Whether the job's executor sends its fires to a worker fleet (``executors.handoff``)."""
        if self._scheduler is None:
            return False
        # Raises KeyError for an unknown alias, which the claim takes as this job's
        # error, like one in its state.
        return bool(getattr(self._executor_of(job), "hands_off_fires", False))

    def _executor_of(self, job: Job) -> Any:
        """The scheduler's executor for ``job``; KeyError for an unknown alias.

        APScheduler's one lookup is private (``_lookup_executor``): this is the one place it is called.
        """
        assert self._scheduler is not None
        return self._scheduler._lookup_executor(job.executor)

    def record(self, write: history_writer.Write) -> None:
        """What became of a fire handed to the workers (``hand_off``): batched, retried while the database is away."""
        self._submit(write)

    def _release_dead_peers(self, peer_ids: set[int]) -> set[int]:
        """Peers among these whose session or process is gone: their unfinished fires end as Lost!."""
        gone = self.peers_gone(peer_ids)
        if gone:
            mark_lost(among=gone)
        return gone

    def _hand_off(self, claim: Claim) -> Job:
        job = claim.job
        job.trigger = _ClaimedFiresTrigger(job.trigger, claim.run_times, claim.next_run_time)
        job.next_run_time = claim.run_times[0]
        if not claim.hands_off:  # a worker runs (and times) the others
            self._wrap_function(job, claim.run_times)
        # Undoable: the claim only moved the job's next run time on (``give_back``).
        undo_to = None if claim.run_now else claim.next_run_time
        # Only where the timer sees the function start: a process pool runs the
        # job's function from its reference, in another process.
        settles = not claim.hands_off and self._runs_in_this_process(job)
        with self._lock:
            for run_time in claim.run_times:
                self._remember_started(job.id, run_time)
                if settles:
                    self._not_started[(job.id, run_time)] = undo_to
            while len(self._not_started) > _MAX_REMEMBERED_FIRES:
                self._not_started.popitem(last=False)
            if claim.keep_successes:
                self._failures_only.discard(job.id)
            else:
                self._failures_only.add(job.id)
        return job

    def _expect_echo(self, claim: Claim) -> None:
        """APScheduler follows the job's hand-over with a write of what the claim already stored: skip it."""
        if claim.next_run_time is None or claim.run_now:
            # APScheduler will ask to remove the job after this fire: a finished date
            # job is already deleted, and a run-now copy must not remove the stored job.
            self._echoes.finished.add(claim.job.id)
        else:
            self._echoes.next_run_times[claim.job.id] = claim.next_run_time

    def _runs_in_this_process(self, job: Job) -> bool:
        """Whether the job's executor calls ``job.func`` in this process (so the timer sees each start)."""
        if self._scheduler is None:
            return False
        try:
            executor = self._executor_of(job)
        except KeyError:
            return False
        return isinstance(executor, _in_process_executor_classes())

    def _fail_claimed(self, claim: Claim, error: Exception) -> None:
        job_id = claim.job.id
        reason = f"could not be handed to its executor: {type(error).__name__}: {error}"
        logger.exception("Job %r %s; its claimed fires are recorded as Error!", job_id, reason)
        metrics.fire_finished(job_id, DjangoJobExecution.ERROR, count=len(claim.run_times))
        for run_time in claim.run_times:
            self._submit(
                history_writer.final(job_id, to_db(run_time), status=DjangoJobExecution.ERROR, exception=_clip(reason))
            )
        try:
            flag_broken(job_id, error)
        except Exception:  # noqa: BLE001 - the batch is committed: raising here would lose the others' hand-off
            logger.exception("Could not flag job %r as broken; it is tried again at the next claim", job_id)

    def hand_off_unclaimed(self, job: Job, now: datetime) -> None:
        """Time the function of a job from an in-memory store (nothing was claimed)."""
        try:
            run_times = due_run_times(job, now)
            self._wrap_function(job, run_times[-1:] if job.coalesce else run_times)
        except Exception:
            # APScheduler runs the job anyway; only its duration will be missing.
            logger.exception("Could not time job %r; it runs without a measured duration", job.id)

    def is_echo_of_update(self, job: Job) -> bool:
        expected = self._echoes.next_run_times.get(job.id)
        if expected is not None and job.next_run_time == expected:
            del self._echoes.next_run_times[job.id]
            return True
        return False

    def is_echo_of_removal(self, job_id: str) -> bool:
        if job_id in self._echoes.finished:
            self._echoes.finished.discard(job_id)
            return True
        return False

    def _remember_started(self, job_id: str, run_time: datetime) -> None:
        self._started_by_claim[(job_id, run_time)] = None
        while len(self._started_by_claim) > _MAX_REMEMBERED_FIRES:
            self._started_by_claim.popitem(last=False)

    # --- the timer ----------------------------------------------------------------

    def _wrap_function(self, job: Job, run_times: list[datetime]) -> None:
        """Replace ``job.func`` (in memory only: APScheduler stores ``func_ref``) with a timer."""
        func = job.func
        if getattr(func, "_django_apscheduler_timed", False):
            func = func.__wrapped__
        job_id = job.id
        tracker = _RunTimeTracker(run_times, job.misfire_grace_time)
        record = self._record_timing
        starts = self._starts

        if inspect.iscoroutinefunction(func) and self._awaited_on_a_loop(job):

            @functools.wraps(func)
            async def timed(*args: Any, **kwargs: Any) -> Any:
                # Runs on the event loop: its async ORM queries run on asgiref's
                # thread for sync code, so that is the connection to tidy.
                await sync_to_async(connection_hygiene)()
                run_time, started = tracker.next_run_time(), datetime.now(timezone.utc)
                if not starts(job_id, run_time):
                    return None
                try:
                    return await func(*args, **kwargs)
                finally:
                    record(job_id, run_time, started)

        else:
            call = run_to_completion(func) if inspect.iscoroutinefunction(func) else func

            @functools.wraps(func)
            def timed(*args: Any, **kwargs: Any) -> Any:
                connection_hygiene()
                run_time, started = tracker.next_run_time(), datetime.now(timezone.utc)
                if not starts(job_id, run_time):
                    return None
                try:
                    return call(*args, **kwargs)
                finally:
                    record(job_id, run_time, started)

        timed._django_apscheduler_timed = True  # type: ignore[attr-defined]
        job.func = timed

    def _awaited_on_a_loop(self, job: Job) -> bool:
        """Whether the executor that runs ``job`` awaits coroutines (AsyncIOScheduler's does).

        Until the store is started there is no scheduler to ask: the function is
        handed over as it is, a coroutine function.
        """
        return self._scheduler is None or awaits_coroutines(self._scheduler, job.executor)

    def _record_timing(self, job_id: str, run_time: datetime | None, started: datetime) -> None:
        if run_time is None:
            return
        with self._lock:
            self._timings[(job_id, run_time)] = Timing(started, datetime.now(timezone.utc))
            while len(self._timings) > _MAX_PENDING_TIMINGS:
                self._timings.popitem(last=False)

    def _pop_timing(self, job_id: str, run_time: datetime) -> Timing | None:
        with self._lock:
            return self._timings.pop((job_id, run_time), None)

    # --- outcomes: APScheduler's events ---------------------------------------------

    def __call__(self, event: SchedulerEvent) -> None:
        if getattr(event, "jobstore", None) != self.alias:
            return
        try:
            self._on_event(event)
        except Exception:
            # A history write that failed after its retries must not disturb the
            # scheduler; the fire itself already happened.
            logger.exception("Could not record event %s of job %r", event, getattr(event, "job_id", None))
        if event.code != EVENT_JOB_SUBMITTED:
            # The fire is over in this (worker) thread: tidy its connection.
            connection_hygiene()

    def record_event(self, event: SchedulerEvent) -> None:
        """Record one fire event now, in this thread, whichever job store it names (0.7's handlers)."""
        self._in_caller.active = True
        try:
            self._on_event(event)
        finally:
            self._in_caller.active = False

    def _submit(self, write: history_writer.Write) -> None:
        # (An event loop's thread cannot query: there, the writer thread writes it.)
        if getattr(self._in_caller, "active", False) and not in_event_loop():
            run_with_retry(lambda: history_writer.apply_writes([write]), "recording a job execution", attempts=2)
        else:
            self._writer.submit(write)

    def _on_event(self, event: SchedulerEvent) -> None:
        if event.code == EVENT_JOB_SUBMITTED:
            self._on_submitted(event)
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            for run_time in event.scheduled_run_times:
                with self._lock:
                    self._started_by_claim.pop((event.job_id, run_time), None)
                self._ended_unstarted(event.job_id, run_time)
                self._finish(event.job_id, run_time, status=DjangoJobExecution.MAX_INSTANCES)
        elif event.code == EVENT_JOB_MISSED:
            self._ended_unstarted(event.job_id, event.scheduled_run_time)
            self._finish(event.job_id, event.scheduled_run_time, status=DjangoJobExecution.MISSED)
        elif event.code in (EVENT_JOB_EXECUTED, EVENT_JOB_ERROR):
            self._on_outcome(event)

    def _on_submitted(self, event: JobSubmissionEvent) -> None:
        for run_time in event.scheduled_run_times:
            with self._lock:
                claimed = (event.job_id, run_time) in self._started_by_claim
                self._started_by_claim.pop((event.job_id, run_time), None)
            if not claimed:  # an in-memory job: nothing was claimed
                self._submit(start_write(event.job_id, run_time, self.scheduler_id))

    def _on_outcome(self, event: JobExecutionEvent) -> None:
        self._ended_unstarted(event.job_id, event.scheduled_run_time)  # it ran (whatever the timer thought)
        timing = self._pop_timing(event.job_id, event.scheduled_run_time)
        metrics.job_event(event, timing)
        if event.code == EVENT_JOB_EXECUTED and event.job_id in self._failures_only:
            self._submit(history_writer.forget(event.job_id, to_db(event.scheduled_run_time)))
            return
        write = outcome_write(
            event.job_id,
            event.scheduled_run_time,
            status=DjangoJobExecution.ERROR if event.code == EVENT_JOB_ERROR else DjangoJobExecution.SUCCESS,
            started=timing.started if timing else None,
            ended=timing.ended if timing else None,
            exception=event.exception,
            traceback=event.traceback,
            scheduler_id=self.scheduler_id,
        )
        self._submit(write)

    def _finish(self, job_id: str, run_time: datetime, *, status: str) -> None:
        metrics.fire_finished(job_id, status)
        self._submit(history_writer.final(job_id, to_db(run_time), status=status, scheduler_id=self.scheduler_id))


def run_to_completion(func: Callable[..., Any]) -> Callable[..., Any]:
    """A coroutine function as a plain one, for thread pool executors.

    A coroutine job claimed by a thread-based scheduler (a BackgroundScheduler beside
    AsyncIOSchedulers on the same database) would otherwise be called, and its
    coroutine dropped unawaited: recorded as Executed without having run. Each fire
    gets an event loop of its own in the worker thread instead.
    """

    async def tidied(*args: Any, **kwargs: Any) -> Any:
        # Its async ORM queries run on asgiref's thread for sync code, whose
        # connection the worker thread's hygiene never sees: tidy that one too, so
        # a database restart does not leave it broken for every later coroutine job.
        await sync_to_async(connection_hygiene)()
        return await func(*args, **kwargs)

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(tidied(*args, **kwargs))

    return run


class _RunTimeTracker:
    """Tells which scheduled run time a call of the job's function belongs to.

    APScheduler's executor calls the function once per run time that was not
    missed (missed ones are skipped, and they are always the oldest), in order;
    this mirrors that rule.
    """

    def __init__(self, run_times: list[datetime], misfire_grace_time: float | None) -> None:
        self._pending = list(run_times)
        self._grace = misfire_grace_time
        self._lock = threading.Lock()

    def next_run_time(self) -> datetime | None:
        now = datetime.now(timezone.utc)
        with self._lock:
            # Drop the run times the executor skipped as missed. It decided a moment
            # before us, so allow that moment: a run time just within the grace time
            # then may be just outside it now. (Seconds as floats: no timedelta to
            # overflow, whatever the grace time.)
            while len(self._pending) > 1 and self._grace is not None:
                if (now - self._pending[0]).total_seconds() <= self._grace + 1:
                    break
                self._pending.pop(0)
            return self._pending.pop(0) if self._pending else None


# --- writes, for this module and for executors in other processes --------------------


def _mark_never_started(fires: list[tuple[str, datetime]], when: str = "stopped") -> int:
    """End these claimed fires Lost!, each only if it is still "Started execution" (nothing recorded since)."""
    finished = Decimal(f"{utc_now().timestamp():.2f}")
    marked = 0
    with transaction.atomic():
        for job_id, run_time in fires:
            marked += DjangoJobExecution.objects.filter(
                job_id=job_id, run_time=to_db(run_time), status=DjangoJobExecution.SENT
            ).update(status=DjangoJobExecution.LOST, exception=_NEVER_STARTED.format(when=when), finished=finished)
    return marked


@functools.cache
def _in_process_executor_classes() -> tuple[type, ...]:
    """APScheduler's executors that call the job's function in this process (not its process pool)."""
    from apscheduler.executors.asyncio import AsyncIOExecutor
    from apscheduler.executors.debug import DebugExecutor
    from apscheduler.executors.pool import ThreadPoolExecutor

    classes: list[type] = [ThreadPoolExecutor, AsyncIOExecutor, DebugExecutor]
    for module, name in (
        ("apscheduler.executors.tornado", "TornadoExecutor"),
        ("apscheduler.executors.gevent", "GeventExecutor"),
        ("apscheduler.executors.twisted", "TwistedExecutor"),
    ):
        try:
            classes.append(getattr(importlib.import_module(module), name))
        except ImportError:  # its event loop library is not installed
            pass
    return tuple(classes)


def start_write(job_id: str, run_time: datetime, scheduler_id: int | None) -> history_writer.Write:
    return history_writer.start(job_id, to_db(run_time), status=DjangoJobExecution.SENT, scheduler_id=scheduler_id)


def outcome_write(
    job_id: str,
    run_time: datetime,
    *,
    status: str,
    started: datetime | None,
    ended: datetime | None,
    exception: BaseException | str | None = None,
    traceback: str | None = None,
    scheduler_id: int | None = None,
) -> history_writer.Write:
    """The final write of a fire that ran (Executed or Error!), with its real timing."""
    ended = ended or datetime.now(timezone.utc)
    fields: dict[str, Any] = {
        "status": status,
        "finished": Decimal(f"{ended.timestamp():.2f}"),
        "started_at": to_db(started) if started else None,
        "duration": Decimal(f"{(ended - started).total_seconds():.2f}") if started else None,
    }
    if scheduler_id is not None:  # only written when the row is created (see history_writer)
        fields["scheduler_id"] = scheduler_id
    if status == DjangoJobExecution.ERROR:
        fields["exception"] = _describe_exception(exception)
        fields["traceback"] = strip_timer_frames(traceback)
    return history_writer.final(job_id, to_db(run_time), **fields)


def record_start(job_id: str, run_time: datetime, scheduler_id: int | None = None) -> None:
    """Write a fire's "Started execution" row now (it never overwrites an outcome)."""
    run_with_retry(lambda: history_writer.apply_writes([start_write(job_id, run_time, scheduler_id)]), "recording a start")


def record_outcome(job_id: str, run_time: datetime, **outcome: Any) -> None:
    """Write a fire's outcome now, from any process (see ``outcome_write`` for the fields)."""
    write = outcome_write(job_id, run_time, **outcome)
    metrics.fire_finished(job_id, outcome["status"], run_time, outcome.get("started"), outcome.get("ended"))
    run_with_retry(lambda: history_writer.apply_writes([write]), "recording a job result")


def _describe_exception(exception: BaseException | str | None) -> str:
    if exception is None:
        return ""
    text = exception if isinstance(exception, str) else f"{type(exception).__name__}: {exception}"
    return _clip(text)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_EXCEPTION_LENGTH else text[: _MAX_EXCEPTION_LENGTH - 1] + "…"


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


# --- broken jobs and lost fires --------------------------------------------------------


def flag_broken(job_id: str, error: Exception | str) -> None:
    """Keep the job, flagged broken with the reason: it is skipped until repaired."""
    if isinstance(error, str | JobStateError):
        reason = str(error)
    else:
        reason = f"cannot run: {type(error).__name__}: {error}"
    logger.error(
        "Job %r %s. It is kept, flagged as broken in the admin, and skipped; the other jobs are unaffected. "
        "Restore its function (or the classes of its arguments) or fix its options, and restart the "
        "scheduler; or replace it with add_job(..., replace_existing=True), or remove it.",
        job_id,
        reason,
    )
    DjangoJob.objects.filter(pk=job_id).mark_broken(reason)


def lost_fires(now: datetime | None = None) -> QuerySet[DjangoJobExecution]:
    """Unfinished fires nobody will finish (see ``mark_lost`` for the three ways)."""
    return DjangoJobExecution.objects.filter(_lost_in_dead_schedulers(now) | _lost_on_workers(now) | _lost_in_queue(now))


def _lost_in_dead_schedulers(now: datetime | None) -> Q:
    """Fires running inside a dead scheduler, or queued by it and never sent."""
    return (Q(status=DjangoJobExecution.SENT, worker_pid__isnull=True) | _unsent) & Q(
        scheduler__in=SchedulerInstance.objects.silent(now)
    )


_unsent = Q(status=DjangoJobExecution.QUEUED, last_seen__isnull=True)


def _lost_on_workers(now: datetime | None) -> Q:
    cutoff = (now or utc_now()) - timedelta(seconds=float(conf.get("APSCHEDULER_HEARTBEAT_TIMEOUT")))
    return Q(status=DjangoJobExecution.SENT, worker_pid__isnull=False, last_seen__lt=to_db(cutoff))


def _lost_in_queue(now: datetime | None) -> Q:
    timeout = conf.get("APSCHEDULER_HANDOFF_TIMEOUT")
    if timeout is None:
        return Q(pk__in=[])
    cutoff = (now or utc_now()) - timedelta(seconds=float(timeout))
    return Q(status=DjangoJobExecution.QUEUED, last_seen__lt=to_db(cutoff))


def mark_lost(now: datetime | None = None, among: set[int] | None = None) -> int:
    """Give the lost fires their final status, Lost!; return how many.

    A fire is lost when it ran inside a scheduler that died (found dead by a peer,
    or silent for ``APSCHEDULER_HEARTBEAT_TIMEOUT``), or was queued by it and not
    sent yet; when it ran on a worker whose lease was not renewed for that long
    (the worker died); or when it was sent to workers and none started it within
    ``APSCHEDULER_HANDOFF_TIMEOUT``.

    ``among``: the ids of schedulers just found dead (one plain UPDATE by id, cheap
    inside a claim). Fires they sent to workers outlive them.
    """
    if among is not None:
        return _mark(
            DjangoJobExecution.objects.filter(
                Q(status=DjangoJobExecution.SENT, worker_pid__isnull=True) | _unsent, scheduler_id__in=among
            ),
            "their scheduler died (killed or crashed) before they finished, or before it sent them to the workers",
        )
    # One UPDATE for the three ways (a scheduler's heartbeat runs this every few seconds).
    return _mark(
        lost_fires(now),
        "their scheduler died (killed or crashed) before they finished or before it sent them to the workers, "
        "the worker running them stopped renewing its lease, or no worker started them within "
        "APSCHEDULER_HANDOFF_TIMEOUT of being sent",
    )


def _mark(fires: QuerySet[DjangoJobExecution], why: str) -> int:
    lost = fires.update(status=DjangoJobExecution.LOST)
    metrics.fires_lost(lost)
    if lost:
        logger.warning("Marked %d execution(s) as Lost!: %s.", lost, why)
    return lost


# --- fires handed to a worker fleet -----------------------------------------------------

_WORKER_HOST = socket.gethostname()[:255]


def hand_off(
    job: Job,
    run_times: list[datetime],
    send: Callable[[datetime], None],
    *,
    stored: bool = True,
    record: Callable[[history_writer.Write], None] | None = None,
) -> None:
    """Send each claimed (Queued) fire of ``job`` to the workers, once; call only after the claim committed.

    ``send(run_time)`` enqueues one fire. A fire too late for the job's
    ``misfire_grace_time`` is Missed! without being sent, as APScheduler's own
    executors do; one whose sending raises (the broker is down) ends Error! with
    the reason, and the job's other fires and the other jobs go on. ``stored``:
    whether the job is in ``DjangoJobStore``, where workers load it from; any
    other job's fires end Error!.

    ``record(write)`` records what became of each fire (sent, missed, failed):
    a scheduler passes its history writer's queue (``Fires.record``), which
    batches the writes and retries them for as long as the database is away, so
    a database outage neither stops the hand-off of the other fires nor leaves a
    fire Queued for ever. By default each is written at once.
    """
    record = record or _record_now
    if not stored:
        _refuse_unstored(job.id, run_times)
        return
    for run_time in run_times:
        if is_missed(job, run_time):
            logger.warning("Run time of job %r was missed (%s): not handed to the workers", job.id, run_time)
            record(_unqueue(job.id, run_time, status=DjangoJobExecution.MISSED))
            metrics.fire_finished(job.id, DjangoJobExecution.MISSED)
            continue
        try:
            send(run_time)
        except Exception as error:  # noqa: BLE001 -- one fire's failure must not cost the others theirs
            reason = f"could not be handed to the workers: {type(error).__name__}: {error}"
            logger.error(
                "Job %r %s; its fire at %s is recorded as Error!", job.id, reason, run_time,
                exc_info=getattr(error, "needs_traceback", True),
            )
            record(_unqueue(job.id, run_time, status=DjangoJobExecution.ERROR, exception=_clip(reason)))
            metrics.fire_finished(job.id, DjangoJobExecution.ERROR)
            continue
        record(history_writer.sent(job.id, to_db(run_time), db_now()))


def _unqueue(job_id: str, run_time: datetime, **fields: Any) -> history_writer.Write:
    fields.setdefault("finished", Decimal(f"{utc_now().timestamp():.2f}"))
    return history_writer.unqueue(job_id, to_db(run_time), **fields)


def _record_now(write: history_writer.Write) -> None:
    run_with_retry(
        lambda: history_writer.apply_writes([write]), "recording a hand-off", attempts=history_writer.CALLER_THREAD_ATTEMPTS
    )


def _refuse_unstored(job_id: str, run_times: list[datetime]) -> None:
    reason = (
        "could not be handed to workers: they load the job from the database, and this job is not "
        "stored in DjangoJobStore (use a DjangoJobStore, or an in-process executor, for it)"
    )
    logger.error("Job %r %s; its fire(s) are recorded as Error!", job_id, reason)
    writes = [
        history_writer.final(job_id, to_db(run_time), status=DjangoJobExecution.ERROR, exception=_clip(reason))
        for run_time in run_times
    ]
    run_with_retry(lambda: history_writer.apply_writes(writes), "recording a refused hand-off")


def queue_unclaimed(job_id: str, run_time: datetime) -> bool:
    """Write a Queued row for a fire no scheduler claimed (run now with no scheduler alive); False if it has one."""
    row = DjangoJobExecution(job_id=job_id, run_time=to_db(run_time), status=DjangoJobExecution.QUEUED, last_seen=db_now())
    created = run_with_retry(
        lambda: DjangoJobExecution.objects.bulk_create([row], ignore_conflicts=True), "queueing a fire", attempts=8
    )
    return bool(created) and DjangoJobExecution.objects.of_fire(job_id, run_time).filter(status=DjangoJobExecution.QUEUED).exists()


def is_missed(job: Job, run_time: datetime, now: datetime | None = None) -> bool:
    """APScheduler's rule: later than ``misfire_grace_time`` after the run time (None: never)."""
    if job.misfire_grace_time is None:
        return False
    return ((now or utc_now()) - run_time).total_seconds() > job.misfire_grace_time


@dataclass(frozen=True)
class WorkerFire:
    """A fire this worker process took (``start_on_worker``)."""

    execution_id: int
    job_id: str
    run_time: datetime
    started: datetime


def start_on_worker(job_id: str, run_time: datetime) -> WorkerFire | None:
    """Take a Queued fire for this worker process; None if it is not Queued (any more).

    One compare-and-set UPDATE: of two deliveries of the same fire (a redelivered
    message, two workers), exactly one takes it.
    """
    started = utc_now()
    taken = run_with_retry(
        lambda: DjangoJobExecution.objects.of_fire(job_id, run_time)
        .filter(status=DjangoJobExecution.QUEUED)
        .update(
            status=DjangoJobExecution.SENT,
            started_at=to_db(started),
            worker_host=_WORKER_HOST,
            worker_pid=os.getpid(),
            last_seen=to_db(started),
        ),
        "starting a fire on a worker",
        attempts=history_writer.CALLER_THREAD_ATTEMPTS,
    )
    if not taken:
        return None
    execution_id = DjangoJobExecution.objects.of_fire(job_id, run_time).values_list("pk", flat=True).first()
    assert execution_id is not None  # just taken; rows of unfinished fires are not deleted
    return WorkerFire(execution_id, job_id, run_time, started)


def status_of(job_id: str, run_time: datetime) -> str | None:
    """The fire's status now, or None when it has no row."""
    return DjangoJobExecution.objects.of_fire(job_id, run_time).values_list("status", flat=True).first()


def renew_leases(execution_ids: Iterable[int]) -> int:
    """A worker process's heartbeat for the fires it runs: they are not lost while it beats."""
    ids = list(execution_ids)
    if not ids:
        return 0
    return DjangoJobExecution.objects.filter(pk__in=ids, status=DjangoJobExecution.SENT).update(last_seen=db_now())


def finish_on_worker(
    fire: WorkerFire,
    *,
    status: str,
    ended: datetime | None = None,
    exception: BaseException | str | None = None,
    traceback: str | None = None,
    keep_successes: bool = True,
    job: Job | None = None,
) -> str:
    """Write the outcome of a fire a worker ran, in its row; return the status written.

    A success of a job that keeps failures only deletes the row. ``job``: the job
    that ran; once its last fire ran, the job (kept for the worker) is deleted.
    """
    if status == DjangoJobExecution.SUCCESS and not keep_successes:
        write = history_writer.forget(fire.job_id, to_db(fire.run_time))
    elif status in (DjangoJobExecution.SUCCESS, DjangoJobExecution.ERROR):
        write = outcome_write(
            fire.job_id, fire.run_time, status=status, started=fire.started, ended=ended, exception=exception, traceback=traceback
        )
    else:  # it did not run (Missed!): no timing
        write = history_writer.final(
            fire.job_id,
            to_db(fire.run_time),
            status=status,
            started_at=None,
            finished=Decimal(f"{utc_now().timestamp():.2f}"),
            exception=_describe_exception(exception) or None,
        )
    run_with_retry(lambda: history_writer.apply_writes([write]), "recording a job result")
    ran = status in (DjangoJobExecution.SUCCESS, DjangoJobExecution.ERROR)
    metrics.fire_finished(fire.job_id, status, fire.run_time, fire.started if ran else None, ended)
    if job is not None:
        _retire_if_finished(job, fire.run_time)
    return status


def _retire_if_finished(job: Job, run_time: datetime) -> None:
    """Delete a job whose last scheduled fire this was, as APScheduler does after running it.

    The claim keeps such a job (paused) for the worker to load. Only a fire of the
    schedule itself counts: an extra run ("run now") is at an instant of its own.
    """
    trigger = getattr(job.trigger, "stands_for", job.trigger)
    try:
        own_fire = trigger.get_next_fire_time(None, run_time)
        last = own_fire is not None and instant(own_fire) == instant(run_time) and trigger.get_next_fire_time(run_time, run_time) is None
    except Exception:  # noqa: BLE001 -- a trigger that cannot answer: keep the job
        logger.exception("Could not tell whether job %r has further fires; it is kept", job.id)
        return
    if last:
        DjangoJob.objects.filter(pk=job.id, next_run_time__isnull=True, run_requested_at__isnull=True).delete()


# --- waiting for outcomes (run now) ----------------------------------------------------


def wait_for_results(
    execution_keys: Iterable[tuple[str, datetime]], timeout: float, poll: float = 0.25
) -> dict[tuple[str, datetime], DjangoJobExecution | None]:
    """Wait until the given fires have a final status, or ``timeout`` seconds pass.

    Returns {(job_id, run_time): execution or None}; None or a non-final status
    means the fire is still pending.
    """
    deadline = time.monotonic() + timeout
    results: dict[tuple[str, datetime], DjangoJobExecution | None] = {key: None for key in execution_keys}
    while True:
        for key, execution in list(results.items()):
            if execution is None or execution.status not in DjangoJobExecution.FINAL_STATUSES:
                results[key] = DjangoJobExecution.objects.of_fire(*key).first()
        if all(e is not None and e.status in DjangoJobExecution.FINAL_STATUSES for e in results.values()):
            return results
        if time.monotonic() >= deadline:
            return results
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
