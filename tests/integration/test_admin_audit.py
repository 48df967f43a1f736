"""The admin's audit trail (a LogEntry per action) and its permission model.

Each staff user here holds exactly the permissions a test names (besides viewing
jobs), so every rule of ``django_apscheduler.admin.permissions`` is exercised
allowed and refused. Warnings are errors: Django 5.1 deprecated
``LogEntry.objects.log_action``, which the admin must not call there.
"""

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from django_apscheduler import registry
from django_apscheduler.admin import permissions
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from tests import jobfuncs
from tests.helpers import build_job, post_add_job

pytestmark = pytest.mark.filterwarnings("error")

UTC = timezone.utc
JOBS_URL = reverse("admin:django_apscheduler_djangojob_changelist")
ADD_URL = reverse("admin:django_apscheduler_djangojob_add")
SLEEP_REF = "tests.jobfuncs:sleep_for"
PRUNE_REF = "tests.jobfuncs:delete_old_history"
HOSTILE_IDS = ["a/b", "a_2Fb", "users_24h", "line\nbreak", "../../../logout"]


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def declared(isolated_registry):
    """Declarations of this test only: sleep_for(1) hourly, and the history clean-up."""
    registry.job("interval", hours=1, args=[1])(jobfuncs.sleep_for)
    registry.job("cron", hour=3, permissions=[permissions.DELETE_HISTORY])(jobfuncs.delete_old_history)


@pytest.fixture
def login(client, db):
    """Log a staff user in holding "view job" and exactly the named permissions."""

    def as_user(*codenames):
        user = User.objects.create_user("staff-" + "-".join(codenames), password="pw", is_staff=True)
        names = {"view_djangojob", *codenames}
        user.user_permissions.add(*Permission.objects.filter(codename__in=names))
        client.force_login(user)
        return user

    return as_user


def store(job_id, next_run_time, func=jobfuncs.noop, trigger=None, **options):
    trigger = trigger or IntervalTrigger(hours=1, timezone=UTC)
    DjangoJobStore().add_job(build_job(job_id, next_run_time, trigger, func=func, **options))


def soon(**delta):
    return datetime.now(UTC).replace(microsecond=0) + timedelta(**delta)


def action(client, name, *job_ids):
    return client.post(JOBS_URL, {"action": name, "_selected_action": list(job_ids)}, follow=True)


def offered_actions(client):
    form = client.get(JOBS_URL).context["action_form"]
    return set(dict(form.fields["action"].choices)) - {""} if form else set()  # "" is the "---------" choice


def page_messages(response):
    return [(message.level_tag, str(message)) for message in response.context["messages"]]


def entries(job_id=None):
    job_type = ContentType.objects.get_for_model(DjangoJob)
    found = LogEntry.objects.filter(content_type=job_type).order_by("pk")
    return list(found.filter(object_id=job_id) if job_id is not None else found)


def schedule(client, job_id, **fields):
    data = {"kind": "interval", "crontab": "", "every": "", "unit": "minutes", "run_date": "", "max_instances": "1",
            "misfire_grace_time": ""}
    data.update({key: str(value) for key, value in fields.items()})
    return client.post(reverse("admin:django_apscheduler_djangojob_schedule", args=[quote(job_id)]), data)


def create(client, **fields):
    """The add form for a job "made-here" that sleeps for a second every second (what the permission tests need)."""
    return post_add_job(client, **{"job_id": "made-here", "every": 1, "unit": "seconds", **fields})


def form_errors(response):
    assert response.status_code == 200, response.status_code
    return {field: " ".join(errors) for field, errors in response.context["form"].errors.items()}


# --- the audit trail ----------------------------------------------------------------------


@pytest.mark.django_db
def test_pause_writes_one_entry_per_job_it_paused_whatever_the_id(admin_client, admin_user):
    for job_id in HOSTILE_IDS:
        store(job_id, soon(hours=1))
    store("resting", None)

    response = action(admin_client, "pause_selected_jobs", *HOSTILE_IDS, "resting")

    assert ("info", "1 job was paused already and is left as it was: resting.") in page_messages(response)
    logged = entries()
    assert sorted(entry.object_id for entry in logged) == sorted(HOSTILE_IDS)  # none for "resting"
    for entry in logged:
        assert entry.action_flag == CHANGE and entry.user_id == admin_user.pk
        assert entry.get_change_message().startswith("Paused (its next run was ")
        assert entry.object_repr == f"{entry.object_id} (paused)"[:200]
    # Pausing them again changes nothing, so it records nothing.
    action(admin_client, "pause_selected_jobs", *HOSTILE_IDS)
    assert len(entries()) == len(HOSTILE_IDS)


@pytest.mark.django_db
@pytest.mark.parametrize("job_id", HOSTILE_IDS)
def test_the_history_page_of_a_job_shows_its_entries(admin_client, job_id):
    store(job_id, soon(hours=1))
    action(admin_client, "pause_selected_jobs", job_id)
    page = admin_client.get(reverse("admin:django_apscheduler_djangojob_history", args=[quote(job_id)]))
    assert page.status_code == 200
    assert [entry.object_id for entry in page.context["action_list"]] == [job_id]
    assert "Paused (its next run was" in page.content.decode()


@pytest.mark.django_db
def test_resume_writes_an_entry_for_paused_jobs_only(admin_client):
    store("resting", None)
    busy_next_run = soon(hours=1)
    store("busy", busy_next_run)

    response = action(admin_client, "resume_selected_jobs", "resting", "busy")

    assert ("info", "1 job was active already (not paused) and is left as it was: busy.") in page_messages(response)
    [entry] = entries()
    assert (entry.object_id, entry.action_flag) == ("resting", CHANGE)
    assert entry.get_change_message().startswith("Resumed; next run ")
    assert DjangoJob.objects.get(pk="busy").next_run_time == busy_next_run  # left as it was


@pytest.mark.django_db
def test_a_resume_that_cannot_happen_writes_nothing(admin_client):
    store("spent", None, trigger=IntervalTrigger(hours=1, end_date=soon(days=-1), timezone=UTC))
    response = action(admin_client, "resume_selected_jobs", "spent")
    assert any(level == "error" and "no further run time" in text for level, text in page_messages(response))
    assert entries() == [] and DjangoJob.objects.get(pk="spent").next_run_time is None


@pytest.mark.django_db
def test_a_schedule_edit_records_old_and_new_trigger_and_options(admin_client):
    store("a/b", soon(hours=1), max_instances=1)
    response = schedule(admin_client, "a/b", kind="cron", crontab="30 1 * * *", max_instances=3, coalesce="on")
    assert response.status_code == 302
    [entry] = entries("a/b")
    message = entry.get_change_message()
    assert entry.action_flag == CHANGE
    assert message.startswith("Schedule changed: Every hour → At 01:30")
    assert "max instances 1 → 3" in message and "coalesce False → True" in message
    assert "misfire grace time 1 → None" in message and "next run " in message


@pytest.mark.django_db
def test_an_unchanged_schedule_says_so(admin_client):
    store("steady", soon(minutes=30))
    schedule(admin_client, "steady", kind="interval", every=1, unit="hours", misfire_grace_time=1)
    [entry] = entries("steady")
    assert entry.get_change_message().startswith("Schedule saved: trigger unchanged (Every hour); next run ")


@pytest.mark.django_db
def test_a_refused_schedule_edit_writes_nothing(admin_client):
    store("job", soon(hours=1))
    form_errors(schedule(admin_client, "job", kind="cron", crontab="61 * * * *"))
    assert entries() == []


@pytest.mark.django_db
def test_creating_a_job_writes_an_addition(admin_client):
    # The add form refuses control characters in ids (limits.py); "/" and "_2F" are fine.
    response = create(admin_client, job_id="new/job_2F", args="[1]")
    assert response.status_code == 302
    [entry] = entries()
    assert (entry.object_id, entry.action_flag) == ("new/job_2F", ADDITION)
    message = entry.get_change_message()
    assert message.startswith(f"Created: {SLEEP_REF}(1); Every second; next run ")


@pytest.mark.django_db
def test_deleting_a_job_keeps_djangos_deletion_entry(admin_client):
    store("gone", soon(hours=1))
    admin_client.post(reverse("admin:django_apscheduler_djangojob_delete", args=["gone"]), {"post": "yes"})
    [entry] = entries("gone")
    assert entry.action_flag == DELETION


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("release_run_now_connections")
def test_run_now_records_the_outcome(admin_client):
    store("quick", soon(days=1))
    store("failing", soon(days=1), func=jobfuncs.fail_with, args=("<boom>",))

    action(admin_client, "run_selected_jobs_now", "quick", "failing", "no-such-job")

    by_id = {entry.object_id: entry for entry in entries()}
    assert set(by_id) == {"quick", "failing"}  # a run that cannot start changes nothing
    assert by_id["quick"].get_change_message().startswith("Ran now in this web process: Executed in ")
    assert by_id["failing"].get_change_message() == "Ran now in this web process: Error! ValueError: <boom>"
    assert {entry.action_flag for entry in by_id.values()} == {CHANGE}


@pytest.fixture
def release_run_now_connections():
    """As in test_admin.py: close the connections the in-process run leaves in its threads."""
    import gc
    import threading

    yield
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and thread.name.startswith("django-apscheduler-run-now"):
            thread.join(timeout=10)
    gc.collect()


# --- who may do what ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "codenames, expected",
    [
        ((), set()),
        (("change_djangojob",), {"pause_selected_jobs"}),
        (("run_djangojob",), {"run_selected_jobs_now"}),
        (("change_djangojob", "run_djangojob"), {"pause_selected_jobs", "resume_selected_jobs", "run_selected_jobs_now"}),
        (("delete_djangojob",), {"delete_selected"}),
    ],
)
def test_each_user_is_offered_exactly_the_actions_they_may_take(client, login, codenames, expected):
    login(*codenames)
    store("job", soon(hours=1))
    assert offered_actions(client) == expected


@pytest.mark.django_db
def test_change_alone_pauses_but_does_not_resume(client, login):
    login("change_djangojob")
    store("job", soon(hours=1))
    action(client, "pause_selected_jobs", "job")
    assert DjangoJob.objects.get(pk="job").next_run_time is None
    action(client, "resume_selected_jobs", "job")  # not offered to this user: Django refuses the action
    assert DjangoJob.objects.get(pk="job").next_run_time is None
    assert [entry.get_change_message()[:6] for entry in entries("job")] == ["Paused"]


@pytest.mark.django_db
def test_the_edit_schedule_link_and_page_need_change(client, login):
    store("job", soon(hours=1))
    page_url = reverse("admin:django_apscheduler_djangojob_change", args=["job"])
    schedule_url = reverse("admin:django_apscheduler_djangojob_schedule", args=["job"])
    login("run_djangojob")
    assert schedule_url not in client.get(page_url).content.decode()
    assert client.get(schedule_url).status_code == 403
    login("change_djangojob")
    assert schedule_url in client.get(page_url).content.decode()
    page = client.get(schedule_url)
    assert page.status_code == 200 and "not sooner" in page.content.decode()


@pytest.mark.django_db
def test_change_alone_cannot_make_a_job_run_within_a_second(client, login):
    """The issue's scenario: an hourly job edited to run every second."""
    login("change_djangojob")
    store("hourly", soon(hours=1))
    before = DjangoJob.objects.get(pk="hourly")

    errors = form_errors(schedule(client, "hourly", kind="interval", every=1, unit="seconds"))

    assert "comes before the current one" in errors["__all__"] and "“Can run jobs now”" in errors["__all__"]
    after = DjangoJob.objects.get(pk="hourly")
    assert (after.next_run_time, bytes(after.job_state)) == (before.next_run_time, bytes(before.job_state))
    assert entries() == []


@pytest.mark.django_db
def test_change_alone_cannot_make_a_job_fire_more_often_just_before_its_run(client, login):
    """The hourly job is due in 10 s: "every minute" starts later than that, but fires 60 times as often."""
    login("change_djangojob")
    store("hourly", soon(seconds=10))
    before = bytes(DjangoJob.objects.get(pk="hourly").job_state)

    errors = form_errors(schedule(client, "hourly", kind="interval", every=1, unit="minutes"))

    assert "fires more often than the current one" in errors["__all__"]
    assert "“Can run jobs now”" in errors["__all__"]
    assert bytes(DjangoJob.objects.get(pk="hourly").job_state) == before


@pytest.mark.django_db
def test_change_alone_may_move_a_run_later_or_edit_a_paused_job(client, login):
    login("change_djangojob")
    store("soon", soon(minutes=5))
    store("resting", None)
    assert schedule(client, "soon", kind="interval", every=2, unit="days").status_code == 302
    assert DjangoJob.objects.get(pk="soon").next_run_time > soon(days=1)
    # A paused job stays paused when edited, so even "every second" brings nothing sooner.
    assert schedule(client, "resting", kind="interval", every=1, unit="seconds").status_code == 302
    assert DjangoJob.objects.get(pk="resting").next_run_time is None
    assert len(entries()) == 2


@pytest.mark.django_db
def test_change_and_run_may_bring_a_run_sooner_and_resume(client, login):
    login("change_djangojob", "run_djangojob")
    store("hourly", soon(hours=1))
    assert schedule(client, "hourly", kind="interval", every=1, unit="minutes").status_code == 302
    assert DjangoJob.objects.get(pk="hourly").next_run_time < soon(minutes=2)
    action(client, "pause_selected_jobs", "hourly")
    action(client, "resume_selected_jobs", "hourly")
    assert DjangoJob.objects.get(pk="hourly").next_run_time is not None
    assert [entry.get_change_message().split()[0] for entry in entries("hourly")] == ["Schedule", "Paused", "Resumed;"]


@pytest.mark.django_db
def test_add_alone_creates_the_declared_call_paused(client, login):
    login("add_djangojob")
    page = client.get(ADD_URL)
    assert "the job is created paused" in page.content.decode()
    response = create(client, args="[1]", every=1, unit="seconds")
    assert response.status_code == 302
    assert DjangoJob.objects.get(pk="made-here").next_run_time is None
    assert entries("made-here")[0].get_change_message().endswith("next run paused.")
    follow = client.get(response.url)
    assert any("It is paused: resuming it needs “Can run jobs now”" in text for _level, text in page_messages(follow))


@pytest.mark.django_db
def test_add_and_run_create_the_declared_call_scheduled(client, login):
    login("add_djangojob", "run_djangojob")
    assert create(client, kwargs='{"seconds": 1}', args="[]").status_code == 302  # the same call, by keyword
    assert DjangoJob.objects.get(pk="made-here").next_run_time is not None


@pytest.mark.django_db
@pytest.mark.parametrize("codenames", [("add_djangojob",), ("add_djangojob", "run_djangojob"), ("add_djangojob", "change_djangojob")])
def test_other_arguments_than_the_declarations_need_change_and_run(client, login, codenames):
    login(*codenames)
    errors = form_errors(create(client, args="[3600]"))
    assert "not the arguments of the function's @job declaration" in errors["args"]
    lacking = {"change_djangojob": "“Can change job”", "run_djangojob": "“Can run jobs now”"}
    for codename, label in lacking.items():
        assert (label in errors["args"]) == (codename not in codenames)
    assert not DjangoJob.objects.exists() and entries() == []


@pytest.mark.django_db
def test_add_change_and_run_may_choose_the_arguments(client, login):
    login("add_djangojob", "change_djangojob", "run_djangojob")
    assert create(client, args="[3600]").status_code == 302
    assert DjangoJobStore().lookup_job("made-here").args == (3600,)


@pytest.mark.django_db
def test_add_alone_cannot_schedule_deleting_all_history(client, login):
    """The issue's scenario: delete_old_job_executions(max_age=0) every second, by a user with only *add job*."""
    DjangoJobExecution.objects.create(job_id="kept", status=DjangoJobExecution.SUCCESS, run_time=soon(days=-1))
    login("add_djangojob")
    errors = form_errors(create(client, function=PRUNE_REF, args="[]", kwargs='{"max_age": 0}'))
    assert "“Can delete job execution”" in errors["function"]
    assert "“Can change job”" in errors["args"] and "“Can run jobs now”" in errors["args"]
    assert not DjangoJob.objects.exists() and DjangoJobExecution.objects.filter(job_id="kept").exists()


@pytest.mark.django_db
def test_a_job_that_deletes_history_needs_the_executions_delete_permission(client, login):
    login("add_djangojob", "change_djangojob", "run_djangojob")
    errors = form_errors(create(client, function=PRUNE_REF, args="[]"))
    assert set(errors) == {"function"} and "“Can delete job execution”" in errors["function"]
    login("add_djangojob", "change_djangojob", "run_djangojob", "delete_djangojobexecution")
    assert create(client, function=PRUNE_REF, args="[]").status_code == 302


@pytest.mark.django_db
def test_running_or_resuming_a_history_deleting_job_needs_the_delete_permission(client, login):
    store("prune", None, func=jobfuncs.delete_old_history)
    login("change_djangojob", "run_djangojob")
    response = action(client, "resume_selected_jobs", "prune")
    assert any(level == "error" and "“Can delete job execution”" in text for level, text in page_messages(response))
    response = action(client, "run_selected_jobs_now", "prune")
    assert any("Job “prune” left alone." in text for _level, text in page_messages(response))
    assert DjangoJob.objects.get(pk="prune").next_run_time is None
    assert not DjangoJobExecution.objects.exists() and entries() == []


# --- the rules on their own ---------------------------------------------------------------


@given(seconds=st.integers(min_value=-(10**6), max_value=10**6), other=st.integers(min_value=-(10**6), max_value=10**6))
def test_a_call_matches_its_declaration_however_it_is_spelled(seconds, other):
    registry._declared.clear()
    registry.job("interval", hours=1, kwargs={"seconds": seconds})(jobfuncs.sleep_for)
    func = jobfuncs.sleep_for
    assert permissions.matches_a_declaration(SLEEP_REF, func, [seconds], {})
    assert permissions.matches_a_declaration(SLEEP_REF, func, [], {"seconds": seconds})
    assert permissions.matches_a_declaration(SLEEP_REF, func, [other], {}) == (other == seconds)
    assert not permissions.matches_a_declaration(SLEEP_REF, func, [seconds, other], {})  # does not even bind


def test_defaults_count_as_given():
    assert permissions.matches_a_declaration(PRUNE_REF, jobfuncs.delete_old_history, [604_800], {})
    assert not permissions.matches_a_declaration(PRUNE_REF, jobfuncs.delete_old_history, [0], {})
    assert not permissions.matches_a_declaration("tests.jobfuncs:noop", jobfuncs.noop, [], {})  # not declared


@pytest.mark.parametrize("bad", ["delete", ["app.codename", 3], ["no dots here"], ["a.b.c d"]])
def test_declared_permissions_must_be_app_label_dot_codename(bad):
    with pytest.raises(ValueError, match="app_label.codename"):
        registry.job("interval", hours=1, permissions=bad)


def test_comes_sooner_only_for_a_scheduled_job_moved_earlier():
    now = soon()
    assert permissions.comes_sooner(now, now + timedelta(seconds=1))
    assert not permissions.comes_sooner(now, now)
    assert not permissions.comes_sooner(now + timedelta(seconds=1), now)
    assert not permissions.comes_sooner(now, None)  # paused: stays paused
