"""A job's trigger in words: "At 01:30", "Every 5 minutes", "Once, at 2030-01-01 12:00".

Cron triggers are described by cron-descriptor (a maintained library) from the
crontab line equivalent to APScheduler's fields (``crontab.to_descriptor_line``);
expressions that have no crontab equivalent (APScheduler's "last fri", weeks of the
year, ...) fall back to APScheduler's own text of the trigger.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from cron_descriptor import Options, get_description

from . import crontab
from .util import get_local_dt_format


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
            return f"Once, at {get_local_dt_format(trigger.run_date)}"
    # cron-descriptor raises FormatError, IndexError and others for expressions it
    # cannot read, and a description must never break the page that shows it.
    except Exception:  # noqa: BLE001
        pass  # an expression cron-descriptor cannot read: APScheduler's own text below
    return str(trigger)


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
    importing its code).
    """
    call = [_safe_repr(arg) for arg in state.get("args", ())]
    call += [f"{key}={_safe_repr(value)}" for key, value in state.get("kwargs", {}).items()]
    arguments = f"({', '.join(call)})"
    if len(arguments) > _MAX_ARGUMENTS_TEXT:
        arguments = arguments[: _MAX_ARGUMENTS_TEXT - 1] + "…"
    grace = state.get("misfire_grace_time")
    return {
        "func_ref": str(state.get("func", ""))[:_MAX_FUNC_REF],
        "trigger_description": describe_trigger(state.get("trigger")),
        "details": {
            "name": str(state.get("name") or ""),
            "trigger": str(state.get("trigger", "")),
            "arguments": arguments,
            "executor": str(state.get("executor", "default")),
            "max_instances": state.get("max_instances", 1),
            "coalesce": bool(state.get("coalesce", False)),
            "misfire_grace_time": grace if isinstance(grace, int | float) else None,
        },
    }


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as error:  # noqa: BLE001 -- a user class's __repr__ may fail: the job is still fine
        return f"<{type(value).__name__}: repr failed with {type(error).__name__}>"
