"""django-apscheduler 0.7's names that no longer fit this package's design, kept working.

Users subclass 0.7's job store and admin classes and call these methods; each still
does what it did, through this package's own machinery (a fire's rows are written
by ``fires``), and warns with ``DeprecationWarning`` where a better replacement
exists. Nothing in the package itself calls them.
"""

from __future__ import annotations

import threading
import warnings
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from . import history_writer
from .database import run_with_retry
from .timezones import from_db, to_db, utc_now
from .util import get_local_dt_format

if TYPE_CHECKING:
    from .fires import Fires
    from .models import DjangoJobExecution

_SUBMISSION_EVENTS = EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES
_ERROR_EVENTS = EVENT_JOB_ERROR | EVENT_JOB_MISSED


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated: {new}", DeprecationWarning, stacklevel=3)


class DjangoResultStoreMixin:
    """0.7's event handlers of the job stores.

    The stores record executions by themselves (``fires.Fires`` listens to every
    fire event); these methods record one event the same way, at once, for code
    that calls them or registers them as listeners.
    """

    if TYPE_CHECKING:
        # The store's fires' owner, a property of the job stores.
        @property
        def _fires(self) -> Fires: ...

    _scheduler: Any
    _alias: str | None

    def start(self, scheduler: Any, alias: str) -> None:
        # 0.7 kept a lock here for its event handlers; code reading it still finds one.
        self.lock = threading.RLock()
        super().start(scheduler, alias)  # type: ignore[misc]

    def handle_submission_event(self, event: JobSubmissionEvent) -> None:
        """Record a submitted (or refused, "Max instances!") fire."""
        if event.code not in (EVENT_JOB_SUBMITTED, EVENT_JOB_MAX_INSTANCES):
            raise NotImplementedError(f"handle_submission_event() does not handle event code {event.code}")
        self._record_at_once(event)

    def handle_execution_event(self, event: JobExecutionEvent) -> None:
        """Record a fire that ran and returned."""
        if event.code != EVENT_JOB_EXECUTED:
            raise NotImplementedError(f"handle_execution_event() does not handle event code {event.code}")
        self._record_at_once(event)

    def handle_error_event(self, event: JobExecutionEvent) -> None:
        """Record a fire that raised, or was missed."""
        if event.code not in (EVENT_JOB_ERROR, EVENT_JOB_MISSED):
            raise NotImplementedError(f"handle_error_event() does not handle event code {event.code}")
        if event.code == EVENT_JOB_ERROR and event.exception is None:
            # 0.7 wrote this text when the event carried no exception.
            event.exception = RuntimeError(f"Job '{event.job_id}' raised an error!")
        self._record_at_once(event)

    def register_event_listeners(self) -> None:
        """0.7's three listeners, in place of the store's own one (nothing is recorded twice)."""
        _deprecated("register_event_listeners()", "the job stores record executions on their own; remove the call.")
        self._scheduler.remove_listener(self._fires)
        self._scheduler.add_listener(self.handle_submission_event, _SUBMISSION_EVENTS)
        self._scheduler.add_listener(self.handle_execution_event, EVENT_JOB_EXECUTED)
        self._scheduler.add_listener(self.handle_error_event, _ERROR_EVENTS)

    def _record_at_once(self, event: Any) -> None:
        self._fires.record_event(event)


def atomic_update_or_create(
    lock: Any,
    job_id: str,
    run_time: datetime,
    status: str,
    exception: str | None = None,
    traceback: str | None = None,
) -> DjangoJobExecution:
    """0.7's ``DjangoJobExecution.atomic_update_or_create``: write one fire's status now.

    A start never overwrites a final status (a late submission event), as in 0.7.
    A final status gets 0.7's ``finished`` and ``duration`` (measured from the
    scheduled run time: this old entry point does not know the real start).
    """
    from .models import DjangoJobExecution

    _deprecated(
        "DjangoJobExecution.atomic_update_or_create()",
        "the job stores record executions on their own; for a fire run elsewhere use "
        "django_apscheduler.fires.record_start() / record_outcome().",
    )
    stored_run_time = to_db(run_time)
    if status == DjangoJobExecution.SENT:
        write = history_writer.start(job_id, stored_run_time, status=status)
    else:
        finished = utc_now()
        fields: dict[str, Any] = {"status": status, "finished": Decimal(f"{finished.timestamp():.2f}")}
        if status in (DjangoJobExecution.SUCCESS, DjangoJobExecution.ERROR):
            elapsed = max(finished - from_db(stored_run_time), timedelta(0))
            fields["duration"] = Decimal(f"{elapsed.total_seconds():.2f}")
        if exception is not None:
            fields.update(exception=exception[:1000], traceback=traceback)
        write = history_writer.final(job_id, stored_run_time, **fields)
    with lock:
        run_with_retry(lambda: history_writer.apply_writes([write]), "recording a job execution", attempts=2)
    return DjangoJobExecution.objects.get(job_id=job_id, run_time=stored_run_time)


# The colours 0.7's admin used for its status column.
_0_7_STATUS_COLORS = {
    "Executed": "green",
    "Started execution": "RoyalBlue",
    "Max instances!": "orange",
    "Missed!": "orange",
    "Error!": "red",
    "Lost!": "red",
}


class JobAdminCompat:
    """0.7's helper methods of ``DjangoJobAdmin``."""

    def local_run_time(self, obj: Any) -> str:
        """The next run time in the current time zone, or "(paused)"."""
        if obj.next_run_time is None:
            return "(paused)"
        return get_local_dt_format(obj.next_run_time)

    def get_queryset(self, request: HttpRequest) -> Any:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        # 0.7 kept each job's average duration here, as (job id, average) rows; lazy,
        # so it costs nothing unless read.
        self.avg_duration_qs = _average_durations(queryset.values("pk"))
        return queryset

    def average_duration(self, obj: Any) -> Any:
        """0.7's value: the job's average duration in seconds, or "None" without finished runs."""
        if "average_duration" in vars(obj):  # annotated by the admin's list query
            value = vars(obj)["average_duration"]
        else:
            value = next((average for _job, average in _average_durations([obj.pk])), None)
        return "None" if value is None else value

    def run_selected_jobs(self, request: HttpRequest, queryset: Any) -> None:
        """0.7's name of the "run now" action."""
        _deprecated("DjangoJobAdmin.run_selected_jobs()", "use run_selected_jobs_now().")
        self.run_selected_jobs_now(request, queryset)  # type: ignore[attr-defined]


def _average_durations(job_ids: Any) -> Any:
    from django.db.models import Avg

    from .models import DjangoJobExecution

    return (
        DjangoJobExecution.objects.filter(job_id__in=job_ids, duration__isnull=False)
        .values_list("job_id")
        .annotate(Avg("duration"))
        .order_by("job_id")
    )


class ExecutionAdminCompat:
    """0.7's helper methods of ``DjangoJobExecutionAdmin``."""

    def html_status(self, obj: Any) -> SafeString:
        return format_html('<span style="color: {};">{}</span>', _0_7_STATUS_COLORS.get(obj.status, "black"), obj.status)

    def duration_text(self, obj: Any) -> Any:
        return obj.duration if obj.duration is not None else "N/A"
