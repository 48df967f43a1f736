"""Crontab lines and APScheduler's CronTrigger, both ways, in one place.

The admin's schedule editor reads and writes 5-field crontab lines; the job list
describes cron triggers through cron-descriptor, which reads 6-field lines (with
seconds). Both must agree on one thing crontab and APScheduler disagree on:
crontab numbers weekdays from Sunday = 0 (7 is Sunday too), APScheduler from
Monday = 0. Weekday *names* mean the same to both, so every conversion goes through
names, with the single table below; a weekday step ("*/2", "1-5/2") counts in its own
numbering, so it becomes the list of days it means.

APScheduler reads names leniently: it takes "mon-fri/2" as "mon-fri" and "jan/3" as
"jan", dropping the rest. Such items are refused or rewritten here, before it sees
them, so that a line never means less than it says.

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

# One item of a comma-separated list: "*", a value or a range of values, an optional step.
_ITEM = re.compile(r"(?P<first>\*|[0-9]+|[a-z]+)(?:-(?P<last>[0-9]+|[a-z]+))?(?:/(?P<step>[0-9]+))?", re.IGNORECASE)

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


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
    values = dict(fields)
    for name in _APSCHEDULER_ORDER:
        values[name] = _for_apscheduler(name, fields[name])
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


def _for_apscheduler(name: str, expression: str) -> str:
    """A crontab field as APScheduler must read it to mean the same (minutes and hours it reads strictly)."""
    rewrite = {"day": _days_of_month, "month": _months, "day_of_week": crontab_weekdays_to_apscheduler}.get(name)
    try:
        return rewrite(expression) if rewrite else expression
    except ValueError as error:
        raise InvalidField(name, expression, str(error)) from None


def _items(expression: str) -> list[re.Match]:
    """The items of a field; an item that is not a value, a range or a step is an error."""
    matches = []
    for item in expression.split(","):
        match = _ITEM.fullmatch(item)
        if match is None or (match["first"] == "*" and match["last"]):
            raise ValueError(f"{item!r} is not a value, a range or a step")
        matches.append(match)
    return matches


def _days_of_month(expression: str) -> str:
    for match in _items(expression):
        words = [token for token in (match["first"], match["last"]) if token and token.isalpha()]
        if words and match.group().lower() != "last":
            raise ValueError(f"{match.group()!r} is not a day of the month, a range, a step or 'last'")
    return expression


def _months(expression: str) -> str:
    """Month names with a step, or in a range with a number, become numbers, which APScheduler reads fully."""
    items = []
    for match in _items(expression):
        item = match.group()
        mixed = match["last"] is not None and match["first"].isdigit() != match["last"].isdigit()
        if (match["step"] or mixed) and match["first"] != "*":
            span = "-".join(str(_month_number(token)) for token in (match["first"], match["last"]) if token)
            item = f"{span}/{match['step']}" if match["step"] else span
        items.append(item)
    return ",".join(items)


def _month_number(token: str) -> int:
    if token.isdigit():
        return int(token)
    if token.lower() not in _MONTHS:
        raise ValueError(f"{token!r} is not a month")
    return _MONTHS.index(token.lower()) + 1


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
    on Sunday and go on. A step counts in crontab's numbering ("*/2" is Sunday,
    Tuesday, Thursday, Saturday) and becomes the list of its days.
    """
    return ",".join(_crontab_weekday_item(match) for match in _items(expression))


def _crontab_weekday_item(match: re.Match) -> str:
    if match["first"] == "*":
        if match["step"] is None:
            return "*"
        first, last = 0, 7
    else:
        first = _crontab_weekday(match["first"])
        last = _crontab_weekday(match["last"], after=first) if match["last"] else (7 if match["step"] else first)
    if first > last:
        raise ValueError(f"the range {match.group()!r} goes backwards (crontab weeks run from Sunday = 0 to 7)")
    if match["step"] is not None:
        return _weekday_list(range(first, last + 1, _step(match["step"])), crontab=True)
    if first == last:
        return _crontab_name(first)
    if (first, last) == (0, 7):
        return "mon-sun"
    if first == 0:
        return f"mon-{_crontab_name(last)},sun"
    return f"{_crontab_name(first)}-{_crontab_name(last)}"


def _crontab_weekday(token: str, after: int | None = None) -> int:
    """Crontab's number of a day: 0-7 as written, a name as its number (Sunday ends a range as 7)."""
    if token.isdigit():
        number = int(token)
        if number > 7:
            raise ValueError(f"day-of-week {number} is out of range 0-7")
        return number
    if token.lower() not in WEEKDAYS:
        raise ValueError(f"{token!r} is not a day of the week")
    number = (WEEKDAYS.index(token.lower()) + 1) % 7
    return 7 if number == 0 and after else number


def _crontab_name(number: int) -> str:
    return WEEKDAYS[(number - 1) % 7]


def _step(text: str) -> int:
    if int(text) < 1:
        raise ValueError("a step must be at least 1")
    return int(text)


def _weekday_list(numbers: range, crontab: bool) -> str:
    """The days of ``numbers`` (crontab's or APScheduler's), as names in APScheduler's week order."""
    days = {(number - 1) % 7 if crontab else number % 7 for number in numbers}
    return ",".join(WEEKDAYS[day] for day in sorted(days))


def apscheduler_weekdays_to_crontab(expression: str) -> str:
    """An APScheduler day-of-week expression (Monday = 0) with names, as crontab reads it.

    Numbers become names; a step counts in APScheduler's numbering, so it becomes
    the list of its days ("*/2" is Monday, Wednesday, Friday, Sunday).
    """
    return ",".join(_apscheduler_weekday_item(item) for item in expression.lower().split(","))


def _apscheduler_weekday_item(item: str) -> str:
    match = _ITEM.fullmatch(item)
    if match is None or match["first"].isalpha():
        return item  # names, and anything else, mean the same to crontab
    if match["step"] is not None:
        first, last = (0, 6) if match["first"] == "*" else (int(match["first"]), int(match["last"] or 6))
        return _weekday_list(range(first, last + 1, int(match["step"])), crontab=False)
    if match["first"] == "*":
        return "*"
    names = [WEEKDAYS[int(token) % 7] for token in (match["first"], match["last"]) if token]
    return "-".join(names)


def to_line(trigger: CronTrigger) -> str | None:
    """The 5-field crontab line of ``trigger``, or None when crontab cannot say it.

    Crontab has no seconds, weeks of the year, years or day words other than "last"
    ("last fri", "2nd mon"); a trigger that uses them has no line.
    """
    fields = _fields(trigger)
    if fields["second"] != "0" or fields["week"] != "*" or fields["year"] != "*" or " " in fields["day"]:
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
