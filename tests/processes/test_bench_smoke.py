"""A smoke run of the benchmark (bench/harness.py) on the suite's database, so that it cannot rot.

Tiny settings (a few jobs, seconds per scenario), this package and the floor (APScheduler's
MemoryJobStore, ``--envs ours,memory``),
with the test interpreter instead of bench/.venvs. Real scheduler processes run against
databases the harness creates and drops itself (bench_*; SQLite files in a temporary
directory). Only what must hold whatever the machine's load is checked: every job ran as
often as it should. The numbers themselves belong to bench/run.sh.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
DB = os.environ.get("DB", "sqlite")
BURST_JOBS, LAG_JOBS, LAG_DURATION, ADD_JOBS = 30, 5, 2, 40


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    """Run the harness once for the module; its results JSON."""
    out = tmp_path_factory.mktemp("bench_smoke")
    results = out / "r.json"
    command = [
        sys.executable, str(BENCH / "harness.py"), "--ours-python", sys.executable, "--envs", "ours,memory",
        "--dbs", DB, "--scenarios", "addrate,burst,lag,idle,live", "--addrate-jobs", str(ADD_JOBS),
        "--burst-jobs", str(BURST_JOBS), "--burst-lead", "2",
        "--lag-jobs", str(LAG_JOBS), "--lag-duration", str(LAG_DURATION), "--lead", "3",
        "--idle-jobs", "5", "--idle-duration", "2", "--live-changes", "1", "--settle", "0.5",
        "--no-doc", "--results", str(results),
    ]
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=out, check=False)
    elapsed = time.monotonic() - started
    if run.returncode != 0 or not results.exists():
        pytest.fail(f"harness exited {run.returncode} after {elapsed:.0f}s:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    print(f"bench smoke run on {DB}: {elapsed:.1f}s\n{run.stdout}")
    return json.loads(results.read_text())


def load(name: str):
    """bench/<name>.py as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def only_run(results: dict, scenario: str, env: str = "ours") -> dict:
    per_env = results["scenarios"][scenario][DB]
    assert set(per_env) <= {"ours", "memory"}, "--envs ours,memory must run neither 0.7.0 nor SQLAlchemy"
    (run,) = per_env[env]
    assert run.get("status") != "failed", run.get("error")
    return run


@pytest.mark.processes
def test_burst_fires_every_job_exactly_once(smoke):
    burst = only_run(smoke, "burst")
    assert (burst["n"], burst["fires"], burst["duplicates"]) == (BURST_JOBS, BURST_JOBS, 0), burst
    assert burst["status"] == "ok"
    assert burst["sql"]["statements"] > 0  # the statement counters are installed


@pytest.mark.processes
def test_the_floor_runs_the_burst_and_lag_in_memory(smoke):
    burst = only_run(smoke, "burst", "memory")
    assert (burst["fires"], burst["duplicates"]) == (BURST_JOBS, 0), burst
    lag = only_run(smoke, "lag", "memory")
    assert lag["executed"] == lag["expected"] == LAG_JOBS * LAG_DURATION, lag
    assert "idle" not in smoke["scenarios"] or "memory" not in smoke["scenarios"]["idle"][DB]


@pytest.mark.processes
def test_add_rate_is_measured_one_by_one_and_in_bulk(smoke):
    ours = only_run(smoke, "addrate")
    assert ours["jobs"] == ADD_JOBS
    assert ours["add_job_per_s"] > 0 and ours["bulk_per_s"] > 0, ours
    floor = only_run(smoke, "addrate", "memory")
    assert floor["add_job_per_s"] > 0 and "bulk_per_s" not in floor, floor


@pytest.mark.processes
def test_lag_runs_every_fire(smoke):
    lag = only_run(smoke, "lag")
    assert lag["expected"] == LAG_JOBS * LAG_DURATION
    assert lag["executed"] == lag["expected"], lag
    assert lag["p99_ms"] is not None


@pytest.mark.processes
def test_idle_counts_statements_per_minute(smoke):
    idle = only_run(smoke, "idle")
    per_minute = idle["sql_per_min"]["statements"]
    assert isinstance(per_minute, float) and per_minute >= 0, idle


@pytest.mark.processes
def test_live_change_is_obeyed(smoke):
    live = only_run(smoke, "live")
    assert live["tried"] == 1
    assert live["obeyed"] == live["tried"], live


@pytest.mark.processes
def test_meta_without_the_original(smoke):
    assert list(smoke["meta"]["versions"]) == ["ours"]  # no 0.7.0 interpreter was asked
    assert smoke["settings"]["envs"] == ["ours", "memory"]
    assert "--envs ours,memory" in smoke["command"]


@pytest.mark.processes
def test_report_renders_without_the_original_or_matplotlib(smoke, tmp_path):
    report = load("report")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(HAND_WRITTEN)
    report.render(smoke, doc=doc, plots=False)
    text = doc.read_text()
    assert "Old generated text" not in text
    for name in report.HAND_WRITTEN_BLOCKS:  # the hand-written blocks outlive the render, in their places
        assert text.count(f"<!-- {name}:start -->") == 1 and f"Hand-written {name}." in text, name
    assert text.index("## The floor") < text.index("Hand-written floor-notes.") < text.index("## Targets from")
    assert (text.index("## Scenarios") < text.index("Hand-written handoff.") < text.index("Hand-written handoff-notes.")
            < text.index("## How it is measured"))
    assert text.rstrip().endswith("<!-- million:end -->")
    assert f"### Burst: {BURST_JOBS:,} date jobs due at the same instant" in text
    assert "| original | not measured in this run |" in text
    summary = next(line for line in text.splitlines() if line.startswith("| burst fires/s"))
    assert summary.endswith("| n/a | n/a |"), summary  # the 0.7.0 column and the ratio
    floor = text.split("## The floor")[1].split("## Targets")[0]
    burst_row = next(line for line in floor.splitlines() if line.startswith("| burst fires/s"))
    assert "0.5 × floor" in burst_row and "×" in burst_row.split("|")[4], burst_row  # the ratio to the floor
    assert not (tmp_path / "benchmarks").exists()  # no plots drawn


HAND_WRITTEN = """# Benchmarks

Old generated text.

<!-- floor-notes:start -->
Hand-written floor-notes.
<!-- floor-notes:end -->

<!-- handoff:start -->
## Hand-off to a worker fleet

Hand-written handoff.
<!-- handoff:end -->

<!-- handoff-notes:start -->
Hand-written handoff-notes.
<!-- handoff-notes:end -->

## How it is measured

Old generated text.

<!-- million:start -->
Hand-written million.
<!-- million:end -->
"""


# A page written before the markers: its hand-off section is found by its heading.
UNMARKED_PAGE = "# Benchmarks\n\n## Hand-off to a worker fleet\n\nOld runs.\n\n## How it is measured\n\nHow.\n"

HANDOFF_RUN = {"scenarios": {"handoff": {}}, "settings": {"burst_jobs": 10, "lag_jobs": 2, "lag_duration": 1},
               "meta": {"date": "today", "nproc": 2}, "command": "bench/run.sh --scenarios handoff"}


def test_a_hand_off_run_replaces_only_the_hand_off_block(tmp_path):
    report = load("report")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(HAND_WRITTEN)
    report.splice_handoff(HANDOFF_RUN, doc=doc)
    text = doc.read_text()
    assert "Hand-written handoff." not in text
    assert text.count("## Hand-off to a worker fleet") == 1 and "`bench/run.sh --scenarios handoff`" in text
    assert text.count("<!-- handoff:start -->") == text.count("<!-- handoff:end -->") == 1
    assert text.replace(report.kept_blocks(text)["handoff"], "") == HAND_WRITTEN.replace(
        report.kept_blocks(HAND_WRITTEN)["handoff"], "")  # nothing else moved


@pytest.mark.processes
def test_a_full_run_that_measured_the_hand_off_replaces_its_section_once(smoke, tmp_path):
    report = load("report")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(HAND_WRITTEN)
    report.render(dict(smoke, scenarios=dict(smoke["scenarios"], handoff={})), doc=doc, plots=False)
    text = doc.read_text()
    assert "Hand-written handoff." not in text and "Hand-written handoff-notes." in text
    assert text.count(report.HANDOFF_HEADING) == 1
    assert text.index(report.HANDOFF_HEADING) < text.index("Hand-written handoff-notes.")


def test_a_hand_off_run_replaces_the_section_of_a_page_from_before_the_markers(tmp_path):
    report = load("report")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(UNMARKED_PAGE)
    report.splice_handoff(HANDOFF_RUN, doc=doc)
    text = doc.read_text()
    assert "Old runs." not in text and text.count(report.HANDOFF_HEADING) == 1
    assert text.index("<!-- handoff:end -->") < text.index("## How it is measured")


@pytest.mark.processes
def test_a_full_run_keeps_the_hand_off_section_of_a_page_from_before_the_markers(smoke, tmp_path):
    report = load("report")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(UNMARKED_PAGE)
    report.render(smoke, doc=doc, plots=False)
    text = doc.read_text()
    assert text.count("Old runs.") == 1 and text.count(report.HANDOFF_HEADING) == 1
    assert "handoff" in report.kept_blocks(text) and "<!-- handoff:start -->" in text  # marked from now on


@pytest.mark.parametrize("broken", [
    HAND_WRITTEN.replace("<!-- floor-notes:end -->", ""),  # a start without its end
    HAND_WRITTEN.replace("<!-- million:start -->", ""),  # an end without its start
    HAND_WRITTEN + "<!-- handoff-notes:start -->\nAgain.\n<!-- handoff-notes:end -->\n",  # a block twice
    HAND_WRITTEN.replace("<!-- million:start -->", "@").replace("<!-- million:end -->", "<!-- million:start -->")
    .replace("@", "<!-- million:end -->"),  # the end before the start
])
@pytest.mark.parametrize("rendering", ["splice_handoff", "render"])
def test_a_page_with_broken_markers_is_refused_not_rendered_over(broken, rendering, tmp_path):
    report = load("report")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(broken)
    results = HANDOFF_RUN if rendering == "splice_handoff" else FLOOR_RUN
    with pytest.raises(ValueError, match="must appear once each"):
        getattr(report, rendering)(results, doc=doc)
    assert doc.read_text() == broken


def _runs(**values):
    """A scenario's results for one environment: a single successful run with these values."""
    return [{"status": "ok", **values}]


# A floor run with known values: the floor's burst 10,000/s, lag p50 2 ms and p99 10 ms.
FLOOR_RUN = {
    "scenarios": {
        "addrate": {"postgres": {"memory": _runs(add_job_per_s=40_000.0),
                                 "ours": _runs(add_job_per_s=1_500.0, bulk_per_s=12_000.0)}},
        "burst": {"postgres": {"memory": _runs(fires_per_s=10_000.0), "ours": _runs(fires_per_s=6_000.0)}},
        "lag": {"postgres": {"memory": _runs(p50_ms=2.0, p99_ms=10.0, min_ms=1.0),
                             "ours": _runs(p50_ms=3.0, p99_ms=13.0, min_ms=1.0)}},
    },
    "settings": {"repeat": 1, "burst_jobs": 10, "lag_jobs": 2, "lag_duration": 1},
    "meta": {"date": "today", "nproc": 2}, "command": "bench/run.sh --scenarios addrate,burst,lag",
}


def test_each_floor_target_is_judged_from_the_measured_ratio():
    report = load("report")
    judged = {target["label"]: target for target in report.floor_targets(FLOOR_RUN, "postgres")}
    assert {label: (round(t["ratio"], 2), t["met"]) for label, t in judged.items()} == {
        "add_job through the store ÷ target": (0.75, False),  # 1,500 of 2,000/s
        "bulk.add_jobs ÷ target": (1.2, True),  # 12,000 of 10,000/s
        "burst fires/s ÷ floor": (0.6, True),  # above 0.5×
        "lag p50 ÷ floor": (1.5, True),  # below 2×
        "lag p99 ÷ floor": (1.3, False),  # above 1.2×
    }
    table = report.floor_section(FLOOR_RUN)
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in table.splitlines()
            if line.startswith("| ") and "measurement" not in line}
    assert rows["add_job through the store, jobs/s"] == "≥ 2,000/s: missed (0.75 of it)"
    assert rows["burst fires/s"] == "≥ 0.5 × floor: met"
    assert rows["lag p99, ms"] == "≤ 1.2 × floor: missed (1.30×)"
    assert rows["lag min, ms"] == ""  # no target


@pytest.mark.processes
def test_the_floor_plot_draws_each_target(smoke, tmp_path):
    pytest.importorskip("matplotlib")
    report = load("report")
    drawn = report.draw_plots(smoke, tmp_path)
    assert drawn["floor"] == "floor.png" and (tmp_path / "floor.png").stat().st_size > 0
    labels = [target["label"] for target in report.floor_targets(smoke, DB)]
    assert labels == ["add_job through the store ÷ target", "bulk.add_jobs ÷ target", "burst fires/s ÷ floor",
                      "lag p50 ÷ floor", "lag p99 ÷ floor"], labels  # every target, each plotted


def test_profile_summary_reads_py_spy_raw_output():
    """--profile's summary: inclusive counts once per stack (recursion), self = innermost frame."""
    harness = load("harness")
    raw = (
        "main (app.py:10);work (app.py:20);work (app.py:21);query (db.py:5) 6\n"
        "main (app.py:10);work (app.py:22) 3\n"
        "Thread.run (threading.py:982);loop (sched.py:7) 1\n"
        " 2\n"  # a sample without Python frames
    )
    text = harness.profile_summary(raw, "001_burst_sqlite_ours", ticks=10)
    assert text.startswith("py-spy profile of 001_burst_sqlite_ours: 12 samples over all threads (10 sampling ticks)")
    inclusive, own = text.split("by self samples")
    assert "75.0%         9  work (app.py)" in inclusive  # 6 + 3, not 6 twice + 3
    assert "50.0%         6  query (db.py)" in own
    assert "25.0%         3  work (app.py)" in own
    assert "16.7%         2  (no Python frame)" in own


@pytest.mark.processes
def test_handoff_scenario_hands_every_fire_to_celery_once(tmp_path):
    """The hand-off scenario (bench/harness.py --scenarios handoff), tiny, with a real Celery worker."""
    from tests.celery_fleet import require_redis

    require_redis()
    # The in-process rows are the burst and lag the other smoke tests check. django-tasks-db's
    # worker needs Django 5.2+ (the test-workers extra): not in the Django 4.2 environment.
    backends = ["celery"] + (["tasks"] if importlib.util.find_spec("django_tasks_db") else [])
    results = tmp_path / "handoff.json"
    command = [
        sys.executable, str(BENCH / "harness.py"), "--ours-python", sys.executable, "--envs", "ours",
        "--dbs", DB, "--scenarios", "handoff", "--burst-jobs", str(BURST_JOBS), "--burst-lead", "2",
        "--lag-jobs", str(LAG_JOBS), "--lag-duration", str(LAG_DURATION), "--lead", "3", "--settle", "0.5",
        "--handoff-workers", "1", "--handoff-backends", ",".join(backends), "--no-doc", "--results", str(results),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path, check=False)
    assert run.returncode == 0 and results.exists(), f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    (handoff,) = json.loads(results.read_text())["scenarios"]["handoff"][DB]["ours"]
    assert set(handoff["backends"]) == set(backends)
    for backend in backends:
        measured = handoff["backends"][backend]
        burst, lag = measured["burst"], measured["lag"]
        assert (burst["n"], burst["fires"], burst["duplicates"]) == (BURST_JOBS, BURST_JOBS, 0), (backend, burst)
        assert burst["fires_per_s"] > 0
        assert lag["executed"] == lag["expected"] == LAG_JOBS * LAG_DURATION, (backend, lag)
        assert lag["p99_ms"] is not None
    assert handoff["backends"]["celery"]["burst"]["send_ceiling_per_s"] > 0
    report = load("report")
    section = report.handoff_section(json.loads(results.read_text()))
    assert "## Hand-off to a worker fleet" in section, section
    celery_row = next(line for line in section.splitlines() if line.startswith("| Celery (Redis broker) |"))
    assert "| 0 / 0 |" in celery_row, celery_row  # no duplicate, every fire started
