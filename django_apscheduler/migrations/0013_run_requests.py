"""Run requests: "run this job once now" handed to whichever scheduler is alive.

On PostgreSQL the notification triggers of 0011 are replaced by a second version
that also announces a run request; going back restores the first. Both versions'
SQL is frozen here (see 0011 for why).
"""

from django.db import migrations, models

# Version 2: a run requested with `run_requested_at` wakes schedulers too.
CREATE_TRIGGERS_V2_SQL = """
CREATE OR REPLACE FUNCTION django_apscheduler_notify_due_sooner() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('django_apscheduler_jobs', extract(epoch from LEAST(NEW.next_run_time, NEW.run_requested_at))::text);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS django_apscheduler_job_added ON django_apscheduler_djangojob;
CREATE TRIGGER django_apscheduler_job_added
    AFTER INSERT ON django_apscheduler_djangojob
    FOR EACH ROW WHEN (NEW.next_run_time IS NOT NULL OR NEW.run_requested_at IS NOT NULL)
    EXECUTE FUNCTION django_apscheduler_notify_due_sooner();

DROP TRIGGER IF EXISTS django_apscheduler_job_due_sooner ON django_apscheduler_djangojob;
CREATE TRIGGER django_apscheduler_job_due_sooner
    AFTER UPDATE ON django_apscheduler_djangojob
    FOR EACH ROW WHEN (
        (
            NEW.next_run_time IS NOT NULL
            AND (OLD.next_run_time IS NULL OR NEW.next_run_time < OLD.next_run_time OR OLD.broken AND NOT NEW.broken)
        )
        OR (NEW.run_requested_at IS NOT NULL AND NEW.run_requested_at IS DISTINCT FROM OLD.run_requested_at)
    )
    EXECUTE FUNCTION django_apscheduler_notify_due_sooner();
"""

# Version 1, as 0011 created it: what going back to 0012 restores.
CREATE_TRIGGERS_V1_SQL = """
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


def _on_postgresql(schema_editor, sql: str) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(sql)


def install_triggers_v2(apps, schema_editor) -> None:
    _on_postgresql(schema_editor, CREATE_TRIGGERS_V2_SQL)


def restore_triggers_v1(apps, schema_editor) -> None:
    _on_postgresql(schema_editor, CREATE_TRIGGERS_V1_SQL)


class Migration(migrations.Migration):
    dependencies = [("django_apscheduler", "0012_declared_jobs_and_history_policy")]

    operations = [
        migrations.AddField(
            model_name="djangojob",
            name="run_requested_at",
            field=models.DateTimeField(
                blank=True,
                db_index=True,
                help_text="Someone asked for one extra run now (admin or `apscheduler run`); a live scheduler takes it.",
                null=True,
            ),
        ),
        migrations.RunPython(install_triggers_v2, restore_triggers_v1, elidable=False),
    ]
