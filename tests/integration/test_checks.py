"""System checks turn misconfiguration into `manage.py check` errors with the fix."""

import sys
import types

import pytest
from django.core import checks
from django.test import override_settings

from django_apscheduler import checks as our_checks


def ids(messages):
    return [message.id for message in messages]


@pytest.mark.parametrize(
    "name, value",
    [
        ("APSCHEDULER_POLL_INTERVAL", "2"),
        ("APSCHEDULER_POLL_INTERVAL", 0),
        ("APSCHEDULER_RUN_NOW_TIMEOUT", -1),
        ("APSCHEDULER_AUTOSTART", "yes"),
        ("APSCHEDULER_UNDECLARED_JOBS", "delete"),
        ("APSCHEDULER_HISTORY_RETENTION", "7d"),
        ("APSCHEDULER_CLAIM_BATCH_SIZE", 1.5),
        ("APSCHEDULER_DATETIME_FORMAT", None),
        ("APSCHEDULER_METRICS_JOB_LABEL", "no"),
    ],
)
def test_wrong_setting_types_are_errors_with_a_hint(name, value):
    with override_settings(**{name: value}):
        messages = our_checks.check_settings()
    assert ids(messages) == ["django_apscheduler.E001"]
    assert name in messages[0].msg and "Set" in messages[0].hint


def test_default_settings_pass():
    assert our_checks.check_settings() == []
    assert our_checks.check_time_zone() == []
    assert our_checks.check_autostart_server() == []


@override_settings(APSCHEDULER_HEARTBEAT_INTERVAL=10, APSCHEDULER_HEARTBEAT_TIMEOUT=15)
def test_heartbeat_timeout_too_close_to_the_interval():
    assert ids(our_checks.check_settings()) == ["django_apscheduler.E002"]


@override_settings(USE_TZ=False, TIME_ZONE="Europe/London")
def test_naive_local_times_get_a_warning():
    assert ids(our_checks.check_time_zone()) == ["django_apscheduler.W001"]


@override_settings(APSCHEDULER_AUTOSTART=True)
def test_autostart_under_uwsgi_without_threads(monkeypatch):
    fake_uwsgi = types.SimpleNamespace(opt={})
    monkeypatch.setitem(sys.modules, "uwsgi", fake_uwsgi)
    assert ids(our_checks.check_autostart_server()) == ["django_apscheduler.E004"]
    fake_uwsgi.opt["enable-threads"] = True
    assert our_checks.check_autostart_server() == []


def test_checks_are_registered_with_django():
    registered = {check.__name__ for check in checks.registry.registry.get_checks(include_deployment_checks=False)}
    assert {"check_settings", "check_time_zone", "check_autostart_server", "check_migrated"} <= registered


@pytest.mark.django_db
def test_migrated_database_passes_the_database_check():
    assert our_checks.check_migrated(databases=["default"]) == []
