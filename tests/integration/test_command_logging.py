"""``manage.py apscheduler`` leaves a project's logging configuration alone.

The command prints the scheduler's lifecycle lines ("Starting scheduler", "Scheduler
stopped.") itself only when nothing is configured to show them: a handler on our
loggers or on any ancestor, the root logger included, means the project decides.
It never stops records from propagating to the root logger.
"""

import logging
import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager

import pytest

from django_apscheduler.management.commands.apscheduler import _show_lifecycle_logs
from tests.helpers import wait_until

OURS = ("apscheduler", "django_apscheduler")


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextmanager
def bare_logging():
    """No handlers on the root logger or ours, as in a project that configured none; restored after."""
    loggers = [logging.getLogger(), *map(logging.getLogger, OURS)]
    saved = [(log, log.handlers[:], log.level, log.propagate) for log in loggers]
    for log in loggers:
        log.handlers = []
        log.setLevel(logging.NOTSET if log.name != "root" else logging.WARNING)
        log.propagate = True
    try:
        yield
    finally:
        for log, handlers, level, propagate in saved:
            log.handlers = handlers
            log.setLevel(level)
            log.propagate = propagate


def test_a_root_only_configuration_receives_the_lifecycle_lines():
    with bare_logging():
        root = Collect()
        logging.getLogger().addHandler(root)
        logging.getLogger().setLevel(logging.INFO)
        _show_lifecycle_logs(verbosity=1)
        assert [logging.getLogger(name).handlers for name in OURS] == [[], []]
        assert all(logging.getLogger(name).propagate for name in OURS)
        logging.getLogger("django_apscheduler.runner").info("Starting scheduler")
        logging.getLogger("apscheduler.scheduler").info("Scheduler started")
    assert [(r.name, r.getMessage()) for r in root.records] == [
        ("django_apscheduler.runner", "Starting scheduler"),
        ("apscheduler.scheduler", "Scheduler started"),
    ]


def test_with_no_configuration_at_all_the_command_prints_them_itself():
    with bare_logging():
        _show_lifecycle_logs(verbosity=1)
        for name in OURS:
            log = logging.getLogger(name)
            assert len(log.handlers) == 1 and log.level == logging.INFO
            assert log.propagate  # a root handler added later sees them too
        _show_lifecycle_logs(verbosity=1)  # a second command in the same process adds none
        assert [len(logging.getLogger(name).handlers) for name in OURS] == [1, 1]


def test_a_project_configuring_our_logger_keeps_its_handler_and_level():
    with bare_logging():
        own = Collect()
        log = logging.getLogger("django_apscheduler")
        log.addHandler(own)
        log.setLevel(logging.ERROR)
        _show_lifecycle_logs(verbosity=2)
        assert log.handlers == [own] and log.level == logging.ERROR and log.propagate


ROOT_ONLY_SETTINGS = """
from tests.settings import *  # noqa: F401,F403 (database of the running test)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"project": {"format": "PROJECT %(name)s: %(message)s"}},
    "handlers": {"out": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "project"}},
    "root": {"handlers": ["out"], "level": "INFO"},
}
"""


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_start_logs_through_the_projects_root_handler_once(tmp_path, subprocess_env):
    (tmp_path / "root_only_settings.py").write_text(textwrap.dedent(ROOT_ONLY_SETTINGS))
    env = dict(subprocess_env, DJANGO_SETTINGS_MODULE="root_only_settings")
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    log_path = tmp_path / "output.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "apscheduler", "start", "--workers", "1"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until(
                lambda: "Scheduler started" in log_path.read_text(), timeout=30, message="the scheduler to start"
            )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    output = log_path.read_text()
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    for line in (
        "PROJECT django_apscheduler.runner: Starting scheduler",
        "PROJECT apscheduler.scheduler: Scheduler started",
    ):
        assert output.count(line) == 1, output
    assert output.count("Starting scheduler") == 1, output  # not a second time through a handler of ours
    assert "PROJECT django_apscheduler.runner: Scheduler stopped." in output, output
