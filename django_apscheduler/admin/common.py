"""Formatting helpers and colours shared by the three admin pages."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from .. import limits
from ..models import DjangoJobExecution
from ..util import get_local_dt_format

# The colour class of each status (admin.css): green went well, red went wrong,
# orange was skipped, blue-grey is still under way. Classes rather than inline
# colours, so that each theme (light, dark) gets colours that read on it.
STATUS_CLASSES: dict[str, str] = {
    DjangoJobExecution.SUCCESS: "das-status-success",
    DjangoJobExecution.ERROR: "das-status-error",
    DjangoJobExecution.LOST: "das-status-error",
    DjangoJobExecution.MISSED: "das-status-skipped",
    DjangoJobExecution.MAX_INSTANCES: "das-status-skipped",
    DjangoJobExecution.SENT: "das-status-running",
    DjangoJobExecution.QUEUED: "das-status-running",
}
STATUS_LABELS = dict(DjangoJobExecution.STATUS_CHOICES)

# How many of a job's latest executions its page lists.
RECENT_RUNS = 10

# How much of an exception message fits in a list column; the detail page shows it all.
EXCEPTION_PREVIEW_CHARS = 100


# --- small formatting helpers shared by the three admins ---------------------------------


def colored_status(status: str | None) -> SafeString | None:
    """A status in its colour; None (shown as the empty value) for a job never run."""
    if not status:
        return None
    label = STATUS_LABELS.get(status, status)
    return format_html('<span class="das-status {}">{}</span>', STATUS_CLASSES.get(status, ""), label)


class StatusStyles:
    """The stylesheet of the status colours, for each admin's ``Media``."""

    css = {"all": ["django_apscheduler/admin.css"]}


def format_seconds(value: Decimal | float | None) -> str | None:
    """Seconds with two decimals and a unit; durations are stored to the hundredth."""
    if value is None:
        return None
    return gettext("%(seconds).2f s") % {"seconds": float(value)}


def local_time(value: datetime | None) -> str | None:
    """A date-time in the current time zone, in the APSCHEDULER_DATETIME_FORMAT."""
    if value is None:
        return None
    return get_local_dt_format(value)




class RefusesUnstorableText:
    """Text from a URL that no database column can hold matches nothing, instead of a 500.

    A NUL (``_00`` in an admin URL, ``%00`` in a search) or a lone surrogate is not
    valid in a PostgreSQL text column: psycopg refuses the query with a DataError.
    No stored id or host can contain one, so such a lookup finds nothing.
    """

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        if limits.text_problem(object_id) is not None:
            return None
        return super().get_object(request, object_id, from_field)  # type: ignore[misc]

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        if limits.text_problem(search_term) is not None:
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]
