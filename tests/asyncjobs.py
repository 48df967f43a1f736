"""Coroutine job functions for the AsyncIOScheduler tests (importable, as stored jobs require).

Each appends what it saw to ``SEEN`` (this process only), so a test can check that
the job really ran and what its query returned.
"""

import asyncio
import threading

from asgiref.sync import sync_to_async

from django_apscheduler.models import DjangoJob

SEEN: list[tuple[str, object]] = []


async def count_with_async_orm(tag):
    SEEN.append((tag, await DjangoJob.objects.acount()))


async def count_through_sync_to_async(tag):
    count = await sync_to_async(DjangoJob.objects.count)()
    SEEN.append((tag, count))


async def sleep_on_the_loop(tag, seconds):
    await asyncio.sleep(seconds)
    SEEN.append((tag, seconds))


async def fail_on_the_loop(message):
    await asyncio.sleep(0)
    raise ValueError(message)


def sync_job(tag):
    """A plain function: AsyncIOScheduler runs it in the loop's default thread pool."""
    SEEN.append((tag, threading.current_thread().name))
