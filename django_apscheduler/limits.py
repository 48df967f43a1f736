"""How big, how deep, how far and how long any input may be: every bound, with its reason.

The admin's forms, the job store, the ``@job`` decorator and the command line all
take numbers, texts and dates from people or code that may be careless or hostile.
Each bound below is what the scheduler, ``datetime``/``timedelta`` and every
supported database can hold, with a margin, so a value past it is refused with a
clear error before anything is written, instead of failing later (an
``OverflowError`` in the scheduler's loop, a ``RecursionError`` in a web request,
a row the database truncates or refuses).

The checks raise ``ValueError`` with a message that names the bound; callers turn
it into a form error or a ``CommandError``. They use no database.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

# --- job ids and the texts stored beside them ------------------------------------------

# DjangoJob.id is a CharField(max_length=255); a longer id would be refused by
# PostgreSQL and silently cut by MySQL/MariaDB (non-strict mode) or stored whole by
# SQLite, so the same id would mean different jobs on different databases.
MAX_JOB_ID_LENGTH = 255
# A job's name is shown in lists and pages; the admin's form takes this many.
MAX_NAME_LENGTH = 255

# --- options (checked whenever a job's state is stored or loaded) ------------------------

# A fire later than this is not "late", it is another era: the grace time must be
# smaller, or None ("however late"). APScheduler turns it into a timedelta at every
# run, which overflows above about 8.6e13 seconds (timedelta.max); a bound well below
# that keeps every date computation with it safe, and still admits the huge values
# (10**10 and the like) that some 0.7-era jobs use to mean "however late".
MAX_MISFIRE_GRACE_TIME = 10**12  # seconds: about 31,700 years
# More concurrent instances of one job than any thread pool or worker fleet runs.
MAX_INSTANCES = 100_000
# Every claim of a due job reads and unpickles its state, inside the claim
# transaction: a state of megabytes would hold the database's write lock for
# seconds and slow every other job's claim. Large data belongs in the caller's own
# tables, with its key as the job's argument.
MAX_STATE_BYTES = 1_000_000

# --- JSON arguments typed in the admin ----------------------------------------------------

# Arguments are meant to be small (ids, flags, a few numbers): 64 KiB of JSON is far
# more than that and far below MAX_STATE_BYTES once pickled.
MAX_JSON_BYTES = 65_536
# json.loads recurses once per level of nesting, and so do pickle and repr after it:
# about 1,000 levels end in a RecursionError (an HTTP 500). No argument needs more
# than a few levels; the text is measured before json.loads sees it.
MAX_JSON_DEPTH = 32

# --- the command line ------------------------------------------------------------------

# ``prune --max-age``: executions are dated from this century; an age reaching back
# before year 1 is an OverflowError, and anything over a century keeps everything.
MAX_HISTORY_AGE = 100 * 365 * 24 * 3600  # seconds: 100 years
# ``run --timeout`` (and APSCHEDULER_RUN_NOW_TIMEOUT): how long a command or a page
# waits for a run's result. Past a day nobody is waiting; past about 9e9 seconds
# the wait itself raises OverflowError.
MAX_RUN_NOW_TIMEOUT = 24 * 3600  # seconds
# ``start --workers``: each worker is an OS thread that may hold a database
# connection; databases allow a few hundred connections by default.
MAX_WORKERS = 1_000


# Scanned by the regex engine: a per-character Python loop took 0.07 s for a 2 MB
# argument (the regex: 0.01 s).
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored the same way on every supported database, or None.

    PostgreSQL refuses NUL characters in text and JSON; a lone surrogate (half of a
    UTF-16 pair, which Python strings can hold) cannot be encoded as UTF-8 at all.
    """
    if "\x00" in text:
        return "it contains a NUL character (\\x00), which PostgreSQL cannot store"
    if _LONE_SURROGATE.search(text):
        return "it contains a lone surrogate character, which is not valid UTF-8"
    return None


def check_job_id(job_id: Any) -> str:
    """``job_id`` if every supported database stores it as given; ValueError (TypeError) says why not."""
    if not isinstance(job_id, str):
        raise TypeError(f"A job id must be a string, not {type(job_id).__name__}")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise ValueError(
            f"Job id is {len(job_id)} characters long; at most {MAX_JOB_ID_LENGTH} are stored. "
            f"Give the job a shorter id: {job_id[:60]!r}…"
        )
    problem = text_problem(job_id)
    if problem is not None:
        raise ValueError(f"Job id {job_id!r} cannot be stored: {problem}")
    return job_id


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in a JSON text, without parsing it.

    Brackets inside strings do not count. The text need not be valid JSON: this runs
    before ``json.loads`` so that a deeply nested text never reaches its recursion.
    It stops counting once past ``MAX_JSON_DEPTH`` (the caller only needs "too deep").
    """
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    break
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


def storable_time(when: datetime | None) -> datetime | None:
    """``when`` if it can be stored (as UTC); ValueError when it lies past what a date-time holds.

    9999-12-31 23:59 in New York is in the year 10000 in UTC: the database column
    cannot hold it, and the scheduler would fail on it at every wake-up.
    """
    if when is None:
        return None
    try:
        when.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise ValueError(
            f"the run time {when.isoformat()} lies past the last date-time that can be stored (9999-12-31 in UTC)"
        ) from None
    return when


def check_seconds(value: float, *, name: str, maximum: float, allow_zero: bool = True) -> float:
    """A count of seconds given on the command line: finite, not negative, at most ``maximum``."""
    low = 0 if allow_zero else 1
    if not math.isfinite(value) or value < low or value > maximum:
        raise ValueError(f"{name} must be a number of seconds between {low} and {maximum:,}; got {value!r}")
    return value


def check_workers(value: int) -> int:
    """``start --workers``: at least 1, at most ``MAX_WORKERS``."""
    if not 1 <= value <= MAX_WORKERS:
        raise ValueError(f"--workers must be between 1 and {MAX_WORKERS:,}; got {value}")
    return value
