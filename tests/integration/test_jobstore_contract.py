"""The APScheduler 3 job store contract (``BaseJobStore``), on whichever database DB selects.

Every test that takes ``jobstore`` runs twice: with the store called from a plain
thread (Blocking/BackgroundScheduler) and from an event loop's thread
(AsyncIOScheduler), where the store must keep its database work off the loop.
"""

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests import jobfuncs
from tests.eventloop import LoopDriven, captured_store_queries
from tests.helpers import build_job, signed_pickle

pytestmark = pytest.mark.django_db

UTC = timezone.utc
BASE = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
# Not statements of the claim: savepoints inside a test's transaction, BEGIN/COMMIT outside one.
TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT")


@pytest.fixture(
    params=[
        "thread",
        # The store's own database thread has its own connection: it must see committed rows.
        pytest.param("event-loop", marks=pytest.mark.django_db(transaction=True)),
    ]
)
def jobstore(request):
    store = DjangoJobStore()
    if request.param == "thread":
        yield store
        return
    driven = LoopDriven(store)
    yield driven
    driven.shutdown()  # closes the database thread's connection
    assert not store._database_thread.started


@pytest.fixture
def scheduler():
    return BackgroundScheduler(timezone=UTC)


@pytest.fixture
def make_job(scheduler):
    def make(job_id, next_run_time=BASE, func=jobfuncs.noop, trigger=None, **options):
        trigger = trigger or DateTrigger(BASE + timedelta(days=365), timezone=UTC)
        return build_job(job_id, next_run_time, trigger, func=func, scheduler=scheduler, **options)

    return make


def test_add_and_lookup_roundtrip(jobstore, make_job):
    job = make_job("a", args=(1, "two"), kwargs={"three": 3})
    jobstore.add_job(job)
    found = jobstore.lookup_job("a")
    assert found.id == "a"
    assert found.next_run_time == BASE
    assert found.args == (1, "two")
    assert found.kwargs == {"three": 3}
    assert found.func is jobfuncs.noop


def test_lookup_missing_returns_none(jobstore):
    assert jobstore.lookup_job("nope") is None


def test_add_conflicting_id(jobstore, make_job):
    jobstore.add_job(make_job("a"))
    with pytest.raises(ConflictingIdError):
        jobstore.add_job(make_job("a"))
    assert DjangoJob.objects.count() == 1


def test_update_job(jobstore, make_job):
    job = make_job("a")
    jobstore.add_job(job)
    job._modify(next_run_time=BASE + timedelta(hours=1), args=(5,))
    jobstore.update_job(job)
    found = jobstore.lookup_job("a")
    assert found.next_run_time == BASE + timedelta(hours=1)
    assert found.args == (5,)


def test_update_missing_job(jobstore, make_job):
    with pytest.raises(JobLookupError):
        jobstore.update_job(make_job("ghost"))


def test_remove_job(jobstore, make_job):
    jobstore.add_job(make_job("a"))
    jobstore.add_job(make_job("b"))
    jobstore.remove_job("a")
    assert [job.id for job in jobstore.get_all_jobs()] == ["b"]
    with pytest.raises(JobLookupError):
        jobstore.remove_job("a")


def test_remove_all_jobs(jobstore, make_job):
    for job_id in "abc":
        jobstore.add_job(make_job(job_id))
    jobstore.remove_all_jobs()
    assert jobstore.get_all_jobs() == []
    assert jobstore.get_next_run_time() is None


def test_get_all_jobs_sorted_with_paused_last(jobstore, make_job):
    jobstore.add_job(make_job("paused", next_run_time=None))
    jobstore.add_job(make_job("late", next_run_time=BASE + timedelta(seconds=2)))
    jobstore.add_job(make_job("early", next_run_time=BASE + timedelta(milliseconds=1)))
    jobstore.add_job(make_job("earliest", next_run_time=BASE))
    assert [job.id for job in jobstore.get_all_jobs()] == ["earliest", "early", "late", "paused"]


def test_get_next_run_time(jobstore, make_job):
    assert jobstore.get_next_run_time() is None
    jobstore.add_job(make_job("paused", next_run_time=None))
    assert jobstore.get_next_run_time() is None
    jobstore.add_job(make_job("b", next_run_time=BASE + timedelta(milliseconds=500)))
    jobstore.add_job(make_job("a", next_run_time=BASE + timedelta(milliseconds=250)))
    assert jobstore.get_next_run_time() == BASE + timedelta(milliseconds=250)


def test_get_due_jobs_in_run_time_order_with_sub_second_differences(jobstore, make_job):
    interval = IntervalTrigger(hours=1, start_date=BASE, timezone=UTC)
    offsets = [0.3, 0.1, 0.2, 5.0]
    for index, offset in enumerate(offsets):
        run_at = BASE + timedelta(seconds=offset)
        jobstore.add_job(make_job(f"job{index}", next_run_time=run_at, trigger=interval))
    due = jobstore.get_due_jobs(BASE + timedelta(seconds=1))
    assert [job.id for job in due] == ["job1", "job2", "job0"]
    assert [job.next_run_time for job in due] == [BASE + timedelta(seconds=o) for o in (0.1, 0.2, 0.3)]


def test_get_due_jobs_excludes_paused_and_future(jobstore, make_job):
    jobstore.add_job(make_job("paused", next_run_time=None))
    jobstore.add_job(make_job("future", next_run_time=BASE + timedelta(minutes=1)))
    assert jobstore.get_due_jobs(BASE) == []


def test_due_job_is_claimed_once(jobstore, make_job):
    """A due fire handed to one caller is not handed out again: the store advanced it."""
    interval = IntervalTrigger(minutes=10, start_date=BASE, timezone=UTC)
    jobstore.add_job(make_job("a", next_run_time=BASE, trigger=interval))
    first = jobstore.get_due_jobs(BASE + timedelta(seconds=1))
    second = jobstore.get_due_jobs(BASE + timedelta(seconds=1))
    assert [job.id for job in first] == ["a"]
    assert second == []
    assert DjangoJob.objects.get(pk="a").next_run_time == BASE + timedelta(minutes=10)
    execution = DjangoJobExecution.objects.get(job_id="a")
    assert execution.status == DjangoJobExecution.SENT
    assert execution.run_time == BASE


def test_finished_date_job_removed_at_claim_and_removal_echo_is_quiet(jobstore, make_job):
    jobstore.add_job(make_job("once", next_run_time=BASE, trigger=DateTrigger(BASE, timezone=UTC)))
    due = jobstore.get_due_jobs(BASE + timedelta(seconds=1))
    assert [job.id for job in due] == ["once"]
    assert not DjangoJob.objects.filter(pk="once").exists()
    jobstore.remove_job("once")  # the scheduler's follow-up removal must not raise
    with pytest.raises(JobLookupError):
        jobstore.remove_job("once")
    assert DjangoJobExecution.objects.filter(job_id="once").count() == 1


@pytest.mark.parametrize(
    "func, args, expected",
    [
        (jobfuncs.noop, (), "ok"),
        (jobfuncs.Greeter.class_greet, (), "hello"),
        # APScheduler stores an instance method as the function plus the instance as argument.
        (jobfuncs.Greeter.greet, (jobfuncs.Greeter("django"),), "hello django"),
    ],
    ids=["function", "classmethod", "instance-method"],
)
def test_callables_roundtrip(jobstore, make_job, func, args, expected):
    jobstore.add_job(make_job("a", func=func, args=args))
    found = jobstore.lookup_job("a")
    assert found.func(*found.args) == expected


def test_method_bound_to_an_instance_runs_with_its_instance(jobstore, make_job):
    # APScheduler 3.8+ stores the instance as the first argument (Job.__getstate__).
    jobstore.add_job(make_job("bound", func=jobfuncs.Greeter("x").greet))
    found = jobstore.lookup_job("bound")
    assert found.func(*found.args) == "hello x"


def test_unserializable_job_is_refused_and_nothing_written(jobstore, make_job):
    with pytest.raises(ValueError, match="cannot be serialized"):
        jobstore.add_job(make_job("lambda", func=lambda: None))
    assert not DjangoJob.objects.exists()


def test_over_long_id_gets_a_clear_error(jobstore, make_job):
    with pytest.raises(ValueError, match="at most 255"):
        jobstore.add_job(make_job("x" * 256))
    assert not DjangoJob.objects.exists()


def test_unimportable_function_is_kept_and_flagged(jobstore, make_job, caplog):
    job = make_job("gone", next_run_time=BASE)
    state = job.__getstate__()
    state["func"] = "tests.no_such_module:vanished"
    DjangoJob.objects.create(id="gone", next_run_time=BASE, job_state=signed_pickle(state))
    jobstore.add_job(make_job("fine", next_run_time=BASE))

    assert [job.id for job in jobstore.get_due_jobs(BASE + timedelta(seconds=1))] == ["fine"]
    stored = DjangoJob.objects.get(pk="gone")
    assert stored.broken is True
    assert "vanished" in stored.broken_reason
    assert "cannot be loaded" in caplog.text and "Restore its function" in caplog.text
    # Broken jobs neither keep the scheduler awake nor disappear.
    assert jobstore.get_next_run_time() is None
    assert jobstore.lookup_job("gone") is None
    assert DjangoJob.objects.filter(pk="gone").exists()


def test_plain_orm_update_of_next_run_time_is_obeyed(jobstore, make_job):
    interval = IntervalTrigger(minutes=5, start_date=BASE, timezone=UTC)
    jobstore.add_job(make_job("a", next_run_time=BASE + timedelta(days=7), trigger=interval))
    DjangoJob.objects.filter(pk="a").update(next_run_time=BASE)
    assert jobstore.get_next_run_time() == BASE
    assert [job.id for job in jobstore.get_due_jobs(BASE + timedelta(seconds=1))] == ["a"]
    assert jobstore.get_next_run_time() > BASE


def test_fire_already_recorded_is_not_run_again(jobstore, make_job):
    """A schedule moved back onto a fire that already ran does not run it twice."""
    interval = IntervalTrigger(minutes=5, start_date=BASE, timezone=UTC)
    jobstore.add_job(make_job("a", next_run_time=BASE, trigger=interval))
    assert len(jobstore.get_due_jobs(BASE + timedelta(seconds=1))) == 1
    DjangoJob.objects.filter(pk="a").update(next_run_time=BASE)
    assert jobstore.get_due_jobs(BASE + timedelta(seconds=1)) == []
    assert DjangoJobExecution.objects.filter(job_id="a").count() == 1


def test_due_query_and_next_run_time_do_not_load_every_job(jobstore, make_job):
    for index in range(30):
        jobstore.add_job(make_job(f"future{index}", next_run_time=BASE + timedelta(days=1, seconds=index)))
    jobstore.add_job(make_job("due", next_run_time=BASE))
    with captured_store_queries(jobstore) as queries:
        due = jobstore.get_due_jobs(BASE + timedelta(seconds=1))
        jobstore.get_next_run_time()
    assert [job.id for job in due] == ["due"]
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    job_selects = [sql for sql in selects if "django_apscheduler_djangojob" in sql and "job_state" in sql]
    assert job_selects, selects
    for sql in job_selects:
        # Each reads a bounded range of an indexed column: due fires, or run requests.
        assert ("next_run_time" in sql or "run_requested_at" in sql) and "<=" in sql and "LIMIT" in sql.upper(), sql
    statements = [q for q in queries.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)]
    # write lock (SQLite), select due, fence check, advance, run requests, max-instances
    # count, insert; then the earliest next run time and run request (one statement)
    assert len(statements) <= 8, [q["sql"] for q in statements]


def claim_statements(jobstore, now):
    with captured_store_queries(jobstore) as queries:
        claimed = jobstore.get_due_jobs(now)
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)]
    return claimed, statements


@pytest.mark.parametrize("kind", ["interval", "date"])
def test_claiming_many_due_jobs_costs_no_more_statements_than_claiming_one(jobstore, make_job, kind):
    """All due fires are claimed in one transaction of batched statements, whatever their number."""

    def add(job_id, at):
        if kind == "interval":
            trigger = IntervalTrigger(seconds=1, start_date=at, timezone=UTC)
        else:
            trigger = DateTrigger(at, timezone=UTC)
        jobstore.add_job(make_job(job_id, next_run_time=at, trigger=trigger))

    add("single", BASE)
    one, one_statements = claim_statements(jobstore, BASE)
    later = BASE + timedelta(seconds=1)
    for index in range(60):
        add(f"many{index:02d}", later)
    many, many_statements = claim_statements(jobstore, later)
    assert len(one) == 1
    assert len(many) == (61 if kind == "interval" else 60)
    assert len(many_statements) == len(one_statements), many_statements
    assert DjangoJobExecution.objects.filter(status=DjangoJobExecution.SENT).count() == 1 + len(many)


def test_replacing_an_unchanged_job_keeps_its_schedule(jobstore, make_job):
    """What every worker running the quick-start does at boot: add_job(..., replace_existing=True)."""
    interval = IntervalTrigger(minutes=5, start_date=BASE, timezone=UTC)
    jobstore.add_job(make_job("a", next_run_time=BASE, trigger=interval))
    DjangoJob.objects.filter(pk="a").update(next_run_time=None)  # paused meanwhile
    later_start = IntervalTrigger(minutes=5, start_date=BASE + timedelta(seconds=7), timezone=UTC)
    again = make_job("a", next_run_time=BASE + timedelta(minutes=5, seconds=7), trigger=later_start)
    with pytest.raises(ConflictingIdError):
        jobstore.add_job(again)
    jobstore.update_job(again)  # APScheduler's replace_existing path
    assert DjangoJob.objects.get(pk="a").next_run_time is None


def test_replacing_with_a_changed_trigger_reschedules(jobstore, make_job):
    interval = IntervalTrigger(minutes=5, start_date=BASE, timezone=UTC)
    jobstore.add_job(make_job("a", next_run_time=BASE, trigger=interval))
    changed = IntervalTrigger(minutes=10, start_date=BASE, timezone=UTC)
    again = make_job("a", next_run_time=BASE + timedelta(minutes=10), trigger=changed)
    with pytest.raises(ConflictingIdError):
        jobstore.add_job(again)
    jobstore.update_job(again)
    assert DjangoJob.objects.get(pk="a").next_run_time == BASE + timedelta(minutes=10)
    assert str(jobstore.lookup_job("a").trigger) == "interval[0:10:00]"


def test_a_store_started_on_a_scheduler_that_never_ran_hands_out_due_jobs(make_job):
    """What APScheduler's own job store tests do; only a scheduler that ran and stopped claims nothing."""
    scheduler = BackgroundScheduler(timezone=UTC)
    store = DjangoJobStore()
    store.start(scheduler, "default")
    try:
        store.add_job(make_job("due", next_run_time=BASE))
        assert [job.id for job in store.get_due_jobs(BASE + timedelta(seconds=1))] == ["due"]
    finally:
        store.shutdown()


def test_repr_and_str_read_as_in_0_7(jobstore):
    assert repr(DjangoJobStore(pickle_protocol=4)) == "<DjangoJobStore(pickle_protocol=4)>"
    paused = DjangoJob.objects.create(id="p", job_state=b"")
    scheduled = DjangoJob.objects.create(id="s", next_run_time=BASE, job_state=b"")
    assert str(paused) == "p (paused)"
    assert str(scheduled).startswith("s (next run at: ")
    execution = DjangoJobExecution.objects.create(job_id="s", run_time=BASE, status=DjangoJobExecution.SUCCESS)
    assert str(execution) == f"{execution.id}: job 's' (Executed)"


@pytest.mark.django_db(transaction=True)
def test_a_conflict_inside_a_transaction_opened_by_hand_leaves_it_usable():
    """autocommit off by hand is a transaction too: the conflicting INSERT runs in a savepoint."""
    from django.db import transaction

    store = DjangoJobStore()
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    store.add_job(build_job("taken", when, IntervalTrigger(hours=1)))
    transaction.set_autocommit(False)
    try:
        with pytest.raises(ConflictingIdError):
            store.add_job(build_job("taken", when, IntervalTrigger(hours=2)))
        store.add_job(build_job("other", when, IntervalTrigger(hours=1)))  # the transaction still works
        transaction.commit()
    finally:
        transaction.set_autocommit(True)
    assert sorted(DjangoJob.objects.values_list("pk", flat=True)) == ["other", "taken"]
