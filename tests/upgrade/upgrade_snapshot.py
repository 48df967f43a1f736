"""Describe what a django-apscheduler database holds, the same way in both environments.

Run as a script (``python upgrade_snapshot.py OUT.json``) or imported by the other
scripts here. Only the fields that django-apscheduler 0.7.0 already had are read,
so a snapshot taken by 0.7.0 and one taken by this package compare field by field.
"""

import hashlib
import importlib.metadata
import json
import sys

JOB_TABLE = "django_apscheduler_djangojob"
EXECUTION_TABLE = "django_apscheduler_djangojobexecution"
EXECUTION_FIELDS = ("id", "job_id", "status", "run_time", "duration", "finished", "exception", "traceback")


def setup_django():
    import django

    django.setup()


def _iso(value):
    return None if value is None else value.isoformat()


def _text(value):
    return None if value is None else str(value)


# This package signs job state (migration 0018): the prefix "das1" and a 32-byte
# HMAC before the pickle. Snapshots describe the pickle itself, and whether it is
# signed, so that 0.7.0's rows and the upgraded ones compare.
SIGNATURE_PREFIX = b"das1"
SIGNATURE_LENGTH = len(SIGNATURE_PREFIX) + 32


def _pickle_of(job_state):
    blob = bytes(job_state)
    signed = blob.startswith(SIGNATURE_PREFIX)
    return (blob[SIGNATURE_LENGTH:] if signed else blob), signed


def jobs():
    from django_apscheduler.models import DjangoJob

    rows = DjangoJob.objects.order_by("id").values_list("id", "next_run_time", "job_state")
    described = []
    for job_id, next_run_time, job_state in rows:
        pickled, signed = _pickle_of(job_state)
        described.append(
            {
                "id": job_id,
                "next_run_time": _iso(next_run_time),
                "job_state_sha256": hashlib.sha256(pickled).hexdigest(),
                "job_state_length": len(pickled),
                "signed": signed,
            }
        )
    return described


def executions():
    from django_apscheduler.models import DjangoJobExecution

    result = []
    for row in DjangoJobExecution.objects.order_by("id").values(*EXECUTION_FIELDS):
        row["run_time"] = _iso(row["run_time"])
        row["duration"] = _text(row["duration"])
        row["finished"] = _text(row["finished"])
        result.append(row)
    return result


def applied_migrations():
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    return sorted(name for app, name in MigrationRecorder(connection).applied_migrations() if app == "django_apscheduler")


def schema():
    """Columns and constraints of the package's tables, without vendor-generated names."""
    from django.db import connection

    introspection = connection.introspection
    described = {}
    with connection.cursor() as cursor:
        tables = sorted(t for t in introspection.table_names(cursor) if t.startswith("django_apscheduler_"))
        for table in tables:
            columns = sorted(
                [column.name, introspection.get_field_type(column.type_code, column), bool(column.null_ok)]
                for column in introspection.get_table_description(cursor, table)
            )
            constraints = sorted(
                json.dumps(
                    {
                        "columns": list(info["columns"] or []),
                        "primary_key": bool(info["primary_key"]),
                        "unique": bool(info["unique"]),
                        "foreign_key": list(info["foreign_key"]) if info["foreign_key"] else None,
                        "check": bool(info["check"]),
                        "index": bool(info["index"]),
                    },
                    sort_keys=True,
                )
                for info in introspection.get_constraints(cursor, table).values()
            )
            described[table] = {"columns": columns, "constraints": constraints}
    return described


def snapshot():
    import django_apscheduler

    return {
        "package_version": importlib.metadata.version("django-apscheduler"),
        "package_file": django_apscheduler.__file__,
        "django_version": importlib.metadata.version("Django"),
        "migrations": applied_migrations(),
        "jobs": jobs(),
        "executions": executions(),
        "schema": schema(),
    }


def write(path, data):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)


if __name__ == "__main__":
    setup_django()
    write(sys.argv[1], snapshot())
