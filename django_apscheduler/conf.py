"""The package's settings: one dict of defaults, read through a cached getter.

Every setting is a top-level ``APSCHEDULER_*`` name in the project's settings, so
the names users of django-apscheduler 0.7 already set keep working. The cache is
dropped whenever Django reports a setting change (``override_settings`` in tests).
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # How the admin shows date-times (Django's date-format syntax).
    "APSCHEDULER_DATETIME_FORMAT": "N j, Y, f:s a",
    # Seconds the admin's "run now" action waits for results before it gives up.
    "APSCHEDULER_RUN_NOW_TIMEOUT": 25,
    # Seconds between two cheap "is anything due earlier?" checks of a running
    # scheduler, so changes made by other processes are obeyed without a restart.
    "APSCHEDULER_POLL_INTERVAL": 2.0,
    # Seconds between two heartbeats of a running scheduler.
    "APSCHEDULER_HEARTBEAT_INTERVAL": 5.0,
    # A scheduler whose last heartbeat is older than this many seconds is dead:
    # the fires it claimed but did not finish are marked "Lost".
    "APSCHEDULER_HEARTBEAT_TIMEOUT": 30.0,
    # Close unusable or expired database connections before each job runs and after
    # its result is recorded, as Django does around a request (CONN_MAX_AGE applies).
    "APSCHEDULER_CLOSE_OLD_CONNECTIONS": True,
    # Start a background scheduler inside web processes (see autostart.py).
    "APSCHEDULER_AUTOSTART": False,
    # What happens to a job declared with @job in an earlier version of the code
    # but no longer: "pause" (kept, paused, visible in the admin), "remove" or "keep".
    "APSCHEDULER_UNDECLARED_JOBS": "pause",
    # Seconds of execution history to keep; running schedulers delete older rows
    # hourly. None keeps everything.
    "APSCHEDULER_HISTORY_RETENTION": None,
    # Take a scheduler whose database session lock is free for dead at once
    # (PostgreSQL, MySQL, MariaDB). Turn off behind a pooler that does not keep
    # sessions (pgbouncer in transaction mode) or on multi-primary clusters (Galera),
    # where a lock is not visible to every peer; the heartbeat timeout then decides.
    "APSCHEDULER_SESSION_LIVENESS": True,
    # The most due jobs one scheduler claims in one transaction.
    "APSCHEDULER_CLAIM_BATCH_SIZE": 200,
    # Seconds before their instant that a running scheduler claims fires, so that
    # none waits for its claim's database round trip; each still starts at its
    # instant, never before. 0: claim fires only once due.
    "APSCHEDULER_CLAIM_AHEAD": 0.3,
    # Label Prometheus metrics of fires with the job's id (metrics.py). One series per
    # job: turn it off with many jobs (thousands of per-user reminders).
    "APSCHEDULER_METRICS_JOB_LABEL": True,
    # Executors that hand fires to a worker fleet, by alias (see docs/scaling-out.md):
    # {"tasks": {"type": "tasks", "queue": "default", "backend": "default"}}.
    # `apscheduler start` (and autostart) add them to the scheduler.
    "APSCHEDULER_EXECUTORS": {},
    # The executor that runs jobs added without executor=...: "default" (the
    # scheduler's own thread pool) or an alias of APSCHEDULER_EXECUTORS.
    "APSCHEDULER_DEFAULT_EXECUTOR": "default",
    # Seconds a fire handed to workers may wait in their queue; one that no worker
    # has started by then ends "Lost!" (and is never run). None: wait for ever.
    "APSCHEDULER_HANDOFF_TIMEOUT": 3600.0,
    # Celery executors (executors.celery): the Celery app to send fires through, as
    # a dotted path ("proj.celery:app"); None: Celery's current app. An executor's
    # own "backend" option wins.
    "APSCHEDULER_CELERY_APP": None,
}


@functools.cache
def _cached(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


def get(name: str) -> Any:
    """Return the project's value of an ``APSCHEDULER_*`` setting, or its default."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown django-apscheduler setting: {name}")
    return _cached(name)


@receiver(setting_changed)
def _reset_cache(*, setting: str, **kwargs: Any) -> None:
    if setting in DEFAULTS:
        _cached.cache_clear()
