"""System checks: misconfigurations reported by ``manage.py check``, each with its fix."""

from __future__ import annotations

import math
import sys
from numbers import Real
from typing import Any, TypeGuard

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from . import conf, limits
from .autostart import management_command


def _is_number(value: object) -> TypeGuard[float]:
    """A real number (int, float, Fraction...), not a bool.

    Typed as float because mypy does not model the numbers ABCs: a Real compares
    with 0 as a float does.
    """
    return isinstance(value, Real) and not isinstance(value, bool)


# setting -> (test, what it must be). Seconds must be finite: an infinite interval
# or timeout is an OverflowError in the first timedelta or wait made with it.
_POSITIVE = (lambda v: _is_number(v) and 0 < v < math.inf, "a positive number of seconds")
_SETTING_RULES: dict[str, tuple[Any, str]] = {
    "APSCHEDULER_DATETIME_FORMAT": (lambda v: isinstance(v, str) and v != "", "a Django date format string"),
    "APSCHEDULER_RUN_NOW_TIMEOUT": (
        lambda v: _is_number(v) and 0 <= v <= limits.MAX_RUN_NOW_TIMEOUT,
        f"a number of seconds from 0 to {limits.MAX_RUN_NOW_TIMEOUT:,}",
    ),
    "APSCHEDULER_POLL_INTERVAL": _POSITIVE,
    "APSCHEDULER_HEARTBEAT_INTERVAL": _POSITIVE,
    "APSCHEDULER_HEARTBEAT_TIMEOUT": _POSITIVE,
    "APSCHEDULER_CLAIM_BATCH_SIZE": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer"),
    # A fire claimed ahead misses edits made meanwhile by other processes: keep the window short.
    "APSCHEDULER_CLAIM_AHEAD": (lambda v: _is_number(v) and 0 <= v <= 5, "a number of seconds from 0 to 5"),
    "APSCHEDULER_CLOSE_OLD_CONNECTIONS": (lambda v: isinstance(v, bool), "True or False"),
    "APSCHEDULER_AUTOSTART": (lambda v: isinstance(v, bool), "True or False"),
    "APSCHEDULER_METRICS_JOB_LABEL": (lambda v: isinstance(v, bool), "True or False"),
    "APSCHEDULER_UNDECLARED_JOBS": (lambda v: v in ("pause", "remove", "keep"), '"pause", "remove" or "keep"'),
    "APSCHEDULER_HANDOFF_TIMEOUT": (
        lambda v: v is None or (_POSITIVE[0](v) and v <= limits.MAX_HISTORY_AGE),
        f"None or a positive number of seconds up to {limits.MAX_HISTORY_AGE:,} (100 years)",
    ),
    "APSCHEDULER_HISTORY_RETENTION": (
        lambda v: v is None or (_POSITIVE[0](v) and v <= limits.MAX_HISTORY_AGE),
        f"None or a positive number of seconds up to {limits.MAX_HISTORY_AGE:,} (100 years)",
    ),
}


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list:
    errors = []
    for name, (is_valid, expected) in _SETTING_RULES.items():
        value = conf.get(name)
        if not is_valid(value):
            errors.append(
                Error(
                    f"{name} is {value!r}.",
                    hint=f"Set {name} to {expected}, or remove it to use the default ({conf.DEFAULTS[name]!r}).",
                    id="django_apscheduler.E001",
                )
            )
    heartbeat, timeout = conf.get("APSCHEDULER_HEARTBEAT_INTERVAL"), conf.get("APSCHEDULER_HEARTBEAT_TIMEOUT")
    if not errors and timeout <= 2 * heartbeat:
        errors.append(
            Error(
                f"APSCHEDULER_HEARTBEAT_TIMEOUT ({timeout}) must be well above APSCHEDULER_HEARTBEAT_INTERVAL ({heartbeat}).",
                hint="Otherwise a slow but live scheduler is taken for dead and its running jobs are marked Lost!. "
                "Use a timeout of at least three heartbeat intervals.",
                id="django_apscheduler.E002",
            )
        )
    return errors


@register(Tags.compatibility)
def check_executors(app_configs: Any = None, **kwargs: Any) -> list:
    """APSCHEDULER_EXECUTORS and APSCHEDULER_DEFAULT_EXECUTOR: every alias can be built as configured."""
    from .executors import IN_PROCESS_ALIAS, build_executor

    configured = conf.get("APSCHEDULER_EXECUTORS")
    if not isinstance(configured, dict):
        return [
            Error(
                f"APSCHEDULER_EXECUTORS is {configured!r}.",
                hint='Set it to a dict of executor aliases, such as {"tasks": {"type": "tasks"}}, or remove it.',
                id="django_apscheduler.E005",
            )
        ]
    errors = []
    for alias, options in configured.items():
        if not isinstance(alias, str) or not alias or alias in ("default", IN_PROCESS_ALIAS):
            errors.append(
                Error(
                    f"APSCHEDULER_EXECUTORS has the alias {alias!r}.",
                    hint=f'Aliases are non-empty strings other than "default" and "{IN_PROCESS_ALIAS}" '
                    "(set APSCHEDULER_DEFAULT_EXECUTOR to send the default alias to workers).",
                    id="django_apscheduler.E005",
                )
            )
            continue
        try:
            build_executor(options)
        except Exception as error:  # noqa: BLE001 -- whatever building it raises is the reason to show
            errors.append(
                Error(
                    f"APSCHEDULER_EXECUTORS[{alias!r}] cannot be built: {error}",
                    hint='Each entry is a dict such as {"type": "tasks", "queue": "default", "backend": "default"}: '
                    "a known type or a HandOffExecutor subclass's dotted path, and options it takes "
                    "(for tasks, a backend of the TASKS setting and a queue it accepts).",
                    id="django_apscheduler.E005",
                )
            )
    default = conf.get("APSCHEDULER_DEFAULT_EXECUTOR")
    if default != "default" and default not in configured:
        errors.append(
            Error(
                f"APSCHEDULER_DEFAULT_EXECUTOR is {default!r}, which APSCHEDULER_EXECUTORS does not configure.",
                hint=f'Use "default" (the scheduler\'s own thread pool) or one of {sorted(map(str, configured))}.',
                id="django_apscheduler.E006",
            )
        )
    return errors


@register(Tags.compatibility)
def check_time_zone(app_configs: Any = None, **kwargs: Any) -> list:
    from apscheduler.util import astimezone

    try:
        astimezone(settings.TIME_ZONE)
    # ZoneInfoNotFoundError (a KeyError), ValueError for a malformed key, TypeError
    # for a value that is not a name, OSError for an unreadable zone file.
    except (KeyError, ValueError, TypeError, OSError) as error:
        return [
            Error(
                f"APScheduler cannot use TIME_ZONE = {settings.TIME_ZONE!r}: {error}",
                hint="Use an IANA time zone name such as 'Europe/London' or 'UTC'.",
                id="django_apscheduler.E003",
            )
        ]
    if not settings.USE_TZ and settings.TIME_ZONE not in ("UTC", "Etc/UTC", None):
        return [
            Warning(
                "USE_TZ is False: job times are stored as naive local times.",
                hint="Around the autumn daylight-saving change a local time happens twice and stored "
                "times are ambiguous. Set USE_TZ = True (Django's default) for exact times.",
                id="django_apscheduler.W001",
            )
        ]
    return []


@register(Tags.compatibility)
def check_autostart_server(app_configs: Any = None, **kwargs: Any) -> list:
    if not conf.get("APSCHEDULER_AUTOSTART"):
        return []
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is not None and not uwsgi.opt.get("enable-threads"):
        return [
            Error(
                "APSCHEDULER_AUTOSTART is on, but uWSGI runs without threads: the scheduler would never run.",
                hint="Add `enable-threads = true` to the uWSGI configuration, or run "
                "`python manage.py apscheduler start` as its own process.",
                id="django_apscheduler.E004",
            )
        ]
    return []


@register(Tags.database)
def check_migrated(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list:
    """Database checks run with ``check --database`` and before ``migrate`` (which fixes it)."""
    if not databases or management_command() in ("migrate", "makemigrations", "sqlmigrate", "showmigrations"):
        return []
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor

    alias = DEFAULT_DB_ALIAS if DEFAULT_DB_ALIAS in databases else next(iter(databases))
    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    pending = [migration.name for migration, _backwards in plan if migration.app_label == "django_apscheduler"]
    if pending:
        return [
            Warning(
                f"django_apscheduler has unapplied migrations: {', '.join(pending)}.",
                hint="Run `python manage.py migrate`; until then no scheduler can start.",
                id="django_apscheduler.W002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_celery_app(app_configs: Any = None, **kwargs: Any) -> list:
    """APSCHEDULER_CELERY_APP names an importable Celery app (checked only when set)."""
    spec = conf.get("APSCHEDULER_CELERY_APP")
    if spec is None:
        return []
    from .executors.celery import load_app

    try:
        load_app(spec)
    except ImportError as error:
        problem = f"cannot be imported: {error}"
        hint = (
            "Install Celery (pip install 'django-apscheduler[celery]') and give the dotted path of your "
            "Celery app, e.g. \"proj.celery:app\"."
        )
    except Exception as error:  # noqa: BLE001 -- whatever the import raises is the user's to see
        problem = f"is not usable: {type(error).__name__}: {error}"
        hint = 'Give the dotted path of your Celery app, e.g. "proj.celery:app", or remove the setting.'
    else:
        return []
    return [Error(f"APSCHEDULER_CELERY_APP = {spec!r} {problem}", hint=hint, id="django_apscheduler.E007")]
