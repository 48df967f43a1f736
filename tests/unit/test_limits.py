"""The bounds of ``limits`` and the schedule editor's form, with no database.

Examples for the edges the issue names, and hypothesis properties: a check never
fails in any other way than its ValueError, and the form never raises, whatever it
is given, in any time zone (DST zones included).
"""

import json
import math
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from django_apscheduler import limits
from django_apscheduler.forms import ScheduleForm

# --- job ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", ["a/b", "a_2Fb", "users_24h", "../../../logout", "a\nb", "x" * 255, "日本語", "🙂"])
def test_ids_any_database_stores_are_accepted(job_id):
    assert limits.check_job_id(job_id) == job_id


@pytest.mark.parametrize(
    "job_id, words",
    [("x" * 256, "256 characters"), ("a\x00b", "NUL"), ("a\ud800b", "surrogate")],
)
def test_ids_a_database_would_refuse_or_cut_are_a_clear_error(job_id, words):
    with pytest.raises(ValueError, match=words):
        limits.check_job_id(job_id)


def test_an_id_that_is_not_text_is_a_type_error():
    with pytest.raises(TypeError, match="must be a string, not int"):
        limits.check_job_id(42)


@given(st.text(max_size=300))
def test_an_id_is_refused_exactly_when_too_long_or_unstorable(job_id):
    storable = len(job_id) <= limits.MAX_JOB_ID_LENGTH and "\x00" not in job_id
    storable = storable and not any("\ud800" <= char <= "\udfff" for char in job_id)
    try:
        limits.check_job_id(job_id)
    except ValueError:
        assert not storable
    else:
        assert storable


# --- JSON depth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, depth",
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[", "]]]]"]', 1),  # brackets inside strings do not count
        ('["\\"[[[["]', 1),  # nor after an escaped quote
        ("[" * 900 + "]" * 900, limits.MAX_JSON_DEPTH + 1),  # counting stops past the bound
        ("]]]][[", 2),  # not JSON: measured anyway, never negative
    ],
)
def test_json_depth(text, depth):
    assert limits.json_depth(text) == depth


def _depth(value):
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=20,
)


@given(json_values)
def test_json_depth_is_the_nesting_of_the_value(value):
    assert limits.json_depth(json.dumps(value)) == min(_depth(value), limits.MAX_JSON_DEPTH + 1)


@given(st.text())
def test_json_depth_never_fails(text):
    assert 0 <= limits.json_depth(text) <= limits.MAX_JSON_DEPTH + 1


# --- numbers of the command line ----------------------------------------------------------


@pytest.mark.parametrize("value", [-1, -0.5, math.nan, math.inf, -math.inf, 99999999999, limits.MAX_HISTORY_AGE + 1])
def test_seconds_out_of_bounds_are_refused_with_the_bound(value):
    with pytest.raises(ValueError, match=f"between 0 and {limits.MAX_HISTORY_AGE:,}"):
        limits.check_seconds(value, name="--max-age", maximum=limits.MAX_HISTORY_AGE)


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_accepted_seconds_make_a_date_time(value):
    try:
        seconds = limits.check_seconds(value, name="--max-age", maximum=limits.MAX_HISTORY_AGE)
    except ValueError as error:
        assert "--max-age" in str(error)
    else:  # what prune then computes must not overflow
        assert datetime.now(timezone.utc) - timedelta(seconds=seconds) > datetime(1900, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("workers, ok", [(0, False), (1, True), (limits.MAX_WORKERS, True), (10**9, False), (-5, False)])
def test_workers(workers, ok):
    if ok:
        assert limits.check_workers(workers) == workers
    else:
        with pytest.raises(ValueError, match=f"between 1 and {limits.MAX_WORKERS:,}"):
            limits.check_workers(workers)


# --- dates --------------------------------------------------------------------------------


def test_a_time_past_year_9999_in_utc_is_refused():
    new_york = datetime(9999, 12, 31, 23, 59, tzinfo=ZoneInfo("America/New_York"))
    with pytest.raises(ValueError, match="past the last date-time that can be stored"):
        limits.storable_time(new_york)
    kiritimati = datetime(9999, 12, 31, 23, 59, tzinfo=ZoneInfo("Pacific/Kiritimati"))  # east of UTC: fits
    assert limits.storable_time(kiritimati) is kiritimati
    assert limits.storable_time(None) is None


# --- the schedule editor, whatever it is given --------------------------------------------

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Kiritimati", "Pacific/Pago_Pago"]

form_text = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats().map(str),
    st.sampled_from(["0", "1", "600000", "10" + "0" * 18, "9" * 5000, "", " ", "1e9", "-1"]),
)
dates = st.one_of(
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M")),
    st.datetimes(min_value=datetime(2040, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M")),
    st.sampled_from(["9999-12-31T23:59", "0001-01-01T00:00", "2030-03-10T02:30", "2030-11-03T01:30", "junk", ""]),
)
crontabs = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["0 0 31 2 *", "* * * * *", "0 0 29 2 *", "*/0 * * * *", "61 * * * *", "0 0 * * 8", "1" * 300]),
    st.lists(st.sampled_from(["*", "*/5", "1-5", "0", "59", "31", "2", "mon", "jan", "1,2"]), min_size=5, max_size=5).map(" ".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone=st.sampled_from(ZONES),
    kind=st.sampled_from(["cron", "interval", "date"] * 3 + ["bogus", ""]),
    crontab=crontabs,
    every=st.one_of(st.integers(1, 10**14).map(str), form_text),
    unit=st.sampled_from(["seconds", "minutes", "hours", "days", "weeks", "fortnights"]),
    run_date=dates,
    max_instances=st.one_of(st.integers(1, 10**6).map(str), form_text),
    misfire_grace_time=st.one_of(st.just(""), st.integers(1, 10**13).map(str), form_text),
)
def test_the_schedule_form_never_raises_and_a_valid_one_has_a_storable_next_fire(
    zone, kind, crontab, every, unit, run_date, max_instances, misfire_grace_time
):
    data = {
        "kind": kind,
        "crontab": crontab,
        "every": every,
        "unit": unit,
        "run_date": run_date,
        "max_instances": max_instances,
        "misfire_grace_time": misfire_grace_time,
    }
    with override_settings(TIME_ZONE=zone):
        form = ScheduleForm(data)
        valid = form.is_valid()  # must not raise
        event(f"valid={valid}")
        if not valid:
            assert form.errors  # every refusal is a form error
            return
        trigger = form.cleaned_data["trigger"]
        upcoming = trigger.get_next_fire_time(None, datetime.now(timezone.utc))
    assert upcoming is not None and limits.storable_time(upcoming) is upcoming
    assert 1 <= form.cleaned_data["max_instances"] <= limits.MAX_INSTANCES
    grace = form.cleaned_data["misfire_grace_time"]
    assert grace is None or 1 <= grace <= limits.MAX_MISFIRE_GRACE_TIME


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(
    "fields, field",
    [
        ({"kind": "cron", "crontab": "0 0 31 2 *"}, "crontab"),  # never fires
        ({"kind": "interval", "every": "600000", "unit": "weeks"}, "every"),
        ({"kind": "interval", "every": str(10**18), "unit": "seconds"}, "every"),
        ({"kind": "interval", "every": "9" * 5000, "unit": "seconds"}, "every"),  # more digits than int() reads
        ({"kind": "cron", "crontab": "* " * 1_000_000}, "crontab"),  # 2 MB line
    ],
)
def test_schedules_out_of_reach_are_errors_on_their_field_in_every_zone(zone, fields, field):
    data = {"max_instances": "1", "misfire_grace_time": "", "crontab": "", "every": "", "unit": "minutes", "run_date": ""}
    with override_settings(TIME_ZONE=zone):
        form = ScheduleForm({**data, **fields})
        assert not form.is_valid()
    assert field in form.errors, form.errors
