"""Who may do what to jobs in the admin: the one place the rules live.

Three things about a job have real effects, and each has its permission:

- **making it run** (now, or sooner than it would): *Can run jobs now*. Besides the
  "run now" action, that covers resuming a paused job, saving a schedule whose next
  run comes before the current one or that fires more often, and creating a job
  that is not paused. Without
  it, *change job* still pauses jobs and moves their runs later or keeps them where
  they are, and *add job* creates jobs paused.
- **choosing what it runs with**: a job created with other arguments than a
  ``@job`` declaration of its function gives needs *change job* and *Can run jobs
  now* besides *add job*. With a declaration's own arguments, *add job* is enough.
- **what the function itself does**: a declaration may name more permissions
  (``@job(..., permissions=[...])``), e.g. the executions' *delete* permission for a
  job that deletes history; creating a job of that function, or making one run,
  needs them too.

Pausing needs only *change job*: stopping a job is the safe direction.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Permission
from django.db.models import Q
from django.utils.translation import gettext

from .. import registry

ADD = "django_apscheduler.add_djangojob"
CHANGE = "django_apscheduler.change_djangojob"
RUN = "django_apscheduler.run_djangojob"
DELETE_HISTORY = "django_apscheduler.delete_djangojobexecution"


def missing(user: Any, required: Iterable[str]) -> list[str]:
    """The permissions of ``required`` that ``user`` lacks, in a stable order."""
    return sorted({name for name in required if not user.has_perm(name)})


def may_pause(user: Any) -> bool:
    return bool(user.has_perm(CHANGE))


def may_edit_schedule(user: Any) -> bool:
    """Edit a trigger and options; a sooner next run needs RUN as well (see ``sooner_needs``)."""
    return bool(user.has_perm(CHANGE))


def may_resume(user: Any) -> bool:
    """Resuming makes a stopped job run again: change and run."""
    return bool(user.has_perm(CHANGE) and user.has_perm(RUN))


def may_run(user: Any) -> bool:
    return bool(user.has_perm(RUN))


def to_make_run(func_ref: str) -> set[str]:
    """What making a job of ``func_ref`` run needs: RUN and what its declarations name."""
    return {RUN, *declared_permissions(func_ref)}


def declared_permissions(func_ref: str) -> set[str]:
    """The permissions the ``@job`` declarations of ``func_ref`` name (all of them: one function may be declared twice)."""
    registry.autodiscover()
    return {name for declared in registry.declarations_of(func_ref) for name in declared.permissions}


def comes_sooner(new_next_run: datetime | None, current_next_run: datetime | None) -> bool:
    """True when a schedule change would bring a job's next run before its current one.

    A paused job (no current next run) stays paused when its schedule is edited,
    so an edit of it brings nothing sooner; resuming it is what needs RUN.
    """
    if current_next_run is None or new_next_run is None:
        return False
    return new_next_run < current_next_run


# How many fires of a schedule are looked at to tell how often it fires.
_FIRES_COMPARED = 50


def fires_more_often(new_trigger: Any, old_trigger: Any | None, now: datetime) -> bool:
    """True when ``new_trigger`` fires at shorter gaps than ``old_trigger`` (None: unknown).

    Moving a job's first run later is harmless, but an hourly job turned into an
    every-second one makes it run sooner in every sense that matters: compared by
    the shortest gap between consecutive fires among the next few. A schedule that
    fires once has no gap; an unknown old schedule counts as firing once.
    """
    return _shortest_gap(new_trigger, now) < _shortest_gap(old_trigger, now)


def _shortest_gap(trigger: Any | None, now: datetime) -> float:
    if trigger is None:
        return math.inf
    shortest, previous = math.inf, None
    moment: datetime | None = now
    for _ in range(_FIRES_COMPARED):
        try:
            moment = trigger.get_next_fire_time(previous, moment)
        except (OverflowError, ValueError):  # past what a date-time holds: no further fire
            break
        if moment is None:
            break
        if previous is not None:
            shortest = min(shortest, (moment - previous).total_seconds())
        previous = moment
        moment = moment + timedelta(microseconds=1)
    return shortest


def to_choose_arguments(func_ref: str, func: Callable[..., Any], args: list, kwargs: dict) -> set[str]:
    """What creating a job of ``func`` with these arguments needs for the arguments: nothing for a declaration's own."""
    return set() if matches_a_declaration(func_ref, func, args, kwargs) else {CHANGE, RUN}


def create_paused(user: Any) -> bool:
    """A user who may not make jobs run creates them paused."""
    return not user.has_perm(RUN)


def matches_a_declaration(func_ref: str, func: Callable[..., Any], args: list, kwargs: dict) -> bool:
    """True when ``args``/``kwargs`` call ``func`` as one of its ``@job`` declarations does.

    Compared after binding to the signature with defaults applied, so ``[7]``,
    ``{"days": 7}`` and nothing at all (when 7 is the default) are the same call.
    """
    wanted = _bound(func, args, kwargs)
    if wanted is None:
        return False
    for declared in registry.declarations_of(func_ref):
        options = declared.options
        if _bound(func, list(options.get("args", ())), dict(options.get("kwargs", {}))) == wanted:
            return True
    return False


def _bound(func: Callable[..., Any], args: list, kwargs: dict) -> dict[str, Any] | None:
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return None
    bound.apply_defaults()
    # Lists and tuples alike: JSON has only lists, a declaration often writes tuples.
    return {name: _comparable(value) for name, value in bound.arguments.items()}


def _comparable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_comparable(item) for item in value]
    if isinstance(value, dict):
        return {key: _comparable(item) for key, item in value.items()}
    return value


def describe(names: Iterable[str]) -> str:
    """Permissions by the names the admin shows for them (“Can run jobs now”), for messages."""
    names = sorted(set(names))
    labels = {}
    query = Q()
    for name in names:
        app_label, _dot, codename = name.partition(".")
        query |= Q(content_type__app_label=app_label, codename=codename)
    if names:
        for app_label, codename, label in Permission.objects.filter(query).values_list(
            "content_type__app_label", "codename", "name"
        ):
            labels[f"{app_label}.{codename}"] = label
    return ", ".join(f"“{labels.get(name, name)}”" for name in names)


def refusal(names: Iterable[str]) -> str:
    """The sentence that tells a user which permissions an action needs and they lack."""
    return gettext("This needs the permission(s) %(permissions)s, which you do not have.") % {
        "permissions": describe(names)
    }
