"""The jobs page: what runs when, how it went, and the actions that steer it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import urlencode

from apscheduler.jobstores.base import ConflictingIdError
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Avg, Count, F, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .. import conf, jobstate, operations, registry, runnow
from ..compat import JobAdminCompat
from ..describe import describe_trigger
from ..forms import CreateJobForm, ScheduleForm
from ..models import DjangoJob, DjangoJobExecution
from ..util import get_local_dt_format
from .common import (
    RECENT_RUNS,
    STATUS_COLORS,
    STATUS_LABELS,
    change_permission_codename,
    colored_status,
    format_seconds,
    local_time,
)

# --- jobs ---------------------------------------------------------------------------------


def annotate_job_summary(queryset: QuerySet[DjangoJob]) -> QuerySet[DjangoJob]:
    """Add each job's last status and average duration in the same query.

    Both are correlated subqueries rather than a join with GROUP BY: the list then
    costs the same few queries for 30 jobs or 3,000, and the grouping never has to
    touch the pickled ``job_state`` column.
    """
    executions = DjangoJobExecution.objects.filter(job_id=OuterRef("pk"))
    latest_status = executions.order_by("-run_time", "-id").values("status")[:1]
    # Only finished executions have a duration (a missed fire never ran), and
    # AVG ignores NULLs anyway; the explicit filter keeps the intent visible.
    average_duration = (
        executions.filter(duration__isnull=False)
        .order_by()  # drop Meta.ordering, which would otherwise join the GROUP BY
        .values("job_id")
        .annotate(average=Avg("duration"))
        .values("average")
    )
    finished = executions.filter(status__in=DjangoJobExecution.FINAL_STATUSES).order_by().values("job_id")
    finished_count = finished.annotate(n=Count("id")).values("n")
    success_count = finished.filter(status=DjangoJobExecution.SUCCESS).annotate(n=Count("id")).values("n")
    return queryset.annotate(
        last_status=Subquery(latest_status),
        average_duration=Subquery(average_duration),
        finished_runs=Subquery(finished_count),
        successful_runs=Subquery(success_count),
    )


class DjangoJobAdmin(JobAdminCompat, admin.ModelAdmin):
    """Stored jobs: what runs when, how it went lately, and the "run now" action.

    Jobs are created by code (``add_job`` or the ``@job`` decorator), so there is no
    "add" button, and the change page only shows: the state is a pickle that a
    hand edit could only break.
    """

    list_display = (
        "id",
        "job_name",
        "trigger_words",
        "next_run",
        "last_status",
        "success_rate",
        "average_duration_column",
        "broken_flag",
    )
    list_filter = ("broken", "declared")
    search_fields = ("id",)
    # Soonest first and paused jobs (no next run) last, the same on every database.
    ordering = (F("next_run_time").asc(nulls_last=True), "id")
    actions = ("run_selected_jobs_now", "pause_selected_jobs", "resume_selected_jobs")
    fieldsets = (
        (
            None,
            {"fields": ("id", "next_run", "schedule_link", "last_status", "average_duration_column", "recent_runs", "executions_link")},
        ),
        (
            _("Definition"),
            {"fields": ("function", "trigger", "arguments", "options", "declared", "code_declaration", "history")},
        ),
        (_("Health"), {"fields": ("broken", "broken_reason", "run_requested_at")}),
    )
    readonly_fields = (
        "id",
        "next_run",
        "last_status",
        "average_duration_column",
        "executions_link",
        "schedule_link",
        "recent_runs",
        "declared",
        "code_declaration",
        "history",
        "run_requested_at",
        "function",
        "trigger",
        "arguments",
        "options",
        "broken",
        "broken_reason",
    )

    def get_urls(self) -> list:
        edit = self.admin_site.admin_view(self.schedule_view)
        return [path("<path:object_id>/schedule/", edit, name="django_apscheduler_djangojob_schedule")] + super().get_urls()

    def schedule_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Edit a job's trigger and main options; running schedulers obey the change live."""
        if not self.has_pause_permission(request):
            raise PermissionDenied
        job = self.get_object(request, unquote(object_id))
        if job is None:
            # ModelAdmin's own "does not exist" redirect, as its change view uses; a private
            # helper (Django 4.2 and later have it) that django-stubs does not declare.
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined]
        state, _reason = jobstate.try_load(job.job_state)
        if state is None:
            self.message_user(request, gettext("This job cannot be loaded, so its schedule cannot be edited."), messages.ERROR)
            return redirect(reverse("admin:django_apscheduler_djangojob_change", args=[quote(job.pk)]))
        form = ScheduleForm(request.POST or None, initial=ScheduleForm.initial_for(state))
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                next_run_time = operations.reschedule(
                    job.pk,
                    data["trigger"],
                    max_instances=data["max_instances"],
                    coalesce=data["coalesce"],
                    misfire_grace_time=data["misfire_grace_time"],
                )
            except ValueError as error:  # JobStateError, or a row that no longer loads: nothing was written
                self.message_user(request, str(error), messages.ERROR)
                return redirect(reverse("admin:django_apscheduler_djangojob_change", args=[quote(job.pk)]))
            level = messages.SUCCESS
            if next_run_time:
                when = get_local_dt_format(next_run_time)
            elif job.next_run_time is None:
                when = gettext("paused (resume it to apply)")
            else:  # the form saw a fire, which passed meanwhile (a date a moment away)
                level, when = messages.WARNING, gettext("none, as it has no further run time: it is kept, paused")
            self.message_user(
                request,
                gettext("Schedule of “%(job)s” changed: %(trigger)s; next run %(when)s.")
                % {"job": job.pk, "trigger": describe_trigger(data["trigger"]), "when": when},
                level,
            )
            return redirect(reverse("admin:django_apscheduler_djangojob_change", args=[quote(job.pk)]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "job": job,
            "form": form,
            "title": gettext("Edit the schedule of %(job)s") % {"job": job.pk},
            "current": describe_trigger(state.get("trigger")),
            "next_run": self.next_run(job),
            "code_declaration": _readable_declaration(job.pk) if job.declared else None,
        }
        return TemplateResponse(request, "admin/django_apscheduler/djangojob/schedule.html", context)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        """The confirmation of a declared job's deletion says that the job comes back."""
        declared = DjangoJob.objects.filter(pk=unquote(object_id)).values_list("declared", flat=True).first()
        extra_context = {"declared_in_code": bool(declared), **(extra_context or {})}
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request: HttpRequest, obj: DjangoJob) -> None:
        job_id = obj.pk  # None once deleted
        super().delete_model(request, obj)
        if obj.declared:
            self._warn_declared_come_back(request, [job_id])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[DjangoJob]) -> None:
        declared = sorted(queryset.filter(declared=True).values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        if declared:
            self._warn_declared_come_back(request, declared)

    def _warn_declared_come_back(self, request: HttpRequest, job_ids: list[str]) -> None:
        self.message_user(
            request,
            gettext(
                "Declared in code with @job: %(jobs)s. A deleted declared job comes back at the next "
                "scheduler start unless it is removed from the code."
            )
            % {"jobs": ", ".join(job_ids)},
            messages.WARNING,
        )

    @admin.display(description=_("recent runs"))
    def recent_runs(self, obj: DjangoJob) -> SafeString | str:
        runs = DjangoJobExecution.objects.filter(job_id=obj.pk).order_by("-run_time")[:RECENT_RUNS]
        rows = [(local_time(run.run_time), colored_status(run.status), format_seconds(run.duration) or "-") for run in runs]
        if not rows:
            return gettext("none yet")
        return format_html(
            '<table><tbody>{}</tbody></table>', format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        )

    @admin.display(description=_("schedule"))
    def schedule_link(self, obj: DjangoJob) -> SafeString:
        url = reverse("admin:django_apscheduler_djangojob_schedule", args=[quote(obj.pk)])
        return format_html('<a href="{}">{}</a>', url, gettext("Edit schedule"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[DjangoJob]:
        # The list needs the pickled state for the trigger in words: it is loaded
        # with the page's rows (one query), never per row.
        return annotate_job_summary(super().get_queryset(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        """"Add" creates a job from a function declared in code (see add_view)."""
        return request.user.has_perm("django_apscheduler.add_djangojob")

    def has_change_permission(self, request: HttpRequest, obj: DjangoJob | None = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """Create a job from the allow-list of functions declared with @job, with JSON arguments."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        registry.autodiscover()
        functions = {f"{d.func.__module__}:{d.func.__qualname__}": d.func for d in registry.declared_jobs()}
        form = CreateJobForm(request.POST or None, functions=functions, initial={"kind": "cron", "max_instances": 1})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                next_run_time = operations.create_job(
                    data["job_id"],
                    functions[data["function"]],
                    data["trigger"],
                    args=data["args"],
                    kwargs=data["kwargs"],
                    name=data["name"],
                    max_instances=data["max_instances"],
                    coalesce=data["coalesce"],
                    misfire_grace_time=data["misfire_grace_time"],
                )
            except ConflictingIdError:
                form.add_error("job_id", gettext("A job with this id exists already."))
            except jobstate.JobStateError as error:  # what the form cannot see (state size): nothing stored
                form.add_error(None, str(error))
            else:
                self.message_user(
                    request,
                    gettext("Job “%(job)s” created: %(trigger)s; next run %(when)s.")
                    % {
                        "job": data["job_id"],
                        "trigger": describe_trigger(data["trigger"]),
                        "when": get_local_dt_format(next_run_time) if next_run_time else "-",
                    },
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:django_apscheduler_djangojob_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "title": gettext("Create a job"),
            "no_functions": not functions,
        }
        return TemplateResponse(request, "admin/django_apscheduler/djangojob/create.html", context)

    def has_run_permission(self, request: HttpRequest) -> bool:
        """Running a job now has real effects: it needs its own "Can run jobs now" permission."""
        return request.user.has_perm("django_apscheduler.run_djangojob")

    def has_pause_permission(self, request: HttpRequest) -> bool:
        """Pausing and resuming change the schedule: Django's "change job" permission."""
        return request.user.has_perm(change_permission_codename(DjangoJob))

    # --- columns ---

    @admin.display(description=_("next run"), ordering=F("next_run_time").asc(nulls_last=True))
    def next_run(self, obj: DjangoJob) -> str:
        if obj.next_run_time is None:
            return gettext("paused")
        return get_local_dt_format(obj.next_run_time)

    @admin.display(description=_("broken"), ordering="broken")
    def broken_flag(self, obj: DjangoJob) -> SafeString | None:
        """Shown only for broken jobs, in red: a column of red crosses for healthy jobs would alarm."""
        if not obj.broken:
            return None  # the admin's "-", on every Django version
        return format_html('<strong style="color: {};" title="{}">{}</strong>', STATUS_COLORS[DjangoJobExecution.ERROR], obj.broken_reason, gettext("broken"))

    @admin.display(description=_("name"))
    def job_name(self, obj: DjangoJob) -> str:
        state = self._state(obj)
        return state.get("name") or "-" if state else "-"

    @admin.display(description=_("trigger"))
    def trigger_words(self, obj: DjangoJob) -> str:
        state = self._state(obj)
        return describe_trigger(state["trigger"]) if state else "-"

    @staticmethod
    def _state(obj: DjangoJob) -> dict | None:
        """The unpickled job state, once per row; None when user code cannot be imported."""
        # Cached in the instance's own namespace: a page attribute, not a model field.
        cache = vars(obj)
        if "_admin_state" not in cache:
            cache["_admin_state"], _reason = jobstate.try_load(obj.job_state)  # the broken flag says why
        return cache["_admin_state"]

    @admin.display(description=_("success rate"), ordering="successful_runs")
    def success_rate(self, obj: DjangoJob) -> str | None:
        finished = getattr(obj, "finished_runs", None)
        if not finished:
            return None
        return f"{100 * (getattr(obj, 'successful_runs', None) or 0) / finished:.0f}% of {finished}"

    @admin.display(description=_("last status"), ordering="last_status")
    def last_status(self, obj: DjangoJob) -> SafeString | None:
        return colored_status(getattr(obj, "last_status", None))

    @admin.display(description=_("average duration"), ordering="average_duration")
    def average_duration_column(self, obj: DjangoJob) -> str | None:
        return format_seconds(getattr(obj, "average_duration", None))

    # --- change page ---

    @admin.display(description=_("history"))
    def executions_link(self, obj: DjangoJob) -> SafeString:
        url = reverse("admin:django_apscheduler_djangojobexecution_changelist")
        return format_html('<a href="{}?{}">{}</a>', url, urlencode({"job": obj.id}), gettext("Executions of this job"))

    @admin.display(description=_("function"))
    def function(self, obj: DjangoJob) -> str:
        return self._definition(obj).get("func", "")

    @admin.display(description=_("trigger"))
    def trigger(self, obj: DjangoJob) -> str:
        return self._definition(obj).get("trigger", "")

    @admin.display(description=_("arguments"))
    def arguments(self, obj: DjangoJob) -> str:
        return self._definition(obj).get("arguments", "")

    @admin.display(description=_("options"))
    def options(self, obj: DjangoJob) -> str:
        return self._definition(obj).get("options", "")

    @admin.display(description=_("declared in code"))
    def code_declaration(self, obj: DjangoJob) -> SafeString | None:
        """For a declared job: what the code declares, and that an edit made here overrides it."""
        if not obj.declared:
            return None
        overrides = gettext(
            "An edit made in the admin (Edit schedule) overrides the code’s declaration until the code’s "
            "declaration changes; then the code’s declaration applies again at the next scheduler start."
        )
        try:
            declaration = registry.code_declaration(obj.pk)
        except Exception as error:  # noqa: BLE001 -- user code that does not import, or a trigger it cannot build
            return format_html(
                "<p>{}</p><p>{}</p>",
                gettext("Declared in code with @job; its declaration cannot be read here: %(error)s")
                % {"error": f"{type(error).__name__}: {error}"},
                overrides,
            )
        if declaration is None:
            return format_html(
                "<p>{}</p><p>{}</p>",
                gettext("Declared in code with @job (no jobs.py of this web process declares it)."),
                overrides,
            )
        state = self._state(obj)
        edited = state is not None and registry.differs_from_code(state, declaration)
        return format_html(
            "<p>{}</p><p>{}</p>{}",
            gettext("Declared in code with @job: %(trigger)s; options: %(options)s.")
            % {"trigger": declaration.trigger_words, "options": declaration.options or gettext("none")},
            overrides,
            format_html(
                "<p><strong>{}</strong></p>",
                gettext("The stored schedule or options differ from the code’s: an edit made in the admin is in effect."),
            )
            if edited
            else "",
        )

    def _definition(self, obj: DjangoJob) -> dict[str, str]:
        """The job's definition in words, unpickled once per page (four fields use it)."""
        cache = vars(obj)  # as in _state
        cached: dict[str, str] | None = cache.get("_admin_definition")
        if cached is None:
            cached = describe_job_state(bytes(obj.job_state))
            cache["_admin_definition"] = cached
        return cached

    # --- actions ---

    @admin.action(description=_("Pause selected jobs"), permissions=["pause"])
    def pause_selected_jobs(self, request: HttpRequest, queryset: QuerySet[DjangoJob]) -> None:
        job_ids = sorted(queryset.values_list("id", flat=True))
        for job_id in job_ids:
            operations.pause_job(job_id)
        self.message_user(request, gettext("Paused: %(jobs)s.") % {"jobs": ", ".join(job_ids)}, messages.SUCCESS)

    @admin.action(description=_("Resume selected jobs"), permissions=["pause"])
    def resume_selected_jobs(self, request: HttpRequest, queryset: QuerySet[DjangoJob]) -> None:
        for job_id in sorted(queryset.values_list("id", flat=True)):
            try:
                next_run_time = operations.resume_job(job_id)
            except (operations.UnknownJob, ValueError) as error:
                self.message_user(request, str(error), messages.ERROR)
                continue
            text = gettext("Job “%(job)s” resumed; next run %(when)s.") % {
                "job": job_id,
                "when": get_local_dt_format(next_run_time),
            }
            self.message_user(request, text, messages.SUCCESS)

    @admin.action(description=_("Run selected jobs now"), permissions=["run"])
    def run_selected_jobs_now(self, request: HttpRequest, queryset: QuerySet[DjangoJob]) -> None:
        job_ids = list(queryset.order_by("id").values_list("id", flat=True))
        results = runnow.run_jobs_now(job_ids)
        report_run_results(request, results, self.message_user)
        if any(result.in_process for result in results):  # say where it ran
            self.message_user(
                request,
                gettext("No scheduler is alive, so the jobs ran in this web process."),
                messages.INFO,
            )


def _readable_declaration(job_id: str) -> registry.CodeDeclaration | None:
    """The code's declaration of a job, or None when this process cannot read it."""
    try:
        return registry.code_declaration(job_id)
    except Exception:  # noqa: BLE001 -- user code that does not import, or a trigger it cannot build
        return None


def describe_job_state(job_state: bytes) -> dict[str, str]:
    """Function, trigger, arguments and options of a stored job, as plain text.

    A job whose function or argument classes cannot be imported cannot be
    unpickled either: the page then says why instead of failing.
    """
    state, reason = jobstate.try_load(job_state)
    if state is None:
        assert reason is not None  # try_load gives a reason whenever it gives no state
        return {"func": reason[:1].upper() + reason[1:]}
    call = [repr(arg) for arg in state.get("args", ())]
    call += [f"{key}={value!r}" for key, value in state.get("kwargs", {}).items()]
    options = {
        "executor": state.get("executor"),
        "max_instances": state.get("max_instances"),
        "coalesce": state.get("coalesce"),
        "misfire_grace_time": state.get("misfire_grace_time"),
    }
    return {
        "func": str(state.get("func", "")),
        "trigger": str(state.get("trigger", "")),
        "arguments": f"({', '.join(call)})",
        "options": ", ".join(f"{key}={value!r}" for key, value in options.items()),
    }


def report_run_results(
    request: HttpRequest, results: Iterable[runnow.RunResult], message_user: Callable[..., None]
) -> None:
    """One message per finished run, and one warning naming the runs still pending.

    Runs still going after the timeout are not failures: they finish in the
    background, so they are grouped into a single warning rather than one each.
    """
    pending: list[str] = []
    for result in results:
        if not result.error and not result.finished:
            pending.append(result.job_id)
            continue
        level, text = describe_run_result(result)
        message_user(request, text, level)
    if pending:
        executions_url = reverse("admin:django_apscheduler_djangojobexecution_changelist")
        links = format_html_join(
            ", ", '<a href="{}?{}">{}</a>', ((executions_url, urlencode({"job": job_id}), job_id) for job_id in pending)
        )
        message_user(
            request,
            format_html(
                gettext("Not finished within {} seconds, still running: {}. Their results will appear there."),
                conf.get("APSCHEDULER_RUN_NOW_TIMEOUT"),
                links,
            ),
            messages.WARNING,
        )


def describe_run_result(result: runnow.RunResult) -> tuple[int, str]:
    """The message level and text for a run that could not start or has finished."""
    if result.error:
        return messages.ERROR, gettext("Job “%(job)s” could not run: %(error)s") % {
            "job": result.job_id,
            "error": result.error,
        }
    execution = result.execution
    assert execution is not None  # a finished result always has its execution
    if execution.status == DjangoJobExecution.SUCCESS:
        return messages.SUCCESS, gettext("Job “%(job)s”: Executed in %(duration)s.") % {
            "job": result.job_id,
            "duration": format_seconds(execution.duration) or gettext("an unknown time"),
        }
    if execution.status == DjangoJobExecution.ERROR:
        return messages.ERROR, gettext("Job “%(job)s”: Error! %(exception)s") % {
            "job": result.job_id,
            "exception": execution.exception or "",
        }
    # Missed!, Max instances! or Lost!: it did not run to an end.
    return messages.WARNING, gettext("Job “%(job)s”: %(status)s") % {
        "job": result.job_id,
        "status": STATUS_LABELS.get(execution.status, execution.status),
    }


