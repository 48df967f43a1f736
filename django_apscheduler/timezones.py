"""Converting between APScheduler's aware date-times and what Django stores.

APScheduler always works with aware date-times. Django stores aware ones (in UTC)
when ``USE_TZ = True`` and naive ones in ``TIME_ZONE`` when ``USE_TZ = False``.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from datetime import timezone as dt_timezone
from typing import overload

from django.conf import settings
from django.utils import timezone


@overload
def to_db(value: datetime) -> datetime: ...
@overload
def to_db(value: None) -> None: ...
def to_db(value: datetime | None) -> datetime | None:
    """An APScheduler date-time as Django expects it in a model field or query."""
    if value is None:
        return None
    if settings.USE_TZ:
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    if timezone.is_aware(value):
        # Through UTC: converting a date-time already in the default zone is a no-op,
        # which would keep a wall time that does not exist (the spring gap).
        return timezone.make_naive(value.astimezone(dt_timezone.utc), timezone.get_default_timezone())
    return value


@overload
def from_db(value: datetime) -> datetime: ...
@overload
def from_db(value: None) -> None: ...
def from_db(value: datetime | None) -> datetime | None:
    """A date-time read from the database as an aware one for APScheduler."""
    if value is None:
        return None
    if timezone.is_aware(value):
        return value
    return timezone.make_aware(value, timezone.get_default_timezone())


def in_zone(value: datetime | None, zone: tzinfo) -> datetime | None:
    """``value`` as an aware date-time in ``zone``, a naive one read as a wall time there.

    For date-times that come with no zone of their own, such as a scheduler's
    (``util.get_apscheduler_datetime``); the database's naive values are ``from_db``'s.
    """
    if value is None:
        return None
    if timezone.is_naive(value):
        return timezone.make_aware(value, zone)
    return value.astimezone(zone)


def utc_now() -> datetime:
    return datetime.now(dt_timezone.utc)


def db_now() -> datetime:
    """Now, as Django stores it (``to_db``): for writes and filters of date-time columns."""
    return to_db(utc_now())
