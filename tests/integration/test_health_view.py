"""The health view (tests/urls.py mounts it at /health/): 200 only with the schema migrated and a live scheduler."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings

from django_apscheduler.models import SchedulerInstance
from django_apscheduler.timezones import to_db, utc_now

LATEST = "0021_postgres_insert_trigger_per_statement"


def scheduler_row(heartbeat_age: float, **fields) -> SchedulerInstance:
    now = utc_now()
    beat = to_db(now - timedelta(seconds=heartbeat_age))
    return SchedulerInstance.objects.create(
        host="secret-host.internal", pid=4242, started=beat, last_heartbeat=beat, **fields
    )


@pytest.mark.django_db
def test_no_scheduler_ever_is_503(client):
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "no scheduler has ever run" in body["reason"]
    assert body["live_schedulers"] == 0 and body["newest_heartbeat_age_seconds"] is None
    assert body["pending_migrations"] == []


@pytest.mark.django_db
def test_a_live_scheduler_is_200_and_shows_nothing_about_hosts(client):
    scheduler_row(heartbeat_age=1)
    scheduler_row(heartbeat_age=3600, stopped=to_db(utc_now()))  # an old one, stopped: not counted
    response = client.get("/health/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["live_schedulers"] == 1
    assert 0.5 < body["newest_heartbeat_age_seconds"] < 30
    assert body["heartbeat_timeout_seconds"] == 30.0
    assert "secret-host" not in response.content.decode() and "4242" not in response.content.decode()
    assert response["Cache-Control"].startswith("max-age=0")
    assert client.head("/health/").status_code == 200


@pytest.mark.django_db
@override_settings(APSCHEDULER_HEARTBEAT_TIMEOUT=20)
def test_a_stale_heartbeat_is_503_with_its_age(client):
    scheduler_row(heartbeat_age=25)
    body = client.get("/health/").json()
    assert body["status"] == "unavailable" and body["live_schedulers"] == 0
    assert "no live scheduler: the newest heartbeat is 25 s old" in body["reason"]
    assert 24 < body["newest_heartbeat_age_seconds"] < 60
    assert body["heartbeat_timeout_seconds"] == 20


@pytest.mark.django_db
def test_a_scheduler_found_dead_is_503_even_with_a_fresh_heartbeat(client):
    scheduler_row(heartbeat_age=1, died=to_db(utc_now()))
    assert client.get("/health/").status_code == 503


@pytest.mark.django_db
def test_an_unapplied_migration_is_503_naming_it(client):
    scheduler_row(heartbeat_age=1)
    MigrationRecorder(connection).record_unapplied("django_apscheduler", LATEST)  # rolled back after the test
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["pending_migrations"] == [LATEST]
    assert "run `python manage.py migrate` first" in body["reason"]
    assert body["live_schedulers"] is None  # not asked: the schema comes first


@pytest.mark.django_db
def test_only_safe_methods(client):
    assert client.post("/health/").status_code == 405
    assert client.post("/metrics/").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_database_is_503_without_its_address(client):
    """A real connection failure: the connection's address is changed to one where nothing listens."""
    settings = connection.settings_dict
    saved = dict(settings)
    connection.close()
    if connection.vendor == "sqlite":
        settings["NAME"] = "/nonexistent-directory/secret.sqlite3"
    else:
        settings["HOST"], settings["PORT"] = "127.0.0.1", "9"  # the discard port: connection refused
    try:
        response = client.get("/health/")
    finally:
        connection.close()
        settings.clear()
        settings.update(saved)
    assert response.status_code == 503
    body = response.json()
    assert body["reason"].startswith("database unreachable (") and body["live_schedulers"] is None
    assert "secret" not in response.content.decode() and ":9" not in response.content.decode()
    assert SchedulerInstance.objects.count() == 0  # and the database is back for what follows
