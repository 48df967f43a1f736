"""A job's trigger in words: "At 01:30", "Every 5 minutes", "Once, at 2030-01-01 12:00".

Cron triggers are described by cron-descriptor (a maintained library) from the
crontab line equivalent to APScheduler's fields (``crontab.to_descriptor_line``);
expressions that have no crontab equivalent (APScheduler's "last fri", weeks of the
year, ...) fall back to APScheduler's own text of the trigger.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from cron_descriptor import Options, get_description

from . import crontab
from .fingerprint import trigger_fingerprint


def describe_trigger(trigger: Any) -> str:
    """A short English description of an APScheduler trigger."""
    try:
        if isinstance(trigger, CronTrigger):
            return _describe_cron(trigger)
        if isinstance(trigger, IntervalTrigger):
            words = describe_interval(trigger.interval)
            if words.startswith("1 ") and "," not in words:
                words = words[2:]  # "Every minute", not "Every 1 minute"
            return f"Every {words}"
        if isinstance(trigger, DateTrigger):
            return f"Once, at {_wall_clock(trigger.run_date)}"
    # cron-descriptor raises FormatError, IndexError and others for expressions it
    # cannot read, and a description must never break the page that shows it.
    except Exception:  # noqa: BLE001
        pass  # an expression cron-descriptor cannot read: APScheduler's own text below
    return str(trigger)


def _wall_clock(moment: datetime) -> str:
    """``2030-01-01 12:00 CET`` (seconds when there are some), in the trigger's own zone.

    Plain ``strftime``: the column is written for each stored job, and Django's
    localized formatting (the admin's date format) costs more than the rest of
    storing a job put together. Pages format live date-times themselves.
    """
    text = moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second or moment.microsecond else "%Y-%m-%d %H:%M")
    zone = moment.tzname()
    return f"{text} {zone}" if zone else text


def describe_interval(interval: timedelta) -> str:
    """'5 minutes', '1 hour, 30 minutes', '2 days'."""
    seconds = interval.total_seconds()
    parts = []
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(_plural(int(count), name))
    if seconds or not parts:
        count = int(seconds) if float(seconds).is_integer() else round(seconds, 3)
        parts.append(_plural(count, "second"))
    return ", ".join(parts)


def _plural(count: float, name: str) -> str:
    return f"{count} {name}" if count == 1 else f"{count} {name}s"


def _describe_cron(trigger: CronTrigger) -> str:
    line = crontab.to_descriptor_line(trigger)
    if line is None:
        return str(trigger)  # no crontab equivalent
    return _describe_crontab_line(line)


# cron-descriptor reads its locale files at every call (about 1 ms): a job added per
# user on one schedule would pay that each time for the same words.
@functools.lru_cache(maxsize=1024)
def _describe_crontab_line(line: str) -> str:
    options = Options()
    options.use_24hour_time_format = True
    options.throw_exception_on_parse_error = True
    return get_description(line, options)


# Plain columns are for reading, not for running: long argument lists are cut.
_MAX_ARGUMENTS_TEXT = 1_000
_MAX_FUNC_REF = 500


def describe_state(state: dict[str, Any]) -> dict[str, Any]:
    """A job state's plain columns: its function, its trigger in words, and its details.

    Written beside the signed pickle each time the state is stored, so the admin's
    pages and ``apscheduler list`` show a job without unpickling it (and without
    importing its code). ``details`` also holds what the schedule editor starts
    from and the trigger's fingerprint, which tells whether a declared job was
    edited in the admin.
    """
    grace = state.get("misfire_grace_time")
    trigger = state.get("trigger")
    return {
        "func_ref": str(state.get("func", ""))[:_MAX_FUNC_REF],
        "trigger_description": describe_trigger(trigger),
        "details": {
            "name": str(state.get("name") or ""),
            "trigger": str(trigger),
            "arguments": arguments_text(state.get("args", ()), state.get("kwargs", {})),
            "executor": str(state.get("executor", "default")),
            "max_instances": state.get("max_instances", 1),
            "coalesce": bool(state.get("coalesce", False)),
            "misfire_grace_time": grace if isinstance(grace, int | float) else None,
            "schedule": _schedule_of(trigger),
            "trigger_fingerprint": [str(part) for part in trigger_fingerprint(trigger)],
        },
    }


def arguments_text(args: Any, kwargs: Any) -> str:
    """A job's arguments as a call reads them: ``(1, 'a', key=2)``; long lists are cut."""
    call = [_safe_repr(arg) for arg in args or ()]
    call += [f"{_key_text(key)}={_safe_repr(value)}" for key, value in dict(kwargs or {}).items()]
    text = f"({', '.join(call)})"
    if len(text) > _MAX_ARGUMENTS_TEXT:
        text = text[: _MAX_ARGUMENTS_TEXT - 1] + "…"
    return text


def _schedule_of(trigger: Any) -> dict[str, Any]:
    """What the schedule editor shows for this trigger, in plain values."""
    if isinstance(trigger, CronTrigger):
        return {"kind": "cron", "crontab": crontab.to_line(trigger) or ""}  # none: the editor starts empty
    if isinstance(trigger, IntervalTrigger):
        return {"kind": "interval", "seconds": int(trigger.interval.total_seconds())}
    if isinstance(trigger, DateTrigger):
        return {"kind": "date", "run_date": trigger.run_date.isoformat()}
    return {}


def _key_text(key: Any) -> str:
    """A keyword as written in a call; its repr when it is no identifier (a NUL in it could not be stored)."""
    return key if isinstance(key, str) and key.isidentifier() else _safe_repr(key)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as error:  # noqa: BLE001 -- a user class's __repr__ may fail: the job is still fine
        return f"<{type(value).__name__}: repr failed with {type(error).__name__}>"
