"""A smoke run of bench/million.py (the "one million stored jobs" scenario) with 300 jobs, so it cannot rot.

It creates and drops its own database (PostgreSQL) or file (SQLite); MariaDB is not one
of its databases. Only what holds whatever the machine's load is checked: every
measurement was taken, the claimed job ran, and the admin list kept to six queries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
DB = os.environ.get("DB", "sqlite")

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(DB not in ("sqlite", "postgres"), reason="bench/million.py runs on PostgreSQL and SQLite"),
]


def test_million_scenario_measures_both_sizes(tmp_path):
    out = tmp_path / "million.json"
    command = [sys.executable, str(BENCH / "million.py"), "--db", DB, "--jobs", "300", "--idle", "2", "--loads", "1",
               "--out", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr[-3000:]

    result = json.loads(out.read_text())[DB]
    assert result["jobs"] == 300
    for size in ("small", "large"):
        measured = result[size]
        assert measured["startup_s"] is not None and measured["startup_s"] > 0
        assert measured["claim_s"] is not None, "the job moved to 'now' did not run"
        assert measured["claim_statements"] > 0
        assert measured["maxrss_mb"] > 0
        for page, load in measured["admin"].items():
            assert load["queries"] <= 6, (size, page, load)
