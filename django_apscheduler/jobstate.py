"""A stored job's state: the only module that pickles or unpickles it, and signs it.

``DjangoJob.job_state`` holds APScheduler's own ``Job.__getstate__()`` dict,
pickled, behind an HMAC-SHA256 signature keyed from ``SECRET_KEY``. Unpickling
runs code named by the data, so a row is unpickled only when its signature shows
that this package wrote it: a row written with plain SQL by someone who can write
to the database but does not know the key is refused before pickle sees it.
Everything that reads or writes that column (the claim, the job store, the
operations, the admin, the command line) goes through these functions, so the
rules live in one place:

- ``dump`` refuses what cannot run once stored (APScheduler's own serialization
  errors, options out of any sane range, a state too big to claim quickly)
  before anything is written, and returns the signed state together with the
  plain columns (function, trigger in words, details) that pages show without
  unpickling anything;
- ``load`` checks the signature (``SECRET_KEY``, then each of
  ``SECRET_KEY_FALLBACKS``), then raises ``JobStateError`` with a message that
  says why ("cannot be loaded: ..."), whatever went wrong inside pickle or the
  import of user code;
- ``try_load`` returns ``(state, None)`` or ``(None, reason)`` for pages and lists
  that show a broken job instead of failing;
- ``restore`` turns a stored row into a ``Job`` bound to a scheduler, with the
  ``next_run_time`` column (the truth) instead of the pickled copy.
"""

from __future__ import annotations

import hmac
import pickle
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from django.conf import settings
from django.utils.crypto import salted_hmac

from .describe import describe_state
from .limits import MAX_INSTANCES, MAX_MISFIRE_GRACE_TIME, MAX_STATE_BYTES, check_job_id, storable_time, text_problem
from .timezones import from_db

# Signed state: this prefix (format version 1), a 32-byte HMAC-SHA256 of the pickle,
# then the pickle. Pickles of protocol 2 and later start with 0x80 and those of 0
# and 1 with an opcode character, so an unsigned 0.7 row never looks signed. The
# format is frozen: migration 0018 writes it too.
SIGNATURE_PREFIX = b"das1"
_DIGEST_SIZE = 32
_SIGNING_SALT = "django_apscheduler.jobstate"


class JobStateError(ValueError):
    """A stored job's state cannot be loaded, or a job's state cannot be stored."""


def dump(job: Job, protocol: int = pickle.HIGHEST_PROTOCOL) -> dict[str, Any]:
    """The column values that store ``job``: its signed state and its plain description.

    Raises APScheduler's own errors for jobs it cannot serialize (lambdas, nested
    functions), and ``JobStateError`` for options out of range or a state too big.
    A method bound to an instance is stored as APScheduler 3.8+ stores it: the
    class's function, with the instance (which must be picklable) as its first
    argument.
    """
    state = job.__getstate__()
    return dump_state(state, protocol, job_id=job.id)


def dump_state(state: dict[str, Any], protocol: int = pickle.HIGHEST_PROTOCOL, *, job_id: str = "") -> dict[str, Any]:
    """``dump`` for a state dict (as ``Job.__getstate__`` makes it).

    A trigger that stands in for another in memory only (``fires`` hands
    APScheduler one that yields just the claimed fires) says which one with
    ``stands_for``; that one is stored.
    """
    job_id = job_id or str(state.get("id", ""))
    check_options(state, job_id=job_id)
    _check_storable(state, job_id)
    trigger = state.get("trigger")
    stands_for = getattr(trigger, "stands_for", None)
    if stands_for is not None:
        state = {**state, "trigger": stands_for}
    try:
        pickled = pickle.dumps(state, protocol)
    except RecursionError:  # pickle recurses once per level of nested arguments
        raise JobStateError(
            f"Job {job_id!r}: its arguments are nested too deeply to be stored; pass flatter data"
        ) from None
    if len(pickled) > MAX_STATE_BYTES:
        raise JobStateError(
            f"Job {job_id!r}: its state is {len(pickled):,} bytes pickled, over the limit of {MAX_STATE_BYTES:,}; "
            "keep large data in your own tables and pass its key as the job's argument"
        )
    return {"job_state": sign(pickled), **plain_columns(state)}


def _check_storable(state: dict[str, Any], job_id: str) -> None:
    """Refuse, before any write, what a database would refuse, cut or mangle.

    Only on the way in: a stored job is never refused at load for these, so nothing
    already stored stops running.
    """
    try:
        check_job_id(state.get("id", job_id))
    except (TypeError, ValueError) as error:
        raise JobStateError(str(error)) from None  # the message shows the id, cut if long
    try:
        storable_time(state.get("next_run_time"))
    except ValueError as error:
        raise JobStateError(f"Job {job_id!r}: {error}") from None
    for key in ("name", "executor"):  # copied as text into the plain columns
        value = state.get(key)
        problem = text_problem(value) if isinstance(value, str) else None
        if problem is not None:
            raise JobStateError(f"Job {job_id!r}: its {key} cannot be stored: {problem}")


def plain_columns(state: dict[str, Any]) -> dict[str, Any]:
    """The columns pages read instead of the pickle: function, trigger in words, details."""
    return describe_state(state)


def sign(pickled: bytes) -> bytes:
    """``pickled`` behind a signature made with the current ``SECRET_KEY``."""
    return SIGNATURE_PREFIX + _digest(pickled, settings.SECRET_KEY) + pickled


def signed_with(job_state: bytes | memoryview) -> str | None:
    """"current" or "fallback" for the key whose signature verifies; None for none."""
    blob = bytes(job_state)
    if not blob.startswith(SIGNATURE_PREFIX):
        return None
    digest, pickled = _split(blob)
    for which, secret in _secrets():
        if hmac.compare_digest(digest, _digest(pickled, secret)):
            return which
    return None


def unsigned_payload(job_state: bytes | memoryview) -> bytes:
    """The pickle in a row, with or without a (bad) signature: for an explicit re-sign only."""
    blob = bytes(job_state)
    return _split(blob)[1] if blob.startswith(SIGNATURE_PREFIX) else blob


def verify(job_state: bytes | memoryview) -> bytes:
    """The pickle inside a signed ``job_state``; ``JobStateError`` when the signature fails."""
    problem = signature_problem(job_state)
    if problem is not None:
        raise JobStateError(problem)
    return _split(bytes(job_state))[1]


def signature_problem(job_state: bytes | memoryview | None) -> str | None:
    """Why a stored state must not be unpickled (its signature), or None when it may.

    Cheap (one HMAC, nothing unpickled), so pages and lists check every row they show.
    """
    blob = bytes(job_state or b"")
    if not blob.startswith(SIGNATURE_PREFIX):
        return (
            "cannot be loaded: its state is not signed, so it was not written by django-apscheduler "
            "(or it predates migration 0018). It was not unpickled. If you trust this row, run "
            "`manage.py apscheduler resign --trust-unverified JOB_ID`"
        )
    if signed_with(blob) is None:
        return (
            "cannot be loaded: its signature does not verify with SECRET_KEY or any of SECRET_KEY_FALLBACKS "
            "(it was written with another key, or changed outside django-apscheduler). It was not unpickled. "
            "After a key change, put the old key in SECRET_KEY_FALLBACKS and run `manage.py apscheduler resign`"
        )
    return None


def _split(blob: bytes) -> tuple[bytes, bytes]:
    start = len(SIGNATURE_PREFIX)
    return blob[start : start + _DIGEST_SIZE], blob[start + _DIGEST_SIZE :]


def _digest(pickled: bytes, secret: str | bytes) -> bytes:
    return salted_hmac(_SIGNING_SALT, pickled, secret=secret, algorithm="sha256").digest()


def _secrets() -> list[tuple[str, str | bytes]]:
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", None) or []
    return [("current", settings.SECRET_KEY)] + [("fallback", key) for key in fallbacks]


def load(job_state: bytes | memoryview) -> dict[str, Any]:
    """Unpickle a signed ``job_state`` value; ``JobStateError`` says why it cannot be loaded."""
    pickled = verify(job_state)
    try:
        state = pickle.loads(pickled)
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
    stored_id = state.get("id")
    if stored_id is not None and stored_id != job_id:
        # The signature covers the state, not the row it sits in: a signed state
        # copied into another job's row would run under that job's id and history.
        raise JobStateError(f"cannot be loaded: its state belongs to job {stored_id!r}, not to this row")
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
