"""Prometheus metrics: the hooks count what a scheduler in this process does; /metrics/ shows them and the cluster.

Counters live in the process's default registry for the whole test run, so each
test compares values before and after, for job ids of its own.
"""

from datetime import datetime, timedelta, timezone

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from django_apscheduler import fires, metrics
from django_apscheduler.models import DjangoJobExecution, SchedulerInstance
from django_apscheduler.timezones import to_db, utc_now
from tests import jobfuncs
from tests.helpers import wait_until

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def fires_of(job_id: str, status: str) -> float:
    return value("django_apscheduler_fires_total", job_id=job_id, status=status)


def scrape(client, accept: str | None = None) -> dict[str, list]:
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = client.get("/metrics/", **headers)
    assert response.status_code == 200, response.content
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def live_scheduler() -> SchedulerInstance:
    now = to_db(utc_now())
    return SchedulerInstance.objects.create(host="h", pid=1, started=now, last_heartbeat=now)


@pytest.mark.django_db(transaction=True)
def test_a_running_scheduler_counts_fires_by_status_with_lag_duration_and_claims(scheduler_factory):
    before = {
        "ok": fires_of("metrics-ok", "executed"),
        "error": fires_of("metrics-bad", "error"),
        "claims": value("django_apscheduler_claim_duration_seconds_count"),
        "claimed": value("django_apscheduler_claimed_fires_total"),
        "lag": value("django_apscheduler_fire_lag_seconds_count"),
        "duration": value("django_apscheduler_fire_duration_seconds_count", job_id="metrics-ok"),
    }
    scheduler = scheduler_factory()
    scheduler.start()
    now = datetime.now(timezone.utc)
    scheduler.add_job(jobfuncs.sleep_for, "date", run_date=now, args=[0.05], id="metrics-ok")
    scheduler.add_job(jobfuncs.fail_with, "date", run_date=now, args=["boom"], id="metrics-bad")
    wait_until(
        lambda: fires_of("metrics-ok", "executed") > before["ok"] and fires_of("metrics-bad", "error") > before["error"],
        timeout=15,
        message="both fires to be counted",
    )
    assert fires_of("metrics-ok", "executed") == before["ok"] + 1
    assert fires_of("metrics-bad", "error") == before["error"] + 1
    assert value("django_apscheduler_claim_duration_seconds_count") > before["claims"]
    assert value("django_apscheduler_claimed_fires_total") >= before["claimed"] + 2
    assert value("django_apscheduler_fire_lag_seconds_count") >= before["lag"] + 2
    assert value("django_apscheduler_fire_duration_seconds_count", job_id="metrics-ok") == before["duration"] + 1
    # The 50 ms job lands above the 0.05 s bucket's bound only if its duration was measured for real.
    assert value("django_apscheduler_fire_duration_seconds_sum", job_id="metrics-ok") >= 0.05


@pytest.mark.django_db
def test_the_view_shows_this_process_and_the_cluster(client):
    live_scheduler()
    fires.record_outcome("metrics-view", datetime.now(timezone.utc), status=DjangoJobExecution.SUCCESS, started=None, ended=None)
    samples = scrape(client)
    (live,) = samples["django_apscheduler_live_schedulers"]
    assert live.value == 1
    (queued,) = samples["django_apscheduler_queued_fires"]
    # Counts rows of the "Queued" status where it exists (worker fleets); 0 before.
    expected = (
        DjangoJobExecution.objects.filter(status=DjangoJobExecution.QUEUED).count()
        if hasattr(DjangoJobExecution, "QUEUED")
        else 0
    )
    assert queued.value == expected
    (age,) = samples["django_apscheduler_newest_heartbeat_age_seconds"]
    assert 0 <= age.value < 30
    counted = [s for s in samples["django_apscheduler_fires_total"] if s.labels["job_id"] == "metrics-view"]
    assert [(s.labels["status"], s.value) for s in counted] == [("executed", 1.0)]


@pytest.mark.django_db
def test_openmetrics_when_the_scraper_asks_for_it(client):
    response = client.get("/metrics/", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith(OPENMETRICS)
    assert response.content.rstrip().endswith(b"# EOF")
    assert client.get("/metrics/")["Content-Type"].startswith("text/plain")


@pytest.mark.django_db
def test_job_ids_with_slashes_quotes_and_newlines_are_escaped_labels(client):
    odd = 'reports/daily "eu"\nsecond_line\\'
    metrics.fire_finished(odd, DjangoJobExecution.MISSED)
    metrics.fire_finished("metrics-max", DjangoJobExecution.MAX_INSTANCES, count=3)
    samples = scrape(client)["django_apscheduler_fires_total"]
    assert [s.value for s in samples if s.labels == {"job_id": odd, "status": "missed"}] == [1.0]
    assert [s.value for s in samples if s.labels == {"job_id": "metrics-max", "status": "max_instances"}] == [3.0]


@pytest.mark.django_db
def test_the_job_label_can_be_dropped(client):
    before = fires_of("", "error")
    with override_settings(APSCHEDULER_METRICS_JOB_LABEL=False):
        metrics.fire_finished("metrics-unlabelled", DjangoJobExecution.ERROR, utc_now(), utc_now())
    assert fires_of("", "error") == before + 1
    assert fires_of("metrics-unlabelled", "error") == 0
    assert value("django_apscheduler_fire_duration_seconds_count", job_id="") >= 1


@pytest.mark.django_db
def test_lost_fires_are_counted_once_by_whoever_marks_them():
    dead_at = to_db(utc_now() - timedelta(hours=1))
    dead = SchedulerInstance.objects.create(host="h", pid=2, started=dead_at, last_heartbeat=dead_at)
    for minute in range(2):
        DjangoJobExecution.objects.create(
            job_id="metrics-lost", run_time=dead_at + timedelta(minutes=minute), status=DjangoJobExecution.SENT, scheduler=dead
        )
    before = value("django_apscheduler_lost_fires_total")
    assert fires.mark_lost() == 2
    assert fires.mark_lost() == 0  # already Lost!: not counted again
    assert value("django_apscheduler_lost_fires_total") == before + 2


@pytest.mark.django_db
def test_without_the_library_the_view_says_which_extra_to_install(client, monkeypatch):
    monkeypatch.setattr(metrics, "_METRICS", None)
    response = client.get("/metrics/")
    assert response.status_code == 501
    assert b"django-apscheduler[metrics]" in response.content


@pytest.mark.django_db
def test_multiprocess_mode_merges_the_workers_files_and_adds_the_gauges_once(client, monkeypatch, tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR set, the view reads the workers' files (none yet here) plus the gauges."""
    live_scheduler()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    samples = scrape(client)
    assert [s.value for s in samples["django_apscheduler_live_schedulers"]] == [1.0]
    assert "django_apscheduler_fires_total" not in samples  # this process's own registry is not read


@pytest.mark.django_db
def test_start_with_a_busy_metrics_port_stops_before_the_scheduler_starts():
    import socket

    from django.core.management import CommandError, call_command

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=f"Cannot serve metrics on 127.0.0.1:{port}"):
            call_command("apscheduler", "start", "--metrics-port", str(port), "--metrics-address", "127.0.0.1")
    assert not SchedulerInstance.objects.exists()  # no scheduler was started
