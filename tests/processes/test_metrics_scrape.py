"""A real `apscheduler start --metrics-port` process, scraped over HTTP while its jobs fire every second."""

import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.processes.test_autostart import free_port

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def scrape(port: int) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} from the process's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def fires(samples, job_id, status):
    return samples.get(("django_apscheduler_fires_total", (("job_id", job_id), ("status", status))), 0.0)


def test_scraping_a_running_scheduler(subprocess_env, tmp_path):
    env = dict(subprocess_env, DJANGO_SETTINGS_MODULE="tests.metrics_settings")
    env.pop("PYTEST_CURRENT_TEST", None)
    port = free_port()
    output = open(tmp_path / "scheduler.out", "w")
    command = [sys.executable, "-m", "django", "apscheduler", "start", "--metrics-port", str(port), "--metrics-address", "127.0.0.1"]
    process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        first = None
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "scheduler.out").read_text()
            try:
                samples = scrape(port)
            except OSError:  # not listening yet
                samples = {}
            if first is None and fires(samples, "metrics/tick", "executed") >= 1:
                first = samples
            elif first is not None and fires(samples, "metrics/tick", "executed") >= fires(first, "metrics/tick", "executed") + 2:
                break
            time.sleep(0.25)
        else:
            raise AssertionError(f"the counters did not grow:\n{(tmp_path / 'scheduler.out').read_text()}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert fires(samples, "metrics/fails", "error") >= 1
    assert fires(samples, "metrics/tick", "error") == 0
    assert samples[("django_apscheduler_fire_lag_seconds_count", ())] >= 3
    assert samples[("django_apscheduler_fire_duration_seconds_count", (("job_id", "metrics/tick"),))] >= 3
    assert samples[("django_apscheduler_claim_duration_seconds_count", ())] >= 1
    assert samples[("django_apscheduler_claimed_fires_total", ())] >= 3
    assert samples[("django_apscheduler_live_schedulers", ())] >= 1
    assert samples[("django_apscheduler_queued_fires", ())] == 0
    assert ("process_cpu_seconds_total", ()) in samples  # prometheus_client's own process metrics come along
    assert process.returncode == 0
