"""Telling whether two APScheduler jobs describe the same schedule.

Triggers have no equality, and an interval trigger's default start date is "now",
so two processes that add the same interval job a second apart hold different
trigger states. Their text, though, names every field that defines the schedule.
"""

from __future__ import annotations

from typing import Any

from apscheduler.job import Job


def trigger_fingerprint(trigger: Any) -> tuple:
    return (
        type(trigger).__name__,
        str(trigger),
        str(getattr(trigger, "timezone", "")),
        getattr(trigger, "jitter", None),
    )


def same_schedule(stored: Job, new: Job) -> bool:
    """True when ``new`` would run the same function, with the same arguments, on the same trigger."""
    return (
        trigger_fingerprint(stored.trigger) == trigger_fingerprint(new.trigger)
        and stored.func_ref == new.func_ref
        and tuple(stored.args) == tuple(new.args)
        and dict(stored.kwargs) == dict(new.kwargs)
    )
