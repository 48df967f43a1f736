"""The "one million stored jobs" scenario: what a huge store costs, side by side with 100 jobs.

One database per run, measured twice: with 100 stored jobs, then grown to N (1,000,000
by default) and measured again. Each measurement:

* a real scheduler process (scheduler_proc.py ``run``) with a job due at once: the
  seconds from spawning it to that job's execution (start-up), its peak RSS;
* its idle SQL: statements in a quiet window, per minute;
* one claim: another process moves a stored job to "now"; the seconds from that change
  to the job's execution, and the scheduler's statements in that second;
* the admin jobs list, in-process through Django's test Client as a superuser:
  median time and query count of several loads, unfiltered, filtered and on page 2.

Seeding 1,000,000 jobs through ``add_jobs`` would take minutes; the first 100 are seeded
as real jobs (scheduler_proc.py ``seed``), the rest are copies of one of them made by
the database itself (one INSERT ... SELECT over a series), each with its own id and a
next run time weeks ahead, a second apart. Their pickled state still names the
original id; no scheduler loads them during the run (they are never due), and the
admin list reads only plain columns.

    bench/.venvs/ours/bin/python bench/million.py --db postgres [--jobs 1000000]
    bench/.venvs/ours/bin/python bench/million.py --quick       # 20,000 jobs, shorter windows

Writes bench/results/million.json; docs/benchmarks.md's section is written by hand
from it (ratios within one run: the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PROC = BENCH / "scheduler_proc.py"
RESULTS = BENCH / "results" / "million.json"
TABLE = "django_apscheduler_djangojob"
SMALL = 100
POLL_INTERVAL = 2.0  # APSCHEDULER_POLL_INTERVAL's default, which the scheduler processes keep


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the database -------------------------------------------------------------------------


def create_db(db: str) -> str:
    if db == "sqlite":
        return str(Path(tempfile.gettempdir()) / f"bench_million_{os.getpid()}.sqlite3")
    import psycopg

    name = f"bench_million_{os.getpid()}"
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_db(db: str, name: str) -> None:
    if db == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sql(db: str, name: str, statements: list[str]) -> None:
    if db == "sqlite":
        conn = sqlite3.connect(name)
        try:
            for statement in statements:
                conn.execute(statement)
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=name, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def columns(db: str, name: str) -> list[str]:
    if db == "sqlite":
        conn = sqlite3.connect(name)
        try:
            return [row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")]
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=name) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            [TABLE],
        ).fetchall()
    return [row[0] for row in rows]


def grow(db: str, name: str, total: int) -> float:
    """Copy one stored job until the table holds ``total`` rows; return the seconds it took."""
    extra = total - SMALL
    others = [c for c in columns(db, name) if c not in ("id", "next_run_time")]
    copied = ", ".join(others)
    if db == "postgres":
        statement = (
            f"INSERT INTO {TABLE} (id, next_run_time, {copied}) "
            f"SELECT 'copy' || lpad(g::text, 7, '0'), t.next_run_time + interval '14 days' + g * interval '1 second', "
            f"{', '.join('t.' + c for c in others)} "
            f"FROM {TABLE} t, generate_series(1, {extra}) g WHERE t.id = 'weekly000000'"
        )
        after = [f"ANALYZE {TABLE}"]
    else:
        # Stored as Django stores it: 'YYYY-MM-DD HH:MM:SS' text (microseconds dropped: whole seconds).
        statement = (
            f"WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {extra}) "
            f"INSERT INTO {TABLE} (id, next_run_time, {copied}) "
            f"SELECT 'copy' || printf('%07d', g.n), datetime(t.next_run_time, '+14 days', '+' || g.n || ' seconds'), "
            f"{', '.join('t.' + c for c in others)} "
            f"FROM {TABLE} t, g WHERE t.id = 'weekly000000'"
        )
        after = ["ANALYZE"]
    started = time.time()
    sql(db, name, [statement, *after])
    return time.time() - started


# --- the scheduler process ----------------------------------------------------------------


def env_vars(db: str, name: str) -> dict:
    env = dict(os.environ)
    env.update(BENCH_DB=db, BENCH_DB_NAME=name, PYTHONPATH=str(BENCH), DJANGO_SETTINGS_MODULE="million_settings",
               PYTHONUNBUFFERED="1")
    return env


def tool(db: str, name: str, argv: list[str], timeout: float = 600) -> str:
    result = subprocess.run([sys.executable, str(PROC), *argv], env=env_vars(db, name), cwd=BENCH,
                            capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode:
        raise RuntimeError(f"{argv[0]} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def fired(calls: Path, job_id: str, after: float) -> float | None:
    if not calls.exists():
        return None
    for line in calls.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == job_id and float(parts[2]) >= after:
            return float(parts[2])
    return None


def wait_fired(calls: Path, job_id: str, after: float, timeout: float) -> float | None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        at = fired(calls, job_id, after)
        if at is not None:
            return at
        time.sleep(0.01)
    return None


def count(statements: list, t0: float, t1: float) -> dict:
    """Statements between t0 and t1, in total and by thread."""
    window = [s for s in statements if t0 <= s[0] < t1]
    threads: dict[str, int] = {}
    for _at, thread, _sql in window:
        key = "scheduler" if thread.startswith("APScheduler") else thread.split("-")[0] if thread[0:1].isupper() else thread
        threads[key] = threads.get(key, 0) + 1
    return {"total": len(window), "by_thread": threads, "sql": [s[2] for s in window]}


def scheduler_run(db: str, name: str, workdir: Path, label: str, idle_s: float, claimed_job: str) -> dict:
    calls, stats_path = workdir / f"{db}.calls", workdir / f"{label}.stats.json"
    argv = [sys.executable, str(PROC), "run", "--store", "django", "--sentinel", "--log", str(calls),
            "--stats", str(stats_path), "--max-seconds", str(idle_s + 120)]
    spawned = time.time()
    proc = subprocess.Popen(argv, env=env_vars(db, name), cwd=BENCH, stdout=subprocess.DEVNULL,
                            stderr=open(workdir / f"{label}.err", "w"))
    try:
        first = wait_fired(calls, "sentinel", spawned, 60)
        time.sleep(3.0)  # start-up transients are not idling
        t0 = time.time()
        time.sleep(idle_s)
        t1 = time.time()
        changed_at = json.loads(tool(db, name, ["change", "--job-id", claimed_job]))["changed_at"]
        claimed = wait_fired(calls, claimed_job, changed_at, 30)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    stats = json.loads(stats_path.read_text())
    statements = stats["statements"]
    # From the change to half a second after the execution: on SQLite the scheduler only
    # sees the change at its next poll, so the window follows the fire, not the clock.
    claim = count(statements, changed_at, (claimed or changed_at + 1.0) + 0.5)
    return {
        "startup_s": None if first is None else first - spawned,
        "maxrss_mb": stats["maxrss_kb"] / 1024,
        "idle_statements_per_min": count(statements, t0, t1)["total"] * 60 / (t1 - t0),
        "claim_s": None if claimed is None else claimed - changed_at,
        "claim_statements": claim["total"],
        "claim_by_thread": claim["by_thread"],
        "claim_sql": claim["sql"],
    }


# --- the admin list -----------------------------------------------------------------------


PAGES = {"list": "", "filtered": "?state=active", "page 2": "?p=1", "filtered page 2": "?state=active&p=1",
         "sorted by id": "?o=1"}


def admin_probe(loads: int) -> None:
    """In a child process set up for the run's database: load the list ``loads`` times per page."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_superuser": True,
                                                                                   "is_staff": True})
    client = Client()
    client.force_login(user)
    results = {}
    for label, query in PAGES.items():
        url = "/admin/django_apscheduler/djangojob/" + query
        client.get(url)  # warm: templates, the first session read
        times, counts, slowest = [], [], []
        for _ in range(loads):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {response.status_code}")
            counts.append(len(captured.captured_queries))
            slowest = sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:2]
        results[label] = {
            "median_ms": statistics.median(times) * 1000,
            "queries": max(counts),
            "slowest": [{"ms": float(q["time"]) * 1000, "sql": q["sql"][:300]} for q in slowest],
        }
    # What the fix took away: Django's own COUNT(*) of the whole table, which the list
    # ran twice per load before (the paginator's, and "of N total").
    from django_apscheduler.models import DjangoJob

    times = []
    for _ in range(3):
        started = time.perf_counter()
        DjangoJob.objects.count()
        times.append(time.perf_counter() - started)
    results["full count"] = {"median_ms": statistics.median(times) * 1000, "queries": 1, "slowest": []}
    print(json.dumps(results))


def admin(db: str, name: str, loads: int) -> dict:
    result = subprocess.run([sys.executable, __file__, "admin-probe", "--loads", str(loads)],
                            env=env_vars(db, name), cwd=BENCH, capture_output=True, text=True, timeout=600,
                            check=False)
    if result.returncode:
        raise RuntimeError(f"admin probe failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


# --- the page -----------------------------------------------------------------------------

DOC = BENCH.parent / "docs" / "benchmarks.md"
START, END = "<!-- million:start -->", "<!-- million:end -->"


def _verdict(ok: bool) -> str:
    return "pass" if ok else "**fail**"


def db_table(db: str, r: dict) -> str:
    small, large, n = r["small"], r["large"], r["jobs"]
    rows = [(f"| target | 100 jobs | {n:,} jobs | ratio | verdict |"), "|---|---|---|---|---|"]

    def row(label: str, a: float, b: float, fmt: str, ok: bool) -> None:
        ratio = f"{b / a:.2f}×" if a else "n/a"
        rows.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio} | {_verdict(ok)} |")

    row("start-up to the first fire ≤ 2 s (s)", small["startup_s"], large["startup_s"], "{:.2f}", large["startup_s"] <= 2)
    row("peak RSS flat (MiB)", small["maxrss_mb"], large["maxrss_mb"], "{:.1f}",
        large["maxrss_mb"] <= small["maxrss_mb"] * 1.1)
    row("claim: statements (change → fire + 0.5 s)", small["claim_statements"], large["claim_statements"], "{:d}",
        large["claim_statements"] <= small["claim_statements"])
    if db == "postgres":  # notified of the change: the fire follows it at once
        claim_ok = large["claim_s"] <= max(2 * small["claim_s"], small["claim_s"] + 0.02)
    else:  # seen at the next poll, wherever it falls: within the poll interval, at either size
        claim_ok = large["claim_s"] <= POLL_INTERVAL + 0.5
    row("claim: change → fire (ms)", small["claim_s"] * 1000, large["claim_s"] * 1000, "{:.0f}", claim_ok)
    row("idle statements per minute", small["idle_statements_per_min"], large["idle_statements_per_min"], "{:.1f}",
        large["idle_statements_per_min"] <= small["idle_statements_per_min"] + 1)
    for page in PAGES:
        a, b = small["admin"][page], large["admin"][page]
        ok = b["median_ms"] <= 200 and b["queries"] <= 6
        rows.append(f"| admin jobs list, {page}: ≤ 200 ms, ≤ 6 queries | {a['median_ms']:.0f} ms, {a['queries']} q "
                    f"| {b['median_ms']:.0f} ms, {b['queries']} q | {b['median_ms'] / a['median_ms']:.2f}× "
                    f"| {_verdict(ok)} |")
    full = large["admin"].get("full count")
    if full:
        rows.append(f"| (removed) Django's `COUNT(*)` of the whole table, which each list load ran twice before "
                    f"| {small['admin']['full count']['median_ms']:.1f} ms | {full['median_ms']:.0f} ms | | |")
    return f"### {db}\n\nSeeding: {n - SMALL:,} copies in {r['seed_s']:.0f} s.\n\n" + "\n".join(rows)


def render(results: dict, notes: str) -> None:
    """Write the section into docs/benchmarks.md between its markers (appended if absent)."""
    dbs = [db for db in ("postgres", "sqlite") if db in results]
    body = "\n\n".join(db_table(db, results[db]) for db in dbs)
    section = (f"{START}\n## One million stored jobs (issue 16)\n\n"
               f"`bench/million.py --db {','.join(dbs)}` (results in `bench/results/million.json`), run "
               f"{results['started']} on {results['cores']} cores **shared with other developers' test runs**: "
               "compare the ratios within this run, not the absolute times.\n\n"
               f"{body}\n\n{notes.strip()}\n{END}\n")
    text = DOC.read_text()
    if START in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


# --- the run ------------------------------------------------------------------------------


def measure(db: str, name: str, workdir: Path, label: str, args: argparse.Namespace, claimed_job: str) -> dict:
    log(f"{db} {label}: scheduler")
    result = scheduler_run(db, name, workdir, f"{db}_{label}", args.idle, claimed_job)
    log(f"{db} {label}: admin list")
    result["admin"] = admin(db, name, args.loads)
    return result


def run_db(db: str, args: argparse.Namespace, workdir: Path) -> dict:
    name = create_db(db)
    try:
        tool(db, name, ["migrate"])
        # The seeded jobs log their executions where the scheduler runs look for them.
        tool(db, name, ["seed", "--weekly-jobs", str(SMALL), "--log", str(workdir / f"{db}.calls")])
        small = measure(db, name, workdir, str(SMALL), args, "weekly000050")
        log(f"{db}: growing to {args.jobs:,} jobs")
        seed_s = grow(db, name, args.jobs)
        log(f"{db}: grown in {seed_s:.1f} s")
        large = measure(db, name, workdir, str(args.jobs), args, "weekly000060")
        return {"jobs": args.jobs, "seed_s": seed_s, "small": small, "large": large}
    finally:
        drop_db(db, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="run", choices=["run", "admin-probe", "render"])
    parser.add_argument("--notes", type=Path, help="render: a markdown file of explanations put under the tables")
    parser.add_argument("--db", default="postgres", help="postgres, sqlite, or both: postgres,sqlite")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of the idle window")
    parser.add_argument("--loads", type=int, default=5, help="loads of each admin page (the median is kept)")
    parser.add_argument("--quick", action="store_true", help="20,000 jobs, 10 s idle windows, 3 loads")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.command == "admin-probe":
        admin_probe(args.loads)
        return
    if args.command == "render":
        render(json.loads(args.out.read_text()), args.notes.read_text() if args.notes else "")
        return
    if args.quick:
        args.jobs, args.idle, args.loads = 20_000, 10.0, 3
    results = {"cores": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="bench_million_") as tmp:
        for db in args.db.split(","):
            results[db] = run_db(db, args, Path(tmp))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
