"""Jobs declared in code, next to their functions.

In any installed app's ``jobs.py``::

    from django_apscheduler.registry import job

    @job("cron", hour=3, minute=0)
    def nightly_report():
        ...

``manage.py apscheduler start`` imports every app's ``jobs`` module (the way the
admin finds ``admin.py``) and syncs the declared jobs into the job store.
Syncing never resets a schedule that did not change: an unchanged job keeps its
next run time (a restart does not shift an interval job), a changed trigger gets
a new schedule, changed options are applied in place.

What the code declared at the last sync is kept as a fingerprint in
``DjangoJob.declaration``. While the code declares a job as before, the sync leaves
the stored job alone, so a schedule or options edited in the admin persist across
restarts; once the code's declaration changes, the code's applies again.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import entry_points
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from django.utils.module_loading import autodiscover_modules

from . import conf
from .asyncio_support import off_the_loop
from .describe import arguments_text
from .fingerprint import trigger_fingerprint
from .models import DjangoJob

logger = logging.getLogger("django_apscheduler.registry")

# Job options a declaration may set, besides the trigger and its arguments.
JOB_OPTIONS = ("args", "kwargs", "name", "misfire_grace_time", "coalesce", "max_instances", "executor")


@dataclass
class DeclaredJob:
    func: Callable[..., Any]
    trigger: str | BaseTrigger
    trigger_args: dict[str, Any]
    id: str
    options: dict[str, Any] = field(default_factory=dict)
    history: str = DjangoJob.HISTORY_ALL
    # Django permissions ("app_label.codename") a user needs, beyond the admin's own
    # rules, to create a job of this function or make one run (see admin/permissions.py).
    permissions: tuple[str, ...] = ()
    # Why this declaration cannot be stored (an id, option or trigger out of bounds),
    # found when it is declared; the sync skips it and says why, and syncs the others.
    problem: str | None = None


_declared: dict[str, DeclaredJob] = {}


def job_defaults() -> dict[str, Any]:
    """The options a job gets where its declaration names none: ``max_instances``, ``coalesce``, ``misfire_grace_time``.

    ``@job`` leaves unnamed options to the scheduler, and the schedulers this package
    starts are configured without ``job_defaults``, so a declared job gets APScheduler's
    own. They are read from APScheduler rather than copied here, so that the admin's
    add form (which starts from these) and ``@job`` cannot drift apart.
    """
    return dict(_apscheduler_job_defaults())


@functools.cache
def _apscheduler_job_defaults() -> dict[str, Any]:
    from apscheduler.schedulers.blocking import BlockingScheduler

    # A scheduler that is never started: building one starts no thread.
    return dict(BlockingScheduler()._job_defaults)


def job(
    trigger: str | BaseTrigger,
    *,
    id: str | None = None,
    history: str = "all",
    permissions: Iterable[str] = (),
    **arguments: Any,
) -> Callable[[Callable], Callable]:
    """Declare the decorated function as a job with ``trigger`` ("cron", "interval", "date", ...).

    Keyword arguments are the trigger's arguments (``minutes=5``, ``hour=3``) and the
    job options ``args``, ``kwargs``, ``name``, ``misfire_grace_time``, ``coalesce``,
    ``max_instances``, ``executor``. The id defaults to the function's dotted path.
    ``history="failures"`` keeps only the runs that did not succeed, for jobs that
    fire every few seconds and would otherwise flood the history.
    ``permissions`` names the Django permissions ("app_label.codename") an admin user
    needs besides the usual ones to create a job of this function or make one run
    sooner: a job that deletes history would ask for
    ``"django_apscheduler.delete_djangojobexecution"``.
    """
    allowed = {choice for choice, _label in DjangoJob.HISTORY_CHOICES}
    if history not in allowed:
        raise ValueError(f"history must be one of {sorted(allowed)}, not {history!r}")
    required = _permission_names(permissions)

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        job_id = id or f"{func.__module__}.{func.__qualname__}"
        options = {key: arguments[key] for key in JOB_OPTIONS if key in arguments}
        trigger_args = {key: value for key, value in arguments.items() if key not in JOB_OPTIONS}
        existing = _declared.get(job_id)
        if existing is not None and existing.func is not func:
            raise ValueError(f"Two jobs are declared with the id {job_id!r}; give one of them another id.")
        declared = DeclaredJob(func, trigger, trigger_args, job_id, options, history, required)
        declared.problem = declaration_problem(declared)
        if declared.problem is not None:
            # Not raised: an exception here would abort the import of the whole jobs
            # module, and with it every other job it declares.
            logger.error("Declared job %r is not valid and will not be scheduled: %s", job_id, declared.problem)
        _declared[job_id] = declared
        return func

    return decorator


_PERMISSION_NAME = re.compile(r"[\w-]+\.[\w-]+")


def _permission_names(permissions: Iterable[str]) -> tuple[str, ...]:
    """The declared permissions, checked to be "app_label.codename" as ``User.has_perm`` takes them."""
    if isinstance(permissions, str):  # a lone string would be split into letters
        permissions = (permissions,)
    names = tuple(permissions)
    for name in names:
        if not isinstance(name, str) or not _PERMISSION_NAME.fullmatch(name):
            raise ValueError(f"permissions take 'app_label.codename' strings, not {name!r}")
    return names


def declaration_problem(declared: DeclaredJob) -> str | None:
    """Why ``declared`` cannot be stored as a job, in words; None when it can.

    The same bounds as every other way in (``limits``): the id, the options, and a
    trigger that can be built and fires at least once more, within the dates a
    date-time holds. The trigger is built in ``settings.TIME_ZONE``, as at start.
    """
    from django.conf import settings

    from . import jobstate, limits

    try:
        limits.check_job_id(declared.id)
        jobstate.check_options(declared.options, job_id=declared.id)
        for key in ("name", "executor"):
            value = declared.options.get(key)
            problem = limits.text_problem(value) if isinstance(value, str) else None
            if problem is not None:
                raise ValueError(f"its {key} cannot be stored: {problem}")
        trigger = make_trigger(declared.trigger, declared.trigger_args, settings.TIME_ZONE or "UTC")
        first = trigger.get_next_fire_time(None, datetime.now(timezone.utc))
        if first is None:
            raise ValueError(f"its trigger ({trigger}) never fires from now on")
        limits.storable_time(first)
    except OverflowError as error:
        return f"its trigger reaches beyond the dates a schedule can reach ({error})"
    except ValueError as error:  # also jobstate.JobStateError
        return str(error)
    except Exception as error:  # noqa: BLE001 -- a trigger class is user code: any error is the declaration's
        return f"{type(error).__name__}: {error}"
    return None


def declared_jobs() -> list[DeclaredJob]:
    return list(_declared.values())


def declared_job(job_id: str) -> DeclaredJob | None:
    """The declaration with this id, among those registered in this process."""
    return _declared.get(job_id)


def declarations_of(func_ref: str) -> list[DeclaredJob]:
    """Every declaration of the function ``func_ref`` ("module:qualname"), among those of this process."""
    return [declared for declared in _declared.values() if _func_ref(declared.func) == func_ref]


def autodiscover() -> None:
    """Import every installed app's ``jobs`` module, registering its declared jobs."""
    autodiscover_modules("jobs")


@dataclass
class CodeDeclaration:
    """What the code declares for a job, in words, for the admin's pages."""

    declared: DeclaredJob
    trigger: BaseTrigger
    trigger_words: str
    options: str


def code_declaration(job_id: str) -> CodeDeclaration | None:
    """What the code declares for ``job_id``; None when no ``jobs`` module of this process declares it.

    The trigger is built in ``settings.TIME_ZONE`` when the declaration names no
    time zone, as ``manage.py apscheduler start`` and the autostart do.
    """
    from django.conf import settings

    from .describe import describe_trigger

    autodiscover()
    declared = _declared.get(job_id)
    if declared is None:
        return None
    trigger = make_trigger(declared.trigger, declared.trigger_args, settings.TIME_ZONE or "UTC")
    options = ", ".join(f"{key}={value!r}" for key, value in sorted(_options_of(declared).items()))
    if declared.history != DjangoJob.HISTORY_ALL:
        options = ", ".join(filter(None, [options, f"history={declared.history!r}"]))
    return CodeDeclaration(declared, trigger, describe_trigger(trigger), options)


def details_differ_from_code(details: dict[str, Any], declaration: CodeDeclaration) -> bool:
    """True when a stored job has another trigger or options than the code declares.

    Read from the job's plain details (``DjangoJob.details``): nothing is unpickled.

    Details written before they held a fingerprint cannot tell: such a job is taken as unchanged.
    """
    stored_fingerprint = details.get("trigger_fingerprint")
    if stored_fingerprint is None:
        return False
    if stored_fingerprint != [str(part) for part in trigger_fingerprint(declaration.trigger)]:
        return True
    wanted = _options_of(declaration.declared)
    if "args" in wanted or "kwargs" in wanted:
        if details.get("arguments") != arguments_text(wanted.get("args", ()), wanted.get("kwargs", {})):
            return True
    return any(details.get(key) != value for key, value in wanted.items() if key not in ("args", "kwargs"))


def sync_when_started(scheduler: BaseScheduler, jobstore: str = "default") -> None:
    """Sync the declared jobs as soon as ``scheduler`` has started.

    A stopped APScheduler scheduler only sees its own pending jobs, not what its job
    stores hold, so comparing declarations with stored jobs has to wait until the
    stores are started; the start event comes before the first jobs are processed.
    """

    def on_start(event: SchedulerEvent) -> None:
        scheduler.remove_listener(on_start)
        # An AsyncIOScheduler dispatches this event on its loop's thread, where
        # Django forbids queries: the sync then runs in a thread of its own.
        off_the_loop(sync_declared_jobs, scheduler, jobstore)

    scheduler.add_listener(on_start, EVENT_SCHEDULER_STARTED)


def sync_declared_jobs(scheduler: BaseScheduler, jobstore: str = "default") -> None:
    """Store every declared job in a running ``scheduler``, keeping schedules that did not change."""
    for declared in declared_jobs():
        try:
            _sync_one(scheduler, declared, jobstore)
        except Exception:
            logger.exception("Could not store the declared job %r; the other jobs are unaffected.", declared.id)
    _record_declarations([declared for declared in declared_jobs() if declared.problem is None])
    # An invalid declaration still declares its id: a job stored under it is left as
    # it was, not handled as undeclared. An id no database holds cannot be stored.
    _handle_undeclared({declared.id for declared in declared_jobs() if _storable_id(declared.id)})


def _storable_id(job_id: object) -> bool:
    from . import limits

    try:
        limits.check_job_id(job_id)
    except (TypeError, ValueError):
        return False
    return True


def _record_declarations(declared: list[DeclaredJob]) -> None:
    for policy, _label in DjangoJob.HISTORY_CHOICES:
        ids = [d.id for d in declared if d.history == policy]
        if ids:
            DjangoJob.objects.filter(pk__in=ids).update(declared=True, history=policy)


def _handle_undeclared(declared_ids: set[str]) -> None:
    """Jobs that an earlier version declared in code but this one does not.

    ``APSCHEDULER_UNDECLARED_JOBS``: "pause" (the default: the job stays visible in
    the admin, paused, for someone to delete or resume), "remove", or "keep".
    """
    policy = conf.get("APSCHEDULER_UNDECLARED_JOBS")
    stale = DjangoJob.objects.filter(declared=True).exclude(pk__in=declared_ids)
    stale_ids = sorted(stale.values_list("pk", flat=True))
    if not stale_ids or policy == "keep":
        return
    if policy == "remove":
        stale.delete()
        logger.warning("Jobs no longer declared in code were removed (their history is kept): %s", ", ".join(stale_ids))
        return
    stale.update(next_run_time=None, declared=False, declaration="")
    logger.warning(
        "Jobs no longer declared in code were paused: %s. Delete them in the admin if they are obsolete, "
        "or set APSCHEDULER_UNDECLARED_JOBS = 'remove' to remove such jobs automatically.",
        ", ".join(stale_ids),
    )


def _sync_one(scheduler: BaseScheduler, declared: DeclaredJob, jobstore: str) -> None:
    """Store one declared job; a stored one is changed only when the code's declaration changed.

    The fingerprint of the declaration applied last is kept with the job. The same
    fingerprint means the code did not change, and the stored job, with whatever was
    edited in the admin, is left as it is. A different one means the code changed:
    the code's declaration applies again. No fingerprint yet (a job stored before
    fingerprints existed): the stored job is compared with the code, as it used to be.
    """
    if declared.problem is not None:
        logger.error(
            "Declared job %r is not valid, so it was not stored or changed (the other declared jobs are): %s",
            declared.id,
            declared.problem,
        )
        return
    stored = scheduler.get_job(declared.id, jobstore)
    wanted = make_trigger(declared.trigger, declared.trigger_args, scheduler.timezone)
    fingerprint = declaration_fingerprint(declared, wanted)
    if stored is None:
        # replace_existing: another scheduler starting at the same moment may add it first.
        scheduler.add_job(
            declared.func, wanted, id=declared.id, jobstore=jobstore, replace_existing=True, **declared.options
        )
        _store_fingerprint(declared.id, fingerprint)
        logger.info("Declared job %r added (%s)", declared.id, wanted)
        return
    last = DjangoJob.objects.filter(pk=declared.id).values_list("declaration", flat=True).first()
    if last == fingerprint:
        if _differs_from_code(stored, declared, wanted):
            logger.info(
                "Declared job %r: its declaration in code is unchanged, so the schedule or options edited "
                "in the admin are kept (stored: %s; code: %s)",
                declared.id,
                stored.trigger,
                wanted,
            )
        return
    applied = _apply_declaration(scheduler, stored, declared, wanted, jobstore)
    _store_fingerprint(declared.id, fingerprint)
    if last:
        logger.info(
            "Declared job %r: its declaration in code changed since the last sync, so the code's "
            "declaration applies again and overrides any edit made in the admin: %s",
            declared.id,
            applied,
        )
    elif applied != _UNCHANGED:
        logger.info("Declared job %r: %s", declared.id, applied)


_UNCHANGED = "the stored job already matches it"


def _apply_declaration(
    scheduler: BaseScheduler, stored: Job, declared: DeclaredJob, wanted: BaseTrigger, jobstore: str
) -> str:
    """Make the stored job what the code declares, keeping its schedule if the trigger is the same.

    Returns what was done, in words, for the log.
    """
    if trigger_fingerprint(stored.trigger) != trigger_fingerprint(wanted) or not _same_function(stored, declared):
        scheduler.add_job(
            declared.func, wanted, id=declared.id, jobstore=jobstore, replace_existing=True, **declared.options
        )
        return f"changed its function or trigger: rescheduled ({wanted})"
    changes = _changed_options(stored, declared)
    if changes:
        scheduler.modify_job(declared.id, jobstore, **changes)
        return f"options {', '.join(sorted(changes))} updated; schedule kept"
    return _UNCHANGED


def _differs_from_code(stored: Job, declared: DeclaredJob, wanted: BaseTrigger) -> bool:
    return (
        trigger_fingerprint(stored.trigger) != trigger_fingerprint(wanted)
        or not _same_function(stored, declared)
        or bool(_changed_options(stored, declared))
    )


def _changed_options(stored: Job, declared: DeclaredJob) -> dict[str, Any]:
    return {key: value for key, value in _options_of(declared).items() if _option_of(stored, key) != value}


def _store_fingerprint(job_id: str, fingerprint: str) -> None:
    DjangoJob.objects.filter(pk=job_id).update(declaration=fingerprint)


def declaration_fingerprint(declared: DeclaredJob, trigger: BaseTrigger) -> str:
    """A stable text of everything the code declares for a job, stored in ``DjangoJob.declaration``.

    ``trigger`` is the declaration's trigger as built for the scheduler (with the
    scheduler's time zone when the declaration names none). Only what defines the
    schedule goes in: the trigger's text, time zone and jitter (an interval trigger's
    default start, "now", does not), and the declared arguments, so an unchanged
    declaration has the same fingerprint in every process and at every start.
    """
    return json.dumps(
        {
            "func": _func_ref(declared.func),
            "trigger": _stable(trigger_fingerprint(trigger)),
            "trigger_args": _stable(declared.trigger_args),
            "options": _stable(_options_of(declared)),
            "history": declared.history,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")


def _stable(value: Any) -> Any:
    """``value`` as JSON data that is the same in every process (no memory addresses)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(key): _stable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stable(item) for item in value]
    return _ADDRESS.sub("", repr(value))


def make_trigger(trigger: str | BaseTrigger, arguments: dict[str, Any], default_timezone: Any) -> BaseTrigger:
    """Build a trigger from its alias ("cron", "interval", ...) the way APScheduler's add_job does.

    Aliases are looked up in APScheduler's documented plugin registry (the
    ``apscheduler.triggers`` entry points), so third-party triggers work too.
    """
    if isinstance(trigger, BaseTrigger):
        return trigger
    plugins = {entry.name: entry for entry in entry_points(group="apscheduler.triggers")}
    if trigger not in plugins:
        raise ValueError(f"Unknown trigger {trigger!r}; APScheduler knows {', '.join(sorted(plugins))}")
    trigger_class = plugins[trigger].load()
    arguments = dict(arguments)
    if "timezone" in inspect.signature(trigger_class).parameters:
        arguments.setdefault("timezone", default_timezone)
    return trigger_class(**arguments)


def _same_function(stored: Job, declared: DeclaredJob) -> bool:
    return stored.func_ref == _func_ref(declared.func)


def _func_ref(func: Callable[..., Any]) -> str:
    return f"{func.__module__}:{func.__qualname__}"


def _options_of(declared: DeclaredJob) -> dict[str, Any]:
    options = dict(declared.options)
    if "args" in options:
        options["args"] = tuple(options["args"])
    return options


def _option_of(stored: Job, key: str) -> Any:
    return getattr(stored, key)
