"""Executors that hand fires to a worker fleet, and the settings that configure them.

``handoff`` holds the scheduler's side (``HandOffExecutor``), ``worker`` the
worker's side (``run_fire``); each backend adds a subclass of its own (``tasks``
for Django's tasks framework). ``configured_executors`` turns the
``APSCHEDULER_EXECUTORS`` and ``APSCHEDULER_DEFAULT_EXECUTOR`` settings into the
executors of a scheduler; ``manage.py apscheduler start`` and autostart use it.

Settings, for example::

    APSCHEDULER_EXECUTORS = {
        "tasks": {"type": "tasks"},                       # the default queue and backend
        "reports": {"type": "tasks", "queue": "reports"},  # jobs given executor="reports"
    }
    APSCHEDULER_DEFAULT_EXECUTOR = "tasks"  # jobs added without executor=... go to the workers
"""

from __future__ import annotations

from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import BaseScheduler
from django.utils.module_loading import import_string

from .. import conf

__all__ = [
    "EXECUTOR_TYPES",
    "IN_PROCESS_ALIAS",
    "ExecutorConfigError",
    "add_configured_executors",
    "build_executor",
    "configured_aliases",
    "configured_executors",
    "hand_off_executor_for",
]

# Short names for the "type" of an APSCHEDULER_EXECUTORS entry; any other "type"
# is the dotted path of a HandOffExecutor subclass.
EXECUTOR_TYPES: dict[str, str] = {
    "tasks": "django_apscheduler.executors.tasks.DjangoTasksExecutor",
    "celery": "django_apscheduler.executors.celery.CeleryExecutor",
}

# When APSCHEDULER_DEFAULT_EXECUTOR sends the "default" alias to workers, the
# scheduler's own thread pool stays available under this alias.
IN_PROCESS_ALIAS = "threadpool"


class ExecutorConfigError(ValueError):
    """An APSCHEDULER_EXECUTORS entry that cannot be built (see checks for the details)."""


def executor_class(options: dict[str, Any]) -> type[BaseExecutor]:
    """The class an APSCHEDULER_EXECUTORS entry names; raises ExecutorConfigError."""
    from .handoff import HandOffExecutor

    kind = options.get("type")
    if not isinstance(kind, str) or not kind:
        raise ExecutorConfigError(f'needs a "type": one of {sorted(EXECUTOR_TYPES)} or the dotted path of a class')
    path = EXECUTOR_TYPES.get(kind, kind)
    try:
        cls = import_string(path)
    except ImportError as error:
        raise ExecutorConfigError(f"its type {kind!r} cannot be imported: {error}") from error
    if not (isinstance(cls, type) and issubclass(cls, HandOffExecutor)):
        raise ExecutorConfigError(f"its type {kind!r} is not a HandOffExecutor subclass")
    return cls


def build_executor(options: dict[str, Any]) -> BaseExecutor:
    """A new executor from one APSCHEDULER_EXECUTORS entry ({"type": ..., "queue": ..., ...})."""
    if not isinstance(options, dict):
        raise ExecutorConfigError(f"must be a dict such as {{'type': 'tasks'}}, not {options!r}")
    cls = executor_class(options)
    kwargs = {name: value for name, value in options.items() if name != "type"}
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise ExecutorConfigError(f"its options do not fit {cls.__name__}: {error}") from error


def configured_aliases() -> list[str]:
    """Every executor alias a scheduler configured from the settings has."""
    aliases = ["default", *conf.get("APSCHEDULER_EXECUTORS")]
    if conf.get("APSCHEDULER_DEFAULT_EXECUTOR") != "default":
        aliases.append(IN_PROCESS_ALIAS)
    return list(dict.fromkeys(aliases))


def configured_executors(max_workers: int = 10, in_process: BaseExecutor | None = None) -> dict[str, BaseExecutor]:
    """The executors of a scheduler, by alias, as the settings ask (see the module docstring).

    ``in_process``: the scheduler's own executor (default: a thread pool of
    ``max_workers`` threads; an AsyncIOScheduler passes its AsyncIOExecutor).
    """
    executors: dict[str, BaseExecutor] = {"default": in_process or ThreadPoolExecutor(max_workers)}
    for alias, options in conf.get("APSCHEDULER_EXECUTORS").items():
        executors[alias] = _build_named(alias, options)
    default = conf.get("APSCHEDULER_DEFAULT_EXECUTOR")
    if default != "default":
        executors[IN_PROCESS_ALIAS] = executors["default"]
        # A separate instance: APScheduler starts each executor once, under one alias.
        executors["default"] = _build_named(default, conf.get("APSCHEDULER_EXECUTORS").get(default))
    return executors


def hand_off_executor_for(alias: str) -> BaseExecutor | None:
    """A new hand-off executor for a job's executor alias, as the settings configure it; None for in-process ones.

    For sending a fire without a scheduler (run now when none is alive): the
    executor is not started, and only its ``enqueue`` is used.
    """
    if alias == "default":
        alias = conf.get("APSCHEDULER_DEFAULT_EXECUTOR")
    options = conf.get("APSCHEDULER_EXECUTORS").get(alias) if alias not in ("default", IN_PROCESS_ALIAS) else None
    return None if options is None else _build_named(alias, options)


def add_configured_executors(scheduler: BaseScheduler, max_workers: int = 10, in_process: BaseExecutor | None = None) -> None:
    """Give a scheduler built by hand the executors the settings configure (before it starts)."""
    for alias, executor in configured_executors(max_workers, in_process).items():
        if alias in scheduler._executors:  # APScheduler has no public lookup that does not raise
            scheduler.remove_executor(alias, shutdown=False)
        scheduler.add_executor(executor, alias)


def _build_named(alias: str, options: Any) -> BaseExecutor:
    if options is None:
        raise ExecutorConfigError(f"APSCHEDULER_DEFAULT_EXECUTOR names {alias!r}, which APSCHEDULER_EXECUTORS does not configure")
    try:
        return build_executor(options)
    except ExecutorConfigError as error:
        raise ExecutorConfigError(f"APSCHEDULER_EXECUTORS[{alias!r}] {error}") from error
