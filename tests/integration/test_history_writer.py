"""Batched history writes: what each write does to the row of its fire, and the writer thread."""

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_apscheduler import history_writer
from django_apscheduler.history_writer import HistoryWriter, apply_writes
from django_apscheduler.models import DjangoJobExecution

pytestmark = pytest.mark.django_db(transaction=True)

UTC = timezone.utc
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SENT, SUCCESS, ERROR, MISSED = (
    DjangoJobExecution.SENT,
    DjangoJobExecution.SUCCESS,
    DjangoJobExecution.ERROR,
    DjangoJobExecution.MISSED,
)


def success(job_id, run_time=T0, **extra):
    fields = {"status": SUCCESS, "finished": Decimal("12.50"), "started_at": run_time, "duration": Decimal("0.25")}
    fields.update(extra)
    return history_writer.final(job_id, run_time, **fields)


def rows():
    return {(row.job_id, row.run_time): row for row in DjangoJobExecution.objects.all()}


def test_a_result_updates_the_started_row_and_keeps_its_scheduler():
    started = DjangoJobExecution.objects.create(job_id="a", run_time=T0, status=SENT)
    apply_writes([success("a")])
    (row,) = rows().values()
    assert row.pk == started.pk
    assert (row.status, row.duration, row.finished) == (SUCCESS, Decimal("0.25"), Decimal("12.50"))


def test_a_result_without_its_started_row_creates_it():
    apply_writes([history_writer.final("b", T0, status=MISSED, scheduler_id=None)])
    assert rows()[("b", T0)].status == MISSED


def test_a_start_never_overwrites_a_result_in_either_order():
    apply_writes([success("early")])
    apply_writes([history_writer.start("early", T0, status=SENT)])
    apply_writes([history_writer.start("same-batch", T0, status=SENT), success("same-batch")])
    apply_writes([success("reversed"), history_writer.start("reversed", T0, status=SENT)])
    assert {key[0]: row.status for key, row in rows().items()} == {
        "early": SUCCESS,
        "same-batch": SUCCESS,
        "reversed": SUCCESS,
    }


def test_a_result_without_timing_does_not_blank_other_rows_timing():
    apply_writes([history_writer.start(job, T0, status=SENT) for job in ("timed", "missed")])
    apply_writes([success("timed"), history_writer.final("missed", T0, status=MISSED)])
    found = rows()
    assert found[("timed", T0)].duration == Decimal("0.25")
    assert found[("missed", T0)].status == MISSED and found[("missed", T0)].duration is None


def test_forget_deletes_only_its_fire():
    apply_writes([history_writer.start("f", T0 + timedelta(seconds=s), status=SENT) for s in range(3)])
    apply_writes([history_writer.forget("f", T0 + timedelta(seconds=1))])
    assert sorted(key[1] for key in rows()) == [T0, T0 + timedelta(seconds=2)]


def test_errors_keep_exception_and_traceback():
    apply_writes([success("e", status=ERROR, exception="ValueError: <b>", traceback="Traceback ...")])
    row = rows()[("e", T0)]
    assert (row.status, row.exception, row.traceback) == (ERROR, "ValueError: <b>", "Traceback ...")


def test_many_results_cost_a_constant_number_of_statements():
    """The point of batching: 300 results are one upsert, not 300 updates."""
    apply_writes([history_writer.start(f"j{i}", T0, status=SENT) for i in range(300)])
    with CaptureQueriesContext(connection) as queries:
        apply_writes([success(f"j{i}") for i in range(300)])
    control = ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT")
    writes = [q["sql"] for q in queries.captured_queries if not q["sql"].upper().startswith(control)]
    # Django splits a batch by SQLite's 999-variable limit (300 rows of ~13 columns: 4
    # statements); the other databases take the batch as one statement.
    assert len(writes) <= (5 if connection.vendor == "sqlite" else 1), writes
    assert DjangoJobExecution.objects.filter(status=SUCCESS).count() == 300


def test_writer_thread_writes_what_was_submitted_and_flushes_on_stop():
    writer = HistoryWriter("test-history-writer")
    writer.start()
    try:
        assert writer.running
        for i in range(50):
            writer.submit(history_writer.start(f"w{i}", T0, status=SENT))
        for i in range(50):
            writer.submit(success(f"w{i}"))
        assert writer.flush(timeout=10)
        assert DjangoJobExecution.objects.filter(status=SUCCESS).count() == 50
        for i in range(50, 80):
            writer.submit(success(f"w{i}"))
    finally:
        writer.stop()
    assert not writer.running
    assert DjangoJobExecution.objects.filter(status=SUCCESS).count() == 80


def test_without_a_thread_writes_happen_in_the_caller():
    writer = HistoryWriter()
    writer.submit(success("sync"))
    assert rows()[("sync", T0)].status == SUCCESS


def test_one_bad_write_does_not_cost_the_others_theirs(caplog):
    writer = HistoryWriter("test-history-writer-bad")
    writer.start()
    too_long = "x" * 300  # job ids hold at most 255 characters
    try:
        writer.submit(success("good-1"))
        writer.submit(success(too_long))
        writer.submit(success("good-2"))
    finally:
        writer.stop()
    if connection.vendor == "sqlite":
        # SQLite does not enforce VARCHAR lengths: all three are written.
        assert len(rows()) == 3
    else:
        assert {key[0] for key in rows()} == {"good-1", "good-2"}
        assert "Could not record final of job" in caplog.text


def test_writes_go_out_on_the_writer_thread(monkeypatch):
    writer = HistoryWriter("test-history-writer-thread")
    seen = []
    original = history_writer.apply_writes

    def spy(writes):
        seen.append(threading.current_thread().name)
        return original(writes)

    monkeypatch.setattr(history_writer, "apply_writes", spy)
    writer.start()
    writer.submit(success("t"))
    writer.stop()
    assert seen == ["test-history-writer-thread"]
    assert rows()[("t", T0)].status == SUCCESS


class _CountingQueue:
    """The writer's queue, counting the gets that could block (each one wakes the writer thread)."""

    def __init__(self, inner):
        self._inner = inner
        self.blocking_gets = 0

    def get(self, *args, **kwargs):
        self.blocking_gets += 1
        return self._inner.get(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def spy_on_batches(monkeypatch):
    batches = []
    original = history_writer.apply_writes

    def spy(writes):
        writes = list(writes)
        batches.append(len(writes))
        return original(writes)

    monkeypatch.setattr(history_writer, "apply_writes", spy)
    return batches


def timed_flush(writer):
    """How long ``writer.flush()`` took (it must succeed)."""
    started = datetime.now(UTC)
    assert writer.flush(timeout=10)
    return datetime.now(UTC) - started


def test_the_writer_sleeps_through_its_linger_and_writes_what_came_meanwhile_in_one_transaction(monkeypatch):
    """Results arriving one by one (fires ending together) do not wake the writer one by one."""
    writer = HistoryWriter("test-history-writer-linger")
    counting = writer._queue = _CountingQueue(writer._queue)
    monkeypatch.setattr(history_writer, "LINGER", 5.0)
    batches = spy_on_batches(monkeypatch)
    writer.start()
    try:
        for i in range(20):
            writer.submit(success(f"l{i}"))
            threading.Event().wait(0.005)  # one by one, as job threads finish
        blocking_gets_before_flush = counting.blocking_gets
        flushed_in = timed_flush(writer)
    finally:
        writer.stop()
    assert blocking_gets_before_flush <= 2  # the wait for the first write (and the next, once written)
    assert batches == [20]
    assert flushed_in < timedelta(seconds=2.5)  # a flush ends the 5 s linger at once
    assert DjangoJobExecution.objects.filter(status=SUCCESS).count() == 20


def test_stop_ends_the_linger_at_once(monkeypatch):
    writer = HistoryWriter("test-history-writer-stop")
    monkeypatch.setattr(history_writer, "LINGER", 5.0)
    writer.start()
    writer.submit(success("s"))
    threading.Event().wait(0.05)  # the writer is lingering
    started = datetime.now(UTC)
    writer.stop()
    assert datetime.now(UTC) - started < timedelta(seconds=2.5)
    assert rows()[("s", T0)].status == SUCCESS


def test_a_backlog_is_written_batch_after_batch_without_lingering(monkeypatch):
    """More than a batch queued (after an outage, say): each batch after the first goes out at once."""
    writer = HistoryWriter("test-history-writer-backlog")
    monkeypatch.setattr(history_writer, "LINGER", 5.0)
    monkeypatch.setattr(history_writer, "MAX_BATCH", 5)
    batches = spy_on_batches(monkeypatch)
    writer.start()
    try:
        for i in range(23):
            writer.submit(success(f"b{i}"))
        flushed_in = timed_flush(writer)
    finally:
        writer.stop()
    assert batches == [5, 5, 5, 5, 3]
    assert flushed_in < timedelta(seconds=2.5)  # one linger at most, ended by the flush: not one per batch
    assert DjangoJobExecution.objects.filter(status=SUCCESS).count() == 23
