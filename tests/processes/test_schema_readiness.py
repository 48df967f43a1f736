"""Real processes on a database migrated only to 0012: "run migrate first", at once, and no traceback.

Each test uses its own throwaway SQLite file (the settings' ``AUTOSTART_SQLITE``),
so the shared test database keeps its full schema.
"""

import signal
import subprocess
import sys
import time

import pytest

from tests.processes.test_autostart import free_port, server_env

pytestmark = pytest.mark.processes

HINT = "run `python manage.py migrate` first"


@pytest.fixture
def env_at_0012(subprocess_env, tmp_path):
    env = server_env(subprocess_env, tmp_path)
    env["AUTOSTART_SQLITE"] = str(tmp_path / "at_0012.sqlite3")
    subprocess.run([sys.executable, "-m", "django", "migrate", "-v0"], env=env, check=True)
    subprocess.run([sys.executable, "-m", "django", "migrate", "django_apscheduler", "0012", "-v0"], env=env, check=True)
    return env


def manage(env, *argv, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "django", *argv], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("argv", [["apscheduler", "start"], ["apscheduler", "list"], ["apscheduler", "status"]])
def test_the_command_exits_at_once_saying_migrate(env_at_0012, argv):
    started = time.monotonic()
    result = manage(env_at_0012, *argv)
    assert time.monotonic() - started < 30  # `start` does not retry a schema error as an outage
    assert result.returncode == 1
    assert HINT in result.stderr and "0013_run_requests" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "reachable" not in result.stderr


def test_autostart_says_migrate_then_starts_once_migrated(env_at_0012):
    runserver = [sys.executable, "-m", "django", "runserver", "--noreload", f"127.0.0.1:{free_port()}"]

    def boot():
        process = subprocess.Popen(
            runserver, env=env_at_0012, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        time.sleep(6)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
        return out

    first = boot()
    assert "Scheduler not started" in first and HINT in first and "0013_run_requests" in first, first
    assert "Traceback" not in first
    assert "Scheduler autostarted" not in first
    manage(env_at_0012, "migrate", "-v0")
    second = boot()
    assert "Scheduler autostarted" in second, second
