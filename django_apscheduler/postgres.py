"""PostgreSQL only: instant wake-ups through LISTEN/NOTIFY.

Two database triggers on the jobs table send a notification when a job becomes due
sooner than before (a job is added, resumed, or rescheduled earlier) or a run is
requested. They fire for every writer: this package, the admin, a plain ORM update,
even SQL typed in psql. Claims only ever move a job's next run time later, so the
schedulers' own work sends nothing. The payload is the new next run time (or the
requested run's time, if earlier), as seconds since the epoch; for an INSERT, one
notification per statement with the earliest of its rows (a bulk add of thousands of
jobs through one COPY sends one). Migrations create the triggers (0011, then 0013 and 0021) and hold
their SQL, on channel ``CHANNEL``.

Each scheduler listens on its own autocommit connection (psycopg 3) and wakes up
when a notified time is earlier than the one it plans to wake at. Other databases,
or psycopg 2, fall back to polling every ``APSCHEDULER_POLL_INTERVAL`` seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone

from django.db import connection

logger = logging.getLogger("django_apscheduler.postgres")

# The triggers notify on this channel; its name is frozen in migrations 0011, 0013 and 0021,
# so a new name needs a migration that recreates the triggers.
CHANNEL = "django_apscheduler_jobs"


def listening_available() -> bool:
    """LISTEN needs PostgreSQL through psycopg 3 (Django's default driver since 4.2)."""
    if connection.vendor != "postgresql":
        return False
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    # Every backend's wrapper names its driver module "Database"; the base class does not.
    database = getattr(connection, "Database", None)
    return database is not None and database.__name__ == "psycopg"


class Listener(threading.Thread):
    """Calls ``on_due`` with each notified next run time; reconnects after errors.

    ``live`` says whether notifications are arriving (the connection is up and
    listening): meanwhile the heartbeat need not poll. Changes made while the
    connection was down were not notified, so after a reconnection ``on_reconnect``
    is called to look for them.
    """

    def __init__(self, on_due: Callable[[datetime], None], on_reconnect: Callable[[], None] = lambda: None) -> None:
        super().__init__(name="django-apscheduler-listen", daemon=True)
        self._on_due = on_due
        self._on_reconnect = on_reconnect
        self._stop_event = threading.Event()
        self._params = connection.get_connection_params()
        self._connection = None
        self._live = threading.Event()

    @property
    def live(self) -> bool:
        return self._live.is_set()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        import psycopg

        delay = 0.5
        connected_before = False
        while not self._stop_event.is_set():
            try:
                with psycopg.connect(**self._params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._live.set()
                    if connected_before:
                        logger.info("LISTEN connection restored; notifications resume.")
                        self._on_reconnect()
                    connected_before = True
                    delay = 0.5
                    while not self._stop_event.is_set():
                        for notification in conn.notifies(timeout=1.0):
                            self._deliver(notification.payload)
            # The listening thread must survive anything (a lost connection, a failing
            # on_reconnect callback): it logs, waits and reconnects.
            except Exception as error:  # noqa: BLE001
                self._live.clear()
                if self._stop_event.is_set():
                    break
                logger.warning("LISTEN connection failed (%s); reconnecting in %.1fs, polling meanwhile.", error, delay)
                self._stop_event.wait(delay)
                delay = min(delay * 2, 10.0)
        self._live.clear()

    def _deliver(self, payload: str) -> None:
        try:
            due = datetime.fromtimestamp(float(payload), tz=timezone.utc)
        except ValueError:
            return
        self._on_due(due)



def table_rows(using: str, table: str, estimate_above: int) -> int | None:
    """A table's rows in one statement: PostgreSQL's estimate when large, else COUNT(*); None elsewhere.

    ``pg_class.reltuples`` is kept by autovacuum and ANALYZE and read in well under a
    millisecond, whereas ``COUNT(*)`` reads the whole table (about a second at a
    million jobs). Below ``estimate_above`` (or before the first ANALYZE, when
    reltuples is -1) the same statement counts exactly; the CASE evaluates the
    count only then.
    """
    from django.db import connections

    target = connections[using]
    if target.vendor != "postgresql":
        return None
    with target.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN c.reltuples >= %s THEN c.reltuples::bigint "
            f"ELSE (SELECT COUNT(*) FROM {target.ops.quote_name(table)}) END "
            "FROM pg_class c WHERE c.oid = to_regclass(%s)",
            [estimate_above, target.ops.quote_name(table)],
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])
