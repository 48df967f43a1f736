"""Public helpers, with the names and behaviour users of django-apscheduler 0.7 rely on."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from apscheduler.schedulers.base import BaseScheduler
from django import db
from django.conf import settings
from django.utils import formats, timezone

from . import conf
from .timezones import in_zone, to_db

logger = logging.getLogger("django_apscheduler.util")

F = TypeVar("F", bound=Callable[..., Any])


def get_dt_format() -> str:
    """The admin's date-time format: ``APSCHEDULER_DATETIME_FORMAT`` or its default."""
    return conf.get("APSCHEDULER_DATETIME_FORMAT")


def get_local_dt_format(dt: datetime | None) -> str:
    """Format ``dt`` in the current time zone with ``get_dt_format()``."""
    if dt is None:
        return ""
    if settings.USE_TZ and timezone.is_aware(dt):
        dt = timezone.localtime(dt)
    return formats.date_format(dt, get_dt_format())


def get_django_internal_datetime(dt: datetime | None) -> datetime | None:
    """Convert ``dt`` to what Django stores: aware when ``USE_TZ``, else naive in ``TIME_ZONE``.

    The package's own conversion (``timezones.to_db``), so that this helper and the
    job store always agree; None stays None, as in 0.7.
    """
    return to_db(dt)


def get_apscheduler_datetime(dt: datetime | None, scheduler: BaseScheduler) -> datetime | None:
    """Convert ``dt`` to an aware date-time in the scheduler's time zone, as APScheduler uses.

    A naive ``dt`` is read as a wall time in that zone; None stays None, as in 0.7.
    """
    return in_zone(dt, scheduler.timezone)


def retry_on_db_operational_error(func: F) -> F:
    """Retry ``func`` once, on a fresh connection, if the database connection failed (0.7's helper).

    A scheduler's threads keep their connections for a long time; when the server
    closed one meanwhile, the first query fails with ``OperationalError``. Use it
    outside transactions: inside one, the retry cannot succeed.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except db.OperationalError as error:
            logger.warning(
                "DB error executing '%s' (%s). Retrying with a new DB connection...", func.__name__, error
            )
            db.connection.close()
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def close_old_connections(func: F) -> F:
    """Close unusable or expired database connections before and after ``func``.

    Django does this around each web request; a job runs outside any request, so
    decorate job functions that use the ORM with it.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        db.close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            db.close_old_connections()

    return wrapper  # type: ignore[return-value]
