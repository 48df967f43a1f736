"""APScheduler 3 job stores backed by the Django database: the seam, kept thin.

``DjangoJobStore`` keeps jobs in the ``DjangoJob`` table and is safe for any number
of schedulers sharing that table. ``DjangoMemoryJobStore`` keeps jobs in memory
like APScheduler's ``MemoryJobStore``. Both record every execution in
``DjangoJobExecution``: adding the store to a scheduler is all it takes.

What a store does when its scheduler starts is ``membership``'s (the scheduler's
row, heartbeat, wake-ups); what happens to a due job's fires is ``fires``'; job
state is (un)pickled only by ``jobstate``.
"""

from __future__ import annotations

import logging
import pickle
import threading
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from django.db import IntegrityError, transaction
from django.db.models import F

from . import conf, jobstate, limits
from .asyncio_support import runs_off_the_loop
from .claims import instant
from .compat import DjangoResultStoreMixin
from .database import connection_hygiene, ensure_schema_ready, run_with_retry
from .fingerprint import same_schedule
from .fires import Fires, flag_broken
from .membership import HELD_FIRE_CHECK, Membership, earliest_due
from .models import DjangoJob
from .timezones import to_db, utc_now

logger = logging.getLogger("django_apscheduler.jobstores")

# The model's own bound, which ``limits`` states with its reason.
MAX_JOB_ID_LENGTH: int = limits.MAX_JOB_ID_LENGTH
assert DjangoJob._meta.get_field("id").max_length == MAX_JOB_ID_LENGTH

# Calls made on behalf of user code (add_job, modify_job, ...) retry transient
# errors a few times, then let the caller see the error.
USER_CALL_ATTEMPTS = 5

# When due jobs exist that this scheduler could not claim (another scheduler holds
# them this instant), look again this soon rather than spinning.
_CONTENDED_RETRY = timedelta(milliseconds=100)
# After an unexpected (non-transient) database error in the scheduler's loop.
_ERROR_RETRY = timedelta(seconds=10)
# After a round that only handed over fires claimed ahead, the database is looked at
# this much later, once their threads have started (see _answer_from_last_look).
_LOOK_AFTER_RELEASE = timedelta(milliseconds=10)


def _check_job_id(job_id: Any) -> None:
    """An id no database could store as given (too long, NUL, ...) is refused before any write."""
    limits.check_job_id(job_id)


class _JoinsItsScheduler:
    """What both stores do with their scheduler's ``Membership`` (see ``Membership.join_once_started``)."""

    def __init__(self) -> None:
        super().__init__()
        self._membership: Membership | None = None
        # Until its scheduler has started, a store used on its own (as APScheduler's
        # job-store tests do) records fires in the calling thread, with no scheduler row.
        self._standalone_fires = Fires(alias="")

    @property
    def _fires(self) -> Fires:
        """The scheduler's fires' owner once it has started, else the calling thread's."""
        membership = self._membership
        return membership.fires if membership is not None and membership.joined else self._standalone_fires

    @property
    def fires(self) -> Fires:
        """The owner of this store's fires (``fires.Fires``), for executors that hand them off."""
        return self._fires

    def _join(self, membership: Membership) -> None:
        self._leave()  # started again: after a failed start, or on another scheduler
        self._membership = membership
        membership.join_once_started()

    def _leave(self) -> None:
        if self._membership is not None:
            self._membership.leave()
            self._membership = None


@runs_off_the_loop
class DjangoJobStore(_JoinsItsScheduler, DjangoResultStoreMixin, BaseJobStore):
    """Stores jobs in the Django database; any number of schedulers may share it.

    Works with every APScheduler 3 scheduler class, AsyncIOScheduler included: called
    on an event loop's thread, its database work runs on a thread of its own
    (``asyncio_support``).

    :param pickle_protocol: pickle protocol level to use for job state
    """

    def __init__(self, pickle_protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        super().__init__()
        self.pickle_protocol = pickle_protocol
        self._stopping = threading.Event()
        self._planned_wakeup: datetime | None = None
        self._last_claim_empty = False
        # Whether the last round only handed over fires claimed ahead (see get_due_jobs).
        self._only_released = False
        # The earliest stored fire, as the last look at the database found it.
        self._last_stored: datetime | None = None
        # Up to when the last claim looked ahead: a fire by then not claimed was left
        # for its instant (see _early_claim_time).
        self._last_horizon: datetime | None = None
        self._contended_streak = 0
        self._replacing = threading.local()
        # Whether its scheduler was seen running: only then does a stopped scheduler
        # mean "shutting down" (a store on a scheduler never run hands out due jobs,
        # as APScheduler's own job store tests expect).
        self._scheduler_ran = False

    # --- lifecycle -----------------------------------------------------------------

    def start(self, scheduler: BaseScheduler, alias: str) -> None:
        super().start(scheduler, alias)
        self._stopping.clear()
        ensure_schema_ready()
        # Code may have come back since a job was flagged: let every job try again.
        run_with_retry(lambda: DjangoJob.objects.filter(broken=True).mark_repaired(), "clearing broken-job flags")
        self._join(Membership(scheduler, alias, planned_wakeup=lambda: self._planned_wakeup))

    def shutdown(self) -> None:
        self._stopping.set()
        self._leave()
        super().shutdown()

    def _should_stop(self) -> bool:
        return (
            self._stopping.is_set()
            or (self._scheduler_ran and self._scheduler is not None and self._scheduler.state == STATE_STOPPED)
            # The interpreter is exiting (a BackgroundScheduler nobody shut down): its
            # thread pools refuse new work, so a fire claimed now would be lost.
            or not threading.main_thread().is_alive()
        )

    # --- what the scheduler's loop calls ---------------------------------------------

    def get_due_jobs(self, now: datetime) -> list[Job]:
        fires = self._fires
        if self._scheduler is not None and self._scheduler.state != STATE_STOPPED:
            self._scheduler_ran = True
        if self._should_stop():
            # APScheduler's loop can run one more round after shutdown() released the
            # job stores; fires claimed then could no longer be submitted and would be
            # lost. A stopping scheduler claims nothing: live peers take the fires
            # (and it gives back those it claimed ahead).
            return []
        released = fires.release_held(now)
        if released and not self._only_released:
            # Claimed ahead and due now: handed over at once, without waiting for this
            # round's claim. The scheduler's next round (at once, if anything is due)
            # claims, whether or not it hands over more: fires claimed ahead that fall
            # due one after the other never hold up the rest.
            self._only_released = True
            self._last_claim_empty = False
            return released
        self._only_released = False
        ahead = self._claim_ahead()
        self._last_horizon = now + timedelta(seconds=ahead)
        if self._membership is not None and not self._membership.may_claim():
            return released  # peers could not tell it is alive (no session lock yet): it takes nothing more
        connection_hygiene()  # the scheduler may have slept for days
        jobs = run_with_retry(
            lambda: fires.claim(
                now,
                limit=int(conf.get("APSCHEDULER_CLAIM_BATCH_SIZE")),
                load_job=self._load_runnable_job,
                ahead=ahead,
            ),
            "claiming due jobs",
            should_stop=self._should_stop,
        )
        self._last_claim_empty = not jobs and not released
        fires.give_back_if_paused()
        return released + jobs

    def _claim_ahead(self) -> float:
        """Seconds ahead of their instant that fires are claimed (``APSCHEDULER_CLAIM_AHEAD``).

        Only by a scheduler that runs: a store used on its own hands out what is due,
        as APScheduler's job stores do.
        """
        if self._membership is None or not self._membership.joined or not self._scheduler_ran:
            return 0.0
        return max(0.0, float(conf.get("APSCHEDULER_CLAIM_AHEAD")))

    def get_next_run_time(self) -> datetime | None:
        """The earliest stored fire, or fire claimed ahead and held; the claim ahead of the next is timed here."""
        if self._only_released and self._membership is not None:
            look_again = utc_now() + _LOOK_AFTER_RELEASE
            if self._membership.wake_at(look_again, _held_check_time(self._fires.next_held())):
                return self._answer_from_last_look(look_again)
            # No wake-up can be planned (the scheduler is leaving): look now.
        stored = self._last_stored = self._next_stored_run_time()
        held = self._fires.next_held()
        next_run_time = _earliest(stored, held)
        early = self._early_claim_time(stored)
        if self._membership is not None:
            # APScheduler sleeps until the run time returned: a claim ahead of it needs
            # the scheduler awake sooner (a wake-up, not an earlier run time no job has).
            # Just after a held fire's instant, the timer checks it was handed over:
            # a scheduler stopping (waiting for its running jobs) will not, and gives
            # it back then rather than after its jobs end, when a peer may have moved
            # the job on.
            self._membership.wake_at(early, _held_check_time(held))
        self._planned_wakeup = _earliest(next_run_time, early)
        return next_run_time

    def _answer_from_last_look(self, look_again: datetime) -> datetime | None:
        """After a round that only handed over fires claimed ahead: no query now, a full round at ``look_again``.

        APScheduler asks for the next run time right after submitting the round's
        fires, before their threads run. A query then holds the interpreter while
        they wait to start (with 50 fires at one instant, 1.7 ms of every fire's lag
        here). That round claimed nothing, so the last look's stored time stands;
        the full round (a claim, then the query) 10 ms later also serves any wake-up
        this round took (a change made elsewhere) and any write it made.
        """
        next_run_time = _earliest(self._last_stored, self._fires.next_held())
        self._planned_wakeup = _earliest(next_run_time, look_again)
        # Fires were handed over: no peer was holding these jobs (the query would have
        # found the same and ended any back-off).
        self._contended_streak = 0
        return next_run_time

    def _early_claim_time(self, stored: datetime | None) -> datetime | None:
        """When to claim the next stored fire ahead of its instant; None: at its instant."""
        ahead = self._claim_ahead()
        if stored is None or not ahead or self._contended_streak:
            return None
        if self._last_horizon is not None and instant(stored) <= instant(self._last_horizon):
            # The last claim saw it and left it for its instant (a date job, a job over
            # max_instances, one a peer is claiming): waking early again would spin.
            return None
        return stored.astimezone(timezone.utc) - timedelta(seconds=ahead)  # in UTC: see _held_check_time

    def _next_stored_run_time(self) -> datetime | None:
        try:
            next_run_time = run_with_retry(
                self._earliest_next_run_time, "finding the next run time", should_stop=self._should_stop
            )
        except Exception:
            if self._should_stop():
                return None
            # APScheduler does not catch errors here: raising would end its loop. Log,
            # and look again later; transient errors were already retried above.
            logger.exception("Could not find the next run time; trying again in %ss", _ERROR_RETRY.seconds)
            return utc_now() + _ERROR_RETRY
        if next_run_time is not None and self._last_claim_empty and next_run_time <= utc_now():
            # Due jobs exist that this scheduler could not claim (another one is
            # claiming them right now): look again in a moment instead of spinning,
            # backing off while it lasts, up to the poll interval.
            self._contended_streak += 1
            delay = min(
                _CONTENDED_RETRY.total_seconds() * 2 ** min(self._contended_streak - 1, 10),
                float(conf.get("APSCHEDULER_POLL_INTERVAL")),
            )
            next_run_time = utc_now() + timedelta(seconds=delay)
        else:
            self._contended_streak = 0
        return next_run_time

    def _earliest_next_run_time(self) -> datetime | None:
        """The earliest scheduled fire or pending run request, in one statement."""
        return self._as_scheduler_time(earliest_due())

    # --- the rest of the job store contract ------------------------------------------

    def lookup_job(self, job_id: str) -> Job | None:
        row = self._user_call(
            lambda: DjangoJob.objects.filter(pk=job_id).values_list("id", "next_run_time", "job_state").first(),
            "looking up a job",
        )
        return None if row is None else self._restore_or_flag(*row)

    def get_all_jobs(self) -> list[Job]:
        rows = self._user_call(
            lambda: list(
                DjangoJob.objects.runnable()
                .order_by(F("next_run_time").asc(nulls_last=True), "id")
                .values_list("id", "next_run_time", "job_state")
            ),
            "listing jobs",
        )
        jobs = [job for job in (self._restore_or_flag(*row) for row in rows) if job is not None]
        self._fix_paused_jobs_sorting(jobs)
        return jobs

    def add_job(self, job: Job) -> None:
        _check_job_id(job.id)
        columns = jobstate.dump(job, self.pickle_protocol)

        def insert() -> None:
            row = DjangoJob(id=job.id, next_run_time=to_db(job.next_run_time), **columns)
            try:
                connection = transaction.get_connection()
                if connection.in_atomic_block or not connection.get_autocommit():
                    # Inside the caller's transaction (atomic, or autocommit turned off by
                    # hand): a savepoint, so that it survives a conflict.
                    with transaction.atomic():
                        DjangoJob.objects.insert_one(row)
                else:
                    # Autocommit: the INSERT is its own transaction, one round trip
                    # instead of three (BEGIN, INSERT, COMMIT).
                    DjangoJob.objects.insert_one(row)
            except IntegrityError:
                # APScheduler's add_job(replace_existing=True) follows this error with
                # update_job(job) in the same thread: remember that it is a replacement.
                self._replacing.job_id = job.id
                raise ConflictingIdError(job.id) from None

        self._replacing.job_id = None
        self._user_call(insert, "adding a job")

    def update_job(self, job: Job) -> None:
        if self._fires.is_echo_of_update(job):
            return  # the claim already stored this next run time
        _check_job_id(job.id)
        self._give_back_early_claim(job)
        columns = jobstate.dump(job, self.pickle_protocol)
        replacing = getattr(self._replacing, "job_id", None) == job.id
        self._replacing.job_id = None
        updated = self._user_call(lambda: self._write_update(job, columns, replacing), "updating a job")
        if not updated:
            raise JobLookupError(job.id)

    def _write_update(self, job: Job, columns: dict[str, Any], replacing: bool) -> int:
        next_run_time = to_db(job.next_run_time)
        if replacing:
            next_run_time = self._kept_schedule(job, default=next_run_time)
        return DjangoJob.objects.filter(pk=job.id).mark_repaired(next_run_time=next_run_time, **columns)

    def _kept_schedule(self, job: Job, default: datetime | None) -> datetime | None:
        """The stored next run time, when add_job(replace_existing=True) re-adds the same job.

        Every web worker or host that runs the quick-start re-adds its jobs at boot.
        Replacing an unchanged job must not restart its schedule (an interval job
        would fire again at each boot, once per process) nor resume a job paused in
        the admin; a job whose trigger, function or arguments changed is rescheduled.
        """
        row = DjangoJob.objects.filter(pk=job.id).values_list("next_run_time", "job_state").first()
        if row is None:
            return default
        try:
            stored = jobstate.restore(job.id, row[0], row[1], self._scheduler, self._alias)
        except jobstate.JobStateError:
            return default  # a broken stored job is simply replaced
        if not same_schedule(stored, job):
            return default
        logger.debug("Job %r re-added unchanged: keeping its stored schedule (%s)", job.id, row[0])
        return row[0]

    def _give_back_early_claim(self, job: Job) -> None:
        """A job changed in this process while its next fire is claimed ahead: the claim is undone first.

        The change then applies to that fire as if it had come before the claim: a job
        whose schedule is unchanged (new arguments, say) keeps the fire, and runs it
        with its new arguments; a paused or rescheduled one does not run it.
        """
        claim = self._fires.give_back_early(job.id)
        if claim is None or job.next_run_time is None or claim.next_run_time is None:
            return
        if instant(job.next_run_time) == instant(claim.next_run_time):
            job.next_run_time = claim.run_times[0]

    def remove_job(self, job_id: str) -> None:
        if self._fires.is_echo_of_removal(job_id):
            return  # the claim already deleted this finished job
        self._fires.give_back_early(job_id)  # the fire it held will not happen
        deleted, _ = self._user_call(lambda: DjangoJob.objects.filter(pk=job_id).delete(), "removing a job")
        if not deleted:
            raise JobLookupError(job_id)

    def remove_all_jobs(self) -> None:
        for job_id in self._fires.held_job_ids():
            self._fires.give_back_early(job_id)  # as remove_job: raises if the database refuses
        self._user_call(lambda: DjangoJob.objects.all().delete(), "removing all jobs")

    # --- helpers ---------------------------------------------------------------------

    def _user_call(self, func: Callable[[], Any], what: str) -> Any:
        return run_with_retry(func, what, attempts=USER_CALL_ATTEMPTS)

    def _as_scheduler_time(self, value: datetime | None) -> datetime | None:
        if value is not None and self._scheduler is not None:
            return value.astimezone(self._scheduler.timezone)
        return value

    def _restore_or_flag(self, job_id: str, next_run_time: datetime | None, job_state: bytes) -> Job | None:
        try:
            return jobstate.restore(job_id, next_run_time, job_state, self._scheduler, self._alias)
        except jobstate.JobStateError as error:
            flag_broken(job_id, str(error))
            return None

    def _load_runnable_job(self, job_id: str, next_run_time: datetime | None, job_state: bytes) -> Job:
        """A claimed row as a Job, refusing (before the claim writes anything) what cannot run here."""
        job = jobstate.restore(job_id, next_run_time, job_state, self._scheduler, self._alias)
        # (A scheduler that never ran has no executors yet: nothing to check against.)
        if self._scheduler is not None and self._scheduler_ran and not _has_executor(self._scheduler, job.executor):
            # APScheduler would delete a job whose executor it cannot find.
            raise jobstate.JobStateError(
                f"cannot run: its executor {job.executor!r} is not configured on this scheduler; add it with "
                f"scheduler.add_executor(..., alias={job.executor!r}) or change the job's executor"
            )
        return job

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}(pickle_protocol={self.pickle_protocol})>"


def _held_check_time(held: datetime | None) -> datetime | None:
    """When the wake timer checks that the earliest fire claimed ahead, due at ``held``, was handed over."""
    # In UTC: a local time plus a delta loses its ``fold``, and in the hour repeated in
    # autumn would land an hour early (a check due at once, again and again).
    return None if held is None else held.astimezone(timezone.utc) + HELD_FIRE_CHECK


def _earliest(*moments: datetime | None) -> datetime | None:
    return min((m for m in moments if m is not None), key=instant, default=None)


def _has_executor(scheduler: BaseScheduler, alias: str) -> bool:
    # APScheduler 3 has no public "is this executor configured?"; its own lookup is
    # the private _lookup_executor, which raises KeyError for an unknown alias.
    try:
        scheduler._lookup_executor(alias)
    except KeyError:
        return False
    return True


class DjangoMemoryJobStore(_JoinsItsScheduler, DjangoResultStoreMixin, MemoryJobStore):
    """APScheduler's in-memory job store, with executions recorded in the database."""

    def start(self, scheduler: BaseScheduler, alias: str) -> None:
        super().start(scheduler, alias)
        self._join(Membership(scheduler, alias, in_cluster=False))

    def shutdown(self) -> None:
        self._leave()
        super().shutdown()

    def get_due_jobs(self, now: datetime) -> list[Job]:
        jobs = super().get_due_jobs(now)
        for job in jobs:
            self._fires.hand_off_unclaimed(job, now)
        return jobs


def register_events(scheduler: BaseScheduler, result_storage: Any = None) -> None:
    """Deprecated: the job stores record executions by themselves now."""
    warnings.warn(
        "register_events() is deprecated and does nothing: DjangoJobStore and DjangoMemoryJobStore "
        "record job executions on their own. Remove the call.",
        DeprecationWarning,
        stacklevel=2,
    )


def register_job(scheduler: BaseScheduler, *args: Any, **kwargs: Any) -> Callable:
    """Deprecated decorator: add the decorated function to ``scheduler`` as a job.

    The job id defaults to the function's dotted path. Use ``scheduler.add_job`` or
    the ``django_apscheduler.registry.job`` decorator instead.
    """
    warnings.warn(
        "register_job() is deprecated: use scheduler.add_job(...) or the @job decorator "
        "from django_apscheduler.registry.",
        DeprecationWarning,
        stacklevel=2,
    )

    def decorator(func: Callable) -> Callable:
        kwargs.setdefault("id", f"{func.__module__}.{func.__name__}")
        scheduler.add_job(func, *args, **kwargs)
        return func

    return decorator
