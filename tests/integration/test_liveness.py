"""Dead schedulers noticed by their session lock or their pid, not only by their heartbeat."""

import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from django_apscheduler import fires, liveness, membership
from django_apscheduler.models import DjangoJobExecution, SchedulerInstance

pytestmark = pytest.mark.django_db(transaction=True)

needs_sessions = pytest.mark.skipif(
    "not __import__('django.db').db.connection.vendor in ('postgresql', 'mysql')",
    reason="session locks exist on PostgreSQL and MySQL/MariaDB only",
)


class _Scheduler:
    def wakeup(self):
        pass


def joined_membership():
    """This process as a cluster member whose session lock is held (on this thread's connection)."""
    member = membership.Membership(_Scheduler(), "default")
    member.instance_id = membership.register_scheduler().pk
    if liveness.sessions_supported():
        member.session_lock = liveness.SessionLock(member.instance_id)
        assert member.session_lock.ensure()
    return member


def peer(namespace="another-host", pid=1, seconds_since_beat=0.0, session_lock=True, started=None, process_started=None):
    now = timezone.now()
    return SchedulerInstance.objects.create(
        host="peer",
        pid=pid,
        process_started=process_started,
        started=started or now - timedelta(minutes=5),
        last_heartbeat=now - timedelta(seconds=seconds_since_beat),
        namespace=namespace,
        session_lock=session_lock and liveness.sessions_supported(),
    )


class HeldLock(threading.Thread):
    """A peer's session: takes its lock on a connection of its own, holds it until told to end."""

    def __init__(self, instance_id):
        super().__init__(daemon=True)
        self.instance_id = instance_id
        self.taken = threading.Event()
        self.end = threading.Event()

    def run(self):
        lock = liveness.SessionLock(self.instance_id)
        lock.ensure()
        self.taken.set()
        self.end.wait(30)
        connections["default"].close()  # the session ends: what a killed process's does


@needs_sessions
def test_a_peer_whose_session_ended_is_dead_at_once_and_its_fires_lost():
    me = joined_membership()
    other = peer(seconds_since_beat=0)
    # Its heartbeat must come after my session began for a free lock to count.
    SchedulerInstance.objects.filter(pk=other.pk).update(last_heartbeat=timezone.now() + timedelta(seconds=1))
    session = HeldLock(other.pk)
    session.start()
    assert session.taken.wait(10)
    running = DjangoJobExecution.objects.create(
        job_id="busy", run_time=timezone.now(), status=DjangoJobExecution.SENT, scheduler=other
    )

    assert me.peers_gone() == set()  # its session holds the lock: alive
    session.end.set()
    session.join(10)
    assert me.peers_gone() == {other.pk}
    assert SchedulerInstance.objects.get(pk=other.pk).died is not None
    assert not SchedulerInstance.objects.alive().filter(pk=other.pk).exists()
    assert fires.mark_lost() == 1
    assert DjangoJobExecution.objects.get(pk=running.pk).status == DjangoJobExecution.LOST


@needs_sessions
def test_a_free_lock_is_not_trusted_before_its_owner_beat_in_our_session():
    """After a database restart every session is new: nobody is judged until it beat again."""
    me = joined_membership()
    quiet = peer(seconds_since_beat=2)  # beat before my session began; its lock is free
    assert me.peers_gone() == set()
    assert SchedulerInstance.objects.get(pk=quiet.pk).died is None


@needs_sessions
def test_a_scheduler_takes_its_lock_again_after_its_connection_dropped():
    me = joined_membership()
    first_session = me.session_lock.taken_at
    connection.close()  # the database dropped the connection
    assert me.may_claim()  # it does not know yet
    me.hold_session()  # the next heartbeat
    assert me.session_lock.held and me.session_lock.taken_at > first_session
    assert liveness.held_locks([me.instance_id]) == {me.instance_id}


@needs_sessions
def test_a_scheduler_whose_lock_another_session_holds_claims_nothing():
    me = joined_membership()
    other_session = HeldLock(me.instance_id)
    connection.close()  # my session ended ...
    other_session.start()  # ... and a lingering one holds my lock
    assert other_session.taken.wait(10)
    me.hold_session()
    assert not me.may_claim()
    other_session.end.set()
    other_session.join(10)
    me.hold_session()
    assert me.may_claim()


def _pid_of_an_exited_process():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_peer_on_this_host_whose_process_is_gone_is_dead_at_once():
    me = joined_membership()
    dead = peer(namespace=liveness.this_namespace(), pid=_pid_of_an_exited_process(), session_lock=False)
    alive = peer(namespace=liveness.this_namespace(), pid=1, session_lock=False)  # pid 1 started before it
    elsewhere = peer(namespace="another-host", pid=_pid_of_an_exited_process(), session_lock=False)
    assert me.peers_gone() == {dead.pk}
    assert SchedulerInstance.objects.get(pk=alive.pk).died is None
    assert SchedulerInstance.objects.get(pk=elsewhere.pk).died is None


def test_a_reused_pid_counts_as_dead():
    """The pid exists, but its process started at another moment than the scheduler's: another program."""
    me = joined_membership()
    newcomer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        reused = peer(namespace=liveness.this_namespace(), pid=newcomer.pid, session_lock=False, process_started=1)
        same = peer(
            namespace=liveness.this_namespace(),
            pid=newcomer.pid,
            session_lock=False,
            process_started=liveness._process_state(newcomer.pid)[1],
        )
        assert me.peers_gone() == {reused.pk}
        assert SchedulerInstance.objects.get(pk=same.pk).died is None
    finally:
        newcomer.kill()
        newcomer.wait()


def test_a_claim_does_not_count_a_dead_peers_fires_toward_max_instances(scheduler_factory):
    """The survivor's next fire of a job the dead scheduler was running runs, not 'Max instances!'."""
    from datetime import datetime
    from datetime import timezone as dt_timezone

    from tests import jobfuncs
    from tests.helpers import wait_until

    gone = peer(namespace=liveness.this_namespace(), pid=_pid_of_an_exited_process(), session_lock=False)
    scheduler = scheduler_factory()
    scheduler.start()
    now = datetime.now(dt_timezone.utc)
    scheduler.add_job(jobfuncs.noop, "interval", seconds=1, id="busy", next_run_time=now + timedelta(seconds=1))
    DjangoJobExecution.objects.create(job_id="busy", run_time=now, status=DjangoJobExecution.SENT, scheduler=gone)
    wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id="busy", status=DjangoJobExecution.SUCCESS).exists(),
        timeout=10,
        message="the survivor to run the job",
    )
    assert not DjangoJobExecution.objects.filter(job_id="busy", status=DjangoJobExecution.MAX_INSTANCES).exists()
    assert DjangoJobExecution.objects.get(job_id="busy", run_time=now).status == DjangoJobExecution.LOST


def test_a_scheduler_runs_and_stops_cleanly_with_use_tz_false(settings, scheduler_factory):
    """Every date-time the membership writes or compares goes through timezones.to_db."""
    from datetime import datetime
    from datetime import timezone as dt_timezone

    from tests import jobfuncs
    from tests.helpers import wait_until

    settings.USE_TZ = False
    settings.TIME_ZONE = "Europe/Berlin"
    scheduler = scheduler_factory()
    scheduler.start()
    scheduler.add_job(jobfuncs.noop, "date", run_date=datetime.now(dt_timezone.utc), id="naive-world")
    wait_until(
        lambda: DjangoJobExecution.objects.filter(job_id="naive-world", status=DjangoJobExecution.SUCCESS).exists(),
        message="the job to run with USE_TZ = False",
    )
    member = scheduler._jobstores["default"]._membership
    assert member.peers_gone() == set()  # compares naive stored times without error
    scheduler.shutdown()
    (row,) = SchedulerInstance.objects.all()
    assert row.stopped is not None and timezone.is_naive(row.stopped)


@needs_sessions
def test_no_peer_is_judged_by_its_session_while_ours_is_not_held():
    """Our own connection dropped (a restart, a proxy reset): a free lock proves nothing until we hold ours again."""
    me = joined_membership()
    other = peer()
    SchedulerInstance.objects.filter(pk=other.pk).update(last_heartbeat=timezone.now() + timedelta(seconds=1))
    connection.close()  # our lock is gone with it; our memory still says "held"
    assert me.peers_gone() == set()
    assert SchedulerInstance.objects.get(pk=other.pk).died is None


def test_a_scheduler_declared_dead_registers_again_and_carries_on():
    me = joined_membership()
    first = me.instance_id
    SchedulerInstance.objects.filter(pk=first).update(died=timezone.now())  # a peer's mistake
    membership.Heartbeat(me)._beat_and_look(lost_check_due=False)
    assert me.instance_id != first and me.fires.scheduler_id == me.instance_id
    assert SchedulerInstance.objects.alive().filter(pk=me.instance_id).exists()
    if liveness.sessions_supported():
        assert liveness.held_locks([me.instance_id]) == {me.instance_id}
        assert SchedulerInstance.objects.get(pk=me.instance_id).session_lock


@needs_sessions
def test_a_lock_stuck_on_an_old_session_makes_the_scheduler_register_again(settings):
    settings.APSCHEDULER_HEARTBEAT_TIMEOUT = 0.2
    me = joined_membership()
    first = me.instance_id
    connection.close()
    stale = HeldLock(first)  # an old session of ours the server has not noticed yet
    stale.start()
    assert stale.taken.wait(10)
    try:
        me.hold_session()
        assert not me.may_claim() and me.instance_id == first
        import time

        time.sleep(0.3)
        me.hold_session()
        assert me.instance_id != first and me.may_claim()
        assert SchedulerInstance.objects.get(pk=first).stopped is not None
    finally:
        stale.end.set()
        stale.join(10)


def test_a_scheduler_takes_its_lock_before_peers_may_judge_it(scheduler_factory):
    scheduler = scheduler_factory()
    scheduler.start()
    member = scheduler._jobstores["default"]._membership
    row = SchedulerInstance.objects.get(pk=member.instance_id)
    assert row.session_lock == liveness.sessions_supported()  # set once taken, not at registration
    assert row.process_started == liveness.this_process_started()
    scheduler.shutdown()
    row.refresh_from_db()
    assert row.stopped is not None and row.died is None
