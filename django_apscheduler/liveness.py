"""Noticing in seconds that a scheduler's process is gone, without waiting for its heartbeat.

A process that dies on a healthy host (an OOM kill, a deploy's SIGKILL, a crash)
leaves two traces that its peers can read at once:

- its **database session** ends, and with it the session lock it held for its
  lifetime (PostgreSQL ``pg_advisory_lock``, MySQL/MariaDB ``GET_LOCK``). A peer
  that sees the lock free knows the session is gone;
- its **pid** no longer exists (or belongs to a process started after it), which a
  peer in the same pid namespace of the same boot can check. This covers SQLite,
  which has no sessions and serves one host by nature.

The heartbeat timeout stays the bound for what neither can see: a lost host or
network. The session rule is guarded against false deaths: a scheduler whose lock is
free counts as dead only if it sent a heartbeat after the checking peer's own lock
session began (so after a database restart, which ends every session, nobody is
judged until it had a chance to take its lock again), and a scheduler takes its lock
before every heartbeat and claims nothing while it does not hold it.

The vendor SQL for the locks is here and nowhere else.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection

from .timezones import utc_now

logger = logging.getLogger("django_apscheduler.liveness")

# The first key of every scheduler's PostgreSQL advisory lock ("apsc"); the second is
# the scheduler's id. Frozen: running schedulers of two versions must agree on it.
ADVISORY_LOCK_CLASS = 0x61707363


# --- the process -----------------------------------------------------------------------


@cache
def this_namespace() -> str:
    """Where pids of this process mean the same thing: this boot and this pid namespace.

    Two processes with the same namespace can check each other's pids. Empty where it
    cannot be told (no /proc), which turns the pid check off. The environment variable
    ``DJANGO_APSCHEDULER_NAMESPACE`` overrides it (say, for hosts whose /proc lies).
    """
    override = os.environ.get("DJANGO_APSCHEDULER_NAMESPACE")
    if override is not None:
        return override[:100]
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            boot_id = boot.read().strip()
        pid_namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{boot_id}/{pid_namespace}"[:100]


def process_gone(pid: int, namespace: str, process_started: int | None) -> bool:
    """True when the process that registered with ``pid`` surely no longer runs.

    ``process_started`` is its start in clock ticks after boot (as /proc says; no wall
    clock, which can step): a live process with that pid but another start is a
    newcomer that reused the pid.
    """
    if not namespace or namespace != this_namespace():
        return False  # another host (or unknowable): only its session or heartbeat can tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    state, started = _process_state(pid)
    if state in ("Z", "X"):
        return True  # it died; its parent has not reaped it yet
    return process_started is not None and started is not None and started != process_started


def this_process_started() -> int | None:
    """This process's start, in clock ticks after boot; None where /proc cannot tell."""
    return _process_state(os.getpid())[1]


def _process_state(pid: int) -> tuple[str | None, int | None]:
    """A process's state letter and start (clock ticks after boot), from Linux's /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])  # fields 3 and 22 of stat
    except (OSError, IndexError, ValueError):
        return None, None


# --- the session lock -------------------------------------------------------------------


def sessions_supported() -> bool:
    return connection.vendor in ("postgresql", "mysql")


def _mysql_lock_name(instance_id: int) -> str:
    # GET_LOCK names are server-wide: include the database, within MySQL's 64 characters.
    database = hashlib.sha1(str(connection.settings_dict["NAME"]).encode()).hexdigest()[:16]
    return f"django_apscheduler.{database}.{instance_id}"


def _take(instance_id: int) -> bool:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_LOCK_CLASS, instance_id])
        else:
            cursor.execute("SELECT GET_LOCK(%s, 0)", [_mysql_lock_name(instance_id)])
        (taken,) = cursor.fetchone()
    return bool(taken)


def _release(instance_id: int) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_LOCK_CLASS, instance_id])
        else:
            cursor.execute("SELECT RELEASE_LOCK(%s)", [_mysql_lock_name(instance_id)])


def held_locks(instance_ids: Iterable[int]) -> set[int]:
    """Which of these schedulers' session locks some session holds right now (one statement)."""
    ids = sorted(set(instance_ids))
    if not ids:
        return set()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
                "AND classid::bigint = %s AND objid::bigint = ANY(%s) "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                [ADVISORY_LOCK_CLASS, ids],
            )
            return {int(row[0]) for row in cursor.fetchall()}
        columns = ", ".join(["IS_USED_LOCK(%s)"] * len(ids))
        cursor.execute(f"SELECT {columns}", [_mysql_lock_name(i) for i in ids])
        owners = cursor.fetchone()
    return {instance_id for instance_id, owner in zip(ids, owners, strict=True) if owner is not None}


class SessionLock:
    """This scheduler's session lock, held on the connection of the thread that calls ``ensure``.

    Only the heartbeat thread calls ``ensure`` (before every heartbeat); anyone may read
    ``held`` and ``taken_at``.
    """

    def __init__(self, instance_id: int) -> None:
        self.instance_id = instance_id
        self.taken_at: datetime | None = None
        self.ever_taken = False
        self._session: Any = None  # the DB-API connection the lock lives on
        self._warned = False
        self._failing_since: float | None = None

    @property
    def held(self) -> bool:
        return self.taken_at is not None

    def ensure(self) -> bool:
        """Take the lock on this thread's connection unless that connection already holds it."""
        if not sessions_supported():
            return True
        connection.ensure_connection()
        if self._session is not None and self._session is connection.connection:
            return True
        was_held = self.taken_at is not None
        self.taken_at = None
        if not _take(self.instance_id):
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            if not self._warned:
                logger.warning(
                    "Scheduler %s cannot take its session lock (its previous database session is still open on "
                    "the server); it claims no jobs until it can.",
                    self.instance_id,
                )
                self._warned = True
            self._session = None
            return False
        self._session, self.taken_at, self._warned = connection.connection, utc_now(), False
        self.ever_taken, self._failing_since = True, None
        if was_held:
            logger.info("Scheduler %s took its session lock again on a new database connection", self.instance_id)
        return True

    def failing_for(self) -> float:
        """Seconds since ``ensure`` last failed to take the lock without succeeding since (0: it holds it)."""
        return 0.0 if self._failing_since is None else time.monotonic() - self._failing_since

    def release(self) -> None:
        if self._session is not None and self._session is connection.connection:
            try:
                _release(self.instance_id)
            except Exception:  # the session ends with the process anyway
                logger.debug("Could not release the session lock", exc_info=True)
        self._session, self.taken_at = None, None
