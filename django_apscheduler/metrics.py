"""Prometheus metrics: what an operator alerts on when fires fail, lag or get lost.

Optional: with the ``metrics`` extra (``prometheus_client``) installed, the hooks
below update metrics in the process's default registry; without it every hook is
a function that returns at once and nothing is imported or registered.

Two kinds of metric, and they answer different questions:

- **per process** (counters and histograms): what this process's schedulers did
  since it started: fires by final status, lag, duration, claims, lost fires.
  Each scheduler process exposes its own; Prometheus sums them across targets.
- **cluster-wide** (gauges read from the database at scrape time): live
  schedulers, the newest heartbeat's age, fires queued on a worker fleet. Every
  process reports the same value, so aggregate them with ``max``, not ``sum``.

The hooks are called from the modules that own each event (``fires``,
``claims``); they take plain values and never touch the database.

Fires by job carry the job's id as the ``job_id`` label (not ``job``: Prometheus
sets ``job`` to the scrape job's name and would rename ours). With many jobs
(per-user reminders) that is one series per job: ``APSCHEDULER_METRICS_JOB_LABEL
= False`` reports every job under ``job_id=""``, which Prometheus stores as no
label at all.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from functools import wraps
from typing import Any, Protocol, TypeVar

from apscheduler.events import EVENT_JOB_ERROR
from django.db import DatabaseError, connection

from . import conf

logger = logging.getLogger("django_apscheduler.metrics")

try:
    import prometheus_client
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError:  # the extra is not installed: every hook below is a no-op
    prometheus_client = None  # type: ignore[assignment]

INSTALL_HINT = 'Prometheus metrics need the "metrics" extra: pip install "django-apscheduler[metrics]".'

PREFIX = "django_apscheduler_"

# Final statuses as label values: Prometheus-friendly words, not the stored texts
# ("Error!", "Max instances!"), which need quoting in every query.
STATUS_LABELS = {
    "Executed": "executed",
    "Error!": "error",
    "Missed!": "missed",
    "Max instances!": "max_instances",
    "Lost!": "lost",
}

# Seconds. Lag is at least the poll interval's worth when a job is added while the
# scheduler sleeps, so the buckets reach past it; durations span jobs of a few
# milliseconds to an hour-long report; a claim is one short transaction.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Timing(Protocol):
    @property
    def started(self) -> datetime: ...

    @property
    def ended(self) -> datetime: ...


class MetricsUnavailable(RuntimeError):
    """Metrics were asked for, but ``prometheus_client`` is not installed."""


class _Metrics:
    """The process's metric objects, created once, in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        client = prometheus_client
        self.fires = client.Counter(
            PREFIX + "fires",
            "Fires that reached a final status in this process, by job id and status.",
            ["job_id", "status"],
            registry=registry,
        )
        self.lag = client.Histogram(
            PREFIX + "fire_lag_seconds",
            "Seconds from a fire's scheduled time to its function's start.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.duration = client.Histogram(
            PREFIX + "fire_duration_seconds",
            "Real running time of a job's function, by job id.",
            ["job_id"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.claim_duration = client.Histogram(
            PREFIX + "claim_duration_seconds",
            "Seconds each claim transaction took (its count is the number of claims).",
            buckets=CLAIM_BUCKETS,
            registry=registry,
        )
        self.claimed = client.Counter(
            PREFIX + "claimed_fires", "Fires this process claimed to run.", registry=registry
        )
        self.lost = client.Counter(
            PREFIX + "lost_fires",
            "Fires of dead schedulers that this process marked Lost! (each counted once in the cluster).",
            registry=registry,
        )


class ClusterCollector:
    """Gauges read from the database at scrape time: the same value from every process.

    A scrape must not fail because the database does: on a database error the
    gauges are left out of that scrape (alert on their absence) and it is logged.
    """

    def describe(self) -> Iterator[Any]:
        # Given to the registry so that registering does not query the database.
        yield from self._families()

    def collect(self) -> Iterator[Any]:
        try:
            alive, silent_for, queued = _read_cluster()
        except DatabaseError as error:
            logger.warning("Metrics: could not read the schedulers' state from the database: %s", error)
            return
        live, heartbeat, queued_family = self._families()
        live.add_metric([], alive)
        if silent_for is not None:
            heartbeat.add_metric([], silent_for)
        queued_family.add_metric([], queued)
        yield from (live, heartbeat, queued_family)

    @staticmethod
    def _families() -> tuple[Any, Any, Any]:
        return (
            GaugeMetricFamily(PREFIX + "live_schedulers", "Schedulers alive now, cluster-wide (from the database)."),
            GaugeMetricFamily(
                PREFIX + "newest_heartbeat_age_seconds",
                "Seconds since the newest heartbeat of any scheduler, cluster-wide (absent if none ever ran).",
            ),
            GaugeMetricFamily(
                PREFIX + "queued_fires",
                "Fires handed to a worker fleet and not started yet, cluster-wide (from the database).",
            ),
        )


def _read_cluster() -> tuple[int, float | None, int]:
    """Live schedulers, newest heartbeat age and queued fires, closing a connection opened for it.

    The ``--metrics-port`` server answers each scrape in a new thread: a connection
    left open there would never be closed. In a request (the Django view), Django
    owns the connection and it is left alone.
    """
    from .health import scheduler_health
    from .models import DjangoJobExecution

    opened_here = connection.connection is None
    try:
        health = scheduler_health()
        # The "Queued" status comes with the worker-fleet executors; before it exists nothing is queued.
        queued_status = getattr(DjangoJobExecution, "QUEUED", None)
        queued = DjangoJobExecution.objects.filter(status=queued_status).count() if queued_status else 0
        return health.alive, health.silent_for, queued
    finally:
        if opened_here and not connection.in_atomic_block:
            connection.close()


def _create() -> _Metrics | None:
    if prometheus_client is None:
        return None
    registry = prometheus_client.REGISTRY
    created = _Metrics(registry)
    registry.register(ClusterCollector())
    return created


_METRICS: _Metrics | None = _create()


def available() -> bool:
    """Whether metrics are collected (``prometheus_client`` is installed)."""
    return _METRICS is not None


# --- hooks: one call from the module that owns each event -----------------------------


def _job_label(job_id: str) -> str:
    return job_id if conf.get("APSCHEDULER_METRICS_JOB_LABEL") else ""


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def fire_finished(
    job_id: str,
    status: str,
    scheduled: datetime | None = None,
    started: datetime | None = None,
    ended: datetime | None = None,
    *,
    count: int = 1,
) -> None:
    """``count`` fires of a job reached ``status``; with ``started``, its lag and duration are observed."""
    metrics = _METRICS
    if metrics is None:
        return
    label = _job_label(job_id)
    metrics.fires.labels(label, STATUS_LABELS.get(status, status.lower())).inc(count)
    if started is None:
        return
    if scheduled is not None:
        metrics.lag.observe(_seconds(scheduled, started))
    metrics.duration.labels(label).observe(_seconds(started, ended or datetime.now(timezone.utc)))


def job_event(event: Any, timing: _Timing | None) -> None:
    """A function ran: APScheduler's executed or error event, with the timer's start and end."""
    if _METRICS is None:
        return
    status = "Error!" if event.code == EVENT_JOB_ERROR else "Executed"
    started, ended = (timing.started, timing.ended) if timing else (None, None)
    fire_finished(event.job_id, status, event.scheduled_run_time, started, ended)


def fires_lost(count: int) -> None:
    if _METRICS is not None and count:
        _METRICS.lost.inc(count)


T = TypeVar("T")


def timed_claim(claim: Callable[..., list[T]]) -> Callable[..., list[T]]:
    """Decorates the claim transaction: its duration, and the fires it claimed.

    Without ``prometheus_client`` the function is returned as it is: no cost at all.
    """
    if _METRICS is None:
        return claim

    @wraps(claim)
    def timed(*args: Any, **kwargs: Any) -> list[T]:
        began = time.perf_counter()
        try:
            claims = claim(*args, **kwargs)
        finally:
            if _METRICS is not None:
                _METRICS.claim_duration.observe(time.perf_counter() - began)
        if _METRICS is not None:
            _METRICS.claimed.inc(sum(len(getattr(c, "run_times", ())) for c in claims))
        return claims

    return timed


# --- exposing them ----------------------------------------------------------------------


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The metrics as text, in the format the scraper asked for (Prometheus text or OpenMetrics).

    Under prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set,
    as with several gunicorn workers), the counters of every worker process are
    merged, and the database gauges added once.
    """
    if prometheus_client is None:
        raise MetricsUnavailable(INSTALL_HINT)
    from prometheus_client.exposition import choose_encoder

    registry: Collector = prometheus_client.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(ClusterCollector())
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on ``address:port`` from a daemon thread (``apscheduler start --metrics-port``)."""
    if prometheus_client is None:
        raise MetricsUnavailable(INSTALL_HINT)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"--metrics-port must be a port number from 1 to 65535, not {port!r}.")
    try:
        prometheus_client.start_http_server(port, addr=address)
    except OSError as error:
        raise ValueError(f"Cannot serve metrics on {address}:{port}: {error.strerror or error}.") from None
    logger.info("Serving Prometheus metrics on http://%s:%d/metrics", address, port)
