"""The admin's schedule editor: a trigger (cron, interval or date) and the main job options.

Every mistake is reported on the field that holds it: a crontab line APScheduler
cannot read, an interval that is not a positive number, a date in the past.
"""

from __future__ import annotations

import inspect
import json
import unicodedata
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import crontab, limits
from .limits import MAX_INSTANCES, MAX_MISFIRE_GRACE_TIME

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

UNITS = [
    ("seconds", _("seconds")),
    ("minutes", _("minutes")),
    ("hours", _("hours")),
    ("days", _("days")),
    ("weeks", _("weeks")),
]


class ScheduleForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Trigger"),
        choices=[("cron", _("Cron (a crontab line)")), ("interval", _("Interval")), ("date", _("Once, at a date"))],
        widget=forms.RadioSelect,
    )
    crontab = forms.CharField(
        label=_("Crontab line"),
        required=False,
        help_text=_("minute hour day-of-month month day-of-week, e.g. “30 1 * * *” for 01:30 every day"),
    )
    every = forms.IntegerField(label=_("Every"), required=False, min_value=1)
    unit = forms.ChoiceField(label=_("Unit"), choices=UNITS, required=False, initial="minutes")
    run_date = forms.DateTimeField(
        label=_("Date and time"),
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("In the site's time zone (TIME_ZONE)."),
    )
    max_instances = forms.IntegerField(label=_("Max instances"), min_value=1, max_value=MAX_INSTANCES, initial=1)
    coalesce = forms.BooleanField(
        label=_("Coalesce"), required=False, help_text=_("Run missed fires once instead of once each.")
    )
    misfire_grace_time = forms.IntegerField(
        label=_("Misfire grace time"),
        required=False,
        min_value=1,
        max_value=MAX_MISFIRE_GRACE_TIME,
        help_text=_("Seconds a late fire may still run; empty means however late."),
    )
    executor = forms.ChoiceField(
        label=_("Executor"),
        required=False,
        help_text=_(
            "Where its fires run: “default” is the scheduler's own threads, unless APSCHEDULER_DEFAULT_EXECUTOR "
            "says otherwise; the other aliases hand them to a worker fleet (APSCHEDULER_EXECUTORS)."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from .executors import configured_aliases

        super().__init__(*args, **kwargs)
        aliases = configured_aliases()
        current = self.initial.get("executor")
        if current and current not in aliases:  # configured on the schedulers, not in this process: kept
            aliases.append(current)
        executor_field = self.fields["executor"]
        assert isinstance(executor_field, forms.ChoiceField)  # declared above; fields holds a copy
        executor_field.choices = [(alias, alias) for alias in aliases]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean returns cleaned_data; only an override may return None
        # Not posted (an older form): the job keeps its executor.
        data["executor"] = data.get("executor") or self.initial.get("executor") or "default"
        kind = data.get("kind", "")
        builder = {"cron": self._cron, "interval": self._interval, "date": self._date}.get(kind)
        if builder is not None:
            try:
                trigger = builder(data)
            except (OverflowError, ValueError):  # a timedelta or date out of datetime's range
                self.add_error(_FIELD_OF_KIND[kind], _("This is beyond the dates a schedule can reach."))
                return data
            if trigger is not None and self._fires_at_all(trigger, kind):
                data["trigger"] = trigger
        return data

    def _fires_at_all(self, trigger: BaseTrigger, kind: str) -> bool:
        """A schedule must have a next fire: one that never fires would be saved, then do nothing."""
        try:
            upcoming = trigger.get_next_fire_time(None, timezone.now())
            if upcoming is not None:
                upcoming.astimezone(dt_timezone.utc)  # what the database stores must exist
        except (OverflowError, ValueError):
            self.add_error(_FIELD_OF_KIND[kind], _("This is beyond the dates a schedule can reach."))
            return False
        if upcoming is None:
            self.add_error(_FIELD_OF_KIND[kind], _("This schedule never fires (no run time from now on)."))
            return False
        return True

    def _cron(self, data: dict[str, Any]) -> BaseTrigger | None:
        try:
            return crontab.parse(data.get("crontab") or "", _zone())
        except crontab.CrontabError as error:
            self.add_error("crontab", _crontab_message(error))
            return None

    def _interval(self, data: dict[str, Any]) -> BaseTrigger | None:
        if data.get("every") is None:
            if "every" not in self.errors:  # a zero or negative number already has its error
                self.add_error("every", _("Enter how often, as a positive whole number."))
            return None
        unit = data.get("unit") or "minutes"
        return IntervalTrigger(**{unit: data["every"]}, timezone=_zone())

    def _date(self, data: dict[str, Any]) -> BaseTrigger | None:
        when = data.get("run_date")
        if when is None:
            if "run_date" not in self.errors:
                self.add_error("run_date", _("Enter the date and time of the run."))
            return None
        if settings.USE_TZ and timezone.is_naive(when):
            when = timezone.make_aware(when)
        now = timezone.now() if settings.USE_TZ else timezone.localtime().replace(tzinfo=None)
        if when <= now:
            self.add_error("run_date", _("This date is in the past; a one-off run must be in the future."))
            return None
        return DateTrigger(run_date=when, timezone=_zone())

    @staticmethod
    def initial_for(details: dict[str, Any]) -> dict[str, Any]:
        """Initial values from a stored job's plain details (``DjangoJob.details``): nothing is unpickled."""
        initial: dict[str, Any] = {
            "max_instances": details.get("max_instances", 1),
            "coalesce": details.get("coalesce", False),
            "misfire_grace_time": details.get("misfire_grace_time"),
            "executor": details.get("executor") or "default",
        }
        schedule = details.get("schedule") or {}
        kind = schedule.get("kind")
        if kind == "cron":
            initial.update(kind="cron", crontab=schedule.get("crontab", ""))
        elif kind == "interval":
            every, unit = _largest_unit(timedelta(seconds=schedule.get("seconds", 60)))
            initial.update(kind="interval", every=every, unit=unit)
        elif kind == "date":
            run_date = datetime.fromisoformat(schedule["run_date"])
            initial.update(kind="date", run_date=timezone.localtime(run_date) if settings.USE_TZ else run_date)
        return initial


def stored_trigger(details: dict[str, Any]) -> BaseTrigger | None:
    """The trigger a job's plain details describe (``details["schedule"]``), or None when they cannot tell.

    Rebuilt from plain values, in ``TIME_ZONE`` as the editor builds triggers, so that
    a page can compare schedules without unpickling the job.
    """
    schedule = details.get("schedule") or {}
    try:
        if schedule.get("kind") == "cron" and schedule.get("crontab"):
            return crontab.parse(schedule["crontab"], _zone())
        if schedule.get("kind") == "interval" and schedule.get("seconds", 0) > 0:
            return IntervalTrigger(seconds=schedule["seconds"], timezone=_zone())
        if schedule.get("kind") == "date":
            return DateTrigger(run_date=datetime.fromisoformat(schedule["run_date"]), timezone=_zone())
    except (ValueError, TypeError, OverflowError):  # details from an older version, or edited by hand
        return None
    return None


# The field that carries each kind of trigger, for the errors about the whole trigger.
_FIELD_OF_KIND = {"cron": "crontab", "interval": "every", "date": "run_date"}


def _zone() -> Any:
    return settings.TIME_ZONE or "UTC"


def _crontab_message(error: crontab.CrontabError) -> StrOrPromise:
    """The editor's own words for each mistake (translatable, unlike the module's)."""
    if isinstance(error, crontab.EmptyLine):
        return _("Enter a crontab line, e.g. “*/15 * * * *”.")
    if isinstance(error, crontab.LineTooLong):
        return _("A crontab line has at most %(max)d characters; this one has %(n)d.") % {
            "max": crontab.MAX_LENGTH,
            "n": error.length,
        }
    if isinstance(error, crontab.WrongFieldCount):
        return _("A crontab line has 5 fields (minute hour day month day-of-week); this one has %(n)d.") % {"n": error.count}
    reason = error.reason if isinstance(error, crontab.InvalidField) else str(error)
    return _("Not a valid crontab line: %(error)s") % {"error": reason}


def _largest_unit(interval: timedelta) -> tuple[int, str]:
    seconds = int(interval.total_seconds())
    for unit, size in (("weeks", 604800), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds and seconds % size == 0:
            return seconds // size, unit
    return max(seconds, 1), "seconds"


class CreateJobForm(ScheduleForm):
    """A new job: one of the functions declared in code with @job, JSON arguments, a trigger.

    Only declared functions are offered (no import path typed into a browser), and
    the arguments must fit the function's signature.
    """

    field_order = ["function", "job_id", "name", "args", "kwargs", "kind"]

    function = forms.ChoiceField(label=_("Function"))
    job_id = forms.CharField(label=_("Job id"), max_length=limits.MAX_JOB_ID_LENGTH)
    name = forms.CharField(label=_("Name"), required=False, max_length=limits.MAX_NAME_LENGTH)
    args = forms.CharField(
        label=_("Arguments"), required=False, initial="[]", help_text=_('A JSON list, e.g. [1, "two"].')
    )
    kwargs = forms.CharField(
        label=_("Keyword arguments"),
        required=False,
        initial="{}",
        help_text=_('A JSON object, e.g. {"days": 7}.'),
    )

    def __init__(self, *args: Any, functions: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.functions = functions
        function_field = self.fields["function"]
        assert isinstance(function_field, forms.ChoiceField)  # declared above; fields holds a copy
        function_field.choices = [(ref, ref) for ref in sorted(functions)]

    def clean_job_id(self) -> str:
        from .models import DjangoJob

        job_id = self.cleaned_data["job_id"].strip()
        if not job_id:
            raise forms.ValidationError(_("Enter an id."))
        if _has_unprintable(job_id):
            # Stored fine, but an id no one can see or type again (in the list, on the
            # command line) is a mistake or a trick: "/", "_", spaces and any letters are fine.
            raise forms.ValidationError(_("An id cannot contain control characters such as a line break or a tab."))
        if DjangoJob.objects.filter(pk=job_id).exists():
            raise forms.ValidationError(_("A job with this id exists already."))
        return job_id

    def clean_name(self) -> str:
        name: str = self.cleaned_data.get("name") or ""
        if _has_unprintable(name):
            raise forms.ValidationError(_("A name cannot contain control characters such as a line break or a tab."))
        return name

    def clean_args(self) -> list:
        value = _json(self.cleaned_data.get("args") or "[]")
        if not isinstance(value, list):
            raise forms.ValidationError(_("Arguments must be a JSON list, e.g. [1, 2]."))
        return value

    def clean_kwargs(self) -> dict:
        value = _json(self.cleaned_data.get("kwargs") or "{}")
        if not isinstance(value, dict):
            raise forms.ValidationError(_('Keyword arguments must be a JSON object, e.g. {"a": 1}.'))
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        ref = data.get("function")  # absent when the choice was refused
        func = self.functions.get(ref) if ref is not None else None
        if func is not None and "args" in data and "kwargs" in data:
            try:
                inspect.signature(func).bind(*data["args"], **data["kwargs"])
            except TypeError as error:
                self.add_error("args", _("These arguments do not fit %(func)s: %(error)s") % {"func": data["function"], "error": error})
        return data


def _json(text: str) -> Any:
    """The JSON value of ``text``, measured first: json.loads never sees a text too big or too deep."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.MAX_JSON_BYTES:
        raise forms.ValidationError(
            _("At most %(max)s bytes of JSON; this is %(n)s.") % {"max": f"{limits.MAX_JSON_BYTES:,}", "n": f"{size:,}"}
        )
    if limits.json_depth(text) > limits.MAX_JSON_DEPTH:
        raise forms.ValidationError(
            _("JSON may be nested at most %(max)d levels deep; pass flatter data.") % {"max": limits.MAX_JSON_DEPTH}
        )
    try:
        value = json.loads(text)
    except ValueError as error:  # also a number of more digits than Python converts
        raise forms.ValidationError(_("Not valid JSON: %(error)s") % {"error": error}) from None
    return value


def _has_unprintable(text: str) -> bool:
    """Control characters (Unicode category Cc: line breaks, tabs, NUL, DEL...) or lone surrogates."""
    return any(unicodedata.category(char) in ("Cc", "Cs") for char in text)

