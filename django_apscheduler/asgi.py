"""Running an AsyncIOScheduler on an ASGI server's event loop, started by the lifespan protocol.

Django's ASGI handler refuses lifespan events, so there is no Django hook for
"the server's loop is running" and "the server is stopping". ``with_scheduler``
wraps Django's ASGI application: it answers the lifespan events itself (starting
the scheduler at ``lifespan.startup``, stopping it at ``lifespan.shutdown``) and
hands every other connection to Django. Uvicorn, Hypercorn and Granian send
lifespan events; Daphne does not (use ``APSCHEDULER_AUTOSTART`` there, see the
README).

    # asgi.py
    from django.core.asgi import get_asgi_application
    from django_apscheduler.asgi import with_scheduler

    application = with_scheduler(get_asgi_application())
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import BaseScheduler
from django.conf import settings

from .asyncio_support import off_the_loop
from .database import SchemaNotReady, ensure_schema_ready

logger = logging.getLogger("django_apscheduler.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def default_scheduler() -> BaseScheduler:
    """An AsyncIOScheduler on the running loop with a DjangoJobStore, syncing the jobs declared in code."""
    # Imported here: this module is imported before Django's apps are loaded (asgi.py).
    from apscheduler.executors.asyncio import AsyncIOExecutor

    from . import registry
    from .executors import configured_executors
    from .jobstores import DjangoJobStore

    registry.autodiscover()
    scheduler = AsyncIOScheduler(
        timezone=settings.TIME_ZONE,
        jobstores={"default": DjangoJobStore()},
        executors=configured_executors(in_process=AsyncIOExecutor()),
    )
    registry.sync_when_started(scheduler)
    return scheduler


class with_scheduler:  # noqa: N801 - reads as the function it stands for
    """Django's ASGI app, plus a scheduler living as long as the server's event loop.

    ``make_scheduler`` builds the (not yet started) scheduler, on the loop, at
    startup; ``default_scheduler`` unless given. If the tables are missing, the
    server starts without a scheduler and says "run migrate first".
    """

    def __init__(self, app: ASGIApp, make_scheduler: Callable[[], BaseScheduler] = default_scheduler) -> None:
        self.app = app
        self.make_scheduler = make_scheduler
        self.scheduler: BaseScheduler | None = None

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._answer(send, "startup", self.start)
            elif message["type"] == "lifespan.shutdown":
                await self._answer(send, "shutdown", self.stop)
                return

    async def start(self) -> None:
        try:
            off_the_loop(ensure_schema_ready)
        except SchemaNotReady as error:
            logger.warning("Scheduler not started: %s Then restart the server.", error)
            return
        scheduler = self.make_scheduler()
        scheduler.start()
        self.scheduler = scheduler
        logger.info("Scheduler started on the server's event loop (%s)", type(scheduler).__name__)

    async def stop(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is None or not scheduler.running:
            return
        scheduler.shutdown()
        # AsyncIOScheduler.shutdown() only schedules the shutdown on the loop: wait for it.
        while scheduler.running:
            await asyncio.sleep(0.05)
        logger.info("Scheduler stopped")

    @staticmethod
    async def _answer(send: Callable[[Message], Awaitable[None]], phase: str, step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except Exception as error:  # noqa: BLE001 - the server reports it and refuses to start
            logger.exception("Scheduler %s failed", phase)
            await send({"type": f"lifespan.{phase}.failed", "message": f"{type(error).__name__}: {error}"})
        else:
            await send({"type": f"lifespan.{phase}.complete"})
