"""PostgreSQL only: instant wake-ups through LISTEN/NOTIFY.

Two database triggers on the jobs table send a notification when a job becomes due
sooner than before (a job is added, resumed, or rescheduled earlier). They fire for
every writer: this package, the admin, a plain ORM update, even SQL typed in psql.
Claims only ever move a job's next run time later, so the schedulers' own work
sends nothing. The payload is the new next run time, as seconds since the epoch.

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

CHANNEL = "django_apscheduler_jobs"
_JOB_TABLE = "django_apscheduler_djangojob"

CREATE_TRIGGERS_SQL = f"""
CREATE OR REPLACE FUNCTION django_apscheduler_notify_due_sooner() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', extract(epoch from NEW.next_run_time)::text);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS django_apscheduler_job_added ON {_JOB_TABLE};
CREATE TRIGGER django_apscheduler_job_added
    AFTER INSERT ON {_JOB_TABLE}
    FOR EACH ROW WHEN (NEW.next_run_time IS NOT NULL)
    EXECUTE FUNCTION django_apscheduler_notify_due_sooner();

DROP TRIGGER IF EXISTS django_apscheduler_job_due_sooner ON {_JOB_TABLE};
CREATE TRIGGER django_apscheduler_job_due_sooner
    AFTER UPDATE ON {_JOB_TABLE}
    FOR EACH ROW WHEN (
        NEW.next_run_time IS NOT NULL
        AND (OLD.next_run_time IS NULL OR NEW.next_run_time < OLD.next_run_time OR OLD.broken AND NOT NEW.broken)
    )
    EXECUTE FUNCTION django_apscheduler_notify_due_sooner();
"""

# Version 2 (migration 0013): a run requested with `run_requested_at` wakes schedulers too.
CREATE_TRIGGERS_V2_SQL = f"""
CREATE OR REPLACE FUNCTION django_apscheduler_notify_due_sooner() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', extract(epoch from LEAST(NEW.next_run_time, NEW.run_requested_at))::text);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS django_apscheduler_job_added ON {_JOB_TABLE};
CREATE TRIGGER django_apscheduler_job_added
    AFTER INSERT ON {_JOB_TABLE}
    FOR EACH ROW WHEN (NEW.next_run_time IS NOT NULL OR NEW.run_requested_at IS NOT NULL)
    EXECUTE FUNCTION django_apscheduler_notify_due_sooner();

DROP TRIGGER IF EXISTS django_apscheduler_job_due_sooner ON {_JOB_TABLE};
CREATE TRIGGER django_apscheduler_job_due_sooner
    AFTER UPDATE ON {_JOB_TABLE}
    FOR EACH ROW WHEN (
        (
            NEW.next_run_time IS NOT NULL
            AND (OLD.next_run_time IS NULL OR NEW.next_run_time < OLD.next_run_time OR OLD.broken AND NOT NEW.broken)
        )
        OR (NEW.run_requested_at IS NOT NULL AND NEW.run_requested_at IS DISTINCT FROM OLD.run_requested_at)
    )
    EXECUTE FUNCTION django_apscheduler_notify_due_sooner();
"""

DROP_TRIGGERS_SQL = f"""
DROP TRIGGER IF EXISTS django_apscheduler_job_added ON {_JOB_TABLE};
DROP TRIGGER IF EXISTS django_apscheduler_job_due_sooner ON {_JOB_TABLE};
DROP FUNCTION IF EXISTS django_apscheduler_notify_due_sooner();
"""


# The names Django gives these indexes on a fresh database (derived from table and
# column names, so they are the same everywhere).
LIKE_INDEXES_SQL = f"""
CREATE INDEX IF NOT EXISTS django_apscheduler_djangojob_id_9f0be75e_like
    ON {_JOB_TABLE} (id varchar_pattern_ops);
CREATE INDEX IF NOT EXISTS django_apscheduler_djangojobexecution_job_id_daf5090a_like
    ON django_apscheduler_djangojobexecution (job_id varchar_pattern_ops);
"""


def install_like_indexes(apps: object, schema_editor: object) -> None:
    """Migration step: add pattern indexes missing from databases upgraded from 0.7."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LIKE_INDEXES_SQL)


def install_triggers(apps: object, schema_editor: object) -> None:
    """Migration step: create the notification triggers (PostgreSQL only)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_TRIGGERS_SQL)


def install_triggers_v2(apps: object, schema_editor: object) -> None:
    """Migration step (0013): triggers that also announce run requests."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_TRIGGERS_V2_SQL)


def remove_triggers(apps: object, schema_editor: object) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGERS_SQL)


def listening_available() -> bool:
    """LISTEN needs PostgreSQL through psycopg 3 (Django's default driver since 4.2)."""
    if connection.vendor != "postgresql":
        return False
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return getattr(connection, "Database", None) is not None and connection.Database.__name__ == "psycopg"


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
            except Exception as error:
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
