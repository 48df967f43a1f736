"""Every input bounded and validated (issue 13): the admin's forms, the job store, @job, the command line.

Each bad input gets a clear error (a form error, JobStateError/ValueError, a
CommandError, a log line naming the job), never a 500 or a traceback, and nothing
is written or lost. Examples for each row of the issue, hypothesis properties
over the add-job form and the store's validation.
"""

import json
import logging
import math
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from django_apscheduler import jobstate, limits, operations, registry
from django_apscheduler.forms import CreateJobForm
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests import jobfuncs
from tests.helpers import build_job, post_add_job

UTC = timezone.utc
NEXT_WEEK = datetime.now(UTC) + timedelta(days=7)
ADD_URL = reverse("admin:django_apscheduler_djangojob_add")
SLEEP_REF = "tests.jobfuncs:sleep_for"
KWARGS_REF = "tests.jobfuncs:noop"


@pytest.fixture
def declared(isolated_registry):
    registry.job("interval", hours=1)(jobfuncs.sleep_for)


def nested(depth):
    return "[" * depth + "]" * depth


# --- the admin's add-job form ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [900, 2_000, 100_000])
@pytest.mark.parametrize("field", ["args", "kwargs"])
def test_json_arguments_nested_deep_are_a_form_error_not_a_500(admin_client, declared, depth, field):
    text = nested(depth) if field == "args" else '{"a": ' + nested(depth) + "}"
    response = post_add_job(admin_client, **{field: text})
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors[field])
    # 100,000 levels are 200,000 bytes: the size bound speaks first.
    assert ("nested at most 32 levels" if depth < 30_000 else "At most 65,536 bytes of JSON") in errors
    assert not DjangoJob.objects.exists()


@pytest.mark.django_db
def test_json_arguments_over_64_kib_are_a_form_error(admin_client, declared):
    response = post_add_job(admin_client, args='["' + "x" * limits.MAX_JSON_BYTES + '"]')
    assert response.status_code == 200
    assert "At most 65,536 bytes of JSON" in " ".join(response.context["form"].errors["args"])
    assert not DjangoJob.objects.exists()


@pytest.mark.django_db
def test_json_arguments_within_the_bounds_are_stored(admin_client, declared):
    arguments = nested(limits.MAX_JSON_DEPTH - 1)
    response = post_add_job(admin_client, args=f"[{arguments}]")
    assert response.status_code == 302
    job = DjangoJobStore().lookup_job("made-in-admin")
    depth, value = 0, job.args[0]
    while value:
        depth, value = depth + 1, value[0]
    assert depth == limits.MAX_JSON_DEPTH - 2


@pytest.mark.django_db
@pytest.mark.parametrize("job_id", ["a/b", "a_2Fb", "users_24h", "../../../logout", "x" * 255])
def test_ids_with_slashes_underscores_and_dots_are_legitimate(admin_client, declared, job_id):
    assert post_add_job(admin_client, job_id=job_id).status_code == 302
    assert DjangoJob.objects.filter(pk=job_id).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"job_id": "x" * 256}, "job_id", "at most 255 characters"),
        ({"job_id": "a\nb"}, "job_id", "control characters"),
        ({"job_id": "a\tb"}, "job_id", "control characters"),
        ({"job_id": "a\x00b"}, "job_id", "Null characters are not allowed"),
        ({"name": "x" * 256}, "name", "at most 255 characters"),
        ({"name": "two\nlines"}, "name", "control characters"),
    ],
)
def test_ids_and_names_out_of_bounds_are_field_errors(admin_client, declared, fields, field, words):
    response = post_add_job(admin_client, **fields)
    assert response.status_code == 200
    assert words in " ".join(response.context["form"].errors[field])
    assert not DjangoJob.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields, field",
    [
        ({"kind": "interval", "every": "600000", "unit": "weeks"}, "every"),
        ({"kind": "interval", "every": str(10**18), "unit": "seconds"}, "every"),
        ({"kind": "cron", "crontab": "0 0 31 2 *"}, "crontab"),
        ({"kind": "cron", "crontab": "* " * 400}, "crontab"),
        ({"max_instances": str(limits.MAX_INSTANCES + 1)}, "max_instances"),
        ({"misfire_grace_time": str(10**20)}, "misfire_grace_time"),
    ],
)
def test_schedules_and_options_out_of_bounds_are_field_errors_in_a_dst_zone(admin_client, declared, settings, fields, field):
    settings.TIME_ZONE = "America/New_York"
    response = post_add_job(admin_client, **fields)
    assert response.status_code == 200 and field in response.context["form"].errors
    assert not DjangoJob.objects.exists()


json_texts = st.one_of(
    st.text(max_size=200),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
        max_leaves=15,
    ).map(json.dumps),
    st.integers(1, 3_000).map(nested),
    st.sampled_from(["1" * 5_000, "[1e999]", "[NaN]", '{"seconds": 1}', "[0.5]", "[]", "{}"]),
)


json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    job_id=st.one_of(st.text(min_size=1, max_size=300), st.sampled_from(["ok", "a/b", "users_24h", "x" * 256])),
    name=st.one_of(st.just(""), st.text(max_size=300)),
    args=st.one_of(st.lists(json_leaves, max_size=2).map(json.dumps), json_texts),
    kwargs=st.one_of(st.just("{}"), st.dictionaries(st.text(max_size=5), json_leaves, max_size=2).map(json.dumps), json_texts),
    every=st.one_of(st.integers(1, 10**6).map(str), st.integers(-5, 10**20).map(str), st.text(max_size=10)),
    max_instances=st.one_of(st.integers(1, 100).map(str), st.integers(-5, 10**7).map(str), st.text(max_size=5)),
)
def test_the_add_job_form_never_raises_and_what_it_accepts_is_stored(declared, job_id, name, args, kwargs, every, max_instances):
    functions = {SLEEP_REF: jobfuncs.sleep_for, KWARGS_REF: jobfuncs.noop}
    for ref in functions:
        data = {
            "function": ref,
            "job_id": job_id,
            "name": name,
            "args": args,
            "kwargs": kwargs,
            "kind": "interval",
            "every": every,
            "unit": "minutes",
            "max_instances": max_instances,
            "misfire_grace_time": "",
        }
        form = CreateJobForm(data, functions=functions)
        if not form.is_valid():
            assert form.errors
            event("refused by the form")
            continue
        event("stored")
        cleaned = form.cleaned_data
        operations.create_job(
            cleaned["job_id"], functions[ref], cleaned["trigger"], args=cleaned["args"], kwargs=cleaned["kwargs"],
            name=cleaned["name"], max_instances=cleaned["max_instances"],
        )
        stored = operations.load_job(cleaned["job_id"])
        # Compared as text: NaN, a JSON value, is not equal to itself.
        assert repr((stored.args, stored.kwargs)) == repr((tuple(cleaned["args"]), cleaned["kwargs"]))
        DjangoJob.objects.filter(pk=cleaned["job_id"]).delete()


# --- the job store -------------------------------------------------------------------------


def row_count():
    return DjangoJob.objects.count()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "options, words",
    [
        ({"id": "x" * 256}, "256 characters long"),
        ({"id": "a\x00b"}, "NUL"),
        ({"id": "a\ud800b"}, "surrogate"),
        ({"name": "a\x00b"}, "its name cannot be stored"),
        ({"name": "a\udfffb"}, "its name cannot be stored"),
        ({"args": (json.loads(nested(900)),)}, "nested too deeply"),
        ({"args": ("x" * (limits.MAX_STATE_BYTES + 1),)}, "over the limit"),
        ({"next_run_time": datetime(9999, 12, 31, 23, 59, tzinfo=ZoneInfo("America/New_York"))},
         "past the last date-time"),
    ],
)
def test_the_store_refuses_what_no_database_holds_before_writing(jobstore, options, words):
    options = {"id": "job", "next_run_time": NEXT_WEEK, **options}
    job = build_job(options.pop("id"), options.pop("next_run_time"), IntervalTrigger(hours=1, timezone=UTC), **options)
    with pytest.raises(ValueError, match=words):
        jobstore.add_job(job)
    assert row_count() == 0


@pytest.mark.django_db
def test_modify_and_reschedule_out_of_bounds_leave_the_stored_job_as_it_was(scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start(paused=True)
    scheduler.add_job(jobfuncs.noop, "interval", hours=1, id="job", name="kept", max_instances=3)
    before = DjangoJob.objects.values_list("next_run_time", "job_state").get(pk="job")
    with pytest.raises(ValueError, match="max_instances must be a whole number between 1 and 100000"):
        scheduler.modify_job("job", max_instances=10**6)
    with pytest.raises(ValueError, match="misfire_grace_time must be"):
        scheduler.modify_job("job", misfire_grace_time=10**20)
    with pytest.raises(ValueError, match="its name cannot be stored"):
        scheduler.modify_job("job", name="a\x00b")
    # APScheduler itself refuses this one (converting to the scheduler's zone); the store would too.
    with pytest.raises(ValueError, match="year 10000 is out of range|past the last date-time"):
        scheduler.reschedule_job("job", trigger=DateTrigger(datetime(9999, 12, 31, 23, 59), timezone="America/New_York"))
    after = DjangoJob.objects.values_list("next_run_time", "job_state").get(pk="job")
    assert (after[0], bytes(after[1])) == (before[0], bytes(before[1]))
    job = scheduler.get_job("job")
    assert (job.name, job.max_instances) == ("kept", 3)


option_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)


valid_options = st.fixed_dictionaries(
    {
        "max_instances": st.integers(1, limits.MAX_INSTANCES),
        "misfire_grace_time": st.one_of(st.none(), st.integers(1, limits.MAX_MISFIRE_GRACE_TIME)),
        "coalesce": st.booleans(),
    }
)


@st.composite
def job_options(draw):
    """Valid options with at most one hostile value, or every option hostile."""
    options = draw(valid_options)
    hostile = draw(st.sampled_from([None, "max_instances", "misfire_grace_time", "coalesce", "all"]))
    for key in options if hostile == "all" else [hostile] if hostile else []:
        options[key] = draw(option_values)
    return options


@pytest.mark.django_db
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(options=job_options(), name=st.one_of(st.none(), st.text(max_size=20)), job_id=st.text(min_size=1, max_size=300))
def test_store_validation_either_stores_a_loadable_job_or_refuses_it_writing_nothing(jobstore, options, name, job_id):
    job = build_job("job", NEXT_WEEK, IntervalTrigger(hours=1, timezone=UTC))
    # Set past APScheduler's own checks (as a caller poking at a Job, or 0.7-era state does).
    job.id, job.name = job_id, name
    for key, value in options.items():
        setattr(job, key, value)
    try:
        jobstore.add_job(job)
    except (ValueError, TypeError) as error:  # JobStateError is a ValueError
        assert str(error)
        assert row_count() == 0
        event("refused by the store")
        return
    event("stored")
    stored = jobstore.lookup_job(job_id)
    assert {key: getattr(stored, key) for key in options} == options and stored.name == name
    assert 1 <= stored.max_instances <= limits.MAX_INSTANCES
    jobstore.remove_job(job_id)


# --- @job ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bad_declarations_are_logged_by_name_and_the_others_still_sync(monkeypatch, scheduler_factory, caplog):
    monkeypatch.setattr(registry, "_declared", {})
    bad = {
        "x" * 256: dict(trigger="interval", hours=1),
        "nul\x00id": dict(trigger="interval", hours=1),
        "too-many": dict(trigger="interval", hours=1, max_instances=0),
        "too-late": dict(trigger="interval", hours=1, misfire_grace_time=10**20),
        "never": dict(trigger="cron", month=2, day=31),
        "far": dict(trigger="interval", weeks=600_000),
        "bad-cron": dict(trigger="cron", hour=25),
    }
    with caplog.at_level(logging.ERROR, logger="django_apscheduler.registry"):
        for job_id, spec in bad.items():
            spec = dict(spec)
            registry.job(spec.pop("trigger"), id=job_id, **spec)(jobfuncs.noop)  # declaring does not raise
        registry.job("interval", id="good", minutes=5)(jobfuncs.noop)
        # Stored by an earlier, valid declaration: kept as it was, not taken for undeclared.
        DjangoJobStore().add_job(build_job("too-late", NEXT_WEEK, IntervalTrigger(hours=1, timezone=UTC)))
        DjangoJob.objects.filter(pk="too-late").update(declared=True)
        scheduler = scheduler_factory()
        registry.sync_when_started(scheduler)
        scheduler.start(paused=True)
    assert sorted(DjangoJob.objects.values_list("pk", flat=True)) == ["good", "too-late"]
    assert DjangoJob.objects.get(pk="too-late").next_run_time is not None
    text = caplog.text
    assert "256 characters long" in text and "NUL" in text
    assert "'too-many'" in text and "max_instances must be" in text
    assert "'too-late'" in text and "misfire_grace_time must be" in text
    assert "'never'" in text and "never fires" in text
    assert "'far'" in text and "beyond the dates a schedule can reach" in text
    assert "'bad-cron'" in text
    assert registry.declared_job("never").problem is not None and registry.declared_job("good").problem is None


# --- the schedule editor: a fire that passes while the form is sent ------------------------


@pytest.mark.django_db
def test_an_edit_whose_last_fire_passed_meanwhile_keeps_the_job_paused_and_says_so(admin_client, monkeypatch):
    DjangoJobStore().add_job(build_job("leap", NEXT_WEEK, IntervalTrigger(hours=1, timezone=UTC)))
    # The form sees the next 29 February; by the time the job is rescheduled (here: in the
    # year 9997) the last one a date-time holds, in 9996, has passed.
    monkeypatch.setattr(operations, "utc_now", lambda: datetime(9997, 1, 1, tzinfo=UTC))
    url = reverse("admin:django_apscheduler_djangojob_schedule", args=["leap"])
    fields = {"kind": "cron", "crontab": "0 0 29 2 *", "every": "", "unit": "minutes", "run_date": "",
              "max_instances": "1", "misfire_grace_time": ""}
    response = admin_client.post(url, fields, follow=True)
    assert response.status_code == 200
    assert DjangoJob.objects.filter(pk="leap", next_run_time=None).exists()  # kept, paused
    text = " ".join(str(m) for m in response.context["messages"])
    assert "no further run time" in text and "kept, paused" in text


@pytest.mark.django_db
def test_reschedule_to_a_trigger_with_no_further_fire_keeps_the_job_paused():
    DjangoJobStore().add_job(build_job("ended", NEXT_WEEK, IntervalTrigger(hours=1, timezone=UTC)))
    ended = CronTrigger(hour=1, end_date=datetime(2001, 1, 1, tzinfo=UTC), timezone=UTC)
    assert operations.reschedule("ended", ended, max_instances=1, coalesce=False, misfire_grace_time=None) is None
    assert DjangoJob.objects.filter(pk="ended", next_run_time=None).exists()
    assert str(operations.load_job("ended").trigger) == str(ended)


@pytest.mark.django_db
def test_reschedule_to_a_trigger_past_the_dates_is_a_clear_error_writing_nothing():
    DjangoJobStore().add_job(build_job("far", NEXT_WEEK, IntervalTrigger(hours=1, timezone=UTC)))
    before = bytes(DjangoJob.objects.get(pk="far").job_state)
    new_york_end = DateTrigger(datetime(9999, 12, 31, 23, 59, tzinfo=ZoneInfo("America/New_York")))
    with pytest.raises(jobstate.JobStateError, match="past the last date-time"):
        operations.reschedule("far", new_york_end, max_instances=1, coalesce=False, misfire_grace_time=None)
    assert bytes(DjangoJob.objects.get(pk="far").job_state) == before


# --- the command line ----------------------------------------------------------------------


def command(*args):
    call_command("apscheduler", *args, verbosity=0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, words",
    [
        (["prune", "--max-age", "99999999999"], "--max-age must be a number of seconds between 0 and 3,153,600,000"),
        (["prune", "--max-age", "-1"], "--max-age must be"),
        (["run", "job", "--timeout", "-1"], "--timeout must be a number of seconds between 0 and 86,400"),
        (["run", "job", "--timeout", "nan"], "--timeout must be"),
        (["run", "job", "--timeout", "inf"], "--timeout must be"),
        (["run", "job", "--timeout", "1e12"], "--timeout must be"),
        (["start", "--workers", "0"], "--workers must be between 1 and 1,000"),
        (["start", "--workers", "1000000"], "--workers must be between 1 and 1,000"),
        (["pause", "a\x00b"], "NUL"),
        (["resume", "x" * 300], "300 characters long"),
    ],
)
def test_command_line_numbers_and_ids_out_of_bounds_are_command_errors(args, words):
    DjangoJobExecution.objects.create(job_id="job", run_time=datetime.now(UTC) - timedelta(days=30), status="Executed")
    with pytest.raises(CommandError, match=words):
        command(*args)
    assert DjangoJobExecution.objects.count() == 1  # nothing pruned, nothing run


@pytest.mark.django_db
def test_prune_at_the_bound_keeps_everything():
    DjangoJobExecution.objects.create(job_id="job", run_time=datetime.now(UTC) - timedelta(days=30), status="Executed")
    command("prune", "--max-age", str(limits.MAX_HISTORY_AGE))
    assert DjangoJobExecution.objects.count() == 1


@pytest.mark.django_db
def test_delete_old_job_executions_past_year_one_is_a_clear_value_error():
    with pytest.raises(ValueError, match="reaches back before the year 1"):
        DjangoJobExecution.objects.delete_old_job_executions(max_age=10**12)


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, value",
    [
        ("APSCHEDULER_RUN_NOW_TIMEOUT", math.inf),
        ("APSCHEDULER_RUN_NOW_TIMEOUT", 10**12),
        ("APSCHEDULER_POLL_INTERVAL", math.inf),
        ("APSCHEDULER_HEARTBEAT_TIMEOUT", math.nan),
        ("APSCHEDULER_HISTORY_RETENTION", 10**12),
    ],
)
def test_settings_of_absurd_seconds_are_check_errors(settings, name, value):
    from django_apscheduler.checks import check_settings

    setattr(settings, name, value)
    assert any(error.id == "django_apscheduler.E001" and name in error.msg for error in check_settings())


def test_a_cron_trigger_is_fine_at_the_store_bound():
    # The bound itself is storable: a trigger whose first fire is the last minute of 9999 in UTC.
    trigger = CronTrigger(year=9999, month=12, day=31, hour=23, minute=59, timezone=UTC)
    first = trigger.get_next_fire_time(None, datetime.now(UTC))
    assert limits.storable_time(first) == first
    assert jobstate.MAX_INSTANCES == limits.MAX_INSTANCES  # the old names still work
