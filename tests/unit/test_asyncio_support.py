"""The event-loop seam: where a job store's calls run, and autostart's word on ASGI servers."""

import asyncio
import threading

import pytest

from django_apscheduler import autostart
from django_apscheduler.asyncio_support import DatabaseThread, in_event_loop, off_the_loop, runs_off_the_loop


def on_a_loop(func):
    async def main():
        return func()

    return asyncio.run(main())


def test_calls_outside_a_loop_run_in_the_calling_thread():
    thread = DatabaseThread("t")
    assert thread.call(threading.current_thread) is threading.current_thread()
    assert not thread.started


def test_calls_on_a_loop_run_on_one_dedicated_thread_until_closed():
    thread = DatabaseThread("dbthread")
    first = on_a_loop(lambda: thread.call(threading.current_thread))
    second = on_a_loop(lambda: thread.call(threading.current_thread))
    assert first is second and first is not threading.current_thread()
    assert first.name.startswith("dbthread") and not on_a_loop(lambda: thread.call(in_event_loop))
    thread.close()
    assert not thread.started
    first.join(timeout=5)
    assert not first.is_alive()


def test_errors_reach_the_caller_on_the_loop():
    thread = DatabaseThread("t")

    def boom():
        raise KeyError("<job/with\nnewline>")

    with pytest.raises(KeyError, match="newline"):
        on_a_loop(lambda: thread.call(boom))
    thread.close()


def test_decorated_store_methods_run_off_the_loop_and_shutdown_ends_the_thread():
    @runs_off_the_loop
    class Store:
        def get_due_jobs(self, now):
            return now, in_event_loop(), threading.current_thread()

        def shutdown(self):
            return threading.current_thread()

        def helper(self):  # not a store method: left as it is
            return in_event_loop()

    store = Store()
    now, looping, worker = on_a_loop(lambda: store.get_due_jobs(42))
    assert (now, looping) == (42, False) and worker is not threading.current_thread()
    assert on_a_loop(store.helper) is True
    assert on_a_loop(store.shutdown) is worker
    worker.join(timeout=5)
    assert not worker.is_alive() and not store._database_thread.started
    # Outside a loop nothing changes: same thread, no database thread.
    assert store.get_due_jobs(1)[2] is threading.current_thread()


def test_off_the_loop_runs_once_in_another_thread_only_on_a_loop():
    assert off_the_loop(threading.current_thread) is threading.current_thread()
    other = on_a_loop(lambda: off_the_loop(threading.current_thread))
    assert other is not threading.current_thread() and not on_a_loop(lambda: off_the_loop(in_event_loop))


@pytest.mark.parametrize("argv", [["/venv/bin/uvicorn", "site.asgi:app"], ["/x/daphne/__main__.py"], ["hypercorn"]])
def test_autostart_says_why_asgi_servers_get_a_background_scheduler(argv):
    note = autostart.asgi_note(argv)
    assert "BackgroundScheduler" in note and "with_scheduler" in note


@pytest.mark.parametrize("argv", [["gunicorn"], ["manage.py", "runserver"], []])
def test_autostart_has_no_asgi_note_elsewhere(argv):
    assert autostart.asgi_note(argv) is None
