"""Which database errors mean "the schema is behind, run migrate" (never retried) and which are outages."""

import pytest
from django.db import DatabaseError, OperationalError, ProgrammingError

from django_apscheduler.database import is_schema_error, is_transient


class DriverError(Exception):
    def __init__(self, *args, sqlstate=None):
        super().__init__(*args)
        self.sqlstate = sqlstate


def wrapped(django_class, *args, sqlstate=None):
    """As Django's DatabaseErrorWrapper raises it: the driver's error as its cause."""
    error = django_class(*args)
    error.__cause__ = DriverError(*args, sqlstate=sqlstate)
    return error


SCHEMA_ERRORS = [
    wrapped(ProgrammingError, 'column "run_requested_at" does not exist', sqlstate="42703"),
    wrapped(ProgrammingError, 'relation "django_apscheduler_djangojob" does not exist', sqlstate="42P01"),
    wrapped(OperationalError, 1054, "Unknown column 'run_requested_at'", sqlstate="42S22"),
    wrapped(ProgrammingError, 1146, "Table 'x' doesn't exist", sqlstate="42S02"),
    wrapped(OperationalError, 1054, "Unknown column 'run_requested_at'"),  # mysqlclient: no SQLSTATE
    wrapped(OperationalError, "no such column: django_apscheduler_djangojob.run_requested_at"),
    wrapped(OperationalError, "no such table: django_apscheduler_schedulerinstance"),
    wrapped(OperationalError, "table django_apscheduler_djangojob has no column named declaration"),
]
OUTAGES = [
    wrapped(OperationalError, "database is locked"),
    wrapped(OperationalError, "server closed the connection unexpectedly", sqlstate="08006"),
    wrapped(OperationalError, 1213, "Deadlock found when trying to get lock", sqlstate="40001"),
    wrapped(OperationalError, 2013, "Lost connection to MySQL server during query"),
]


@pytest.mark.parametrize("error", SCHEMA_ERRORS, ids=str)
def test_schema_errors_are_recognised_and_not_transient(error):
    assert is_schema_error(error)
    assert not is_transient(error)


@pytest.mark.parametrize("error", OUTAGES, ids=str)
def test_outages_stay_transient(error):
    assert not is_schema_error(error)
    assert is_transient(error)


def test_other_errors_are_neither():
    error = wrapped(DatabaseError, 'duplicate key value violates unique constraint "x"', sqlstate="23505")
    assert not is_schema_error(error) and not is_transient(error)
    assert not is_schema_error(ValueError("no such column"))
