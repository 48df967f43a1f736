"""Is any scheduler running? The one answer the admin's banner (and probes) ask for.

A scheduler reports by its heartbeat (``SchedulerInstance.last_heartbeat``); the
cluster is healthy while at least one scheduler is alive by ``SchedulerQuerySet.alive``'s
rule. When none is, the age of the newest heartbeat says for how long jobs have not
been running.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max

from .models import SchedulerInstance
from .timezones import from_db, utc_now


@dataclass(frozen=True)
class SchedulerHealth:
    alive: int  # schedulers alive now
    silent_for: float | None  # seconds since the newest heartbeat of any scheduler; None if none ever reported

    @property
    def healthy(self) -> bool:
        return self.alive > 0


def scheduler_health(now: datetime | None = None) -> SchedulerHealth:
    """How many schedulers are alive, and how long ago the last one reported (one query each)."""
    now = now or utc_now()
    alive = SchedulerInstance.objects.alive(now).count()
    newest = SchedulerInstance.objects.aggregate(newest=Max("last_heartbeat"))["newest"]
    silent_for = None if newest is None else max(0.0, (now - from_db(newest)).total_seconds())
    return SchedulerHealth(alive, silent_for)
