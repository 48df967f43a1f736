"""Formatting helpers and colours shared by the three admin pages."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from ..models import DjangoJobExecution
from ..util import get_local_dt_format

# Colours of the statuses, chosen to read at a glance: green went well, red went
# wrong, orange was skipped, blue-grey is still under way.
STATUS_COLORS: dict[str, str] = {
    DjangoJobExecution.SUCCESS: "#2e7d32",
    DjangoJobExecution.ERROR: "#c62828",
    DjangoJobExecution.LOST: "#c62828",
    DjangoJobExecution.MISSED: "#ef6c00",
    DjangoJobExecution.MAX_INSTANCES: "#ef6c00",
    DjangoJobExecution.SENT: "#546e7a",
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
    color = STATUS_COLORS.get(status, "inherit")
    label = STATUS_LABELS.get(status, status)
    return format_html('<span style="color: {}; font-weight: bold;">{}</span>', color, label)


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


