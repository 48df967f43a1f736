"""Crontab lines and APScheduler's CronTrigger, both ways, in one place.

The admin's schedule editor reads and writes 5-field crontab lines; the job list
describes cron triggers through cron-descriptor, which reads 6-field lines (with
seconds). Both must agree on one thing crontab and APScheduler disagree on:
crontab numbers weekdays from Sunday = 0 (7 is Sunday too), APScheduler from
Monday = 0. Weekday *names* mean the same to both, so every conversion goes through
names, with the single table below.

Errors are ``ValueError`` subclasses whose message names the problem; callers that
word errors for people (the admin's form) can tell them apart by class.
"""

from __future__ import annotations

import re
from datetime import timezone as dt_timezone
from typing import Any

from apscheduler.triggers.cron import CronTrigger

# Longer lines are refused before APScheduler parses them: its parsing time grows
# with the line (a 2 MB line took seconds), and no sensible schedule needs this much.
MAX_LENGTH = 200

# The fields of a crontab line, in its order.
FIELDS = ("minute", "hour", "day", "month", "day_of_week")

# APScheduler's weekday numbers are the indexes; crontab's number n is (n - 1) % 7.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# APScheduler compiles fields in this order and reports the first bad one; checking
# in the same order reports the same field it would.
_APSCHEDULER_ORDER = ("month", "day", "day_of_week", "hour", "minute")

_LABELS = {"minute": "minute", "hour": "hour", "day": "day-of-month", "month": "month", "day_of_week": "day-of-week"}

# A number that is not a step ("*/2" keeps its 2).
_NUMBER = re.compile(r"(?<!/)\d+")


class CrontabError(ValueError):
    """A text that is not a crontab line this module can turn into a trigger."""


class EmptyLine(CrontabError):
    def __init__(self) -> None:
        super().__init__("The crontab line is empty.")


class LineTooLong(CrontabError):
    def __init__(self, length: int) -> None:
        self.length = length
        super().__init__(f"A crontab line has at most {MAX_LENGTH} characters; this one has {length}.")


class WrongFieldCount(CrontabError):
    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(f"A crontab line has 5 fields (minute hour day month day-of-week); this one has {count}.")


class InvalidField(CrontabError):
    """One field APScheduler (or the weekday conversion) refuses; ``reason`` is its own words."""

    def __init__(self, field: str, expression: str, reason: str) -> None:
        self.field = field
        self.expression = expression
        self.reason = reason
        super().__init__(f"The {_LABELS[field]} field {expression!r} is not valid: {reason}")


def parse(line: str, timezone: Any) -> CronTrigger:
    """The CronTrigger of a 5-field crontab line, firing in ``timezone``.

    Raises a ``CrontabError`` (a ``ValueError``) for anything else: an empty or
    overlong line, a wrong number of fields, a field APScheduler cannot read.
    """
    fields = dict(zip(FIELDS, split(line), strict=True))
    values = dict(fields, day_of_week=_weekdays_for_apscheduler(fields["day_of_week"]))
    for name in _APSCHEDULER_ORDER:
        _check_field(name, values[name], fields[name])
    return CronTrigger(timezone=timezone, **values)


def split(line: str) -> list[str]:
    """The five fields of a crontab line, after the checks that need no parsing."""
    line = line.strip()
    if not line:
        raise EmptyLine()
    if len(line) > MAX_LENGTH:
        raise LineTooLong(len(line))
    fields = line.split()
    if len(fields) != len(FIELDS):
        raise WrongFieldCount(len(fields))
    return fields


def _weekdays_for_apscheduler(expression: str) -> str:
    try:
        return crontab_weekdays_to_apscheduler(expression)
    except ValueError as error:
        raise InvalidField("day_of_week", expression, str(error)) from None


def _check_field(name: str, value: str, written: str) -> None:
    """Compile one field alone, so an error can say which field it is about."""
    try:
        CronTrigger(timezone=dt_timezone.utc, **{name: value})
    except ValueError as error:
        raise InvalidField(name, written, str(error)) from None


def crontab_weekdays_to_apscheduler(expression: str) -> str:
    """A crontab day-of-week expression (Sunday = 0 or 7) with names, as APScheduler reads it.

    "1-5" becomes "mon-fri". A range from Sunday ("0-5", "sun-fri") becomes
    "mon-fri,sun": APScheduler's week starts on Monday, so its ranges cannot start
    on Sunday and go on.
    """

    def name(match: re.Match) -> str:
        number = int(match.group())
        if number > 7:
            raise ValueError(f"day-of-week {number} is out of range 0-7")
        return WEEKDAYS[(number - 1) % 7]

    named = _NUMBER.sub(name, expression)
    return re.sub(r"\bsun-(mon|tue|wed|thu|fri|sat)\b", r"mon-\1,sun", named)


def apscheduler_weekdays_to_crontab(expression: str) -> str:
    """An APScheduler day-of-week expression (Monday = 0) with names, as crontab reads it."""
    return _NUMBER.sub(lambda match: WEEKDAYS[int(match.group()) % 7], expression).lower()


def to_line(trigger: CronTrigger) -> str | None:
    """The 5-field crontab line of ``trigger``, or None when crontab cannot say it.

    Crontab has no seconds, weeks of the year or years; a trigger that uses them
    has no line.
    """
    fields = _fields(trigger)
    if fields["second"] not in ("0", "*") or fields["week"] != "*" or fields["year"] != "*":
        return None
    fields["day_of_week"] = apscheduler_weekdays_to_crontab(fields["day_of_week"])
    return " ".join(fields[name] for name in FIELDS)


def to_descriptor_line(trigger: CronTrigger) -> str | None:
    """The 6-field line (seconds first) cron-descriptor reads, or None when it cannot say it.

    cron-descriptor writes APScheduler's "last" day of the month as "L", and knows
    no other day words ("last fri", "2nd mon"), weeks of the year or years.
    """
    fields = _fields(trigger)
    if fields["day"] == "last":
        fields["day"] = "L"
    if fields["week"] != "*" or fields["year"] != "*" or re.search("[a-z]", fields["day"]):
        return None
    fields["day_of_week"] = apscheduler_weekdays_to_crontab(fields["day_of_week"]).upper()
    return " ".join(fields[name] for name in ("second", *FIELDS))


def _fields(trigger: CronTrigger) -> dict[str, str]:
    return {field.name: str(field) for field in trigger.fields}
