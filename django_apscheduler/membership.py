"""A running scheduler's place in the cluster: its row, heartbeat, liveness and wake-ups.

``Membership`` is what a job store joins when its scheduler starts and leaves when
it stops. It holds everything a running scheduler keeps up besides its jobs:

- its ``SchedulerInstance`` row (host, pid, start, last heartbeat), which tells
  peers and the admin it is alive;
- the job store's ``fires.Fires`` (the listener and history writer of its fires);
- a small background thread (``Heartbeat``) that, every few seconds, refreshes
  the heartbeat; marks the unfinished fires of silent schedulers as Lost! (through
  ``fires.mark_lost``); and asks the database for the earliest due job (one indexed
  query), waking the scheduler when another process made a job due sooner than it
  planned to look, so changes made elsewhere are obeyed without a restart;
- on PostgreSQL, a LISTEN connection (``postgres.Listener``) that does that
  waking at once; the thread then polls only with its heartbeats, and every
  interval again while the listening connection is down.

An idle scheduler costs its database what this thread does, so each of its ticks
is one statement: a poll is one SELECT, and a heartbeat is one UPDATE that is
written only if nothing needs the scheduler's attention (no job due sooner than
planned, no silent peer's unfinished fire, no fire running on a peer). Only when
something does, it takes a closer look: writes the heartbeat, checks which peers
died (``liveness``), marks the lost fires and polls; so in a cluster that is
running fires, every heartbeat is that closer look. On MySQL and
MariaDB, whose UPDATEs lock the rows their subqueries read, a heartbeat is always
that closer look, with the lost-fire check every half heartbeat timeout.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from django.db import close_old_connections, connections
from django.db.models import Exists, Q, Subquery

from . import __version__, conf, fires, liveness, postgres
from .asyncio_support import off_the_loop
from .database import connection_hygiene, run_with_retry, writes_read_subqueries_without_locks
from .models import DjangoJob, DjangoJobExecution, SchedulerInstance
from .timezones import db_now, from_db, to_db, utc_now

logger = logging.getLogger("django_apscheduler.membership")

__all__ = ["Membership", "earliest_due"]


def register_scheduler() -> SchedulerInstance:
    now = db_now()
    instance = run_with_retry(
        lambda: SchedulerInstance.objects.create(
            host=socket.gethostname()[:255],
            pid=os.getpid(),
            version=__version__,
            started=now,
            last_heartbeat=now,
            namespace=liveness.this_namespace(),
            process_started=liveness.this_process_started(),
            # True once its lock is taken (peers judge a free lock only after that).
            session_lock=False,
        ),
        "registering the scheduler",
    )
    logger.info("Scheduler registered as %s (id %s)", instance, instance.pk)
    return instance


def mark_stopped(instance_id: int) -> None:
    SchedulerInstance.objects.filter(pk=instance_id).update(stopped=db_now(), last_heartbeat=db_now())


# Rows of schedulers gone for this long are deleted (their executions keep their
# history, without the link to the scheduler), so the table does not grow for ever.
DEAD_SCHEDULER_RETENTION = timedelta(days=7)
_PRUNE_EVERY = 3600.0  # seconds
# How long after its instant a fire claimed ahead is checked for having been handed
# over (Membership.check_held_fires). A running scheduler's round at the instant
# plans its next look well before this, replacing the check, so it costs it nothing.
HELD_FIRE_CHECK = timedelta(milliseconds=50)


def prune_dead_schedulers() -> int:
    """Delete scheduler rows silent for a week that have nothing left running."""
    cutoff = db_now() - DEAD_SCHEDULER_RETENTION
    running = DjangoJobExecution.objects.unfinished().values("scheduler_id")
    deleted, _ = SchedulerInstance.objects.filter(last_heartbeat__lt=cutoff).exclude(pk__in=running).delete()
    if deleted:
        logger.info("Removed %d scheduler row(s) silent for over %s days", deleted, DEAD_SCHEDULER_RETENTION.days)
    return deleted


def enforce_history_retention() -> int:
    """Delete executions older than ``APSCHEDULER_HISTORY_RETENTION`` seconds, if set."""
    retention = conf.get("APSCHEDULER_HISTORY_RETENTION")
    if retention is None:
        return 0
    # Finished ones only: a fire still queued for workers, or running, must keep its
    # row (a worker takes it from there; max_instances counts it).
    deleted = DjangoJobExecution.objects.finished().delete_old_job_executions(int(retention))
    if deleted:
        logger.info("Deleted %d execution(s) older than APSCHEDULER_HISTORY_RETENTION (%ss)", deleted, retention)
    return deleted


def _jobs_due_before(moment: datetime | None) -> Q:
    """Jobs that can run with a fire or run request before ``moment`` (None: at any time)."""
    jobs = DjangoJob.objects.runnable()
    if moment is None:
        return Exists(jobs.filter(next_run_time__isnull=False)) | Exists(jobs.filter(run_requested_at__isnull=False))
    moment = to_db(moment)
    return Exists(jobs.filter(next_run_time__lt=moment)) | Exists(jobs.filter(run_requested_at__lt=moment))


def beat_unless_needed(instance_id: int, planned_wakeup: datetime | None) -> bool:
    """Write the heartbeat, in one statement, unless something needs the scheduler.

    Something does when a job is due before the scheduler's ``planned_wakeup``
    (another process changed it) or a dead scheduler left unfinished fires. Returns
    whether the heartbeat was written; if not, the caller looks closer. Only where
    ``writes_read_subqueries_without_locks()``: elsewhere the subqueries would lock
    the jobs that claims lock.
    """
    # Fires running on peers make the heartbeat look closer too: if a peer died, its
    # session or pid says so at once, and its fires must not wait for its heartbeat.
    running_elsewhere = DjangoJobExecution.objects.in_schedulers().filter(scheduler__isnull=False).exclude(scheduler=instance_id)
    needed = _jobs_due_before(planned_wakeup) | Exists(fires.lost_fires()) | Exists(running_elsewhere)
    return bool(SchedulerInstance.objects.filter(~needed, pk=instance_id, died=None).update(last_heartbeat=db_now()))


def _gone(candidates: list[SchedulerInstance], me: int | None, my_lock: liveness.SessionLock | None) -> set[int]:
    """Which candidates' process is gone (same host) or session is gone (see ``liveness``)."""
    gone = {c.pk for c in candidates if liveness.process_gone(c.pid, c.namespace, c.process_started)}
    if my_lock is None or my_lock.taken_at is None or me is None or not conf.get("APSCHEDULER_SESSION_LIVENESS"):
        return gone
    # A free lock proves a session ended only if its owner beat after ours began (after
    # a database restart ended every session, each owner first takes its lock again),
    # and only while the database shows our own lock held: sessions are what we think.
    judged = [
        c.pk
        for c in candidates
        if c.pk not in gone and c.session_lock and from_db(c.last_heartbeat) > my_lock.taken_at
    ]
    if judged:
        held = liveness.held_locks([*judged, me])
        if me in held:
            gone |= set(judged) - held
    return gone


def _earliest(column: str) -> Subquery:
    return Subquery(DjangoJob.objects.runnable().filter(**{f"{column}__isnull": False}).order_by(column).values(column)[:1])


def earliest_due() -> datetime | None:
    """The earliest scheduled fire or pending run request of the jobs that can run.

    The statement every idle scheduler repeats each poll interval, so it is one
    statement of two index-ordered lookups. (MIN() would be simpler to write, but
    with the "not broken" condition only PostgreSQL answers it from the index;
    SQLite and MariaDB would scan every job.) Any one row of the table carries the
    two subqueries; an empty table has nothing to run.
    """
    rows = (
        DjangoJob.objects.order_by()
        .annotate(fire=_earliest("next_run_time"), request=_earliest("run_requested_at"))
        .values_list("fire", "request")[:1]
    )
    fire, request = next(iter(rows), (None, None))
    return from_db(min((t for t in (fire, request) if t is not None), default=None))


class Membership:
    """One job store's scheduler, joined to the cluster (see the module docstring).

    ``in_cluster=False`` (the in-memory job store) keeps only the fires' listener
    and history writer: no row, no heartbeat, nothing to claim or wake up for.
    ``planned_wakeup`` tells when the scheduler means to look at its jobs next.
    """

    def __init__(
        self,
        scheduler: BaseScheduler,
        alias: str,
        *,
        in_cluster: bool = True,
        planned_wakeup: Callable[[], datetime | None] = lambda: None,
    ) -> None:
        self.scheduler = scheduler
        self.alias = alias
        self.in_cluster = in_cluster
        self._planned_wakeup = planned_wakeup
        self.instance_id: int | None = None
        self.fires = fires.Fires(alias)
        self.session_lock: liveness.SessionLock | None = None
        self._heartbeat: Heartbeat | None = None
        self._listener: postgres.Listener | None = None
        self._wake_timer: WakeTimer | None = None
        self._waiting_for_start = False
        # join() and leave() can run at once (a SIGTERM right after start shuts down from
        # another thread): leave() must not stop threads join() has not started yet, and
        # a join() that comes after leave() must start nothing.
        self._lifecycle = threading.Lock()
        self._left = False
        # Whether the fires' owner, the row and the threads are up: the job store
        # uses ``fires`` (and claims) only then.
        self.joined = False
        # The scheduler started but joining failed: it must claim nothing.
        self.failed = False

    def join_once_started(self) -> None:
        """Join when the scheduler has really started: at once if it runs, else on its start event.

        APScheduler starts the job stores early in ``start()``; what follows (adding
        the pending jobs, other stores) can still fail, and then ``start()`` raises
        and leaves the scheduler stopped, with no ``shutdown()`` ever to come. A row
        and threads begun with the store would outlive it: peers and run-now would
        count on a scheduler that never runs. ``EVENT_SCHEDULER_STARTED`` is
        dispatched only once ``start()`` has succeeded, so a failed start leaves
        nothing behind. A store added to a scheduler already running joins at once.
        """
        if self.scheduler.state != STATE_STOPPED:
            self.join()
            return
        self._waiting_for_start = True
        self.scheduler.add_listener(self._on_scheduler_started, EVENT_SCHEDULER_STARTED)

    def _stop_waiting_for_start(self) -> None:
        if self._waiting_for_start:
            self._waiting_for_start = False
            self.scheduler.remove_listener(self._on_scheduler_started)

    def _on_scheduler_started(self, event: SchedulerEvent) -> None:
        self._stop_waiting_for_start()
        try:
            # An AsyncIOScheduler dispatches its start event on the loop's thread,
            # where Django refuses database work: register from a thread of its own.
            off_the_loop(self.join)
        except Exception:
            # APScheduler swallows a listener's error and the scheduler runs on: undo
            # what was begun, and make sure it claims nothing rather than run unseen.
            self.failed = True
            logger.exception(
                "The scheduler started but could not register in the database; it claims no jobs. Restart it."
            )
            off_the_loop(self.leave)

    def join(self) -> fires.Fires:
        """Register, start recording fires, and start the heartbeat; returns the fires' owner."""
        with self._lifecycle:
            if self._left:
                return self.fires
            self._start_threads()
        # Claiming waits for the session lock: take it before the scheduler's first look.
        heartbeat = self._heartbeat
        if heartbeat is not None and not heartbeat.session_taken.wait(timeout=10) and not self._left:
            logger.warning("The session lock was not taken within 10 s; this scheduler claims nothing until it is.")
        self.joined = not self._left
        return self.fires

    def _start_threads(self) -> None:
        if self.in_cluster:
            self.instance_id = register_scheduler().pk
            self.fires.scheduler_id = self.instance_id
            self.fires.peers_gone = self.peers_gone
            if liveness.sessions_supported():
                self.session_lock = liveness.SessionLock(self.instance_id)
        self.fires.start(self.scheduler)
        if self.in_cluster:
            if postgres.listening_available():
                self._listener = postgres.Listener(on_due=self.wake_if_sooner, on_reconnect=self.scheduler.wakeup)
                self._listener.start()
            self._heartbeat = Heartbeat(self)
            self._heartbeat.start()
            self._wake_timer = WakeTimer(self.scheduler.wakeup, check_held=self.check_held_fires)
            self._wake_timer.start()

    def leave(self) -> None:
        """Write every queued result, record the clean stop, then stop the threads.

        In that order: while results are written the scheduler still counts as alive,
        and its session lock (held by the heartbeat thread) is released only once its
        row says it stopped, so no peer takes the release for a death.
        """
        with self._lifecycle:
            self._left = True
            self._leave()

    def _leave(self) -> None:
        self._stop_waiting_for_start()
        if self._wake_timer is not None:
            self._wake_timer.stop()
            self._wake_timer.join(timeout=5)
            self._wake_timer = None
        # The executors have stopped (APScheduler shuts them down first): every result is
        # queued. Settled before the listener stops, which can take a second: meanwhile a
        # peer could claim the following fire of a job whose fire this one holds, and the
        # held fire could then not be given back (it would end Lost!).
        self.fires.stop()
        if self._listener is not None:
            self._listener.stop()
            self._listener.join(timeout=5)
            self._listener = None
        if self.instance_id is not None:
            instance_id = self.instance_id
            try:
                run_with_retry(lambda: mark_stopped(instance_id), "recording the shutdown", attempts=3)
            # Whatever fails here (the database, or Django itself at interpreter exit or in an
            # async server's shutdown), the rest of the shutdown must still run.
            except Exception:  # noqa: BLE001
                logger.warning("Could not record the scheduler's shutdown; its heartbeat will expire instead.")
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat.join(timeout=10)  # it releases the session lock as it ends
            self._heartbeat = None
        self.instance_id = None
        self.joined = False

    def planned_wakeup(self) -> datetime | None:
        return self._planned_wakeup()

    def may_claim(self) -> bool:
        """Peers can tell this scheduler is alive: it holds its session lock where there is one.

        Until the heartbeat thread has taken it (at its first beat, or again after the
        database dropped its connection), claiming would risk peers declaring this
        scheduler dead while its fires run.
        """
        if self.failed:
            return False
        return self.session_lock is None or self.session_lock.held

    def hold_session(self) -> None:
        """Take the session lock on this thread's connection if it does not hold it (heartbeat thread).

        The first time, the row says so (peers judge a free lock only from then on). A
        lock that an old session of this scheduler still holds (a half-open connection
        the server has not noticed) is waited for up to the heartbeat timeout; then the
        scheduler registers again under a new id, with a new lock.
        """
        lock = self.session_lock
        if lock is None or self.instance_id is None:
            return
        was_ever_taken = lock.ever_taken
        if lock.ensure():
            if not was_ever_taken:
                SchedulerInstance.objects.filter(pk=self.instance_id).update(session_lock=True)
        elif lock.failing_for() > float(conf.get("APSCHEDULER_HEARTBEAT_TIMEOUT")):
            self.rejoin("cannot take its session lock (an old database session of it still holds it)")

    def rejoin(self, reason: str) -> None:
        """Register again under a new id (heartbeat thread): peers declared this one dead, or its lock is stuck.

        Fires claimed under the old id keep it; they were (or will be) marked Lost! and
        get their real outcome when they end.
        """
        old = self.instance_id
        logger.warning("Scheduler %s %s: it registers again as a new scheduler.", old, reason)
        if self.session_lock is not None:
            self.session_lock.release()
        if old is not None:
            SchedulerInstance.objects.filter(pk=old, stopped=None).update(stopped=db_now())
        self.instance_id = register_scheduler().pk
        self.fires.scheduler_id = self.instance_id
        if self.session_lock is not None:
            self.session_lock = liveness.SessionLock(self.instance_id)
            self.hold_session()

    def peers_gone(self, among: set[int] | None = None) -> set[int]:
        """Peers (or just ``among``) that are dead: silent, or their session or process gone.

        Those newly found dead by their session or process are marked ``died``. The
        caller marks their unfinished fires Lost! (``fires.mark_lost``).
        """
        peers = SchedulerInstance.objects.exclude(pk=self.instance_id) if self.instance_id is not None else SchedulerInstance.objects.all()
        if among is not None:
            already_dead = set(peers.filter(pk__in=among).silent().values_list("pk", flat=True))
            peers = peers.filter(pk__in=among)
        else:
            already_dead = set()
        fields = ("pk", "pid", "namespace", "process_started", "started", "last_heartbeat", "session_lock")
        candidates = list(peers.alive().only(*fields))
        if not candidates:
            return already_dead
        gone = _gone(candidates, self.instance_id, self.session_lock)
        if gone:
            SchedulerInstance.objects.filter(pk__in=gone, died=None).update(died=db_now())
            logger.warning(
                "Scheduler(s) %s found dead (database session or process gone): their unfinished fires are Lost!",
                ", ".join(str(c) for c in candidates if c.pk in gone),
            )
        return gone | already_dead

    def notifications_live(self) -> bool:
        return self._listener is not None and self._listener.live

    def wake_at(self, moment: datetime | None, check_held_at: datetime | None = None) -> bool:
        """Wake the scheduler at ``moment`` (None: no such wake-up), besides when its stores' run times say.

        ``check_held_at``: when to check that the fires claimed ahead were handed over
        (``check_held_fires``); None: no check. False when no wake-up can be planned
        (the scheduler is not in the cluster, or is leaving it).
        """
        timer = self._wake_timer
        if timer is None or not timer.is_alive():
            return False
        timer.wake_at(moment, check_held_at)
        return True

    def check_held_fires(self) -> datetime | None:
        """Just after a held fire's instant: if the scheduler is stopping, give its fires claimed ahead back.

        APScheduler marks a scheduler stopped, then waits for its running jobs, and
        only then stops the job stores. Meanwhile its loop hands over nothing: a fire
        held for its instant would go back only at the end, by which time a peer may
        have claimed the job's following fire (the give-back then fails, and the held
        fire ends Lost!). The store plans this check ``HELD_FIRE_CHECK`` after the
        earliest held fire's instant, so a stopping scheduler lets go of it then.

        Returns when to check again: a running scheduler still holding a fire past
        its instant has a late loop (a busy machine), and may yet stop before it
        hands the fire over.
        """
        if self.scheduler.state == STATE_STOPPED:
            try:
                self.fires.give_back_all_early(when="stopped")
            finally:
                connections.close_all()  # this thread's own: it has no other database work
            return None
        held = self.fires.next_held()
        if held is None or held.timestamp() > time.time():
            return None
        return utc_now() + HELD_FIRE_CHECK

    def wake_if_sooner(self, due: datetime | None) -> None:
        """A job became due at ``due`` (elsewhere): wake the scheduler if that is before its plan."""
        planned = self._planned_wakeup()
        if due is not None and (planned is None or due < planned):
            logger.debug("A job is due at %s, before the planned wake-up at %s: waking the scheduler", due, planned)
            self.scheduler.wakeup()


class WakeTimer(threading.Thread):
    """Wakes the scheduler at one planned moment, and checks its held fires just after their instant.

    APScheduler sleeps until the earliest run time its job stores report. Claiming
    a fire before its instant (``APSCHEDULER_CLAIM_AHEAD``) needs the scheduler
    awake sooner; reporting an earlier run time than any job has would break the
    job-store contract, so a wake-up does it. One moment at a time: each report of
    run times sets it anew.

    The check of the held fires (``check_held``) is a moment of its own, never
    cleared by a wake-up: whatever the loop does or no longer does (a scheduler
    stopping), it comes. It returns when to check again, if ever.
    """

    def __init__(
        self, wake: Callable[[], None], check_held: Callable[[], datetime | None] = lambda: None
    ) -> None:
        super().__init__(name="django-apscheduler-wake-timer", daemon=True)
        self._wake = wake
        self._check_held = check_held
        self._changed = threading.Condition()
        # Wall-clock timestamps, as the scheduler's run times are.
        self._at: float | None = None
        self._check_at: float | None = None
        self._stopped = False

    def wake_at(self, moment: datetime | None, check_held_at: datetime | None = None) -> None:
        with self._changed:
            self._at = _timestamp(moment)
            self._check_at = _timestamp(check_held_at)
            self._changed.notify()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def run(self) -> None:
        while True:
            with self._changed:
                while not self._stopped and not self._reached(time.time()):
                    moments = [m for m in (self._at, self._check_at) if m is not None]
                    self._changed.wait(min(moments) - time.time() if moments else None)
                if self._stopped:
                    return
                now = time.time()
                wake, check = self._reached_wake(now), self._reached_check(now)
                if wake:
                    self._at = None
                if check:
                    self._check_at = None
            if check:
                self._run_check()
            if wake and not self._run_wake():
                return

    def _reached_wake(self, now: float) -> bool:
        return self._at is not None and self._at <= now

    def _reached_check(self, now: float) -> bool:
        return self._check_at is not None and self._check_at <= now

    def _reached(self, now: float) -> bool:
        return self._reached_wake(now) or self._reached_check(now)

    def _run_check(self) -> None:
        try:
            again = _timestamp(self._check_held())
        except Exception:
            logger.exception("Could not check the fires claimed ahead; they are given back when the scheduler stops")
            return
        if again is not None:
            with self._changed:
                # A plan made meanwhile by the scheduler's loop stands, if sooner.
                self._check_at = again if self._check_at is None else min(self._check_at, again)

    def _run_wake(self) -> bool:
        """Wake the scheduler; False once there is nothing left to wake."""
        try:
            self._wake()
        except RuntimeError:  # an AsyncIOScheduler whose event loop has closed: nothing left to wake
            return False
        except Exception:
            # The store counts on this thread to look at the database again after a
            # round that did not (see DjangoJobStore.get_next_run_time): it must live on.
            logger.exception("Could not wake the scheduler; the next planned wake-up will try again")
        return True


def _timestamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


class Heartbeat(threading.Thread):
    """The background thread described in the module docstring."""

    def __init__(self, membership: Membership) -> None:
        super().__init__(name="django-apscheduler-heartbeat", daemon=True)
        self.membership = membership
        self._stop_event = threading.Event()
        self.session_taken = threading.Event()
        self._last_beat = 0.0
        self._last_lost_check = 0.0
        self._last_prune = 0.0

    @property
    def instance_id(self) -> int | None:
        return self.membership.instance_id

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            run_with_retry(self.membership.hold_session, "taking the session lock", should_stop=self._stop_event.is_set)
        except Exception:
            logger.exception("Could not take the session lock; trying again with the next heartbeat")
        self.session_taken.set()
        while not self._stop_event.wait(self._tick_interval()):
            # No "is the connection alive?" ping first: that would double the idle
            # cost. A query on a dropped connection fails, and the retry reconnects.
            # Its connection holds the session lock: never recycled for age, only replaced when broken.
            connection_hygiene(check_idle=False, keep_session=True)
            try:
                if time.monotonic() - self._last_beat >= float(conf.get("APSCHEDULER_HEARTBEAT_INTERVAL")):
                    run_with_retry(self._beat, "sending the scheduler heartbeat", should_stop=self._stop_event.is_set)
                    self._last_beat = time.monotonic()
                elif not self.membership.notifications_live():
                    run_with_retry(self._poll, "checking for job changes", should_stop=self._stop_event.is_set)
            except Exception:
                if self._stop_event.is_set():
                    break
                logger.exception("Heartbeat failed; trying again in %ss", self._tick_interval())
        if self.membership.session_lock is not None:
            self.membership.session_lock.release()
        close_old_connections()

    def _tick_interval(self) -> float:
        if self.membership.notifications_live():
            return float(conf.get("APSCHEDULER_HEARTBEAT_INTERVAL"))
        return min(float(conf.get("APSCHEDULER_POLL_INTERVAL")), float(conf.get("APSCHEDULER_HEARTBEAT_INTERVAL")))

    def _beat(self) -> None:
        # First the session lock, then the heartbeat: a peer judges a free lock only by
        # heartbeats sent after its own lock was taken (see liveness).
        self.membership.hold_session()
        if writes_read_subqueries_without_locks():
            # instance_id is None only when leave() ran while this beat was under way
            # (it waits for the thread 10 s at most): no row to beat, the rest as usual.
            instance_id = self.instance_id
            if instance_id is None or not beat_unless_needed(instance_id, self.membership.planned_wakeup()):
                self._beat_and_look(lost_check_due=True)
        else:
            # MySQL and MariaDB: separate statements, the lost-fire check every half timeout.
            half_timeout = float(conf.get("APSCHEDULER_HEARTBEAT_TIMEOUT")) / 2
            self._beat_and_look(lost_check_due=time.monotonic() - self._last_lost_check >= half_timeout)
        if time.monotonic() - self._last_prune >= _PRUNE_EVERY:
            prune_dead_schedulers()
            enforce_history_retention()
            self._last_prune = time.monotonic()

    def _beat_and_look(self, lost_check_due: bool) -> None:
        """The heartbeat, the lost-fire check and a poll, each its own statement."""
        instance_id = self.instance_id
        if instance_id is not None:  # see _beat
            beaten = SchedulerInstance.objects.filter(pk=instance_id, died=None).update(last_heartbeat=db_now())
            if not beaten and SchedulerInstance.objects.filter(pk=instance_id, died__isnull=False).exists():
                # A peer took this scheduler for dead (its session dropped for a moment):
                # its row is closed; carry on under a new one.
                self.membership.rejoin("was declared dead by a peer")
        if lost_check_due:
            self.membership.peers_gone()
            fires.mark_lost()
            self._last_lost_check = time.monotonic()
        self._poll()

    def _poll(self) -> None:
        self.membership.wake_if_sooner(earliest_due())
