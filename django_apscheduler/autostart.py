"""Starting a scheduler inside web processes, when ``APSCHEDULER_AUTOSTART = True``.

"May this process start a scheduler?" is answered conservatively: only processes
that serve requests do, namely runserver's serving child (not its autoreloading
parent) and the WSGI/ASGI servers below; never a one-off management command
(migrate, shell, test, collectstatic, ...), never under pytest. Several web
workers each running a scheduler is safe: fires are claimed in the database.

The start itself happens a moment after Django has loaded, in a thread, so the
database is not touched during app loading; if the tables or migrations are
missing, it logs "run migrate first" and does nothing (the next boot starts cleanly). A
preforking server that loads the app before forking (gunicorn ``--preload``,
uWSGI without ``lazy-apps``) forks before that moment: the parent then starts
nothing and every forked worker starts its own scheduler.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Mapping

from django.conf import settings

from . import conf, registry
from .database import SchemaNotReady, ensure_schema_ready

logger = logging.getLogger("django_apscheduler.autostart")

# Processes whose program is one of these serve requests.
WEB_SERVERS = {"gunicorn", "uwsgi", "daphne", "uvicorn", "hypercorn", "waitress-serve", "granian"}
# Of these, the ones serving ASGI: their event loop is not running when Django loads.
ASGI_SERVERS = {"daphne", "uvicorn", "hypercorn", "granian"}
MANAGE_PROGRAMS = {"manage.py", "django-admin", "django-admin.py", "django"}
START_DELAY = 2.0  # seconds after app loading

_lock = threading.Lock()
_pending: threading.Timer | None = None
_prefork_parent = False
_scheduler = None


def program_name(argv: list[str]) -> str:
    """"gunicorn" for /venv/bin/gunicorn and for ``python -m gunicorn`` alike."""
    if not argv:
        return ""
    path = argv[0]
    if os.path.basename(path) == "__main__.py":  # python -m package
        return os.path.basename(os.path.dirname(path))
    return os.path.basename(path)


def management_command(argv: list[str] | None = None) -> str | None:
    """The management command this process runs (``migrate``, ...), or None if it is not manage.py."""
    argv = sys.argv if argv is None else argv
    if program_name(argv) in MANAGE_PROGRAMS:
        return argv[1] if len(argv) > 1 else ""
    return None


def decide(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Whether this process may autostart a scheduler, and why (for the log)."""
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    if not conf.get("APSCHEDULER_AUTOSTART"):
        return False, "APSCHEDULER_AUTOSTART is off"
    if "pytest" in sys.modules or "PYTEST_CURRENT_TEST" in environ:
        return False, "running under pytest"
    program = program_name(argv)
    command = management_command(argv)
    if command is not None:
        if command != "runserver":
            return False, f"'{command or 'manage.py'}' is not a server command"
        if environ.get("RUN_MAIN") == "true" or "--noreload" in argv:
            return True, "runserver's serving process"
        return False, "runserver's autoreloader parent (its child serves and starts the scheduler)"
    if program in WEB_SERVERS or "mod_wsgi" in sys.modules:
        return True, f"web server process ({program or 'mod_wsgi'})"
    return False, f"'{program}' is not a known web server"


def maybe_start() -> None:
    """Called from AppConfig.ready(): schedule a start if this process qualifies."""
    allowed, reason = decide()
    if not allowed:
        logger.debug("Not autostarting a scheduler: %s", reason)
        return
    logger.debug("Autostarting a scheduler in %ss: %s", START_DELAY, reason)
    _schedule_start()
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def _schedule_start() -> None:
    global _pending
    with _lock:
        if _scheduler is not None or _pending is not None:
            return
        _pending = threading.Timer(START_DELAY, _start)
        _pending.daemon = True
        _pending.start()


def _before_fork() -> None:
    # Forking while the start is still pending means this is a preforking server's
    # parent: from now on its children (the workers) start schedulers, not it. A
    # fork after the start (a worker's own multiprocessing) starts nothing.
    global _pending, _prefork_parent
    if _pending is not None:
        _pending.cancel()
        _pending = None
        _prefork_parent = True


def _after_fork_in_child() -> None:
    global _prefork_parent
    if _prefork_parent:
        _prefork_parent = False
        _schedule_start()


def _start() -> None:
    global _pending, _scheduler
    from apscheduler.schedulers.background import BackgroundScheduler

    from .executors import ExecutorConfigError, configured_executors
    from .jobstores import DjangoJobStore

    with _lock:
        _pending = None
        if _scheduler is not None:
            return
        try:
            ensure_schema_ready()
        except SchemaNotReady as error:
            logger.warning("Scheduler not started: %s Then restart this process.", error)
            return
        registry.autodiscover()
        try:
            executors = configured_executors()
        except ExecutorConfigError as error:
            logger.error("Scheduler not started: %s", error)
            return
        scheduler = BackgroundScheduler(timezone=settings.TIME_ZONE, jobstores={"default": DjangoJobStore()}, executors=executors)
        registry.sync_when_started(scheduler)
        try:
            scheduler.start()
        # This runs in a timer thread, whose uncaught errors bypass logging; a failed
        # start leaves nothing running, and the web process serves on without it.
        except Exception:  # noqa: BLE001
            logger.exception("Scheduler not started: its start failed.")
            return
        _scheduler = scheduler
    logger.info("Scheduler autostarted in process %s with %d declared job(s)", os.getpid(), len(registry.declared_jobs()))
    note = asgi_note(sys.argv)
    if note:
        logger.info(note)
    _stop_before_thread_pools_close()


def asgi_note(argv: list[str]) -> str | None:
    """Why autostart under an ASGI server runs a BackgroundScheduler, not an AsyncIOScheduler."""
    program = program_name(argv)
    if program not in ASGI_SERVERS:
        return None
    return (
        f"Autostart under {program} runs a BackgroundScheduler (jobs in its own threads; coroutine jobs "
        "each in an event loop of their own): the server's event loop is not running yet when Django loads "
        "its apps. To run coroutine jobs on the server's loop, wrap the ASGI application with "
        "django_apscheduler.asgi.with_scheduler and turn APSCHEDULER_AUTOSTART off."
    )


def _stop_before_thread_pools_close() -> None:
    """Stop the scheduler when the process exits, before Python closes its thread pools.

    At exit, concurrent.futures refuses new work before ordinary atexit handlers
    run; a fire the scheduler claimed in that window could not be submitted and
    would be lost. ``threading._register_atexit`` (private, but what
    concurrent.futures itself uses, Python 3.9+) runs earlier; plain atexit is the
    fallback.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(_stop)
    else:
        atexit.register(_stop)


def _stop() -> None:
    global _scheduler
    if _scheduler is not None and _scheduler.running:
        logger.info("Stopping the autostarted scheduler: waiting for running jobs to finish…")
        _scheduler.shutdown(wait=True)
    _scheduler = None


def running_scheduler():
    """The scheduler autostarted in this process, or None."""
    return _scheduler
