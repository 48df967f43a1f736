"""Job stores called from an event loop's thread: their database work runs beside the loop.

APScheduler 3's ``AsyncIOScheduler`` (and ``TornadoScheduler``, which runs on
asyncio too) calls the job store's methods on the event loop's thread:
``start``, ``get_due_jobs``, ``get_next_run_time``, ``add_job``, ... Django refuses
synchronous database work there (``SynchronousOnlyOperation``), and rightly: a
query would stall every coroutine of the loop, and Django's connections are per
thread. ``DJANGO_ALLOW_ASYNC_UNSAFE`` would silence the guard, not fix that.

APScheduler calls these methods synchronously and uses their results at once, so
they must stay synchronous. A call made on a thread that runs an event loop is
therefore run on the store's own database thread while the loop waits for it:
the loop is held for as long as that one call takes (a claim: a transaction of a
few statements), the guard stays on, and the loop's thread never opens a
connection. Calls from any other thread (a ``BackgroundScheduler``, a sync view,
the shell) run where they are made, as before.

One thread per store, not a pool: a Django connection belongs to the thread that
opened it, so one thread keeps one connection, reused by every call (no connect
per claim) and closed when the store shuts down. The loop's thread makes its
calls one at a time anyway.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import connections

__all__ = ["DatabaseThread", "awaits_coroutines", "in_event_loop", "off_the_loop", "runs_off_the_loop"]

T = TypeVar("T")
C = TypeVar("C", bound=type)


def in_event_loop() -> bool:
    """Whether this thread is running an asyncio event loop (where Django forbids sync queries)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def off_the_loop(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)``; on a loop's thread, in a short-lived thread the loop waits for.

    For one-off synchronous work started from a loop's thread (syncing the jobs
    declared in code when an AsyncIOScheduler starts): it holds the loop for as
    long as it takes, once, and closes the connections it opened.
    """
    if not in_event_loop():
        return func(*args, **kwargs)

    def run_and_close() -> T:
        try:
            return func(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="django-apscheduler-once") as executor:
        return executor.submit(run_and_close).result()


def awaits_coroutines(scheduler: Any, executor_alias: str) -> bool:
    """Whether the scheduler's executor awaits coroutine functions on its event loop.

    APScheduler 3's AsyncIOExecutor and TornadoExecutor do; its thread and process
    pools would call a coroutine function and drop the coroutine unawaited. APScheduler
    has no public "which executor is this?"; its private ``_lookup_executor`` is the
    one lookup it has (raising KeyError for an unknown alias).
    """
    from apscheduler.executors.asyncio import AsyncIOExecutor

    try:
        executor = scheduler._lookup_executor(executor_alias)
    except KeyError:
        return False
    if isinstance(executor, AsyncIOExecutor):
        return True
    try:
        from apscheduler.executors.tornado import TornadoExecutor
    except ImportError:  # tornado is not installed
        return False
    return isinstance(executor, TornadoExecutor)


class DatabaseThread:
    """Runs calls made on an event loop's thread in one dedicated thread, and waits for them.

    Created idle: the thread starts at the first call made from a loop, so a store
    that only ever serves thread-based schedulers never has one.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    @property
    def started(self) -> bool:
        return self._executor is not None

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``func(*args, **kwargs)``: here, or on the database thread when this thread runs a loop."""
        if not in_event_loop():
            return func(*args, **kwargs)
        return self._running_executor().submit(func, *args, **kwargs).result()

    def close(self) -> None:
        """Close the database thread's connections, then end the thread (it starts again if needed)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            executor.submit(connections.close_all).result()
        finally:
            executor.shutdown(wait=True)

    def _running_executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
            return self._executor


# The job store methods APScheduler calls; every one of them may touch the database.
STORE_METHODS = (
    "start",
    "shutdown",
    "lookup_job",
    "get_due_jobs",
    "get_next_run_time",
    "get_all_jobs",
    "add_job",
    "update_job",
    "remove_job",
    "remove_all_jobs",
)


def runs_off_the_loop(cls: C) -> C:
    """Class decorator for a job store: its methods' database work never runs on a loop's thread.

    Each method in ``STORE_METHODS`` defined by ``cls`` is run through the store's
    ``DatabaseThread`` (attribute ``_database_thread``, made on first use). After
    ``shutdown`` the thread's connections are closed and the thread ends.
    """
    for name in STORE_METHODS:
        method = cls.__dict__.get(name)
        if method is not None:
            setattr(cls, name, _through_database_thread(method, closes=name == "shutdown"))
    return cls


def _database_thread(store: Any) -> DatabaseThread:
    thread = store.__dict__.get("_database_thread")
    if thread is None:
        thread = store.__dict__.setdefault("_database_thread", DatabaseThread(f"django-apscheduler-db-{id(store):x}"))
    return thread


def _through_database_thread(method: Callable[..., T], *, closes: bool) -> Callable[..., T]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        thread = _database_thread(self)
        try:
            return thread.call(method, self, *args, **kwargs)
        finally:
            if closes:
                thread.close()

    return wrapper
