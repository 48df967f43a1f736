"""APSCHEDULER_AUTOSTART: which processes start a scheduler; gunicorn with several workers; daphne."""

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.test import override_settings

from django_apscheduler import autostart
from django_apscheduler.models import DjangoJobExecution, SchedulerInstance
from tests.cluster import assert_clean_logs
from tests.helpers import wait_until

ONE_OFF_COMMANDS = [
    "migrate",
    "makemigrations",
    "test",
    "shell",
    "dbshell",
    "collectstatic",
    "check",
    "createsuperuser",
    "flush",
    "loaddata",
    "dumpdata",
    "apscheduler",
]


@pytest.fixture
def outside_pytest(monkeypatch):
    """Make decide() look at argv alone, as it would in a real server process."""
    monkeypatch.delitem(sys.modules, "pytest")
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)


@override_settings(APSCHEDULER_AUTOSTART=True)
@pytest.mark.parametrize("command", ONE_OFF_COMMANDS)
def test_never_in_one_off_commands(outside_pytest, command):
    allowed, reason = autostart.decide(["manage.py", command], {"RUN_MAIN": "true"})
    assert not allowed and command in reason


@override_settings(APSCHEDULER_AUTOSTART=True)
@pytest.mark.parametrize(
    "argv, environ, expected",
    [
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),
        (["manage.py", "runserver"], {}, False),  # the autoreloader's parent
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["/venv/bin/gunicorn", "site.wsgi"], {}, True),
        (["/venv/lib/python3.11/site-packages/gunicorn/__main__.py", "site.wsgi"], {}, True),
        (["/venv/lib/python3.11/site-packages/django/__main__.py", "runserver"], {"RUN_MAIN": "true"}, True),
        (["/venv/lib/python3.11/site-packages/django/__main__.py", "migrate"], {}, False),
        (["/usr/bin/uwsgi", "--ini", "x.ini"], {}, True),
        (["/venv/bin/daphne", "site.asgi:application"], {}, True),
        (["/venv/bin/celery", "worker"], {}, False),
        (["some_script.py"], {}, False),
    ],
)
def test_only_serving_processes_start(outside_pytest, argv, environ, expected):
    assert autostart.decide(argv, environ)[0] is expected


def test_never_under_pytest():
    with override_settings(APSCHEDULER_AUTOSTART=True):
        allowed, reason = autostart.decide(["/venv/bin/gunicorn", "site.wsgi"], {})
    assert not allowed and "pytest" in reason


def test_off_unless_enabled(outside_pytest):
    assert autostart.decide(["/venv/bin/gunicorn"], {}) == (False, "APSCHEDULER_AUTOSTART is off")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(subprocess_env, tmp_path):
    env = dict(subprocess_env)
    env.pop("PYTEST_CURRENT_TEST", None)  # the guard would (rightly) refuse otherwise
    env["DJANGO_SETTINGS_MODULE"] = "tests.autostart_settings"
    env["AUTOSTART_LOG"] = str(tmp_path / "calls.log")
    return env


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_gunicorn_with_three_workers_runs_each_fire_once(subprocess_env, tmp_path):
    env = server_env(subprocess_env, tmp_path)
    output = open(tmp_path / "gunicorn.out", "w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "--workers", "3", "--bind", f"127.0.0.1:{free_port()}",
            "--graceful-timeout", "20", "tests.autostart_wsgi:application",
        ],
        env=env, stdout=output, stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: SchedulerInstance.objects.filter(stopped=None).count() >= 3, timeout=40,
                   message="three autostarted schedulers")
        time.sleep(10)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    log = (tmp_path / "gunicorn.out").read_text()
    instances = SchedulerInstance.objects.all()
    assert instances.count() == 3, log
    assert server.pid not in set(instances.values_list("pid", flat=True))  # the master runs none
    calls = (tmp_path / "calls.log").read_text().splitlines()
    rows = DjangoJobExecution.objects.filter(job_id="autostart.tick")
    assert rows.count() >= 8
    assert len(calls) == rows.count(), (len(calls), rows.count())  # zero duplicate fires
    assert set(rows.values_list("status", flat=True)) == {DjangoJobExecution.SUCCESS}
    assert_clean_logs(log)


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_daphne_autostarts_a_thread_scheduler_and_serves(subprocess_env, tmp_path):
    """Daphne sends no ASGI lifespan events: autostart is the way, and it says which scheduler it runs."""
    env = server_env(subprocess_env, tmp_path)
    port = free_port()
    output = open(tmp_path / "daphne.out", "w")
    daphne = Path(sys.executable).with_name("daphne")
    server = subprocess.Popen(
        [str(daphne), "-b", "127.0.0.1", "-p", str(port), "tests.autostart_asgi:application"],
        env=env, stdout=output, stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: SchedulerInstance.objects.filter(stopped=None).exists(), timeout=40,
                   message="the autostarted scheduler")
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=20)
        assert page.status == 200
        wait_until(lambda: DjangoJobExecution.objects.filter(job_id="autostart.tick").count() >= 4, timeout=40,
                   message="four fires of the declared job")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    log = (tmp_path / "daphne.out").read_text()
    [instance] = SchedulerInstance.objects.all()
    assert instance.pid == server.pid, log
    assert "Autostart under daphne runs a BackgroundScheduler" in log
    calls = (tmp_path / "calls.log").read_text().splitlines()
    rows = DjangoJobExecution.objects.filter(job_id="autostart.tick")
    assert len(calls) == rows.count(), (len(calls), rows.count())
    assert set(rows.values_list("status", flat=True)) <= {DjangoJobExecution.SUCCESS, DjangoJobExecution.SENT}
    assert "SynchronousOnlyOperation" not in log
    assert_clean_logs(log)


@pytest.mark.processes
def test_runserver_on_a_fresh_database_says_migrate_first_then_starts(subprocess_env, tmp_path):
    env = server_env(subprocess_env, tmp_path)
    env["AUTOSTART_SQLITE"] = str(tmp_path / "fresh.sqlite3")
    runserver = [sys.executable, "-m", "django", "runserver", "--noreload", f"127.0.0.1:{free_port()}"]

    def boot():
        process = subprocess.Popen(runserver, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(6)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
        return out

    first = boot()
    assert "run `python manage.py migrate` first" in first, first
    assert "Traceback" not in first
    subprocess.run([sys.executable, "-m", "django", "migrate", "-v0"], env=env, check=True)
    second = boot()
    assert "Scheduler autostarted" in second, second
