"""PostgreSQL: jobs added are announced once per statement, not once per row.

``bulk.add_jobs`` stores thousands of jobs in one COPY; a trigger per row ran a
function and queued a distinct notification for each of them (a quarter of the
COPY's time), which every listening scheduler then read one by one. The statement's
trigger sends one notification, with the earliest time among the rows it added:
the only one a scheduler acts on. The UPDATE trigger stays per row (0013).
Going back restores 0013's INSERT trigger. The SQL is frozen here (see 0011 for why).
"""

from django.db import migrations

# Version 3 of the INSERT trigger: one notification per statement.
CREATE_INSERT_TRIGGER_V3_SQL = """
CREATE OR REPLACE FUNCTION django_apscheduler_notify_added() RETURNS trigger AS $$
DECLARE
    earliest timestamptz;
BEGIN
    SELECT min(LEAST(next_run_time, run_requested_at)) INTO earliest FROM added_jobs;
    IF earliest IS NOT NULL THEN
        PERFORM pg_notify('django_apscheduler_jobs', extract(epoch from earliest)::text);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS django_apscheduler_job_added ON django_apscheduler_djangojob;
CREATE TRIGGER django_apscheduler_job_added
    AFTER INSERT ON django_apscheduler_djangojob
    REFERENCING NEW TABLE AS added_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION django_apscheduler_notify_added();
"""

# Version 2, as 0013 created it: what going back to 0020 restores.
CREATE_INSERT_TRIGGER_V2_SQL = """
DROP TRIGGER IF EXISTS django_apscheduler_job_added ON django_apscheduler_djangojob;
CREATE TRIGGER django_apscheduler_job_added
    AFTER INSERT ON django_apscheduler_djangojob
    FOR EACH ROW WHEN (NEW.next_run_time IS NOT NULL OR NEW.run_requested_at IS NOT NULL)
    EXECUTE FUNCTION django_apscheduler_notify_due_sooner();

DROP FUNCTION IF EXISTS django_apscheduler_notify_added();
"""


def _on_postgresql(schema_editor, sql: str) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(sql)


def install_statement_trigger(apps, schema_editor) -> None:
    _on_postgresql(schema_editor, CREATE_INSERT_TRIGGER_V3_SQL)


def restore_row_trigger(apps, schema_editor) -> None:
    _on_postgresql(schema_editor, CREATE_INSERT_TRIGGER_V2_SQL)


class Migration(migrations.Migration):
    dependencies = [("django_apscheduler", "0020_job_broken_index")]

    operations = [migrations.RunPython(install_statement_trigger, restore_row_trigger, elidable=False)]
