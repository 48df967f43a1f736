"""Without prometheus_client, metrics.py imports cleanly and every hook does nothing.

The module is loaded a second time, under another name, with the library's import
blocked: the copy the rest of the suite uses (and its registered metrics) is untouched.
"""

import importlib.util
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

import django_apscheduler

MODULE = Path(django_apscheduler.__file__).parent / "metrics.py"


@pytest.fixture
def metrics_without_library(monkeypatch):
    for name in [n for n in sys.modules if n == "prometheus_client" or n.startswith("prometheus_client.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # `import prometheus_client` raises ImportError
    spec = importlib.util.spec_from_file_location("django_apscheduler._metrics_without_library", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hooks_are_no_ops(metrics_without_library):
    metrics = metrics_without_library
    assert not metrics.available()
    now = datetime.now(timezone.utc)
    assert metrics.fire_finished("job", "Executed", now, now, now) is None
    assert metrics.fires_lost(3) is None

    class Event:
        code, job_id, scheduled_run_time = 0, "job", now

    assert metrics.job_event(Event(), None) is None


def test_the_claim_is_not_even_wrapped(metrics_without_library):
    def claim():
        return []

    assert metrics_without_library.timed_claim(claim) is claim


def test_serving_or_exposing_says_which_extra_to_install(metrics_without_library):
    metrics = metrics_without_library
    with pytest.raises(metrics.MetricsUnavailable, match=r"django-apscheduler\[metrics\]"):
        metrics.serve(9100)
    with pytest.raises(metrics.MetricsUnavailable):
        metrics.exposition(None)


def test_with_the_library_the_port_is_checked():
    from django_apscheduler import metrics

    for port in (0, 65536, True):
        with pytest.raises(ValueError, match="--metrics-port must be a port number"):
            metrics.serve(port)
