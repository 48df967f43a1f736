"""The public helpers in django_apscheduler.util, settings defaults and deprecated API."""

from datetime import datetime
from datetime import timezone as dt_timezone
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone

from django_apscheduler import conf, util
from django_apscheduler.jobstores import register_events, register_job
from django_apscheduler.timezones import to_db


def test_setting_defaults():
    assert util.get_dt_format() == "N j, Y, f:s a"
    assert conf.get("APSCHEDULER_RUN_NOW_TIMEOUT") == 25


@override_settings(APSCHEDULER_DATETIME_FORMAT="Y-m-d H:i", APSCHEDULER_RUN_NOW_TIMEOUT=3)
def test_settings_are_read_and_follow_overrides():
    assert util.get_dt_format() == "Y-m-d H:i"
    assert conf.get("APSCHEDULER_RUN_NOW_TIMEOUT") == 3


def test_unknown_setting_is_an_error():
    with pytest.raises(KeyError):
        conf.get("APSCHEDULER_NOPE")


@override_settings(USE_TZ=True, TIME_ZONE="Europe/London", APSCHEDULER_DATETIME_FORMAT="Y-m-d H:i:s")
def test_get_local_dt_format_uses_local_time():
    summer = datetime(2030, 7, 1, 12, 0, tzinfo=dt_timezone.utc)
    assert util.get_local_dt_format(summer) == "2030-07-01 13:00:00"
    assert util.get_local_dt_format(None) == ""


@override_settings(USE_TZ=True, TIME_ZONE="Europe/Paris")
def test_get_django_internal_datetime_with_tz():
    naive = datetime(2030, 1, 1, 12, 0)
    aware = util.get_django_internal_datetime(naive)
    assert aware.tzinfo is not None and aware.utcoffset().total_seconds() == 3600


@override_settings(USE_TZ=False, TIME_ZONE="Europe/Paris")
def test_get_django_internal_datetime_without_tz():
    aware = datetime(2030, 1, 1, 11, 0, tzinfo=dt_timezone.utc)
    assert util.get_django_internal_datetime(aware) == datetime(2030, 1, 1, 12, 0)


def test_get_apscheduler_datetime():
    scheduler = BackgroundScheduler(timezone="America/New_York")
    naive = datetime(2030, 1, 1, 12, 0)
    result = util.get_apscheduler_datetime(naive, scheduler)
    assert result.tzinfo is not None and result.hour == 12
    assert result.utcoffset() == ZoneInfo("America/New_York").utcoffset(naive)


def test_get_apscheduler_datetime_keeps_the_instant_of_an_aware_one():
    scheduler = BackgroundScheduler(timezone="America/New_York")
    aware = datetime(2030, 1, 1, 17, 0, tzinfo=dt_timezone.utc)
    result = util.get_apscheduler_datetime(aware, scheduler)
    assert result == aware and result.tzinfo == ZoneInfo("America/New_York") and result.hour == 12


def test_none_stays_none_as_in_0_7():
    assert util.get_django_internal_datetime(None) is None
    assert util.get_apscheduler_datetime(None, BackgroundScheduler(timezone="UTC")) is None


@pytest.mark.parametrize("use_tz", [True, False], ids=["USE_TZ=True", "USE_TZ=False"])
@pytest.mark.parametrize(
    "value",
    [
        datetime(2030, 1, 1, 12, 0),
        datetime(2030, 1, 1, 11, 0, tzinfo=dt_timezone.utc),
        datetime(2030, 3, 31, 1, 30, tzinfo=dt_timezone.utc),  # 02:30 BST, just after the spring gap
        datetime(2030, 3, 31, 1, 30, tzinfo=ZoneInfo("Europe/London")),  # a wall time in the gap
        datetime(2030, 10, 27, 1, 30, fold=1, tzinfo=ZoneInfo("Europe/London")),  # the repeated hour, again
    ],
)
def test_get_django_internal_datetime_is_what_the_job_store_stores(use_tz, value):
    with override_settings(USE_TZ=use_tz, TIME_ZONE="Europe/London"):
        assert util.get_django_internal_datetime(value) == to_db(value)


@override_settings(USE_TZ=False, TIME_ZONE="Europe/Paris")
def test_without_tz_the_stored_wall_time_is_in_time_zone_whatever_zone_is_active():
    # With USE_TZ = False, Django stores naive times in TIME_ZONE; an activated zone
    # (a user's, in a request) must not shift what is written.
    aware = datetime(2030, 1, 1, 11, 0, tzinfo=dt_timezone.utc)
    with timezone.override(ZoneInfo("Asia/Tokyo")):
        assert util.get_django_internal_datetime(aware) == datetime(2030, 1, 1, 12, 0)


def test_retry_on_db_operational_error_retries_once_on_a_new_connection():
    calls = []

    @util.retry_on_db_operational_error
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("gone away")
        return "done"

    with mock.patch("django.db.connection.close") as close:
        assert flaky() == "done"
    assert len(calls) == 2 and close.called


def test_retry_on_db_operational_error_gives_up_after_one_retry():
    @util.retry_on_db_operational_error
    def broken():
        raise OperationalError("still gone")

    with mock.patch("django.db.connection.close"), pytest.raises(OperationalError):
        broken()


def test_close_old_connections_runs_before_and_after():
    with mock.patch("django.db.close_old_connections") as close:

        @util.close_old_connections
        def job(value):
            assert close.call_count == 1
            return value * 2

        assert job(21) == 42
    assert close.call_count == 2


def test_register_events_is_deprecated():
    with pytest.deprecated_call():
        register_events(BackgroundScheduler())


def test_register_job_is_deprecated_and_still_adds_the_job():
    scheduler = BackgroundScheduler()
    with pytest.deprecated_call():

        @register_job(scheduler, "interval", seconds=30)
        def ticking():
            pass

    (job,) = scheduler.get_jobs()
    assert job.id == f"{__name__}.ticking"
