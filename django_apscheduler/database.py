"""Database plumbing: retrying transient errors, and the one vendor-specific trick.

A scheduler is a long-lived process. Databases restart, connections drop, SQLite
reports "database is locked" and MariaDB picks deadlock victims. None of that may
end a scheduler's main loop, so the job store runs its queries through
``run_with_retry``: transient errors are logged once, the broken connection is
dropped, and the call is tried again with exponential back-off.

A schema behind the code (``manage.py migrate`` not run after an upgrade) is not
transient: ``ensure_schema_ready`` reports it before anything starts, and an error
of that kind met later is raised as ``SchemaNotReady`` instead of being retried.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from . import conf
from .asyncio_support import in_event_loop

logger = logging.getLogger("django_apscheduler.database")

T = TypeVar("T")

# Back-off between attempts: starts small (lock contention clears in milliseconds),
# doubles, and stops growing at a few seconds (a restarting server takes that long).
FIRST_DELAY = 0.05
MAX_DELAY = 5.0

# MySQL / MariaDB error codes that mean "try the same transaction again".
_MYSQL_RETRYABLE = {1205, 1213}  # lock wait timeout, deadlock
# Errors that mean the schema lacks a table or column the code uses, per vendor.
# SQLSTATEs, as psycopg and PyMySQL report them: PostgreSQL's undefined_column and
# undefined_table, MySQL's column and table not found.
_SCHEMA_SQLSTATES = {"42703", "42P01", "42S22", "42S02"}
_MYSQL_SCHEMA_ERRORS = {1054, 1146}  # the same for MySQL drivers without SQLSTATE (mysqlclient)
_SQLITE_SCHEMA_ERRORS = ("no such table", "no such column", "has no column named")

_MIGRATE_HINT = "run `python manage.py migrate` first"


class SchemaNotReady(RuntimeError):
    """The database lacks the package's tables or migrations: ``manage.py migrate`` has not run.

    ``pending`` names the unapplied migrations when that is what is missing (the
    health view reports them).
    """

    def __init__(self, message: str, pending: list[str] | None = None) -> None:
        super().__init__(message)
        self.pending = pending or []


def is_schema_error(error: BaseException) -> bool:
    """True for errors saying a table or column is missing: no retry can fix those, a migrate can."""
    if not isinstance(error, DatabaseError):
        return False
    cause = error.__cause__
    # psycopg 3 and PyMySQL name it sqlstate, psycopg2 pgcode.
    if (getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)) in _SCHEMA_SQLSTATES:
        return True
    code = error.args[0] if error.args else None
    if isinstance(code, int):
        return code in _MYSQL_SCHEMA_ERRORS
    message = str(error)
    return isinstance(error, OperationalError) and any(text in message for text in _SQLITE_SCHEMA_ERRORS)


def is_transient(error: BaseException) -> bool:
    """True for errors that a retry on a fresh connection can fix."""
    if is_schema_error(error):
        return False
    if isinstance(error, (OperationalError, InterfaceError)):
        return True
    # Deadlocks surface as OperationalError on MySQL drivers, but some drivers map
    # them to plain DatabaseError; recognise them by their code.
    code = error.args[0] if isinstance(error, DatabaseError) and error.args else None
    return code in _MYSQL_RETRYABLE


def drop_broken_connection() -> None:
    """Close this thread's connection, if it is broken, so the next query opens a fresh one.

    Only outside a transaction: inside an ``atomic`` block the caller owns the
    connection and must see the error itself. A connection that still works (the
    error was a deadlock, a lock wait, a locked SQLite file) is kept: the heartbeat's
    holds the scheduler's session lock, which closing it would release.
    """
    if connection.in_atomic_block or connection.connection is None:
        return
    with contextlib.suppress(Exception):
        if connection.is_usable():
            return
        connection.close()


class _OutageLog:
    """Logs one warning when an outage starts and one line when it ends, not one per try."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing: set[str] = set()

    def failed(self, what: str, error: BaseException, delay: float) -> None:
        with self._lock:
            first = what not in self._failing
            self._failing.add(what)
        if first:
            logger.warning(
                "Database error while %s: %s. Retrying with back-off (next try in %.2fs); "
                "check that the database is reachable if this persists.",
                what,
                error,
                delay,
            )
        else:
            logger.debug("Still failing while %s: %s (next try in %.2fs)", what, error, delay)

    def succeeded(self, what: str) -> None:
        with self._lock:
            if what not in self._failing:
                return
            self._failing.discard(what)
        logger.warning("Database is reachable again; %s succeeded.", what)


outage_log = _OutageLog()


def run_with_retry(
    func: Callable[[], T],
    what: str,
    *,
    attempts: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> T:
    """Call ``func`` until it succeeds, retrying transient database errors.

    ``attempts=None`` retries for ever (the scheduler's own loop: giving up would
    stop every job); a number bounds it for calls made on behalf of user code,
    which then sees the last error. ``should_stop`` ends the retries early, e.g.
    when the scheduler is shutting down. Inside an atomic block nothing is retried:
    the caller's transaction is already broken, so the error is the caller's.
    """
    delay = FIRST_DELAY
    attempt = 0
    while True:
        attempt += 1
        try:
            result = func()
        except DatabaseError as error:
            if connection.in_atomic_block:
                raise
            if is_schema_error(error):
                raise SchemaNotReady(
                    f"Database error while {what}: {error}. The schema is behind the code: {_MIGRATE_HINT}."
                ) from error
            if not is_transient(error):
                raise
            if attempts is not None and attempt >= attempts:
                raise
            if should_stop is not None and should_stop():
                raise
            outage_log.failed(what, error, delay)
            drop_broken_connection()
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, MAX_DELAY)
        else:
            if attempt > 1:
                outage_log.succeeded(what)
            return result


@contextlib.contextmanager
def write_transaction() -> Iterator[None]:
    """An atomic block that holds the database's write lock from its first statement.

    On SQLite, a transaction that reads and then writes must upgrade its lock, and
    when another connection is writing that upgrade fails at once with "database is
    locked" (SQLite's busy timeout does not apply to it). Starting with a write makes
    SQLite wait for the lock up front, inside the busy timeout, and then hold it:
    such transactions simply take turns. Other databases lock rows instead and need
    nothing here.
    """
    with transaction.atomic():
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                # A write that matches no row still takes the write lock.
                cursor.execute("UPDATE django_apscheduler_djangojob SET id = id WHERE 0 = 1")
        yield


def supports_skip_locked() -> bool:
    """Whether ``SELECT … FOR UPDATE SKIP LOCKED`` is available (PostgreSQL, MariaDB 10.6+, MySQL 8+)."""
    return bool(connection.features.has_select_for_update_skip_locked)


def writes_read_subqueries_without_locks() -> bool:
    """Whether an UPDATE whose WHERE holds subqueries reads their rows without locking them.

    PostgreSQL and SQLite do. InnoDB (MySQL, MariaDB) takes shared locks on every row
    such a subquery reads, so a statement of that kind would contend, and deadlock,
    with the claim transactions that lock and update the same jobs.
    """
    return connection.vendor != "mysql"


def ensure_schema_ready(attempts: int | None = None) -> None:
    """Raise ``SchemaNotReady`` naming the fix when the package's migrations or tables are missing.

    Called when something starts (a scheduler, the command, autostart), not per
    query: it loads the migration graph, tens of milliseconds. Nothing is cached,
    so a ``migrate`` run since the last call is seen. ``attempts`` bounds the
    retries of an unreachable database (the health view tries once: a probe must
    answer, not wait for the database).
    """
    unapplied = run_with_retry(_unapplied_migrations, "checking the database migrations", attempts=attempts)
    if unapplied:
        shown = ", ".join(unapplied[:_NAMES_SHOWN])
        if len(unapplied) > _NAMES_SHOWN:
            shown += f" and {len(unapplied) - _NAMES_SHOWN} more"
        raise SchemaNotReady(
            f"django-apscheduler's migrations are not all applied ({shown}): {_MIGRATE_HINT}.", pending=unapplied
        )
    from .models import DjangoJob, DjangoJobExecution, SchedulerInstance

    needed = {model._meta.db_table for model in (DjangoJob, DjangoJobExecution, SchedulerInstance)}
    present = set(run_with_retry(connection.introspection.table_names, "checking the database tables", attempts=attempts))
    missing = sorted(needed - present)
    if missing:
        raise SchemaNotReady(f"django-apscheduler's tables are missing ({', '.join(missing)}): {_MIGRATE_HINT}.")


_NAMES_SHOWN = 5


def _unapplied_migrations() -> list[str]:
    """The migrations ``migrate`` would apply to bring this app up to date (its dependencies included)."""
    from django.db.migrations.executor import MigrationExecutor

    from .models import DjangoJob

    app_label = DjangoJob._meta.app_label
    executor = MigrationExecutor(connection)
    # No leaf when the project turned this app's migrations off (MIGRATION_MODULES):
    # then only the tables can be checked.
    targets = [node for node in executor.loader.graph.leaf_nodes() if node[0] == app_label]
    plan = executor.migration_plan(targets)
    return [
        migration.name if migration.app_label == app_label else f"{migration.app_label}.{migration.name}"
        for migration, backwards in plan
        if not backwards
    ]


# A connection idle for longer than this is checked (one round trip) before reuse.
_IDLE_CHECK_AFTER = 1.0
# When connection_hygiene last looked at each connection (time.monotonic()); an
# entry goes with its connection wrapper, as an attribute set on it would.
_checked_at: weakref.WeakKeyDictionary[BaseDatabaseWrapper, float] = weakref.WeakKeyDictionary()


def connection_hygiene(check_idle: bool = True, keep_session: bool = False) -> None:
    """Drop this thread's database connections when broken or expired, as Django does per request.

    Job threads live for the scheduler's lifetime, outside Django's request cycle,
    which is what normally does this; a server-side timeout would otherwise surface
    as "server has gone away" in the next job. With ``CONN_MAX_AGE = 0`` (Django's
    default, meaning "one connection per request") a scheduler thread keeps its
    connection instead, because reconnecting for every fire costs more than most
    jobs (25 ms with MariaDB here); it is checked when it raised an error or sat idle
    for a few seconds, and replaced when the server closed it. A positive
    ``CONN_MAX_AGE`` recycles connections after that many seconds, as in Django.
    ``check_idle=False`` skips the idle check, for callers that retry a failed
    query on a fresh connection anyway (the heartbeat): one round trip saved.
    ``keep_session=True`` never recycles a working connection for its age: the
    heartbeat's holds the scheduler's session lock.
    """
    if not conf.get("APSCHEDULER_CLOSE_OLD_CONNECTIONS"):
        return
    if in_event_loop():
        # An event loop's thread makes no synchronous queries (Django forbids them),
        # so it has nothing to tidy; a connection left from before the loop started
        # could not even be closed there.
        return
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        # Never inside a transaction: the connection belongs to the code that opened it.
        if conn.in_atomic_block or conn.connection is None:
            continue
        if conn.settings_dict.get("CONN_MAX_AGE", 0) != 0 and not keep_session:
            conn.close_if_unusable_or_obsolete()
            continue
        checked_at = _checked_at.get(conn, 0.0)
        if conn.errors_occurred or (check_idle and now - checked_at > _IDLE_CHECK_AFTER):
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()
        _checked_at[conn] = now
