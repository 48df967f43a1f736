"""The words of the audit trail: one ``LogEntry`` change message per admin action on a job.

The admin writes them with ``ModelAdmin.log_addition`` / ``log_change`` (which use
``LogEntry.objects.log_action`` on Django 4.2 and ``log_actions`` from 5.1 on, so
neither version warns), and they show on each job's History page. Rules:

- one entry per job that an action changed, written after the change;
- an action that changes nothing (pausing a paused job, resuming a scheduled one,
  a run that could not start) writes none, and the page says why;
- messages are plain text that never starts with "[" (Django would read that as
  its own JSON form of a change message).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.utils.translation import gettext

from .. import runnow
from ..describe import describe_trigger
from ..models import DjangoJobExecution
from ..util import get_local_dt_format
from .common import STATUS_LABELS, format_seconds

# The options the schedule editor sets, with the words the messages use for them.
EDITED_OPTIONS = (
    ("max_instances", "max instances"),
    ("coalesce", "coalesce"),
    ("misfire_grace_time", "misfire grace time"),
    ("executor", "executor"),
)


def _when(moment: datetime | None) -> str:
    return get_local_dt_format(moment) if moment is not None else gettext("none")


def paused(previous_next_run: datetime | None) -> str:
    return gettext("Paused (its next run was %(when)s).") % {"when": _when(previous_next_run)}


def resumed(next_run: datetime) -> str:
    return gettext("Resumed; next run %(when)s.") % {"when": _when(next_run)}


def schedule_changed(
    old_words: str, old_details: dict[str, Any], new_trigger: Any, new_options: dict[str, Any], next_run: datetime | None
) -> str:
    """Old trigger → new trigger, each option that changed old → new, and the next run.

    The old schedule is read from the job's plain columns (its trigger in words and
    its details), as the page showed it: nothing is unpickled for the message.
    """
    new_words = describe_trigger(new_trigger)
    if old_words == new_words and old_details.get("trigger") == str(new_trigger):
        parts = [gettext("Schedule saved: trigger unchanged (%(trigger)s)") % {"trigger": new_words}]
    else:
        parts = [gettext("Schedule changed: %(old)s → %(new)s") % {"old": old_words, "new": new_words}]
    for key, words in EDITED_OPTIONS:
        before, after = old_details.get(key), new_options.get(key)
        if before != after:
            parts.append(f"{words} {before!r} → {after!r}")
    when = _when(next_run) if next_run is not None else gettext("paused (resume it to apply)")
    parts.append(gettext("next run %(when)s") % {"when": when})
    return "; ".join(parts) + "."


def created(func_ref: str, args: list, kwargs: dict, trigger: Any, next_run: datetime | None) -> str:
    call = ", ".join(
        [json.dumps(arg) for arg in args]
        + [f"{key if key.isidentifier() else json.dumps(key)}={json.dumps(value)}" for key, value in kwargs.items()]
    )
    when = _when(next_run) if next_run is not None else gettext("paused")
    return gettext("Created: %(func)s(%(call)s); %(trigger)s; next run %(when)s.") % {
        "func": func_ref,
        "call": call,
        "trigger": describe_trigger(trigger),
        "when": when,
    }


def ran_now(result: runnow.RunResult, timeout: float) -> str | None:
    """The entry for one "run now" request; None when the run could not even start."""
    if result.error:
        return None
    where = gettext(" in this web process") if result.in_process else ""
    if result.deferred:
        return gettext("Run now requested%(where)s; it starts once the request is saved.") % {"where": where}
    execution = result.execution
    if execution is None or execution.status not in DjangoJobExecution.FINAL_STATUSES:
        return gettext("Run now requested%(where)s; still running after %(timeout)s s.") % {
            "where": where,
            "timeout": f"{timeout:g}",
        }
    outcome = STATUS_LABELS.get(execution.status, execution.status)
    if execution.status == DjangoJobExecution.SUCCESS and execution.duration is not None:
        outcome += " " + gettext("in %(duration)s") % {"duration": format_seconds(execution.duration)}
    elif execution.exception:
        outcome += f" {execution.exception}"
    return gettext("Ran now%(where)s: %(outcome)s") % {"where": where, "outcome": outcome}
