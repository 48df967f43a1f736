"""Crontab lines <-> CronTriggers (django_apscheduler.crontab): examples, then properties.

The properties are checked with hypothesis on generated crontab lines: a line read
and written back schedules the same fires, weekday expressions survive the trip
between the two numberings, and no text makes the parser raise anything but
ValueError.
"""

import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_apscheduler import crontab
from django_apscheduler.describe import describe_trigger
from django_apscheduler.forms import ScheduleForm

UTC = timezone.utc
START = datetime(2030, 1, 1, tzinfo=UTC)  # a Tuesday
MONDAY = datetime(2030, 1, 7, tzinfo=UTC)

# No example database: several people run the suite in this working tree at once.
PROPERTY = settings(database=None, deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def fields(trigger):
    return {field.name: str(field) for field in trigger.fields}


def fire_times(trigger, starts=8, per_start=12, spacing=timedelta(days=3, hours=5)):
    """The first fires after several starts spread over about four weeks."""
    times = []
    for index in range(starts):
        now = START + index * spacing
        previous = None
        for _ in range(per_start):
            fire = trigger.get_next_fire_time(previous, now)
            if fire is None:
                break
            times.append(fire)
            previous, now = fire, fire + timedelta(microseconds=1)
    return times


def weekdays(trigger):
    """The weekdays (Monday = 0) a trigger fires on at midnight, over one week."""
    days = set()
    for offset in range(7):
        midnight = MONDAY + timedelta(days=offset)
        if trigger.get_next_fire_time(None, midnight) == midnight:
            days.add(midnight.weekday())
    return days


# Examples


@pytest.mark.parametrize(
    "line, expected",
    [
        ("30 1 * * *", {"minute": "30", "hour": "1", "day": "*", "month": "*", "day_of_week": "*", "second": "0"}),
        ("*/15 9-17 1,15 jan-mar *", {"minute": "*/15", "hour": "9-17", "day": "1,15", "month": "jan-mar"}),
        ("0 0 * * 1-5", {"day_of_week": "mon-fri"}),  # crontab's 1 is Monday, as APScheduler's "mon"
        ("0 0 * * 0", {"day_of_week": "sun"}),
        ("0 0 * * 7", {"day_of_week": "sun"}),
        ("0 0 * * 0-5", {"day_of_week": "mon-fri,sun"}),  # APScheduler's week starts on Monday
        ("0 0 * * sat,sun", {"day_of_week": "sat,sun"}),
        ("0 0 * * 0-7", {"day_of_week": "mon-sun"}),  # 0 and 7 are both Sunday: every day
        ("0 0 * * */2", {"day_of_week": "tue,thu,sat,sun"}),  # crontab's step counts from Sunday
        ("0 0 * * 1-5/2", {"day_of_week": "mon,wed,fri"}),  # APScheduler would drop a step after names
        ("0 0 * jan-mar/2 *", {"month": "1-3/2"}),  # likewise
        ("0 0 last * *", {"day": "last"}),
        ("  0 0 * * *  ", {"minute": "0"}),
    ],
)
def test_parse(line, expected):
    trigger = crontab.parse(line, UTC)
    assert isinstance(trigger, CronTrigger) and trigger.timezone == UTC
    assert expected.items() <= fields(trigger).items()


def test_parse_fires_in_the_given_time_zone():
    trigger = crontab.parse("30 1 * * *", "Europe/Paris")
    assert str(trigger.timezone) == "Europe/Paris"
    assert trigger.get_next_fire_time(None, START) == datetime(2030, 1, 1, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "line, error, words",
    [
        ("", crontab.EmptyLine, "empty"),
        ("   ", crontab.EmptyLine, "empty"),
        ("* * * *", crontab.WrongFieldCount, "this one has 4"),
        ("* * * * * *", crontab.WrongFieldCount, "this one has 6"),
        ("61 * * * *", crontab.InvalidField, "minute field '61'"),
        ("* 24 * * *", crontab.InvalidField, "hour field '24'"),
        ("* * 32 * *", crontab.InvalidField, "day-of-month field '32'"),
        ("* * * 13 *", crontab.InvalidField, "month field '13'"),
        ("0 9 * * 9", crontab.InvalidField, "day-of-week field '9'"),
        ("0 9 * * x", crontab.InvalidField, "day-of-week field 'x'"),
        ("bad * * * *", crontab.InvalidField, "minute field 'bad'"),
        ("0 9 * * mon#2", crontab.InvalidField, "day-of-week field 'mon#2'"),  # APScheduler would read "mon"
        ("0 9 * * 5-1", crontab.InvalidField, "goes backwards"),
        ("0 9 * * 1-5/0", crontab.InvalidField, "a step must be at least 1"),
        ("0 9 * jan/x *", crontab.InvalidField, "month field 'jan/x'"),  # APScheduler would read "jan"
        ("0 9 * foo/2 *", crontab.InvalidField, "'foo' is not a month"),
        ("0 9 lastx * *", crontab.InvalidField, "day-of-month field 'lastx'"),  # APScheduler would read "last"
        ("0 9 L * *", crontab.InvalidField, "day-of-month field 'L'"),
        ("1 " * 100 + "1", crontab.LineTooLong, "at most 200 characters; this one has 201"),
    ],
)
def test_parse_errors_name_the_problem(line, error, words):
    with pytest.raises(error) as raised:
        crontab.parse(line, UTC)
    assert isinstance(raised.value, ValueError)
    assert words in str(raised.value)


def test_an_invalid_field_keeps_apschedulers_reason():
    with pytest.raises(crontab.InvalidField) as raised:
        crontab.parse("61 * * * *", UTC)
    assert (raised.value.field, raised.value.expression) == ("minute", "61")
    assert "higher than the maximum value (59)" in raised.value.reason


def test_the_first_bad_field_in_apschedulers_order_is_reported():
    # APScheduler compiles the month before the minute; the error is the one it would give.
    with pytest.raises(crontab.InvalidField) as raised:
        crontab.parse("61 * * 13 *", UTC)
    assert raised.value.field == "month"


def test_a_huge_line_is_refused_before_apscheduler_reads_it():
    line = ("1," * 1_000_000) + "1 * * * *"
    began = time.perf_counter()
    with pytest.raises(crontab.LineTooLong):
        crontab.parse(line, UTC)
    assert time.perf_counter() - began < 0.5


def test_the_editor_words_a_huge_line_as_its_own_error():
    data = {"kind": "cron", "crontab": "1," * 1_000_000 + "1 * * * *", "max_instances": "1", "unit": "minutes"}
    form = ScheduleForm(data)
    assert not form.is_valid()
    assert form.errors["crontab"] == ["A crontab line has at most 200 characters; this one has 2000009."]


@pytest.mark.parametrize(
    "line, message",
    [
        ("", "Enter a crontab line, e.g. “*/15 * * * *”."),
        ("* * * *", "A crontab line has 5 fields (minute hour day month day-of-week); this one has 4."),
        ("0 9 * * 9", "Not a valid crontab line: day-of-week 9 is out of range 0-7"),
        (
            "61 * * * *",
            "Not a valid crontab line: Error validating expression '61': "
            "the last value (61) is higher than the maximum value (59)",
        ),
    ],
)
def test_the_editor_keeps_its_messages(line, message):
    form = ScheduleForm({"kind": "cron", "crontab": line, "max_instances": "1", "unit": "minutes"})
    assert not form.is_valid()
    assert form.errors["crontab"] == [message]


@pytest.mark.parametrize(
    "expression, names",
    [
        ("1-5", "mon-fri"),
        ("0", "sun"),
        ("7", "sun"),
        ("6,0", "sat,sun"),
        ("sun-wed", "mon-wed,sun"),
        ("SUN-WED", "mon-wed,sun"),
        ("mon-sun", "mon-sun"),
        ("0-7", "mon-sun"),
        ("*", "*"),
        ("*/2", "tue,thu,sat,sun"),
        ("*/3", "wed,sat,sun"),
        ("1-5/2", "mon,wed,fri"),
        ("mon-fri/2", "mon,wed,fri"),
        ("1/3", "mon,thu,sun"),  # from 1 to 7
    ],
)
def test_crontab_weekdays_to_apscheduler(expression, names):
    assert crontab.crontab_weekdays_to_apscheduler(expression) == names


@pytest.mark.parametrize(
    "expression, names",
    [
        ("0-4", "mon-fri"),
        ("6", "sun"),
        ("5,6", "sat,sun"),
        ("mon-fri", "mon-fri"),
        ("*", "*"),
        ("*/2", "mon,wed,fri,sun"),  # APScheduler's step counts from Monday
        ("1-5/2", "tue,thu,sat"),
        ("3/2", "thu,sat"),
    ],
)
def test_apscheduler_weekdays_to_crontab(expression, names):
    assert crontab.apscheduler_weekdays_to_crontab(expression) == names


@pytest.mark.parametrize(
    "trigger, line",
    [
        (CronTrigger(hour=1, minute=30, day_of_week="mon-fri", timezone=UTC), "30 1 * * mon-fri"),
        (CronTrigger(hour=1, minute=30, day_of_week="0-4", timezone=UTC), "30 1 * * mon-fri"),
        (CronTrigger(minute="*/5", timezone=UTC), "*/5 * * * *"),
        (CronTrigger(day="last", timezone=UTC), "0 0 last * *"),
        (CronTrigger(month="jan-mar", day=1, timezone=UTC), "0 0 1 jan-mar *"),
        (CronTrigger(hour=0, day_of_week="*/2", timezone=UTC), "0 0 * * mon,wed,fri,sun"),
        (CronTrigger(second=30, timezone=UTC), None),  # crontab has no seconds
        (CronTrigger(timezone=UTC), None),  # every second
        (CronTrigger(day="last fri", timezone=UTC), None),
        (CronTrigger(week="1-10", timezone=UTC), None),
        (CronTrigger(year=2030, timezone=UTC), None),
    ],
)
def test_to_line(trigger, line):
    assert crontab.to_line(trigger) == line


@pytest.mark.parametrize(
    "trigger, line",
    [
        (CronTrigger(hour=1, minute=30, timezone=UTC), "0 30 1 * * *"),
        (CronTrigger(second="*/10", timezone=UTC), "*/10 * * * * *"),
        (CronTrigger(hour=9, day_of_week="0-4", timezone=UTC), "0 0 9 * * MON-FRI"),
        (CronTrigger(day="last", timezone=UTC), "0 0 0 L * *"),
        (CronTrigger(day="last fri", timezone=UTC), None),  # cron-descriptor has no words for it
        (CronTrigger(day="2nd mon", timezone=UTC), None),
        (CronTrigger(week=5, timezone=UTC), None),
        (CronTrigger(year="2030-2031", timezone=UTC), None),
    ],
)
def test_to_descriptor_line(trigger, line):
    assert crontab.to_descriptor_line(trigger) == line


@pytest.mark.parametrize(
    "trigger, words",
    [
        (CronTrigger(hour=1, minute=30, timezone=UTC), "At 01:30"),
        (CronTrigger(hour=9, day_of_week="0-4", timezone=UTC), "At 09:00, Monday through Friday"),
        (CronTrigger(day="last", timezone=UTC), "At 00:00, on the last day of the month"),
        (
            CronTrigger(hour=9, day_of_week="*/2", timezone=UTC),
            "At 09:00, only on Monday, Wednesday, Friday, and Sunday",
        ),
    ],
)
def test_describe_uses_the_descriptor_line(trigger, words):
    assert describe_trigger(trigger) == words


# Properties


def numbers(low, high):
    """Crontab expressions over the numbers low..high: *, */s, n, n/s, a-b, a-b/s, and lists of them."""
    star_step = st.integers(1, high - low).map(lambda step: f"*/{step}")
    single = st.integers(low, high).map(str)
    single_step = st.integers(low, high - 1).flatmap(
        lambda first: st.integers(1, high - first).map(lambda step: f"{first}/{step}")
    )
    ranges = st.tuples(st.integers(low, high), st.integers(low, high)).map(sorted)
    plain_range = ranges.map(lambda r: f"{r[0]}-{r[1]}")
    stepped_range = ranges.filter(lambda r: r[0] < r[1]).flatmap(
        lambda r: st.integers(1, r[1] - r[0]).map(lambda step: f"{r[0]}-{r[1]}/{step}")
    )
    item = st.one_of(star_step, single, single_step, plain_range, stepped_range)
    return st.one_of(st.just("*"), st.lists(item, min_size=1, max_size=3).map(",".join))


def spelt(expressions, names, offset):
    """The same expressions with some of their values (never steps) written as names[value - offset]."""

    def respell(expression, rng):
        def name(match):
            index = int(match.group()) - offset
            return names[index] if 0 <= index < len(names) and rng.random() < 0.5 else match.group()

        return re.sub(r"(?<![/\d])\d+", name, expression)

    return st.builds(respell, expressions, st.randoms(use_true_random=False))


MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
CRONTAB_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

crontab_months = spelt(numbers(1, 12), MONTH_NAMES, 1)
crontab_weekdays = st.one_of(
    spelt(numbers(0, 7), CRONTAB_DAY_NAMES, 0),
    st.lists(st.sampled_from(("mon-sun", "sun-sat", "sat-sun", "sun-sun", "fri-sun/2")), min_size=1, max_size=2).map(
        ",".join
    ),
)

# Days up to 28, so that every generated line fires in every month it names.
crontab_lines = st.tuples(
    numbers(0, 59),
    numbers(0, 23),
    st.one_of(numbers(1, 28), st.just("last")),
    crontab_months,
    crontab_weekdays,
).map(" ".join)


def crontab_means(expression, low, high, names, offset):
    """The values a crontab field means, after crontab(5): the oracle the conversions are checked against.

    "*" is low-high, "n/s" is n-high/s, a name is its value; Sunday ends a range as 7.
    """
    values = set()
    for item in expression.split(","):
        span, _, step = item.partition("/")
        if span == "*":
            first, last = low, high
        else:
            start, _, end = span.partition("-")
            first = int(start) if start.isdigit() else names.index(start) + offset
            if not end:
                last = high if step else first
            elif end.isdigit():
                last = int(end)
            else:
                last = names.index(end) + offset
                if names is CRONTAB_DAY_NAMES and last == 0 and first > 0:
                    last = 7
        values |= set(range(first, last + 1, int(step or 1)))
    return values


def months(trigger):
    """The months of 2030 a trigger fires in."""
    found, previous, now = set(), None, START
    while (fire := trigger.get_next_fire_time(previous, now)) is not None and fire.year == 2030:
        found.add(fire.month)
        previous, now = fire, datetime(2030 + (fire.month == 12), fire.month % 12 + 1, 1, tzinfo=UTC)
    return found


@PROPERTY
@given(crontab_lines)
def test_a_line_read_and_written_back_fires_at_the_same_times(line):
    trigger = crontab.parse(line, UTC)
    written = crontab.to_line(trigger)
    assert written is not None
    again = crontab.parse(written, UTC)
    assert fire_times(again) == fire_times(trigger)
    assert crontab.to_line(again) == written  # writing is stable


@PROPERTY
@given(crontab_weekdays)
def test_crontab_weekdays_mean_the_days_crontab_means(expression):
    names = crontab.crontab_weekdays_to_apscheduler(expression)
    days = crontab_means(expression, 0, 7, CRONTAB_DAY_NAMES, 0)
    expected = {(day - 1) % 7 for day in days}  # crontab's 0 and 7 are Sunday, APScheduler's 6
    assert weekdays(CronTrigger(day_of_week=names, hour=0, timezone=UTC)) == expected


@PROPERTY
@given(crontab_months)
def test_crontab_months_mean_the_months_crontab_means(expression):
    trigger = crontab.parse(f"0 0 1 {expression} *", UTC)
    assert months(trigger) == crontab_means(expression, 1, 12, MONTH_NAMES, 1)


# APScheduler's own day-of-week expressions (Monday = 0), as jobs declared in code use.
apscheduler_weekdays = st.one_of(
    numbers(0, 6),
    st.lists(
        st.sampled_from(("mon", "tue", "wed", "thu", "fri", "sat", "sun", "mon-fri", "sat-sun")), min_size=1, max_size=3
    ).map(",".join),
)


@PROPERTY
@given(apscheduler_weekdays)
def test_apscheduler_weekdays_survive_the_trip_through_crontab(expression):
    as_crontab = crontab.apscheduler_weekdays_to_crontab(expression)
    back = crontab.crontab_weekdays_to_apscheduler(as_crontab)
    original = CronTrigger(day_of_week=expression, hour=0, timezone=UTC)
    assert weekdays(CronTrigger(day_of_week=back, hour=0, timezone=UTC)) == weekdays(original)


CRONTAB_CHARACTERS = "0123456789*/-,# ?LW\t\nlastmonfrisunjan"


@PROPERTY
@given(st.one_of(st.text(max_size=300), st.text(alphabet=CRONTAB_CHARACTERS, max_size=60), crontab_lines))
def test_any_text_is_a_trigger_or_a_value_error(text):
    try:
        trigger = crontab.parse(text, UTC)
    except ValueError:
        return
    assert isinstance(trigger, CronTrigger)
