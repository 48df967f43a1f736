"""PostgreSQL only: notification triggers, and the pattern indexes of fresh databases.

A database migrated by django-apscheduler 0.7 reached its text primary key through
an integer one, a path on which Django never creates the ``*_like`` pattern indexes
that a fresh database gets; they are added here, under the same names, so both
schemas are identical.

The SQL is frozen here, as this migration first created these objects: a migration
must build the same database whatever the package's code later becomes (0013
replaces the triggers with a second version). The channel name must match
``django_apscheduler.postgres.CHANNEL``, on which schedulers listen.
"""

from django.db import migrations

# The names Django gives these indexes on a fresh database (derived from table and
# column names, so they are the same everywhere).
LIKE_INDEXES_SQL = """
CREATE INDEX IF NOT EXISTS django_apscheduler_djangojob_id_9f0be75e_like
    ON django_apscheduler_djangojob (id varchar_pattern_ops);
CREATE INDEX IF NOT EXISTS django_apscheduler_djangojobexecution_job_id_daf5090a_like
    ON django_apscheduler_djangojobexecution (job_id varchar_pattern_ops);
"""

# Version 1: a job added, resumed, repaired or rescheduled earlier notifies its next run time.
CREATE_TRIGGERS_SQL = """
CREATE OR REPLACE FUNCTION django_apscheduler_notify_due_sooner() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('django_apscheduler_jobs', extract(epoch from NEW.next_run_time)::text);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS django_apscheduler_job_added ON django_apscheduler_djangojob;
CREATE TRIGGER django_apscheduler_job_added
    AFTER INSERT ON django_apscheduler_djangojob
    FOR EACH ROW WHEN (NEW.next_run_time IS NOT NULL)
    EXECUTE FUNCTION django_apscheduler_notify_due_sooner();

DROP TRIGGER IF EXISTS django_apscheduler_job_due_sooner ON django_apscheduler_djangojob;
CREATE TRIGGER django_apscheduler_job_due_sooner
    AFTER UPDATE ON django_apscheduler_djangojob
    FOR EACH ROW WHEN (
        NEW.next_run_time IS NOT NULL
        AND (OLD.next_run_time IS NULL OR NEW.next_run_time < OLD.next_run_time OR OLD.broken AND NOT NEW.broken)
    )
    EXECUTE FUNCTION django_apscheduler_notify_due_sooner();
"""

DROP_TRIGGERS_SQL = """
DROP TRIGGER IF EXISTS django_apscheduler_job_added ON django_apscheduler_djangojob;
DROP TRIGGER IF EXISTS django_apscheduler_job_due_sooner ON django_apscheduler_djangojob;
DROP FUNCTION IF EXISTS django_apscheduler_notify_due_sooner();
"""


def _on_postgresql(schema_editor, sql: str) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(sql)


def install_like_indexes(apps, schema_editor) -> None:
    """Add the pattern indexes missing from databases upgraded from 0.7."""
    _on_postgresql(schema_editor, LIKE_INDEXES_SQL)


def install_triggers(apps, schema_editor) -> None:
    _on_postgresql(schema_editor, CREATE_TRIGGERS_SQL)


def remove_triggers(apps, schema_editor) -> None:
    _on_postgresql(schema_editor, DROP_TRIGGERS_SQL)


class Migration(migrations.Migration):
    dependencies = [("django_apscheduler", "0010_multi_scheduler_history")]

    operations = [
        migrations.RunPython(install_like_indexes, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(install_triggers, remove_triggers, elidable=False),
    ]
