"""Storing new job rows: the INSERTs behind ``add_job`` and ``bulk.add_jobs``.

Why not ``save()`` and ``bulk_create()``: the ORM compiles the same INSERT at every
call, which for one job cost about as much as the database's own work (0.2 ms of a
0.55 ms save on PostgreSQL). For a batch on PostgreSQL, Django binds parameters on the
client, and psycopg quoting every value into the text of multi-row INSERTs took 3.5
times as long as a COPY of the same rows.

Here each row's placeholders come from its fields (``_binary %s`` for the pickled
state on MySQL, as the ORM writes it) and each value is prepared by its field exactly
as ``save`` prepares it. The ORM's own path is taken wherever this one would differ:

- for one job, while a ``pre_save`` or ``post_save`` receiver is connected to the
  model, or its ``save`` is overridden (0.7's ``add_job`` called ``save``);
- for any model with a value the database computes (an auto-increment key, a
  ``db_default``, a generated column).

A batch is one ``COPY`` on PostgreSQL with psycopg 3, unless row-level security is
enabled on the table (``COPY FROM`` refuses it); elsewhere it is INSERTs of at most
as many rows as the backend's limit on parameters allows.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models
from django.db.models import signals
from django.db.models.fields import NOT_PROVIDED

__all__ = ["insert_many", "insert_one"]


def insert_one(job: models.Model, using: str) -> None:
    """``job.save(force_insert=True, using=using)``; ``IntegrityError`` for a key that exists."""
    model = type(job)
    if _orm_only(model) or _save_is_observed(model):
        job.save(force_insert=True, using=using)
        return
    _insert(connections[using], [job])
    _mark_saved([job], using)


def insert_many(jobs: list[Any], using: str, rows_per_statement: int) -> None:
    """``bulk_create(jobs)`` into ``using`` (no signals, keys not read back); all rows or, on error, none."""
    if not jobs:
        return
    model = type(jobs[0])
    if _orm_only(model):
        model._default_manager.db_manager(using).bulk_create(jobs, batch_size=rows_per_statement)
        return
    connection = connections[using]
    if _copies(connection, model):
        _copy(connection, jobs)
    else:
        fields = model._meta.local_concrete_fields
        size = max(1, min(rows_per_statement, connection.ops.bulk_batch_size(fields, jobs) or rows_per_statement))
        for start in range(0, len(jobs), size):
            _insert(connection, jobs[start : start + size])
    _mark_saved(jobs, using)


_ORM_ONLY: dict[type[models.Model], bool] = {}


def _orm_only(model: type[models.Model]) -> bool:
    """Whether the database computes a column of ``model`` (then only the ORM knows how to insert it)."""
    if model not in _ORM_ONLY:
        _ORM_ONLY[model] = any(
            field.db_returning
            or getattr(field, "generated", False)
            or getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED
            for field in model._meta.local_concrete_fields
        )
    return _ORM_ONLY[model]


def _save_is_observed(model: type[models.Model]) -> bool:
    return (
        signals.pre_save.has_listeners(model)
        or signals.post_save.has_listeners(model)
        or model.save is not models.Model.save
    )


def _insert(connection: Any, jobs: list[Any]) -> None:
    fields = type(jobs[0])._meta.local_concrete_fields
    rows = [_prepared(connection, fields, job) for job in jobs]
    templates = ", ".join(_row_template(connection, fields, row) for row in rows)
    statement = f"INSERT INTO {_table_and_columns(connection, type(jobs[0]))} VALUES {templates}"
    with connection.cursor() as cursor:
        cursor.execute(statement, [value for row in rows for value in row])


def _prepared(connection: Any, fields: Any, job: models.Model) -> list[Any]:
    return [field.get_db_prep_save(field.pre_save(job, True), connection) for field in fields]


_ROW_TEMPLATES: dict[tuple[str, tuple[str, ...]], str] = {}


def _row_template(connection: Any, fields: Any, row: list[Any]) -> str:
    """``(%s, _binary %s, ...)``: the placeholder each field asks for, for this row's values."""
    placeholders = tuple(
        field.get_placeholder(value, None, connection) if hasattr(field, "get_placeholder") else "%s"
        for field, value in zip(fields, row, strict=True)
    )
    key = (connection.vendor, placeholders)
    template = _ROW_TEMPLATES.get(key)
    if template is None:
        template = _ROW_TEMPLATES[key] = f"({', '.join(placeholders)})"
    return template


_TABLES_AND_COLUMNS: dict[tuple[str, type[models.Model]], str] = {}


def _table_and_columns(connection: Any, model: type[models.Model]) -> str:
    """``table (column, ...)`` in this database's quoting: quoted once, not at every ``add_job``."""
    key = (connection.vendor, model)
    if key not in _TABLES_AND_COLUMNS:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in model._meta.local_concrete_fields)
        _TABLES_AND_COLUMNS[key] = f"{quote(model._meta.db_table)} ({columns})"
    return _TABLES_AND_COLUMNS[key]


# (database alias, table): whether a COPY can write it, asked once per process.
_COPY_ALLOWED: dict[tuple[str, str], bool] = {}


def _copies(connection: Any, model: type[models.Model]) -> bool:
    if connection.vendor != "postgresql":
        return False
    key = (connection.alias, model._meta.db_table)
    if key not in _COPY_ALLOWED:
        with connection.cursor() as cursor:
            if not hasattr(cursor.cursor, "copy"):  # psycopg2: its COPY reads a file, not rows
                _COPY_ALLOWED[key] = False
            else:
                cursor.execute("SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass(%s)", [model._meta.db_table])
                row = cursor.fetchone()
                _COPY_ALLOWED[key] = row is not None and not row[0]
    return _COPY_ALLOWED[key]


def _copy(connection: Any, jobs: list[Any]) -> None:
    fields = type(jobs[0])._meta.local_concrete_fields
    statement = f"COPY {_table_and_columns(connection, type(jobs[0]))} FROM STDIN"
    connection.validate_no_broken_transaction()
    # Django's cursor passes ``copy`` through to psycopg's (logging it under DEBUG) without
    # translating its errors: a taken key raises Django's IntegrityError here, as from an INSERT.
    with connection.cursor() as cursor, connection.wrap_database_errors, cursor.copy(statement) as copy:
        for job in jobs:
            copy.write_row(_prepared(connection, fields, job))


def _mark_saved(jobs: list[Any], using: str) -> None:
    for job in jobs:
        job._state.adding, job._state.db = False, using
