"""A stored job's state: the only module that pickles or unpickles it.

``DjangoJob.job_state`` holds APScheduler's own ``Job.__getstate__()`` dict,
pickled. Everything that reads or writes that column (the claim, the job store,
the operations, the admin, the command line) goes through these functions, so
the rules live in one place:

- ``dump`` refuses what cannot run once stored (APScheduler's own serialization
  errors, options out of any sane range) before anything is written;
- ``load`` raises ``JobStateError`` with a message that says why ("cannot be
  loaded: ..."), whatever went wrong inside pickle or the import of user code;
- ``try_load`` returns ``(state, None)`` or ``(None, reason)`` for pages and lists
  that show a broken job instead of failing;
- ``restore`` turns a stored row into a ``Job`` bound to a scheduler, with the
  ``next_run_time`` column (the truth) instead of the pickled copy.
"""

from __future__ import annotations

import pickle
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger

from .timezones import from_db

# A fire later than this is not "late", it is another era: the grace time must be
# smaller, or None ("however late"). APScheduler turns it into a timedelta at every
# run, which overflows above about 8.6e13 seconds (timedelta.max); a bound well below
# that keeps every date computation with it safe, and still admits the huge values
# (10**10 and the like) that some 0.7-era jobs use to mean "however late".
MAX_MISFIRE_GRACE_TIME = 10**12  # seconds: about 31,700 years
# More concurrent instances of one job than any thread pool or worker fleet runs.
MAX_INSTANCES = 100_000


class JobStateError(ValueError):
    """A stored job's state cannot be loaded, or a job's state cannot be stored."""


def dump(job: Job, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    """Pickle ``job``'s state for the ``job_state`` column, after checking it can run.

    Raises APScheduler's own errors for jobs it cannot serialize (lambdas, nested
    functions), and ``JobStateError`` for options out of range. A method bound to
    an instance is stored as APScheduler 3.8+ stores it: the class's function, with
    the instance (which must be picklable) as its first argument.
    """
    state = job.__getstate__()
    return dump_state(state, protocol, job_id=job.id)


def dump_state(state: dict[str, Any], protocol: int = pickle.HIGHEST_PROTOCOL, *, job_id: str = "") -> bytes:
    """Pickle a state dict (as ``Job.__getstate__`` makes it) after ``check_options``.

    A trigger that stands in for another in memory only (``fires`` hands
    APScheduler one that yields just the claimed fires) says which one with
    ``stands_for``; that one is stored.
    """
    check_options(state, job_id=job_id or str(state.get("id", "")))
    trigger = state.get("trigger")
    stands_for = getattr(trigger, "stands_for", None)
    if stands_for is not None:
        state = {**state, "trigger": stands_for}
    return pickle.dumps(state, protocol)


def load(job_state: bytes | memoryview) -> dict[str, Any]:
    """Unpickle a ``job_state`` value; ``JobStateError`` says why it cannot be loaded."""
    try:
        state = pickle.loads(bytes(job_state))
    except Exception as error:  # unpickling runs imports of user code: anything can fail
        raise JobStateError(f"cannot be loaded: {type(error).__name__}: {error}") from error
    if not isinstance(state, dict) or not isinstance(state.get("trigger"), BaseTrigger):
        raise JobStateError(f"cannot be loaded: the stored state is a {type(state).__name__}, not a job")
    return state


def try_load(job_state: bytes | memoryview) -> tuple[dict[str, Any] | None, str | None]:
    """``(state, None)``, or ``(None, reason)`` when it cannot be loaded."""
    try:
        return load(job_state), None
    except JobStateError as error:
        return None, str(error)


def restore(
    job_id: str,
    next_run_time: datetime | None,
    job_state: bytes | memoryview,
    scheduler: BaseScheduler | None,
    alias: str | None,
) -> Job:
    """The ``Job`` a stored row holds, bound to ``scheduler``; raises ``JobStateError``.

    The ``next_run_time`` column, not the pickled copy, says when the job runs next:
    a plain ORM update of the column is obeyed. It is expressed in the trigger's own
    time zone, as APScheduler keeps it: in the hour repeated in autumn, an instant
    in another zone never compares equal to the trigger's (PEP 495), and the trigger
    would hand out the same fire again.
    """
    state = load(job_state)
    value = from_db(next_run_time)
    trigger_zone = getattr(state["trigger"], "timezone", None)
    if value is not None:
        zone = trigger_zone or (scheduler.timezone if scheduler is not None else None)
        value = value.astimezone(zone) if zone is not None else value
    state["next_run_time"] = value
    job = Job.__new__(Job)
    try:
        job.__setstate__(state)
        check_options(state, job_id=job_id)
    except JobStateError:
        raise
    except Exception as error:  # a state from another APScheduler version, or tampered with
        raise JobStateError(f"cannot be loaded: {type(error).__name__}: {error}") from error
    # APScheduler's own job stores set these two private attributes on every job
    # they restore (its Job has no public way to bind one); we do the same.
    job._scheduler = scheduler
    job._jobstore_alias = alias
    return job


def check_options(state: dict[str, Any], *, job_id: str = "") -> None:
    """Refuse options that would break the job at run time (or its neighbours at claim time)."""
    label = f"Job {job_id!r}: " if job_id else ""
    grace = state.get("misfire_grace_time")
    if grace is not None and (
        isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 < grace <= MAX_MISFIRE_GRACE_TIME
    ):
        raise JobStateError(
            f"{label}misfire_grace_time must be a number of seconds between 1 and {MAX_MISFIRE_GRACE_TIME} "
            f"(about 31,700 years), or None for 'however late'; got {grace!r}"
        )
    instances = state.get("max_instances", 1)
    if isinstance(instances, bool) or not isinstance(instances, int) or not 1 <= instances <= MAX_INSTANCES:
        raise JobStateError(f"{label}max_instances must be a whole number between 1 and {MAX_INSTANCES}; got {instances!r}")
    if not isinstance(state.get("coalesce", False), bool):
        raise JobStateError(f"{label}coalesce must be True or False; got {state.get('coalesce')!r}")
