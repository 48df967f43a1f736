"""executors.celery and contrib.celery without workers: the message really sent, the app chosen, the check.

Messages go through kombu's in-memory transport and are read back off the queue,
so what is asserted is the message a worker would receive.
"""

from datetime import datetime, timezone
from unittest import mock

import pytest
from celery import Celery
from django.core.checks import Error
from django.test import override_settings

from django_apscheduler import checks
from django_apscheduler.contrib.celery import TASK_NAME, register_tasks
from django_apscheduler.executors.celery import CeleryExecutor, load_app
from django_apscheduler.executors.handoff import FleetFire, task_id_for

RUN_TIME = datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc)


def memory_app(name="mem"):
    app = Celery(name, broker="memory://", set_as_current=False)
    app.conf.broker_connection_retry_on_startup = False
    return app


def fire(job_id="reports/daily_job\nsecond line", queue=None):
    return FleetFire(job_id, RUN_TIME, task_id_for(job_id, RUN_TIME), "Daily report", queue, None)


def read_one(app, queue="celery"):
    with app.connection_for_read() as connection:
        simple = connection.SimpleQueue(queue)
        try:
            message = simple.get(timeout=2)
            message.ack()
            return message
        finally:
            simple.close()


def test_enqueue_sends_the_trampoline_with_the_fire_s_id_and_header():
    app = memory_app()
    sent = fire()
    CeleryExecutor(app=app).enqueue(sent)
    message = read_one(app)
    assert message.headers["task"] == TASK_NAME == "django_apscheduler.run_fire"
    assert message.headers["id"] == sent.task_id == task_id_for(sent.job_id, RUN_TIME)
    assert message.headers["periodic_task_name"] == sent.job_id  # django-celery-results joins on it
    assert message.headers["django_apscheduler_run_time"] == "2026-03-29T01:30:00+00:00"
    args, kwargs, _embed = message.decode()
    assert args == [sent.job_id, "2026-03-29T01:30:00+00:00"] and kwargs == {}


def test_the_same_fire_always_gets_the_same_task_id_and_another_fire_another():
    assert fire().task_id == fire().task_id
    other = FleetFire("reports/daily_job\nsecond line", RUN_TIME.replace(minute=31), "", "", None, None)
    assert task_id_for(other.job_id, other.run_time) != fire().task_id


def test_the_executor_s_queue_routes_the_message():
    app = memory_app()
    CeleryExecutor(app=app, queue="reports").enqueue(fire(queue="reports"))
    assert read_one(app, "reports").headers["task"] == TASK_NAME


def test_the_app_comes_from_the_backend_option_the_setting_or_celery_s_current_app():
    from tests import celery_app

    assert CeleryExecutor(backend="tests.celery_app:app").app is celery_app.app
    assert load_app("tests.celery_app.app") is celery_app.app
    with override_settings(APSCHEDULER_CELERY_APP="tests.celery_app:app"):
        assert CeleryExecutor().app is celery_app.app
    own = memory_app("own")
    own.set_current()
    with override_settings(APSCHEDULER_CELERY_APP=None):
        assert CeleryExecutor().app is own
    celery_app.app.set_current()
    with pytest.raises(TypeError, match="not a Celery app"):
        load_app("tests.settings:SECRET_KEY")


def test_a_broker_that_refuses_raises_from_enqueue():
    """The hand-off then records the fire's failure; nothing is swallowed here."""
    app = Celery("down", broker="redis://127.0.0.1:1/0", set_as_current=False)
    app.conf.broker_transport_options = {"max_retries": 0}
    executor = CeleryExecutor(app=app)
    with pytest.raises(Exception) as raised:
        executor.enqueue(fire())
    assert raised.type.__name__ in ("OperationalError", "ConnectionError"), raised
    assert executor._producers == {} and executor._local.producer is None  # the next fire starts afresh


def test_one_producer_serves_every_fire_until_shutdown():
    app = memory_app("kept")
    executor = CeleryExecutor(app=app)
    executor.start(mock.Mock(), "celery")
    for minute in range(3):
        executor.enqueue(FleetFire("job", RUN_TIME.replace(minute=minute), f"id-{minute}", "job", None, None))
    (kept,) = executor._producers  # one for this thread
    executor.enqueue(fire())
    assert list(executor._producers) == [kept]
    assert [read_one(app).headers["id"] for _ in range(4)] == ["id-0", "id-1", "id-2", fire().task_id]
    executor.shutdown()
    assert executor._producers == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("no_such_module.celery:app", "cannot be imported"),
        ("tests.celery_app:no_such_app", "cannot be imported"),
        ("tests.settings:SECRET_KEY", "not a Celery app"),
    ],
)
def test_the_check_names_an_unusable_celery_app(value, says):
    with override_settings(APSCHEDULER_CELERY_APP=value):
        (error,) = checks.check_celery_app()
    assert isinstance(error, Error) and error.id == "django_apscheduler.E007"
    assert says in error.msg and repr(value) in error.msg


def test_the_check_accepts_a_celery_app_or_no_setting():
    with override_settings(APSCHEDULER_CELERY_APP="tests.celery_app:app"):
        assert checks.check_celery_app() == []
    with override_settings(APSCHEDULER_CELERY_APP=None):
        assert checks.check_celery_app() == []


def test_register_tasks_puts_one_trampoline_on_the_app_that_runs_the_fire():
    app = memory_app("workers")
    task = register_tasks(app)
    assert register_tasks(app) is task or register_tasks(app).name == task.name
    assert app.tasks[TASK_NAME].name == TASK_NAME
    with mock.patch("django_apscheduler.executors.worker.run_fire", return_value="Executed") as run_fire:
        assert app.tasks[TASK_NAME]("job/1", "2026-03-29T01:30:00+00:00") == "Executed"
    run_fire.assert_called_once_with("job/1", "2026-03-29T01:30:00+00:00")


def test_register_tasks_passes_task_options():
    app = memory_app("late")
    register_tasks(app, acks_late=True)
    assert app.tasks[TASK_NAME].acks_late is True


def test_the_settings_build_a_celery_executor_per_alias():
    from django_apscheduler.executors import build_executor

    executor = build_executor({"type": "celery", "queue": "reports", "backend": "tests.celery_app:app"})
    assert isinstance(executor, CeleryExecutor) and executor.queue == "reports"
    from tests import celery_app

    assert executor.app is celery_app.app


def test_each_sending_thread_gives_its_producer_back_as_it_ends_even_after_a_stop_without_wait():
    """shutdown(wait=False) must not hand back a producer a sending thread still uses."""
    import threading

    app = memory_app("threads")
    executor = CeleryExecutor(app=app)
    executor.start(mock.Mock(), "celery")
    release, started = threading.Event(), threading.Event()
    in_thread = []

    def send_from_a_sending_thread():
        executor.enqueue(fire())
        in_thread.append(executor._local.producer)
        started.set()
        release.wait(10)
        executor.enqueue(FleetFire("job", RUN_TIME.replace(minute=1), "id-late", "job", None, None))
        executor._sender_thread_ends()

    thread = threading.Thread(target=send_from_a_sending_thread)
    thread.start()
    assert started.wait(10)
    executor.shutdown(wait=False)
    assert list(executor._producers) == in_thread  # still in use: not released
    release.set()
    thread.join(10)
    assert executor._producers == {}  # released by its thread, once
    assert [read_one(app).headers["id"] for _ in range(2)] == [fire().task_id, "id-late"]


def test_a_small_broker_pool_gets_fewer_sending_threads():
    app = memory_app("small-pool")
    app.conf.broker_pool_limit = 4
    executor = CeleryExecutor(app=app)
    executor.start(mock.Mock(), "celery")
    assert executor.sender_threads == 2
    executor.shutdown()
