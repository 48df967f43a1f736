"""The jobs page: what runs when, how it went, and the actions that steer it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from apscheduler.jobstores.base import ConflictingIdError
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Avg, Count, F, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from .. import conf, jobstate, operations, registry, runnow
from ..compat import JobAdminCompat
from ..describe import describe_trigger
from ..forms import CreateJobForm, ScheduleForm, default_options, stored_trigger
from ..models import DjangoJob, DjangoJobExecution
from ..timezones import from_db, utc_now
from ..util import get_local_dt_format
from . import audit, permissions
from .common import (
    EMPTY,
    RECENT_RUNS,
    STATUS_LABELS,
    RefusesUnstorableText,
    StatusStyles,
    colored_status,
    format_seconds,
    local_time,
)
from .joblist import JobChangeList, JobPaginator, JobStateFilter, LastStatusFilter, overdue_after

# --- jobs ---------------------------------------------------------------------------------


def annotate_job_summary(queryset: QuerySet[DjangoJob]) -> QuerySet[DjangoJob]:
    """Add each job's last status and average duration in the same query.

    Both are correlated subqueries rather than a join with GROUP BY: the list then
    costs the same few queries for 30 jobs or 3,000, and the grouping never has to
    touch the pickled ``job_state`` column.
    """
    executions = DjangoJobExecution.objects.filter(job_id=OuterRef("pk"))
    latest = executions.order_by("-run_time", "-id")
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
        last_status=Subquery(latest.values("status")[:1]),
        last_execution_id=Subquery(latest.values("id")[:1]),
        average_duration=Subquery(average_duration),
        finished_runs=Subquery(finished_count),
        successful_runs=Subquery(success_count),
    )


class DjangoJobAdmin(RefusesUnstorableText, JobAdminCompat, admin.ModelAdmin):
    """Stored jobs: what runs when, how it went lately, and the "run now" action.

    Jobs are created by code (``add_job`` or the ``@job`` decorator), so there is no
    "add" button, and the change page only shows: the state is a pickle that a
    hand edit could only break.
    """

    # What an operator scans for first comes first (and stays on a phone's screen,
    # admin.css hides the rest there): which job, when, how it went. A broken job
    # says so in its "next run" cell, so the list fits a 1280 px screen.
    list_display = ("id", "next_run", "last_status", "trigger_words", "job_name", "runs")
    list_filter = (JobStateFilter, LastStatusFilter, "broken", "declared")
    Media = StatusStyles
    search_fields = ("id",)
    # Soonest first and paused jobs (no next run) last, the same on every database.
    ordering = (F("next_run_time").asc(nulls_last=True), "id")
    # A filtered list counts its own rows only: a second count of the whole table
    # ("of N total") costs a full scan per page load in a large store.
    paginator = JobPaginator
    show_full_result_count = False
    actions = ("run_selected_jobs_now", "pause_selected_jobs", "resume_selected_jobs")
    # One section for how the job runs, one for what it is; "Broken" only for a
    # broken job. Its fires are "Executions"; what people did to it in the admin is
    # its "Change history" (the button at the top right).
    fieldsets = (
        (None, {"fields": ("id", "next_run", "schedule_link", "trigger", "last_status", "average_duration_column")}),
        (_("Executions"), {"fields": ("recent_runs", "executions_link", "history_policy", "run_requested")}),
        (_("Definition"), {"fields": ("function", "arguments", "options", "declared_words", "code_declaration")}),
    )
    broken_fieldset: tuple[Any, Any] = (_("Broken"), {"fields": ("broken_flag", "broken_reason_text")})
    readonly_fields = (
        "id",
        "next_run",
        "last_status",
        "average_duration_column",
        "executions_link",
        "schedule_link",
        "recent_runs",
        "declared_words",
        "code_declaration",
        "history_policy",
        "run_requested",
        "function",
        "trigger",
        "arguments",
        "options",
        "broken_flag",
        "broken_reason_text",
    )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_urls(self) -> list:
        edit = self.admin_site.admin_view(self.schedule_view)
        return [path("<path:object_id>/schedule/", edit, name="django_apscheduler_djangojob_schedule")] + super().get_urls()

    def schedule_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Edit a job's trigger and main options; running schedulers obey the change live.

        Needs *change job*; a schedule whose next run comes before the current one
        also needs what making the job run needs (see ``permissions``).
        """
        if not self.has_edit_schedule_permission(request):
            raise PermissionDenied
        job = self.get_object(request, unquote(object_id))
        if job is None:
            # ModelAdmin's own "does not exist" redirect, as its change view uses; a private
            # helper (Django 4.2 and later have it) that django-stubs does not declare.
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined]
        problem = jobstate.signature_problem(job.job_state)
        if problem is not None:
            self.message_user(request, gettext("This job cannot be loaded, so its schedule cannot be edited."), messages.ERROR)
            return redirect(reverse("admin:django_apscheduler_djangojob_change", args=[quote(job.pk)]))
        # The form starts from the plain columns; only saving loads the (verified) state.
        form = ScheduleForm(request.POST or None, initial=ScheduleForm.initial_for(job.details or {}))
        previewing = _previewing(request, form)
        if request.method == "POST" and not previewing and form.is_valid() and self._may_save_schedule(request, job, form):
            data = form.cleaned_data
            try:
                next_run_time = operations.reschedule(
                    job.pk,
                    data["trigger"],
                    max_instances=data["max_instances"],
                    coalesce=data["coalesce"],
                    misfire_grace_time=data["misfire_grace_time"],
                    executor=data["executor"],
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
            self._log_change(request, job.pk, audit.schedule_changed(job.trigger_description, job.details or {}, data["trigger"], data, next_run_time))
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
            "current": job.trigger_description or "-",
            "next_run": self.next_run(job),
            "code_declaration": _readable_declaration(job.pk) if job.declared else None,
            "may_bring_sooner": not permissions.missing(request.user, permissions.to_make_run(job.func_ref)),
            **_form_page(form, previewing),
        }
        return TemplateResponse(request, "admin/django_apscheduler/djangojob/schedule.html", context)

    def _may_save_schedule(self, request: HttpRequest, job: DjangoJob, form: ScheduleForm) -> bool:
        """Refuse, on the form, a schedule that makes the job run sooner or more often, from a user who may not make it run.

        The next run is computed a moment before ``operations.reschedule`` computes it
        again; triggers only move forward in time, so the one saved is never sooner.
        """
        trigger, now = form.cleaned_data["trigger"], utc_now()
        upcoming = trigger.get_next_fire_time(None, now)
        sooner = permissions.comes_sooner(upcoming, job.next_run_time)
        more_often = job.next_run_time is not None and permissions.fires_more_often(
            trigger, stored_trigger(job.details or {}), now
        )
        if not (sooner or more_often):
            return True
        lacking = permissions.missing(request.user, permissions.to_make_run(job.func_ref))
        if not lacking:
            return True
        if sooner:
            reason = gettext("This schedule's next run (%(new)s) comes before the current one (%(current)s).") % {
                "new": get_local_dt_format(upcoming),
                "current": get_local_dt_format(job.next_run_time),
            }
        else:
            reason = gettext("This schedule fires more often than the current one.")
        form.add_error(None, reason + " " + permissions.refusal(lacking))
        return False

    def _log_change(self, request: HttpRequest, job_id: str, message: str) -> None:
        """One entry in the job's History (the job may be gone by now: its id is still recorded)."""
        job = DjangoJob.objects.only("id", "next_run_time").filter(pk=job_id).first() or DjangoJob(pk=job_id)
        self.log_change(request, job, message)

    def get_fieldsets(self, request: HttpRequest, obj: DjangoJob | None = None) -> list:
        """The "Broken" section only for a broken job; no "Edit schedule" link for users who may not edit schedules."""
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None and _broken_reason(obj) is not None:
            fieldsets.insert(1, self.broken_fieldset)
        if self.has_edit_schedule_permission(request):
            return fieldsets
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f != "schedule_link"]})
            for name, options in fieldsets
        ]

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        """The confirmation of a declared job's deletion says that the job comes back."""
        job = self.get_object(request, unquote(object_id))
        extra_context = {"declared_in_code": bool(job and job.declared), **(extra_context or {})}
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

    @admin.display(description=_("latest"))
    def recent_runs(self, obj: DjangoJob) -> SafeString | str:
        """The latest executions, each linked to its page (exception and traceback)."""
        runs = DjangoJobExecution.objects.filter(job_id=obj.pk).order_by("-run_time", "-id")[:RECENT_RUNS]
        rows = [
            (execution_url(run.pk), local_time(run.run_time), colored_status(run.status), format_seconds(run.duration) or EMPTY)
            for run in runs
        ]
        if not rows:
            return gettext("none yet")
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join("", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td></tr>', rows),
        )

    @admin.display(description=_("schedule"))
    def schedule_link(self, obj: DjangoJob) -> SafeString:
        url = reverse("admin:django_apscheduler_djangojob_schedule", args=[quote(obj.pk)])
        return format_html('<a href="{}">{}</a>', url, gettext("Edit schedule"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[DjangoJob]:
        # Pages show the plain columns; the state itself is read only to check each
        # shown row's signature (an HMAC, never unpickled).
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
        form = CreateJobForm(request.POST or None, functions=functions, initial={"kind": "cron", **default_options()})
        paused = permissions.create_paused(request.user)
        previewing = _previewing(request, form)
        if request.method == "POST" and not previewing and form.is_valid() and self._may_create(request, form):
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
                    paused=paused,
                    executor=data["executor"],
                )
            except ConflictingIdError:
                form.add_error("job_id", gettext("A job with this id exists already."))
            except jobstate.JobStateError as error:  # what the form cannot see (state size): nothing stored
                form.add_error(None, str(error))
            else:
                created = DjangoJob.objects.only("id", "next_run_time").get(pk=data["job_id"])
                entry = audit.created(data["function"], data["args"], data["kwargs"], data["trigger"], next_run_time)
                self.log_addition(request, created, entry)
                self.message_user(
                    request,
                    gettext("Job “%(job)s” created: %(trigger)s; next run %(when)s.")
                    % {
                        "job": data["job_id"],
                        "trigger": describe_trigger(data["trigger"]),
                        "when": get_local_dt_format(next_run_time) if next_run_time else gettext("paused"),
                    },
                    messages.SUCCESS,
                )
                if paused:
                    self.message_user(
                        request,
                        gettext("It is paused: resuming it needs %(permission)s.")
                        % {"permission": permissions.describe([permissions.RUN])},
                        messages.WARNING,
                    )
                return redirect(reverse("admin:django_apscheduler_djangojob_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "title": gettext("Create a job"),
            "no_functions": not functions,
            "creates_paused": paused,
            "may_choose_arguments": not permissions.missing(request.user, [permissions.CHANGE, permissions.RUN]),
            **_form_page(form, previewing),
        }
        return TemplateResponse(request, "admin/django_apscheduler/djangojob/create.html", context)

    def _may_create(self, request: HttpRequest, form: CreateJobForm) -> bool:
        """Refuse, on the form, a job whose arguments or function need more than the user holds."""
        data = form.cleaned_data
        ref = data["function"]
        lacking_declared = permissions.missing(request.user, permissions.declared_permissions(ref))
        if lacking_declared:
            form.add_error("function", permissions.refusal(lacking_declared))
        for_arguments = permissions.to_choose_arguments(ref, form.functions[ref], data["args"], data["kwargs"])
        lacking_for_arguments = permissions.missing(request.user, for_arguments)
        if lacking_for_arguments:
            form.add_error(
                "args",
                gettext("These are not the arguments of the function's @job declaration.")
                + " "
                + permissions.refusal(lacking_for_arguments),
            )
        return not (lacking_declared or lacking_for_arguments)

    # Permissions, for the actions (``permissions=[...]``) and the pages; the rules
    # themselves are in admin/permissions.py.

    def has_run_permission(self, request: HttpRequest) -> bool:
        """Running a job now has real effects: it needs its own "Can run jobs now" permission."""
        return permissions.may_run(request.user)

    def has_pause_permission(self, request: HttpRequest) -> bool:
        """Pausing only ever stops runs: "change job" is enough."""
        return permissions.may_pause(request.user)

    def has_resume_permission(self, request: HttpRequest) -> bool:
        """Resuming makes a stopped job run again: "change job" and "Can run jobs now"."""
        return permissions.may_resume(request.user)

    def has_edit_schedule_permission(self, request: HttpRequest) -> bool:
        return permissions.may_edit_schedule(request.user)

    # --- columns ---

    @admin.display(description=_("next run"), ordering=F("next_run_time").asc(nulls_last=True))
    def next_run(self, obj: DjangoJob) -> str | SafeString:
        """When it runs next (or "paused"), marked overdue when no scheduler took it, and broken when it cannot run."""
        if obj.next_run_time is None:
            when: str | SafeString = gettext("paused")
        else:
            when = get_local_dt_format(obj.next_run_time)
            if from_db(obj.next_run_time) < utc_now() - overdue_after():
                when = format_html('{} <span class="das-overdue">{}</span>', when, gettext("overdue"))
        broken = self.broken_flag(obj)
        return format_html("{} {}", broken, when) if broken else when

    @admin.display(description=_("broken"), ordering="broken")
    def broken_flag(self, obj: DjangoJob) -> SafeString | None:
        """Shown only for broken jobs, in red: a column of red crosses for healthy jobs would alarm."""
        reason = _broken_reason(obj)
        if reason is None:
            return None  # the admin's "-", on every Django version
        return format_html('<strong class="das-status-error" title="{}">{}</strong>', reason, gettext("broken"))

    @admin.display(description=_("why"))
    def broken_reason_text(self, obj: DjangoJob) -> str:
        return _broken_reason(obj) or EMPTY

    @admin.display(description=_("name"))
    def job_name(self, obj: DjangoJob) -> str:
        """The job's name only where it says more than its function's (APScheduler's default name)."""
        name = _plain(obj).get("name") or ""
        function_name = obj.func_ref.rpartition(":")[2]
        return name if name and name != function_name else "-"

    @admin.display(description=_("trigger"))
    def trigger_words(self, obj: DjangoJob) -> str:
        return obj.trigger_description if _verified(obj) and obj.trigger_description else "-"

    @admin.display(description=_("success rate"), ordering="successful_runs")
    def success_rate(self, obj: DjangoJob) -> str | None:
        finished = getattr(obj, "finished_runs", None)
        if not finished:
            return None
        return f"{100 * (getattr(obj, 'successful_runs', None) or 0) / finished:.0f}% of {finished}"

    @admin.display(description=_("runs"), ordering="successful_runs")
    def runs(self, obj: DjangoJob) -> str | None:
        """Success rate and average duration in one cell: "75% of 4, 2.00 s on average"."""
        rate, average = self.success_rate(obj), format_seconds(getattr(obj, "average_duration", None))
        if rate is None:
            return None
        return gettext("%(rate)s, %(average)s on average") % {"rate": rate, "average": average} if average else rate

    @admin.display(description=_("last status"), ordering="last_status")
    def last_status(self, obj: DjangoJob) -> SafeString | str:
        """The latest execution's status, linked to its page (its exception and traceback)."""
        status, execution_id = getattr(obj, "last_status", None), getattr(obj, "last_execution_id", None)
        if not status or execution_id is None:
            return EMPTY
        return format_html('<a href="{}">{}</a>', execution_url(execution_id), colored_status(status))

    @admin.display(description=_("average duration"), ordering="average_duration")
    def average_duration_column(self, obj: DjangoJob) -> str:
        return format_seconds(getattr(obj, "average_duration", None)) or EMPTY

    # --- change page ---

    @admin.display(description=_("all"))
    def executions_link(self, obj: DjangoJob) -> SafeString:
        url = reverse("admin:django_apscheduler_djangojobexecution_changelist")
        return format_html('<a href="{}?{}">{}</a>', url, urlencode({"job": obj.id}), gettext("All executions of this job"))

    @admin.display(description=_("kept"))
    def history_policy(self, obj: DjangoJob) -> str:
        """Which executions are recorded (``@job(history=...)``)."""
        if obj.history == DjangoJob.HISTORY_FAILURES:
            return gettext("Only the runs that did not succeed (declared with history=\"failures\")")
        return gettext("Every run")

    @admin.display(description=_("run requested"))
    def run_requested(self, obj: DjangoJob) -> str:
        """A "run now" waiting for a scheduler to take it; "-" when none is."""
        return local_time(obj.run_requested_at)

    @admin.display(description=_("declared in code"))
    def declared_words(self, obj: DjangoJob) -> str:
        return gettext("Yes, with @job") if obj.declared else gettext("No, added by code or in the admin")

    @admin.display(description=_("function"))
    def function(self, obj: DjangoJob) -> str:
        return obj.func_ref if _verified(obj) and obj.func_ref else "-"

    @admin.display(description=_("trigger"))
    def trigger(self, obj: DjangoJob) -> str:
        """The trigger in words ("Every 15 seconds"), as the list shows it."""
        return self.trigger_words(obj)

    @admin.display(description=_("arguments"))
    def arguments(self, obj: DjangoJob) -> str:
        return _plain(obj).get("arguments") or "-"

    @admin.display(description=_("options"))
    def options(self, obj: DjangoJob) -> str:
        return options_in_words(_plain(obj))

    @admin.display(description=_("code's declaration"))
    def code_declaration(self, obj: DjangoJob) -> SafeString | str:
        """For a declared job: what the code declares, and that an edit made here overrides it."""
        if not obj.declared:
            return EMPTY
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
        edited = _verified(obj) and registry.details_differ_from_code(obj.details or {}, declaration)
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

    # --- actions ---

    @admin.action(description=_("Pause selected jobs"), permissions=["pause"])
    def pause_selected_jobs(self, request: HttpRequest, queryset: QuerySet[DjangoJob]) -> None:
        """Pause each selected job; one History entry for each job this actually paused."""
        paused, already = [], []
        for job_id, next_run_time in queryset.order_by("id").values_list("id", "next_run_time"):
            try:
                changed = operations.pause_job(job_id)
            except operations.UnknownJob:
                continue  # deleted meanwhile: nothing to pause, nothing to record
            if changed:
                self._log_change(request, job_id, audit.paused(next_run_time))
                paused.append(job_id)
            else:
                already.append(job_id)
        self._report(request, messages.SUCCESS, paused, ngettext_lazy("Paused %(n)d job: %(jobs)s.", "Paused %(n)d jobs: %(jobs)s.", "n"))
        self._report(
            request,
            messages.INFO,
            already,
            ngettext_lazy(
                "%(n)d job was paused already and is left as it was: %(jobs)s.",
                "%(n)d jobs were paused already and are left as they were: %(jobs)s.",
                "n",
            ),
        )

    @admin.action(description=_("Resume selected jobs"), permissions=["resume"])
    def resume_selected_jobs(self, request: HttpRequest, queryset: QuerySet[DjangoJob]) -> None:
        """Resume each selected paused job the user may make run; scheduled jobs are left as they are."""
        resumed, scheduled = [], []
        for job_id, next_run_time, func_ref in queryset.order_by("id").values_list("id", "next_run_time", "func_ref"):
            if next_run_time is not None:
                scheduled.append(job_id)
                continue
            if not self._may_make_run(request, job_id, func_ref):
                continue
            try:
                next_run_time = operations.resume_job(job_id)
            except (operations.UnknownJob, ValueError) as error:
                self.message_user(request, str(error), messages.ERROR)
                continue
            self._log_change(request, job_id, audit.resumed(next_run_time))
            resumed.append(gettext("%(job)s (next run %(when)s)") % {"job": job_id, "when": get_local_dt_format(next_run_time)})
        self._report(request, messages.SUCCESS, resumed, ngettext_lazy("Resumed %(n)d job: %(jobs)s.", "Resumed %(n)d jobs: %(jobs)s.", "n"))
        self._report(
            request,
            messages.INFO,
            scheduled,
            ngettext_lazy(
                "%(n)d job was active already (not paused) and is left as it was: %(jobs)s.",
                "%(n)d jobs were active already (not paused) and are left as they were: %(jobs)s.",
                "n",
            ),
        )

    @admin.action(description=_("Run selected jobs now"), permissions=["run"])
    def run_selected_jobs_now(self, request: HttpRequest, queryset: QuerySet[DjangoJob]) -> None:
        """Run each selected job the user may make run; each run that started gets a History entry with its outcome."""
        rows = queryset.order_by("id").values_list("id", "func_ref")
        job_ids = [job_id for job_id, func_ref in rows if self._may_make_run(request, job_id, func_ref)]
        if not job_ids:
            return
        results = runnow.run_jobs_now(job_ids)
        timeout = float(conf.get("APSCHEDULER_RUN_NOW_TIMEOUT"))
        for result in results:
            entry = audit.ran_now(result, timeout)
            if entry is not None:
                self._log_change(request, result.job_id, entry)
        report_run_results(request, results, self.message_user)
        if any(result.in_process for result in results):  # say where it ran
            self.message_user(
                request,
                gettext(
                    "No scheduler is alive, so the jobs ran in this web process (blocking it while they ran). "
                    "Start a scheduler: jobs do not run on schedule without one."
                ),
                messages.WARNING,
            )


    def _report(self, request: HttpRequest, level: int, jobs: list[str], message: Any) -> None:
        """One message for a group of jobs an action treated alike (none for an empty group).

        Pause and resume report in the same shape: what was done, then what was
        left alone and why, each naming its jobs.
        """
        if jobs:
            text = message % {"n": len(jobs), "jobs": ", ".join(jobs)}  # a lazy plural: "n" picks the form
            self.message_user(request, text, level)

    def _may_make_run(self, request: HttpRequest, job_id: str, func_ref: str) -> bool:
        """True when the user holds what making this job run needs; otherwise say so and skip it."""
        lacking = permissions.missing(request.user, permissions.to_make_run(func_ref))
        if lacking:
            self.message_user(
                request, gettext("Job “%(job)s” left alone. ") % {"job": job_id} + permissions.refusal(lacking), messages.ERROR
            )
        return not lacking


def _previewing(request: HttpRequest, form: ScheduleForm) -> bool:
    """True for the "Preview" button: the form is checked (its errors shown) and nothing is saved."""
    if request.method != "POST" or "_preview" not in request.POST:
        return False
    form.is_valid()  # fills the errors and, when the trigger is valid, cleaned_data["trigger"]
    form.keep_schedule_errors_only()
    return True


def _form_page(form: ScheduleForm, previewing: bool) -> dict[str, Any]:
    """What the form's page shows besides the form: the previewed run times, and the focus on the first error.

    The focus is an ``autofocus`` attribute, which the browser honours without
    JavaScript. A preview shows only the schedule's errors (see ``keep_schedule_errors_only``).
    """
    first_error = form.first_error_field()
    if first_error is not None:
        form.fields[first_error].widget.attrs["autofocus"] = True
    return {"preview": form.preview() if previewing else [], "time_zone": settings.TIME_ZONE}


def execution_url(execution_id: int) -> str:
    """The page of one execution: its status, exception and traceback."""
    return reverse("admin:django_apscheduler_djangojobexecution_change", args=[execution_id])


def options_in_words(details: dict[str, Any]) -> str:
    """A job's options as a sentence: "at most 1 run at a time, missed runs coalesced, runs up to 1 s late"."""
    if not details:
        return EMPTY
    instances = details.get("max_instances", 1)
    grace = details.get("misfire_grace_time")
    parts = [
        ngettext("at most %(n)d run at a time", "at most %(n)d runs at a time", instances) % {"n": instances},
        gettext("missed runs coalesced into one") if details.get("coalesce") else gettext("every missed run is run"),
        gettext("runs however late") if grace is None else gettext("runs up to %(grace)s s late") % {"grace": grace},
    ]
    if details.get("executor", "default") != "default":
        parts.append(gettext("on the executor %(executor)s") % {"executor": details["executor"]})
    return ", ".join(parts)


def _readable_declaration(job_id: str) -> registry.CodeDeclaration | None:
    """The code's declaration of a job, or None when this process cannot read it."""
    try:
        return registry.code_declaration(job_id)
    except Exception:  # noqa: BLE001 -- user code that does not import, or a trigger it cannot build
        return None


def _signature_problem(obj: DjangoJob) -> str | None:
    """Why the row's state must not be unpickled; checked once per row and page."""
    cache = vars(obj)  # a page attribute kept on the instance, not a model field
    if "_admin_signature_problem" not in cache:
        cache["_admin_signature_problem"] = jobstate.signature_problem(obj.job_state)
    return cache["_admin_signature_problem"]


def _verified(obj: DjangoJob) -> bool:
    """True when this package wrote the row's state, so its plain columns describe it."""
    return _signature_problem(obj) is None


def _plain(obj: DjangoJob) -> dict:
    """The row's plain details; none for a row whose state no key verifies (not ours to describe)."""
    return (obj.details or {}) if _verified(obj) else {}


def _broken_reason(obj: DjangoJob) -> str | None:
    """Why the job cannot run: the scheduler's flag, or a state that no key verifies."""
    if obj.broken:
        return obj.broken_reason or gettext("flagged broken by a scheduler")
    problem = _signature_problem(obj)
    return problem[:1].upper() + problem[1:] if problem else None


def report_run_results(
    request: HttpRequest, results: Iterable[runnow.RunResult], message_user: Callable[..., None]
) -> None:
    """One message per finished run, and one warning naming the runs still pending.

    Runs still going after the timeout are not failures: they finish in the
    background, so they are grouped into a single warning rather than one each.
    """
    pending: list[str] = []
    deferred: list[str] = []
    for result in results:
        if result.deferred:
            deferred.append(result.job_id)
            continue
        if not result.error and not result.finished:
            pending.append(result.job_id)
            continue
        level, text = describe_run_result(result)
        message_user(request, text, level)
    if deferred:
        message_user(
            request,
            format_html(
                gettext("Requested: {}. They start once this request is saved (ATOMIC_REQUESTS); their results will appear there."),
                _execution_links(deferred),
            ),
            messages.INFO,
        )
    if pending:
        links = _execution_links(pending)
        message_user(
            request,
            format_html(
                gettext("Not finished within {} seconds, still running: {}. Their results will appear there."),
                conf.get("APSCHEDULER_RUN_NOW_TIMEOUT"),
                links,
            ),
            messages.WARNING,
        )


def _execution_links(job_ids: list[str]) -> str:
    """Each job id, linked to its executions."""
    executions_url = reverse("admin:django_apscheduler_djangojobexecution_changelist")
    return format_html_join(
        ", ", '<a href="{}?{}">{}</a>', ((executions_url, urlencode({"job": job_id}), job_id) for job_id in job_ids)
    )


def describe_run_result(result: runnow.RunResult) -> tuple[int, str]:
    """The message level and text for a run that could not start or has finished; a finished one links to its execution."""
    if result.error:
        return messages.ERROR, gettext("Job “%(job)s” could not run: %(error)s") % {
            "job": result.job_id,
            "error": result.error,
        }
    execution = result.execution
    assert execution is not None  # a finished result always has its execution
    if execution.status == DjangoJobExecution.SUCCESS:
        level, text, link = messages.SUCCESS, gettext("Job “%(job)s”: Executed in %(duration)s.") % {
            "job": result.job_id,
            "duration": format_seconds(execution.duration) or gettext("an unknown time"),
        } + ran_on_worker(execution), gettext("Its execution")
    elif execution.status == DjangoJobExecution.ERROR:
        level, text, link = messages.ERROR, gettext("Job “%(job)s”: Error! %(exception)s") % {
            "job": result.job_id,
            "exception": execution.exception or "",
        } + ran_on_worker(execution), gettext("Its execution and traceback")
    else:  # Missed!, Max instances! or Lost!: it did not run to an end.
        level, text, link = messages.WARNING, gettext("Job “%(job)s”: %(status)s") % {
            "job": result.job_id,
            "status": STATUS_LABELS.get(execution.status, execution.status),
        }, gettext("Its execution")
    return level, format_html('{} <a href="{}">{}</a>', text, execution_url(execution.pk), link)


def ran_on_worker(execution: DjangoJobExecution) -> str:
    """" (on worker host, pid N)" for a fire a worker ran (see executors), else ""."""
    if execution.worker_pid is None:
        return ""
    return " " + gettext("(on worker %(host)s, pid %(pid)s)") % {"host": execution.worker_host, "pid": execution.worker_pid}
