"""The schedulers page: every scheduler that ran against this database, live or dead."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..models import DjangoJobExecution, SchedulerInstance
from ..querysets import is_alive
from .common import RefusesUnstorableText, local_time

# --- schedulers ---------------------------------------------------------------------------


class SchedulerInstanceAdmin(RefusesUnstorableText, admin.ModelAdmin):
    """Every scheduler that ran against this database, live or dead.

    Entirely read-only, deleting included: a dead scheduler's unfinished fires are
    found through its row and marked "Lost!" once it is found dead; deleting
    the row first would leave them "Started execution" for ever.
    """

    list_display = (
        "host",
        "pid",
        "version",
        "started_column",
        "heartbeat_column",
        "stopped_column",
        "died_column",
        "alive",
        "running",
    )
    search_fields = ("host",)
    fields = ("host", "pid", "version", "started_column", "heartbeat_column", "stopped_column", "died_column", "alive")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[SchedulerInstance]:
        running = Count("executions", filter=Q(executions__status=DjangoJobExecution.SENT))
        return super().get_queryset(request).annotate(running_count=running)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SchedulerInstance | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SchedulerInstance | None = None) -> bool:
        return False

    @admin.display(description=_("running"), ordering="running_count")
    def running(self, obj: SchedulerInstance) -> int:
        """Fires it claimed that have not finished (jobs running now, or lost if it died)."""
        return getattr(obj, "running_count", 0)

    @admin.display(description=_("started"), ordering="started")
    def started_column(self, obj: SchedulerInstance) -> str:
        return local_time(obj.started)

    @admin.display(description=_("last heartbeat"), ordering="last_heartbeat")
    def heartbeat_column(self, obj: SchedulerInstance) -> str:
        return local_time(obj.last_heartbeat)

    @admin.display(description=_("stopped"), ordering="stopped")
    def stopped_column(self, obj: SchedulerInstance) -> str:
        """When it stopped cleanly; "-" while it runs (or when it died instead)."""
        return local_time(obj.stopped)

    @admin.display(description=_("found dead"), ordering="died")
    def died_column(self, obj: SchedulerInstance) -> str | None:
        """When a peer saw its database session or process gone."""
        return local_time(obj.died)

    @admin.display(description=_("alive"), boolean=True)
    def alive(self, obj: SchedulerInstance) -> bool:
        return is_alive(obj)


