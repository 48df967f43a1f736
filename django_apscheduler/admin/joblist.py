"""The jobs list's own parts: its filters, its order, and when a next run counts as overdue."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from django.contrib import admin
from django.contrib.admin.views.main import ORDER_VAR, ChangeList
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from .. import conf, postgres
from ..models import DjangoJob, DjangoJobExecution
from .common import STATUS_LABELS

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


def overdue_after() -> timedelta:
    """How late a next run may be before the list marks it overdue.

    A live scheduler claims a due fire within its poll interval (at once on
    PostgreSQL); a run later than that, by a margin for a busy machine, means no
    scheduler is taking it.
    """
    return timedelta(seconds=2 * float(conf.get("APSCHEDULER_POLL_INTERVAL")) + 5)


class JobStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, StrOrPromise]]:
        return [("active", _("active")), ("paused", _("paused"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DjangoJob]) -> QuerySet[DjangoJob]:
        if self.value() == "active":
            return queryset.filter(next_run_time__isnull=False)
        if self.value() == "paused":
            return queryset.filter(next_run_time__isnull=True)
        return queryset


class LastStatusFilter(admin.SimpleListFilter):
    """By the status of each job's newest execution (the list's "last status" column)."""

    title = _("last status")
    parameter_name = "last_status"
    NEVER_RUN = "never"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, StrOrPromise]]:
        return [*DjangoJobExecution.STATUS_CHOICES, (self.NEVER_RUN, _("never run"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DjangoJob]) -> QuerySet[DjangoJob]:
        # ``last_status`` is annotate_job_summary's annotation, which the typing
        # plugin cannot see on a plain QuerySet[DjangoJob]; Q(tuple) keeps it a lookup.
        value = self.value()
        if value == self.NEVER_RUN:
            return queryset.filter(Q(("last_status__isnull", True)))
        if value in STATUS_LABELS:
            return queryset.filter(Q(("last_status", value)))
        return queryset


class JobChangeList(ChangeList):
    """The jobs list, whose sort indicator sits on "next run", the order the rows come in.

    The default order is an expression (soonest first, paused last on every database),
    which Django's changelist cannot match to a column: it would mark the "id"
    tie-breaker as the sort column instead.
    """

    def get_ordering_field_columns(self) -> dict[int, Literal["desc", "asc"]]:
        if ORDER_VAR in self.params:
            return super().get_ordering_field_columns()
        return {list(self.list_display).index("next_run"): "asc"}


class JobPaginator(Paginator):
    """Pages of jobs, counted no further than a page load can afford in a huge store.

    ``COUNT(*)`` reads every row it counts: about a second per page load at a million
    jobs on PostgreSQL. So:

    - the unfiltered list, on PostgreSQL above ``ESTIMATE_ABOVE`` rows, takes
      PostgreSQL's own estimate (exact after an ANALYZE, within a few per cent
      otherwise), in the same single statement that counts a smaller table exactly;
    - a filtered or searched list is counted up to ``COUNT_UP_TO`` matches. Past that,
      ``capped`` is set: the list says "more than 10000 jobs" and pages through the
      first 10,000 (narrow the filter to see the rest), and selecting "all" says it
      selects every matching job, not a number;
    - every other list is counted exactly by Django.
    """

    ESTIMATE_ABOVE = 100_000
    COUNT_UP_TO = 10_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.capped = False

    @cached_property
    def count(self) -> int:
        jobs = self.object_list
        if not isinstance(jobs, QuerySet):
            return super().count
        if not jobs.query.where:
            rows = postgres.table_rows(jobs.db, jobs.model._meta.db_table, self.ESTIMATE_ABOVE)
            return super().count if rows is None else rows
        # One more than the cap tells "more than"; only the key is selected, so the
        # list's per-row columns (its last status) are not computed for the count.
        matching = jobs.order_by().values("pk")[: self.COUNT_UP_TO + 1].count()
        self.capped = matching > self.COUNT_UP_TO
        return min(matching, self.COUNT_UP_TO)
