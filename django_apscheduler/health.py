"""Is any scheduler running? The one answer the admin's banner (and probes) ask for.

A scheduler reports by its heartbeat (``SchedulerInstance.last_heartbeat``); the
cluster is healthy while at least one scheduler is alive by ``SchedulerQuerySet.alive``'s
rule. When none is, the age of the newest heartbeat says for how long jobs have not
been running. ``readiness`` adds the schema and is what the health view answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError
from django.db.models import Max

from . import conf
from .database import SchemaNotReady, ensure_schema_ready, run_with_retry
from .models import SchedulerInstance
from .timezones import from_db, utc_now

logger = logging.getLogger("django_apscheduler.health")


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


@dataclass(frozen=True)
class Readiness:
    """The health view's answer: may jobs run here now, and if not, why."""

    healthy: bool
    reason: str
    live_schedulers: int | None = None  # None: the database could not tell
    newest_heartbeat_age: float | None = None
    pending_migrations: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        # Only counts, ages and migration names: nothing about hosts, pids or the database's address.
        return {
            "status": "ok" if self.healthy else "unavailable",
            "reason": self.reason,
            "live_schedulers": self.live_schedulers,
            "newest_heartbeat_age_seconds": None
            if self.newest_heartbeat_age is None
            else round(self.newest_heartbeat_age, 3),
            "heartbeat_timeout_seconds": conf.get("APSCHEDULER_HEARTBEAT_TIMEOUT"),
            "pending_migrations": self.pending_migrations,
        }


def readiness() -> Readiness:
    """Healthy when every migration is applied and a scheduler's heartbeat is fresh.

    One try at the database, no retries: a probe needs an answer within its
    timeout, and an unreachable database is itself the answer.
    """
    try:
        ensure_schema_ready(attempts=1)
        health = run_with_retry(scheduler_health, "checking the schedulers' heartbeats", attempts=1)
    except SchemaNotReady as error:
        return Readiness(False, str(error), pending_migrations=error.pending)
    except DatabaseError as error:
        logger.warning("Health check: the database is unreachable: %s", error)
        # The driver's message may name hosts or users: only its kind is shown.
        return Readiness(False, f"database unreachable ({type(error).__name__})")
    if not health.healthy:
        if health.silent_for is None:
            reason = "no scheduler has ever run: start one with `python manage.py apscheduler start` or autostart"
        else:
            reason = f"no live scheduler: the newest heartbeat is {health.silent_for:.0f} s old"
        return Readiness(False, reason, health.alive, health.silent_for)
    return Readiness(True, f"{health.alive} live scheduler(s)", health.alive, health.silent_for)
