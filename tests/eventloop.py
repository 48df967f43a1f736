"""Driving a job store from inside a running event loop, as AsyncIOScheduler does.

``LoopDriven(store)`` behaves like the store, except that each job store method is
called from a coroutine in ``asyncio.run``: on a thread that runs an event loop,
where Django raises ``SynchronousOnlyOperation`` at the first synchronous query.
A test passes through it only if the store keeps its database work off the loop.
"""

import asyncio
import contextlib
import time

from django.db import connections
from django.test.utils import CaptureQueriesContext

from django_apscheduler.asyncio_support import STORE_METHODS, in_event_loop


def call_in_loop(func, *args, **kwargs):
    """``func(*args, **kwargs)``, called synchronously on a thread running an event loop."""

    async def on_the_loop():
        assert in_event_loop()
        return func(*args, **kwargs)

    return asyncio.run(on_the_loop())


class LoopDriven:
    """A job store whose methods are called on an event loop's thread (see the module docstring)."""

    def __init__(self, store):
        self.store = store

    def __getattr__(self, name):
        attribute = getattr(self.store, name)
        if name not in STORE_METHODS:
            return attribute
        return lambda *args, **kwargs: call_in_loop(attribute, *args, **kwargs)

    def on_store_thread(self, func):
        """Run ``func`` where the store runs its database work when called from a loop."""
        return call_in_loop(lambda: self.store._database_thread.call(func))


@contextlib.contextmanager
def captured_store_queries(jobstore):
    """Capture the statements the store sends, on whichever connection it uses."""
    if not isinstance(jobstore, LoopDriven):
        with CaptureQueriesContext(connections["default"]) as queries:
            yield queries
        return
    queries = jobstore.on_store_thread(lambda: CaptureQueriesContext(connections["default"]))
    jobstore.on_store_thread(queries.__enter__)
    try:
        yield queries
    finally:
        jobstore.on_store_thread(lambda: queries.__exit__(None, None, None))


class LoopLagProbe:
    """Measures how long an event loop is kept from running its callbacks.

    A coroutine sleeps ``tick`` seconds at a time and notes how late each wake-up
    came: the longest lateness is the longest the loop was blocked (plus the
    scheduling noise of a loaded machine).
    """

    def __init__(self, tick=0.005):
        self.tick = tick
        self.worst = 0.0
        self.samples = 0
        self._task = None

    def start(self):
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self):
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self):
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.tick)
            self.worst = max(self.worst, time.perf_counter() - before - self.tick)
            self.samples += 1
