"""APScheduler 3 job stores backed by the Django database.

``DjangoJobStore`` keeps jobs in the ``DjangoJob`` table and is safe for any number
of schedulers sharing that table (see ``claims``). ``DjangoMemoryJobStore`` keeps
jobs in memory like APScheduler's ``MemoryJobStore``. Both record every execution
in ``DjangoJobExecution`` (see ``history``): adding the store to a scheduler is all
it takes.
"""

from __future__ import annotations

import logging
import pickle
import threading
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from django.db import IntegrityError, transaction
from django.db.models import F, Subquery

from . import conf, heartbeat, postgres
from .claims import ClaimedFires, claim_due_jobs, due_run_times, load_job_state, serialize_job
from .database import ensure_tables_exist, run_with_retry
from .fingerprint import same_schedule
from .history import HISTORY_EVENTS, HistoryRecorder
from .models import DjangoJob
from .timezones import from_db, to_db, utc_now
from .timing import connection_hygiene, wrap_job_function

logger = logging.getLogger("django_apscheduler.jobstores")

MAX_JOB_ID_LENGTH = DjangoJob._meta.get_field("id").max_length

# Calls made on behalf of user code (add_job, modify_job, ...) retry transient
# errors a few times, then let the caller see the error.
USER_CALL_ATTEMPTS = 5

# When due jobs exist that this scheduler could not claim (another scheduler holds
# them this instant), look again this soon rather than spinning.
_CONTENDED_RETRY = timedelta(milliseconds=100)
# After an unexpected (non-transient) database error in the scheduler's loop.
_ERROR_RETRY = timedelta(seconds=10)


def _attach(job: Job, scheduler: BaseScheduler | None, alias: str | None) -> None:
    # APScheduler's own job stores set these two private attributes on every job
    # they load (its Job has no public way to bind a restored job); we do the same.
    job._scheduler = scheduler
    job._jobstore_alias = alias


def _earliest(column: str) -> Subquery:
    return Subquery(
        DjangoJob.objects.filter(broken=False, **{f"{column}__isnull": False}).order_by(column).values(column)[:1]
    )


def _earliest_fire_and_request() -> tuple[datetime | None, datetime | None]:
    """(earliest next run time, earliest run request) of the jobs that can run.

    The statement every idle scheduler repeats each poll interval, so it is one
    statement of two index-ordered lookups. (MIN() would be simpler to write, but
    with the "not broken" condition only PostgreSQL answers it from the index;
    SQLite and MariaDB would scan every job.) Any one row of the table carries the
    two subqueries; an empty table has nothing to run.
    """
    rows = DjangoJob.objects.order_by().annotate(
        fire=_earliest("next_run_time"), request=_earliest("run_requested_at")
    ).values_list("fire", "request")[:1]
    return next(iter(rows), (None, None))


def _check_job_id(job_id: Any) -> None:
    if not isinstance(job_id, str):
        raise TypeError(f"Job id must be a string, not {type(job_id).__name__}")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise ValueError(
            f"Job id is {len(job_id)} characters long; DjangoJobStore stores at most "
            f"{MAX_JOB_ID_LENGTH}. Give the job a shorter id: {job_id[:60]!r}…"
        )


class DjangoJobStore(BaseJobStore):
    """Stores jobs in the Django database; any number of schedulers may share it.

    :param pickle_protocol: pickle protocol level to use for job state
    """

    def __init__(self, pickle_protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        super().__init__()
        self.pickle_protocol = pickle_protocol
        self._claimed = ClaimedFires()
        self._history: HistoryRecorder | None = None
        self._heartbeat: heartbeat.Heartbeat | None = None
        self._listener: postgres.Listener | None = None
        self._instance_id: int | None = None
        self._stopping = threading.Event()
        self._planned_wakeup: datetime | None = None
        self._last_claim_empty = False
        self._contended_streak = 0
        self._replacing = threading.local()

    # --- lifecycle -----------------------------------------------------------------

    def start(self, scheduler: BaseScheduler, alias: str) -> None:
        super().start(scheduler, alias)
        self._stopping.clear()
        ensure_tables_exist()
        instance = heartbeat.register_scheduler()
        self._instance_id = instance.pk
        self._history = HistoryRecorder(alias, scheduler_instance_id=instance.pk)
        self._history.start()
        scheduler.add_listener(self._history, HISTORY_EVENTS)
        # Code may have come back since a job was flagged: let every job try again.
        run_with_retry(
            lambda: DjangoJob.objects.filter(broken=True).update(broken=False, broken_reason=""),
            "clearing broken-job flags",
        )
        if postgres.listening_available():
            self._listener = postgres.Listener(on_due=self._wake_if_sooner, on_reconnect=scheduler.wakeup)
            self._listener.start()
        self._heartbeat = heartbeat.Heartbeat(
            instance.pk,
            earliest_next_run_time=self._earliest_next_run_time,
            planned_wakeup=lambda: self._planned_wakeup,
            wake_scheduler=scheduler.wakeup,
            notifications_live=lambda: self._listener is not None and self._listener.live,
        )
        self._heartbeat.start()

    def _wake_if_sooner(self, due: datetime) -> None:
        """A job elsewhere became due at ``due``: wake the scheduler if that is before its plan."""
        planned = self._planned_wakeup
        if self._scheduler is not None and (planned is None or due < planned):
            self._scheduler.wakeup()

    def shutdown(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.stop()
            self._listener.join(timeout=5)
            self._listener = None
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat.join(timeout=10)
            self._heartbeat = None
        if self._history is not None:
            if self._scheduler is not None:
                self._scheduler.remove_listener(self._history)
            # The executors have stopped (APScheduler shuts them down first): every
            # result is queued; write them while this scheduler still counts as alive.
            self._history.stop()
        if self._instance_id is not None:
            try:
                run_with_retry(lambda: heartbeat.mark_stopped(self._instance_id), "recording the shutdown", attempts=3)
            except Exception:
                logger.warning("Could not record the scheduler's shutdown; its heartbeat will expire instead.")
            self._instance_id = None
        super().shutdown()

    def _should_stop(self) -> bool:
        return (
            self._stopping.is_set()
            or (self._scheduler is not None and self._scheduler.state == STATE_STOPPED)
            # The interpreter is exiting (a BackgroundScheduler nobody shut down): its
            # thread pools refuse new work, so a fire claimed now would be lost.
            or not threading.main_thread().is_alive()
        )

    # --- what the scheduler's loop calls ---------------------------------------------

    def get_due_jobs(self, now: datetime) -> list[Job]:
        self._claimed.clear()
        if self._should_stop():
            # APScheduler's loop can run one more round after shutdown() released the
            # job stores; fires claimed then could no longer be submitted and would be
            # lost. A stopping scheduler claims nothing: live peers take the fires.
            return []
        connection_hygiene()  # the scheduler may have slept for days
        claims = run_with_retry(
            lambda: claim_due_jobs(
                now,
                limit=int(conf.get("APSCHEDULER_CLAIM_BATCH_SIZE")),
                scheduler_id=self._instance_id,
                load_job=self._load_job,
                on_broken_job=self._flag_broken_job,
            ),
            "claiming due jobs",
            should_stop=self._should_stop,
        )
        self._last_claim_empty = not claims
        jobs = []
        for claim in claims:
            if claim.next_run_time is None or claim.run_now:
                # The scheduler will ask to remove the job after this fire: a finished
                # date job is already deleted, and a run-now copy must not remove the
                # stored job.
                self._claimed.finished.add(claim.job.id)
            else:
                self._claimed.next_run_times[claim.job.id] = claim.next_run_time
            if self._history is not None:
                self._history.mark_recorded(claim.job.id, claim.run_times, keep_successes=claim.keep_successes)
            wrap_job_function(claim.job, claim.run_times)
            jobs.append(claim.job)
        return jobs

    def get_next_run_time(self) -> datetime | None:
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
        self._planned_wakeup = next_run_time
        return next_run_time

    def _earliest_next_run_time(self) -> datetime | None:
        """The earliest scheduled fire or pending run request, in one statement."""
        earliest = min((t for t in _earliest_fire_and_request() if t is not None), default=None)
        return self._as_scheduler_time(from_db(earliest))

    # --- the rest of the job store contract ------------------------------------------

    def lookup_job(self, job_id: str) -> Job | None:
        row = self._user_call(
            lambda: DjangoJob.objects.filter(pk=job_id).values_list("id", "next_run_time", "job_state").first(),
            "looking up a job",
        )
        if row is None:
            return None
        try:
            return self._load_job(row[0], row[1], bytes(row[2]))
        except Exception as error:
            self._flag_broken_job(row[0], error)
            return None

    def get_all_jobs(self) -> list[Job]:
        rows = self._user_call(
            lambda: list(
                DjangoJob.objects.filter(broken=False)
                .order_by(F("next_run_time").asc(nulls_last=True), "id")
                .values_list("id", "next_run_time", "job_state")
            ),
            "listing jobs",
        )
        jobs = []
        for job_id, next_run_time, job_state in rows:
            try:
                jobs.append(self._load_job(job_id, next_run_time, bytes(job_state)))
            except Exception as error:
                self._flag_broken_job(job_id, error)
        self._fix_paused_jobs_sorting(jobs)
        return jobs

    def add_job(self, job: Job) -> None:
        _check_job_id(job.id)
        state = serialize_job(job, self.pickle_protocol)

        def insert() -> None:
            try:
                with transaction.atomic():
                    DjangoJob.objects.create(id=job.id, next_run_time=to_db(job.next_run_time), job_state=state)
            except IntegrityError:
                # APScheduler's add_job(replace_existing=True) follows this error with
                # update_job(job) in the same thread: remember that it is a replacement.
                self._replacing.job_id = job.id
                raise ConflictingIdError(job.id) from None

        self._replacing.job_id = None
        self._user_call(insert, "adding a job")

    def update_job(self, job: Job) -> None:
        if self._claimed.is_echo_of_update(job):
            return  # the claim already stored this next run time
        _check_job_id(job.id)
        state = serialize_job(job, self.pickle_protocol)
        replacing = getattr(self._replacing, "job_id", None) == job.id
        self._replacing.job_id = None
        updated = self._user_call(lambda: self._write_update(job, state, replacing), "updating a job")
        if not updated:
            raise JobLookupError(job.id)

    def _write_update(self, job: Job, state: bytes, replacing: bool) -> int:
        next_run_time = to_db(job.next_run_time)
        if replacing:
            next_run_time = self._kept_schedule(job, default=next_run_time)
        return DjangoJob.objects.filter(pk=job.id).update(
            next_run_time=next_run_time, job_state=state, broken=False, broken_reason=""
        )

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
            stored = self._load_job(job.id, row[0], bytes(row[1]))
        except Exception:
            return default  # a broken stored job is simply replaced
        if not same_schedule(stored, job):
            return default
        logger.debug("Job %r re-added unchanged: keeping its stored schedule (%s)", job.id, row[0])
        return row[0]

    def remove_job(self, job_id: str) -> None:
        if self._claimed.is_echo_of_removal(job_id):
            return  # the claim already deleted this finished job
        deleted, _ = self._user_call(lambda: DjangoJob.objects.filter(pk=job_id).delete(), "removing a job")
        if not deleted:
            raise JobLookupError(job_id)

    def remove_all_jobs(self) -> None:
        self._user_call(lambda: DjangoJob.objects.all().delete(), "removing all jobs")

    # --- helpers ---------------------------------------------------------------------

    def _user_call(self, func: Callable[[], Any], what: str) -> Any:
        return run_with_retry(func, what, attempts=USER_CALL_ATTEMPTS)

    def _as_scheduler_time(self, value: datetime | None) -> datetime | None:
        if value is not None and self._scheduler is not None:
            return value.astimezone(self._scheduler.timezone)
        return value

    def _load_job(self, job_id: str, next_run_time: datetime | None, job_state: bytes) -> Job:
        state = load_job_state(job_state)
        # The column, not the pickled copy, says when the job runs next: a plain ORM
        # update of DjangoJob.next_run_time is obeyed.
        # In the trigger's own time zone, as APScheduler keeps it: in the hour repeated
        # in autumn, an instant expressed in another zone never compares equal to the
        # trigger's (PEP 495), and the trigger would hand the same fire out again.
        trigger_zone = getattr(state.get("trigger"), "timezone", None)
        value = from_db(next_run_time)
        state["next_run_time"] = value.astimezone(trigger_zone) if value and trigger_zone else self._as_scheduler_time(value)
        job = Job.__new__(Job)
        job.__setstate__(state)
        _attach(job, self._scheduler, self._alias)
        return job

    def _flag_broken_job(self, job_id: str, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"
        logger.error(
            "Job %r cannot be loaded (%s). It is kept, flagged as broken in the admin, and skipped. "
            "Restore its function (or the classes of its arguments) and restart the scheduler, "
            "or replace it with add_job(..., replace_existing=True), or remove it.",
            job_id,
            reason,
        )
        DjangoJob.objects.filter(pk=job_id).update(broken=True, broken_reason=reason[:10_000])

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}>"


class DjangoMemoryJobStore(MemoryJobStore):
    """APScheduler's in-memory job store, with executions recorded in the database."""

    def __init__(self) -> None:
        super().__init__()
        self._history: HistoryRecorder | None = None

    def start(self, scheduler: BaseScheduler, alias: str) -> None:
        super().start(scheduler, alias)
        self._history = HistoryRecorder(alias)
        self._history.start()
        scheduler.add_listener(self._history, HISTORY_EVENTS)

    def shutdown(self) -> None:
        if self._history is not None:
            if self._scheduler is not None:
                self._scheduler.remove_listener(self._history)
            self._history.stop()
        super().shutdown()

    def get_due_jobs(self, now: datetime) -> list[Job]:
        jobs = super().get_due_jobs(now)
        for job in jobs:
            run_times = due_run_times(job, now)
            wrap_job_function(job, run_times[-1:] if job.coalesce else run_times)
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
