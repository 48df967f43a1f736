"""The executions page: a read-only record of every fire."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .. import limits
from ..compat import ExecutionAdminCompat
from ..models import DjangoJob, DjangoJobExecution
from ..timezones import to_db
from .common import (
    EMPTY,
    EXCEPTION_PREVIEW_CHARS,
    RefusesUnstorableText,
    StatusStyles,
    colored_status,
    format_seconds,
    local_time,
)

# --- executions ---------------------------------------------------------------------------


class JobIdFilter(admin.SimpleListFilter):
    """Filter by the job ids found in the history itself.

    Not Django's related-field filter: that lists existing DjangoJob rows, and a
    deleted job's history must stay reachable.
    """

    title = _("job")
    parameter_name = "job"
    # With hundreds of thousands of jobs a full sidebar would be useless and slow.
    # Any job id still filters through the URL or the search box.
    max_choices = 200

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        job_ids = DjangoJobExecution.objects.order_by("job_id").values_list("job_id", flat=True).distinct()
        return [(job_id, job_id) for job_id in job_ids[: self.max_choices]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DjangoJobExecution]) -> QuerySet[DjangoJobExecution]:
        value = self.value()
        if not value:
            return queryset
        if limits.text_problem(value) is not None:  # no stored id holds it (see RefusesUnstorableText)
            return queryset.none()
        return queryset.filter(job_id=value)


class DjangoJobExecutionAdmin(RefusesUnstorableText, ExecutionAdminCompat, admin.ModelAdmin):
    """The execution history: a record to read, filter and prune, never to edit.

    No "add" (executions are written by schedulers) and no "change" (a record
    edited by hand stops being one). Deleting is allowed, to prune by hand.
    """

    list_display = (
        "job_id_column",
        "status_column",
        "run_time_column",
        "duration_column",
        "exception_column",
        "scheduler",
    )
    list_display_links = ("run_time_column",)
    # A custom filter for the job (see JobIdFilter); DateFieldListFilter rather than
    # date_hierarchy because it filters with plain ranges, which work on MySQL and
    # MariaDB even without their time zone tables.
    list_filter = (JobIdFilter, "status", ("run_time", admin.DateFieldListFilter))
    Media = StatusStyles
    # "job__id" compares the local job_id column: Django trims the join, so the
    # history of deleted jobs is found too.
    search_fields = ("job__id",)
    # The scheduler is nullable, so this is a LEFT JOIN; never select_related the job
    # (its non-null foreign key would INNER JOIN and hide deleted jobs' history).
    list_select_related = ("scheduler",)
    fields = (
        "job_link",
        "status_column",
        "run_time_column",
        "started_at_column",
        "finished_column",
        "duration_column",
        "scheduler",
        "exception_full",
        "traceback_block",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: DjangoJobExecution | None = None) -> bool:
        return False

    # --- columns ---

    @admin.display(description=_("job"), ordering="job_id")
    def job_id_column(self, obj: DjangoJobExecution) -> str:
        return obj.job_id

    @admin.display(description=_("status"), ordering="status")
    def status_column(self, obj: DjangoJobExecution) -> SafeString | str:
        return colored_status(obj.status)

    @admin.display(description=_("run time"), ordering="run_time")
    def run_time_column(self, obj: DjangoJobExecution) -> str:
        return local_time(obj.run_time)

    @admin.display(description=_("duration"), ordering="duration")
    def duration_column(self, obj: DjangoJobExecution) -> str:
        return format_seconds(obj.duration) or EMPTY

    @admin.display(description=_("exception"))
    def exception_column(self, obj: DjangoJobExecution) -> str:
        if not obj.exception:
            return EMPTY
        return Truncator(obj.exception).chars(EXCEPTION_PREVIEW_CHARS)

    # --- detail page ---

    @admin.display(description=_("job"))
    def job_link(self, obj: DjangoJobExecution) -> SafeString | str:
        """A link to the job while it exists; its id alone once it has been deleted."""
        if not DjangoJob.objects.filter(pk=obj.job_id).exists():
            return gettext("%(job)s (deleted)") % {"job": obj.job_id}
        url = reverse("admin:django_apscheduler_djangojob_change", args=[quote(obj.job_id)])
        return format_html('<a href="{}">{}</a>', url, obj.job_id)

    @admin.display(description=_("started at"))
    def started_at_column(self, obj: DjangoJobExecution) -> str:
        return local_time(obj.started_at)

    @admin.display(description=_("finished"))
    def finished_column(self, obj: DjangoJobExecution) -> str:
        # Stored as a Unix timestamp, as django-apscheduler 0.7 did.
        if obj.finished is None:
            return EMPTY
        return local_time(to_db(datetime.fromtimestamp(float(obj.finished), tz=dt_timezone.utc)))

    @admin.display(description=_("exception"))
    def exception_full(self, obj: DjangoJobExecution) -> str:
        return obj.exception or EMPTY

    @admin.display(description=_("traceback"))
    def traceback_block(self, obj: DjangoJobExecution) -> SafeString | str:
        if not obj.traceback:
            return EMPTY
        return format_html('<pre style="white-space: pre-wrap; margin: 0;">{}</pre>', obj.traceback)


