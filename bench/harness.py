"""Run every benchmark scenario against this package and django-apscheduler 0.7.0, side by side.

Started by bench/run.sh, which builds the two virtual environments and passes their
interpreters. Each scenario starts real scheduler processes (bench/scheduler_proc.py)
with the right interpreter, on a fresh database per run, and reads back what they did:
the job executions each appended to a shared file, and the SQL statements each counted
in itself. The results go to bench/results/latest.json and docs/benchmarks.md (with
PNG plots under docs/benchmarks/), rendered by bench/report.py.

Databases are created and dropped here: PostgreSQL and MariaDB databases are named
bench_*; SQLite files live in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PROC = BENCH / "scheduler_proc.py"
RESULTS = BENCH / "results" / "latest.json"

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}

ALL_SCENARIOS = ("addrate", "burst", "lag", "idle", "startup", "live", "multi", "handoff")
# Executors the hand-off scenario compares: the scheduler's own thread pool, fires handed
# to django-tasks-db's database backend (db_worker processes), and to Celery workers
# through Redis (bench_celery.py).
HANDOFF_BACKENDS = ("inproc", "tasks", "celery")
# Scenarios the floor (APScheduler's MemoryJobStore, in-process) runs too; SQLAlchemyJobStore
# runs in these as well.
FLOOR_SCENARIOS = ("addrate", "burst", "lag")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- processes ----------------------------------------------------------------------------

LIVE_PROCS: set[Proc] = set()


class Proc:
    """One scheduler process, its output files and its statistics.

    With ``profile`` (a py-spy raw output path), ``argv`` starts py-spy, which runs the
    scheduler as its child: signals go to that child, so that it saves its statistics and
    py-spy then writes its samples.
    """

    def __init__(self, workdir: Path, name: str, argv: list[str], env: dict, profile: Path | None = None) -> None:
        self.name = name
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        self.stats_path = workdir / f"{name}.stats.json"
        self.profile = profile
        self.spawned = time.time()
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.popen = subprocess.Popen(
                argv + ["--stats", str(self.stats_path)], env=env, stdout=out, stderr=err, cwd=BENCH,
                start_new_session=True,
            )
        self._pid = None if profile else self.popen.pid
        LIVE_PROCS.add(self)

    @property
    def pid(self) -> int | None:
        """The scheduler's own pid: py-spy's child when profiled (None until py-spy started it)."""
        if self._pid is None:
            self._pid = group_member(self.popen.pid)
        return self._pid

    def terminate(self) -> None:
        """SIGTERM to the scheduler (to py-spy itself only if its child has not started yet)."""
        if self.popen.poll() is not None:
            return
        try:
            os.kill(self.pid or self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL to the process group this Proc started (the scheduler, and py-spy when profiled)."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait()
        LIVE_PROCS.discard(self)

    def marker(self, word: str) -> float | None:
        for line in self.out.read_text().splitlines():
            if line.startswith(word + " "):
                return float(line.split()[1])
        return None

    def wait_ready(self, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = self.marker("READY")
            if ready is not None:
                return ready
            if self.popen.poll() is not None:
                return None
            time.sleep(0.05)
        return None

    def thread_died(self) -> bool:
        return "Exception in thread APScheduler" in self.err.read_text(errors="replace")

    def cpu_seconds(self) -> float | None:
        pid = self.pid
        if pid is None:
            return None
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 30.0) -> dict | None:
        """SIGTERM (the process saves its statistics, then shuts down); SIGKILL if it hangs."""
        if self.popen.poll() is None:
            self.terminate()
            deadline = time.monotonic() + timeout
            while self.popen.poll() is None and time.monotonic() < deadline:
                if self.marker("STATS") is not None and time.monotonic() > deadline - timeout / 2:
                    break  # statistics saved; a wedged shutdown need not hold us up
                time.sleep(0.05)
        self.kill()
        self.summarize_profile()
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return None

    def summarize_profile(self) -> None:
        """Write <label>.top.txt beside py-spy's raw samples, once they are there."""
        if self.profile is None or not self.profile.exists():
            return
        top = self.profile.with_suffix(".top.txt")
        if top.exists():
            return
        said = self.out.read_text(errors="replace") + self.err.read_text(errors="replace")  # py-spy's own lines
        ticks = re.search(r"py-spy> Wrote .* Samples: (\d+)", said)
        top.write_text(profile_summary(self.profile.read_text(errors="replace"), self.name,
                                       int(ticks.group(1)) if ticks else None))
        log(f"  profile: {top}")

    def error_summary(self) -> str | None:
        """The most telling error line in stderr (exception type and message), if any."""
        text = self.err.read_text(errors="replace")
        lines = [line.strip() for line in text.splitlines()]
        errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Warning)\b.*:", line)]
        if not errors:
            return None
        counts = Counter(errors)
        line, count = counts.most_common(1)[0]
        return f"{line} (x{count})" if count > 1 else line


def group_member(leader: int) -> int | None:
    """The lowest pid other than ``leader`` in the process group ``leader`` leads (py-spy's child)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == leader:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader:
            found.append(int(entry.name))
    return min(found) if found else None


def kill_all() -> None:
    for proc in list(LIVE_PROCS):
        proc.kill()


def read_log(path: Path) -> list[tuple[str, int, float]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            rows.append((parts[0], int(parts[1]), float(parts[2])))
    return rows


def lags_ms(calls: Path, start: float, duration: int) -> list[float]:
    """Start minus scheduled time of each interval job's fires, from the calls log (ms).

    The i-th execution of a job belongs to its i-th fire: each fire runs once (a 30 s
    grace time), and fires a second apart start in order.
    """
    per_job = defaultdict(list)
    for job_id, _pid, t in read_log(calls):
        per_job[job_id].append(t)
    lags = []
    for times in per_job.values():
        for index, t in enumerate(sorted(times)[:duration]):
            lags.append((t - (start + index)) * 1000)
    return lags


def wait_for_text(path: Path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def stop_group(popen: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM to a process group (a worker and its pool), then SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(popen.pid, sig)
        except ProcessLookupError:
            return
        try:
            popen.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


# --- statements ---------------------------------------------------------------------------

_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+[`\"]?(\w+)", re.IGNORECASE)


def classify(sql: str) -> str:
    words = sql.split(None, 2)
    if not words:
        return "?"
    first = words[0].upper()
    if first in ("SAVEPOINT", "RELEASE", "BEGIN", "ROLLBACK", "COMMIT", "SET"):
        return "RELEASE SAVEPOINT" if first == "RELEASE" else first
    match = _TABLE.search(sql)
    table = match.group(1) if match else ""
    table = table.replace("django_apscheduler_", "")
    return f"{first} {table}".strip()


def thread_group(name: str) -> str:
    if name == "APScheduler":
        return "scheduler loop"
    if name.startswith("ThreadPoolExecutor"):
        return "job threads"
    if name == "django-apscheduler-heartbeat":
        return "heartbeat"
    if name.startswith("django-apscheduler-history"):
        return "history writer"
    if name == "MainThread":
        return "main"
    return "other"


def sql_window(stats: dict | None, t0: float, t1: float) -> dict:
    """Statements and extra round trips between t0 and t1, with breakdowns."""
    if not stats:
        return {"statements": None, "extras": None, "by_kind": {}, "by_thread": {}, "extras_by_kind": {}}
    stmts = [s for s in stats["statements"] if t0 <= s[0] <= t1]
    extras = [e for e in stats["extras"] if t0 <= e[0] <= t1]
    return {
        "statements": len(stmts),
        "extras": len(extras),
        "by_kind": dict(Counter(f"{thread_group(s[1])}: {classify(s[2])}" for s in stmts)),
        "by_thread": dict(Counter(thread_group(s[1]) for s in stmts)),
        "extras_by_kind": dict(Counter(f"{thread_group(e[1])}: {e[2]}" for e in extras)),
    }


def scaled(window: dict, divisor: float) -> dict:
    """The window's counts divided by ``divisor`` (fires, minutes...)."""
    if window["statements"] is None or not divisor:
        return {"statements": None, "extras": None, "by_kind": {}, "by_thread": {}, "extras_by_kind": {}}
    return {
        "statements": window["statements"] / divisor,
        "extras": window["extras"] / divisor,
        "by_kind": {k: v / divisor for k, v in window["by_kind"].items()},
        "by_thread": {k: v / divisor for k, v in window["by_thread"].items()},
        "extras_by_kind": {k: v / divisor for k, v in window["extras_by_kind"].items()},
    }


def loop_timeline(stats: dict | None, due: float, first_fire: float, limit: int = 14) -> list:
    """What the scheduler loop thread did from the due instant on: [ms after due, statement], first few."""
    if not stats:
        return []
    events = [(t, classify(sql)) for t, thread, sql in stats["statements"] if thread == "APScheduler"]
    events += [(t, kind) for t, thread, kind in stats["extras"] if thread == "APScheduler"]
    events = sorted(e for e in events if e[0] >= due - 0.25)[:limit]
    timeline = [[round((t - due) * 1000, 1), kind] for t, kind in events]
    timeline.append([round((first_fire - due) * 1000, 1), "(first job starts)"])
    return sorted(timeline)


def loop_delays(stats: dict | None, start: float, duration: int) -> tuple[float | None, float | None]:
    """Median over the fire instants of the scheduler loop's first statement and first commit after it (ms)."""
    if not stats:
        return None, None
    loop = sorted(t for t, thread, _ in stats["statements"] if thread == "APScheduler")
    commits = sorted(t for t, thread, kind in stats["extras"] if thread == "APScheduler" and kind == "COMMIT")
    first_stmt, first_commit = [], []
    for k in range(duration):
        at = start + k
        s = next((t for t in loop if at <= t < at + 1), None)
        c = next((t for t in commits if at <= t < at + 1), None)
        if s is not None:
            first_stmt.append((s - at) * 1000)
        if c is not None:
            first_commit.append((c - at) * 1000)
    def med(xs: list[float]) -> float | None:
        return statistics.median(xs) if xs else None

    return med(first_stmt), med(first_commit)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, math.ceil(p / 100 * len(ordered)) - 1)
    return ordered[index]


# --- profiles -----------------------------------------------------------------------------

_LINE_NUMBER = re.compile(r":\d+\)$")


def parse_raw_profile(text: str) -> list[tuple[list[str], int]]:
    """py-spy's raw format: one "outermost;...;innermost count" line per distinct stack.

    A sample without any Python frame (native code only) comes as " count"; it is kept,
    as one "(no Python frame)" frame, so that the shares are of all samples.
    """
    stacks = []
    for line in text.splitlines():
        frames, space, count = line.rstrip().rpartition(" ")
        if not space or not count.isdigit():
            continue
        names = [_LINE_NUMBER.sub(")", f) for f in frames.split(";") if f] or ["(no Python frame)"]
        stacks.append((names, int(count)))
    return stacks


def profile_summary(text: str, label: str, ticks: int | None = None, top: int = 40, top_self: int = 25) -> str:
    """The functions with the most inclusive and the most self samples, over all threads.

    A function (name and file, line numbers merged) counts once per stack it appears in,
    however deep the recursion, so inclusive shares stay at or below 100 %.
    """
    stacks = parse_raw_profile(text)
    total = sum(count for _, count in stacks)
    inclusive: Counter = Counter()
    own: Counter = Counter()
    for frames, count in stacks:
        for function in set(frames):
            inclusive[function] += count
        own[frames[-1]] += count
    head = f"py-spy profile of {label}: {total:,} samples over all threads"
    if ticks is not None:
        head += f" ({ticks:,} sampling ticks)"
    lines = [head, ("The whole process, start-up included; idle threads (waiting on a lock, a socket or a sleep) "
                   "are not sampled."), ""]

    def block(title: str, counts: Counter, limit: int) -> None:
        lines.extend([title, f"{'share':>7}  {'samples':>8}  function"])
        for function, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]:
            lines.append(f"{100 * count / total:6.1f}%  {count:8,}  {function}")
        lines.append("")

    if not total:
        return head + "\nno samples\n"
    block(f"Top {top} functions by inclusive samples (the function or anything it called was running)",
          inclusive, top)
    block(f"Top {top_self} functions by self samples (the function itself was running)", own, top_self)
    return "\n".join(lines)


# --- databases ----------------------------------------------------------------------------


class Databases:
    """Creates a fresh database per run, from a migrated template per package where it can."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.sqlite_dir = bench.workdir / "sqlite"
        self.sqlite_dir.mkdir()
        self.templates: dict[tuple[str, str], str] = {}
        self.created: dict[str, list[str]] = defaultdict(list)
        self.counter = 0

    def _pg(self):
        import psycopg

        return psycopg.connect(dbname="postgres", autocommit=True, **PG)

    def _mysql(self):
        import pymysql

        return pymysql.connect(autocommit=True, **MYSQL)

    def _unique(self, tag: str) -> str:
        self.counter += 1
        return re.sub(r"\W", "_", f"bench_{os.getpid()}_{self.counter}_{tag}")[:60]

    def _create_empty(self, db: str, name: str) -> str:
        if db == "sqlite":
            return str(self.sqlite_dir / f"{name}.sqlite3")
        if db == "postgres":
            with self._pg() as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        elif db == "mariadb":
            with self._mysql() as conn:
                conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        self.created[db].append(name)
        return name

    def _template(self, db: str, env: str) -> str:
        key = (db, env)
        if key not in self.templates:
            name = self._create_empty(db, self._unique(f"tpl_{env}"))
            self.bench.run_tool(env, ["migrate"], db, name, timeout=180)
            self.templates[key] = name
        return self.templates[key]

    def new(self, db: str, env: str, tag: str) -> str:
        """A fresh migrated database for env ("ours"/"orig"); an empty one for "sqlalchemy"."""
        name = self._unique(f"{env}_{tag}")
        if env == "sqlalchemy":
            return self._create_empty(db, name)
        if db == "sqlite":
            path = self.sqlite_dir / f"{name}.sqlite3"
            shutil.copyfile(self._template(db, env), path)
            return str(path)
        if db == "postgres":
            template = self._template(db, env)
            with self._pg() as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            self.created[db].append(name)
            return name
        # MariaDB has no template databases: migrate each one.
        self._create_empty(db, name)
        self.bench.run_tool(env, ["migrate"], db, name, timeout=300)
        return name

    def drop(self, db: str, name: str) -> None:
        if db == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(name + suffix).unlink(missing_ok=True)
            return
        try:
            if db == "postgres":
                with self._pg() as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            elif db == "mariadb":
                with self._mysql() as conn:
                    conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        except Exception as error:  # noqa: BLE001 - best effort clean-up
            log(f"could not drop {db} database {name}: {error}")
        if name in self.created[db]:
            self.created[db].remove(name)

    def drop_all(self) -> None:
        for db, names in list(self.created.items()):
            for name in list(names):
                self.drop(db, name)

    def versions(self, dbs: set[str]) -> dict:
        found = {}
        if "postgres" in dbs:
            with self._pg() as conn:
                found["PostgreSQL"] = conn.execute("SHOW server_version").fetchone()[0]
        if "mariadb" in dbs:
            with self._mysql() as conn:
                cursor = conn.cursor()
                cursor.execute("SELECT VERSION()")
                found["MariaDB"] = cursor.fetchone()[0]
        return found


# --- the benchmark ------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.python = {"ours": args.ours_python, "orig": args.orig_python, "sqlalchemy": args.orig_python,
                       "memory": args.ours_python}
        self.workdir = Path(tempfile.mkdtemp(prefix="bench_"))
        self.profile_dir = Path(args.profile).resolve() if args.profile else None
        if self.profile_dir:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
        self.dbs = Databases(self)
        self.results: dict = {"scenarios": {}}
        self.run_index = 0
        # The hand-off scenario's Redis keys: this run's own, deleted after each run.
        self.redis_prefix = f"dja-bench-{os.getpid()}:"

    # helpers -------------------------------------------------------------------------

    def env_vars(self, db: str, name: str) -> dict:
        env = dict(os.environ)
        env.update(
            BENCH_DB=db, BENCH_DB_NAME=name, PYTHONPATH=str(BENCH), DJANGO_SETTINGS_MODULE="bench_settings",
            PYTHONUNBUFFERED="1", BENCH_CELERY_PREFIX=self.redis_prefix,
        )
        return env

    def sa_url(self, db: str, name: str) -> str:
        if db == "sqlite":
            return f"sqlite:///{name}"
        if db == "postgres":
            return f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
        return f"mysql+pymysql://{MYSQL['user']}@{MYSQL['host']}:{MYSQL['port']}/{name}"

    def store_args(self, env: str, db: str, name: str) -> list[str]:
        if env == "memory":
            return ["--store", "memory"]
        if env == "sqlalchemy":
            return ["--store", "sqlalchemy", "--sa-url", self.sa_url(db, name)]
        return ["--store", "django"]

    def run_tool(self, env: str, argv: list[str], db: str, name: str, timeout: float) -> str:
        """Run a scheduler_proc.py subcommand; a failed connection (shared server busy or
        restarting) is tried again twice, a few seconds apart."""
        command = [self.python[env], str(PROC)] + argv
        for attempt in range(3):
            result = subprocess.run(
                command, env=self.env_vars(db, name), cwd=BENCH, capture_output=True, text=True, timeout=timeout,
                check=False,
            )
            if result.returncode == 0:
                return result.stdout
            if "OperationalError" not in result.stderr or attempt == 2:
                break
            log(f"retrying after a database connection error: {result.stderr.strip().splitlines()[-1][:200]}")
            time.sleep(3)
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")

    def start(self, env: str, db: str, name: str, label: str, extra: list[str], profile: bool = False) -> Proc:
        """Start a scheduler; with ``profile`` and --profile, this package's runs under py-spy."""
        self.run_index += 1
        label = f"{self.run_index:03d}_{label}"
        argv = [self.python[env], str(PROC), "run"] + self.store_args(env, db, name) + extra
        raw = None
        if profile and self.profile_dir and env == "ours":
            raw = self.profile_dir / f"{label}.txt"
            argv = [self.args.py_spy, "record", "--nonblocking", "-r", "200", "-f", "raw", "-o", str(raw), "--"] + argv
        return Proc(self.workdir, label, argv, self.env_vars(db, name), profile=raw)

    def envs(self, with_reference: bool = False) -> list[str]:
        """The environments a scenario runs in: --envs, with the floor and SQLAlchemyJobStore only in
        the floor scenarios (add rate, burst, lag)."""
        envs = [env for env in ("ours", "orig") if env in self.args.envs]
        if with_reference and "sqlalchemy" in self.args.envs and not self.args.no_reference:
            envs.append("sqlalchemy")
        if with_reference and "memory" in self.args.envs:
            envs.insert(0, "memory")
        return envs

    def new_db(self, db: str, env: str, tag: str) -> str | None:
        """A database for the run; none for the in-memory floor."""
        return None if env == "memory" else self.dbs.new(db, env, tag)

    def drop_db(self, db: str, name: str | None) -> None:
        if name is not None:
            self.dbs.drop(db, name)

    def record(self, scenario: str, db: str, env: str, result: dict) -> None:
        self.results["scenarios"].setdefault(scenario, {}).setdefault(db, {}).setdefault(env, []).append(result)
        self.save()

    def save(self) -> None:
        path = Path(self.args.results)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.results, indent=1, sort_keys=True))

    # scenarios -------------------------------------------------------------------------

    def burst(self, db: str, env: str, repeat: int) -> dict:
        """N date jobs due at one instant: fires per second until all ran, SQL per fire."""
        n = self.args.burst_jobs
        name = self.new_db(db, env, f"burst{repeat}")
        calls = self.workdir / f"burst_{db}_{env}_{repeat}.log"
        try:
            due = time.time() + self.args.burst_lead
            extra = ["--log", str(calls), "--grace", "3600"]
            if env == "memory":  # nothing to seed: the jobs are added in the scheduler's process
                extra += ["--date-jobs", str(n), "--run-at", str(due)]
            else:
                self.run_tool(env, ["seed", *self.store_args(env, db, name), "--date-jobs", str(n), "--run-at",
                                    str(due), "--log", str(calls), "--grace", "3600"], db, name, timeout=120)
            proc = self.start(env, db, name or "", f"burst_{db}_{env}", extra, profile=True)
            ready = proc.wait_ready(60)
            last_count, last_progress = 0, max(time.time(), due)
            deadline = due + self.args.burst_timeout
            while True:
                count = count_lines(calls)
                now = time.time()
                if count != last_count:
                    last_count, last_progress = count, now
                if count >= n or now > deadline or proc.popen.poll() is not None or proc.thread_died():
                    break
                if now > due and now - last_progress > self.args.stall_timeout:
                    break
                time.sleep(0.05)
            time.sleep(self.args.settle)  # the last results are written after the last call
            stats = proc.stop()
            rows = [r for r in read_log(calls) if r[0].startswith("burst")]
            ran = {r[0] for r in rows}
            times = sorted(r[2] for r in rows)
            result: dict = {"n": n, "fires": len(ran), "executions": len(rows), "duplicates": len(rows) - len(ran)}
            result["late_start"] = ready is None or ready > due
            if times:
                result["first_fire_ms"] = (times[0] - due) * 1000
                result["elapsed_s"] = times[-1] - due
                result["fires_per_s"] = len(ran) / max(times[-1] - due, 1e-6)
                window = sql_window(stats, due - 0.25, times[-1] + self.args.settle)
                result["sql"] = scaled(window, len(ran))
                result["loop_timeline"] = loop_timeline(stats, due, times[0])
            if len(ran) >= n:
                result["status"] = "ok"
            elif (stats and not stats.get("scheduler_alive")) or proc.thread_died() or proc.popen.returncode:
                result["status"] = "crashed"
            else:
                result["status"] = "stalled"
            result["error"] = proc.error_summary()
            return result
        finally:
            self.drop_db(db, name)

    def addrate(self, db: str, env: str, repeat: int) -> dict:
        """add_job through the store, one call per job, next week's date jobs; with this package, the
        bulk path (bulk.add_jobs) too."""
        result: dict = {"jobs": self.args.addrate_jobs}
        for key, bulk in (("add_job", False), ("bulk", True)):
            if bulk and env != "ours":
                continue
            name = self.new_db(db, env, f"add{key}{repeat}")
            try:
                argv = ["addrate", *self.store_args(env, db, name or ""), "--jobs", str(self.args.addrate_jobs)]
                out = self.run_tool(env, argv + (["--bulk"] if bulk else []), db, name or "", timeout=300)
                result[f"{key}_per_s"] = json.loads(out.strip().splitlines()[-1])["jobs_per_s"]
            finally:
                self.drop_db(db, name)
        result["status"] = "ok"
        return result

    def lag(self, db: str, env: str, repeat: int) -> dict:
        """K interval jobs every second: lag = actual start - scheduled time."""
        jobs, duration = self.args.lag_jobs, self.args.lag_duration
        name = self.new_db(db, env, f"lag{repeat}")
        calls = self.workdir / f"lag_{db}_{env}_{repeat}.log"
        try:
            start = math.ceil(time.time() + self.args.lead)
            proc = self.start(env, db, name or "", f"lag_{db}_{env}", [
                "--log", str(calls), "--interval-jobs", str(jobs), "--interval", "1", "--start-at", str(start),
                "--grace", "30"], profile=True)
            ready = proc.wait_ready(60)
            self.sleep_until(start + duration + self.args.settle + 0.5, proc)
            stats = proc.stop()
            lags = lags_ms(calls, start, duration)
            executed = len(lags)
            expected = jobs * duration
            window = sql_window(stats, start, start + duration)
            wake, commit = loop_delays(stats, start, duration)
            alive = bool(stats and stats.get("scheduler_alive"))
            return {
                "status": "ok" if alive and executed == expected else ("crashed" if not alive else "missed fires"),
                "late_start": ready is None or ready > start,
                "expected": expected,
                "executed": executed,
                "missing": expected - executed,
                "min_ms": min(lags) if lags else None,
                "p50_ms": percentile(lags, 50),
                "p99_ms": percentile(lags, 99),
                "max_ms": max(lags) if lags else None,
                "lags_ms": [round(x, 3) for x in lags],
                "loop_first_statement_ms": wake,
                "loop_first_commit_ms": commit,
                "sql": scaled(window, executed),
                "error": proc.error_summary(),
            }
        finally:
            self.drop_db(db, name)

    def handoff(self, db: str, env: str, repeat: int) -> dict:
        """Fires handed to a worker fleet, per backend, beside the in-process executor: the rate at which
        a burst is handed off (no worker running: the scheduler and the broker alone), and the lag from
        the scheduled time to the start on a worker at --lag-jobs fires per second."""
        backends: dict = {}
        for backend in self.args.handoff_backends:
            if backend == "inproc":  # this run's own burst and lag when it measured them, else now
                burst = self.measured("burst", db, env, repeat) or self.burst(db, env, repeat)
                lag = dict(self.measured("lag", db, env, repeat) or self.lag(db, env, repeat))
            else:
                burst = self.handoff_burst(db, env, repeat, backend)
                if backend == "celery":
                    burst["send_ceiling_per_s"] = self.send_ceiling(db, env, backend)
                lag = self.handoff_lag(db, env, repeat, backend)
            lag.pop("lags_ms", None)
            backends[backend] = {
                "burst": {k: burst.get(k) for k in ("status", "n", "fires", "duplicates", "fires_per_s", "elapsed_s",
                                                     "first_fire_ms", "send_ceiling_per_s", "error")},
                "lag": {k: lag.get(k) for k in ("status", "expected", "executed", "missing", "p50_ms", "p99_ms",
                                                 "max_ms", "workers", "error")},
            }
            log(f"  handoff {db} {backend}: burst {brief('burst', burst)}; lag {brief('lag', lag)}")
        ok = all(b["burst"]["status"] == "ok" and b["lag"]["status"] == "ok" for b in backends.values())
        return {"status": "ok" if ok else "incomplete", "backends": backends}

    def measured(self, scenario: str, db: str, env: str, repeat: int) -> dict | None:
        done = self.results["scenarios"].get(scenario, {}).get(db, {}).get(env, [])
        return done[repeat] if len(done) > repeat and done[repeat].get("status") != "failed" else None

    def handoff_burst(self, db: str, env: str, repeat: int, backend: str) -> dict:
        """N date jobs due at one instant, on a hand-off executor: fires/s handed to the broker."""
        n = self.args.burst_jobs
        name = self.dbs.new(db, env, f"hburst{backend}{repeat}")
        sent = self.workdir / f"hburst_{db}_{backend}_{repeat}.log"
        try:
            due = time.time() + self.args.burst_lead
            self.run_tool(env, ["seed", "--date-jobs", str(n), "--run-at", str(due), "--grace", "3600",
                                "--executor", backend], db, name, timeout=120)
            proc = self.start(env, db, name, f"hburst_{db}_{backend}", [
                "--grace", "3600", "--executor", backend, "--handoff-log", str(sent)], profile=True)
            ready = proc.wait_ready(60)
            last_count, last_progress = 0, max(time.time(), due)
            while True:
                count, now = count_lines(sent), time.time()
                if count != last_count:
                    last_count, last_progress = count, now
                if count >= n or now > due + self.args.burst_timeout or proc.popen.poll() is not None:
                    break
                if now > due and now - last_progress > self.args.stall_timeout:
                    break
                time.sleep(0.05)
            proc.stop()
            rows = [r for r in read_log(sent) if r[0].startswith("burst")]
            handed = {r[0] for r in rows}
            times = sorted(r[2] for r in rows)
            result: dict = {"n": n, "fires": len(handed), "duplicates": len(rows) - len(handed),
                            "late_start": ready is None or ready > due, "error": proc.error_summary()}
            if times:
                result["first_fire_ms"] = (times[0] - due) * 1000
                result["elapsed_s"] = times[-1] - due
                result["fires_per_s"] = len(handed) / max(times[-1] - due, 1e-6)
            result["status"] = "ok" if len(handed) >= n and not result["duplicates"] else "stalled"
            return result
        finally:
            self.flush_redis()
            self.dbs.drop(db, name)

    def send_ceiling(self, db: str, env: str, backend: str) -> float | None:
        """The broker client's own rate right now: messages sent in a loop, no database, no scheduler."""
        try:
            out = self.run_tool(env, ["sendrate", "--messages", str(min(self.args.burst_jobs, 2000))], db, "", 120)
            return json.loads(out.strip().splitlines()[-1])["per_s"]
        except (RuntimeError, ValueError, KeyError) as error:
            log(f"  {backend} send ceiling not measured: {error}")
            return None
        finally:
            self.flush_redis()

    def handoff_lag(self, db: str, env: str, repeat: int, backend: str) -> dict:
        """K interval jobs every second handed to --handoff-workers worker processes: scheduled -> started."""
        jobs, duration = self.args.lag_jobs, self.args.lag_duration
        name = self.dbs.new(db, env, f"hlag{backend}{repeat}")
        calls = self.workdir / f"hlag_{db}_{backend}_{repeat}.log"
        workers = None
        try:
            workers = self.start_workers(db, name, backend, f"hlag_{db}_{backend}")
            start = math.ceil(time.time() + self.args.lead)
            proc = self.start(env, db, name, f"hlag_{db}_{backend}", [
                "--log", str(calls), "--interval-jobs", str(jobs), "--interval", "1", "--start-at", str(start),
                "--grace", "30", "--executor", backend])
            ready = proc.wait_ready(60)
            workers_ready = backend != "celery" or wait_for_text(workers[0][1], " ready.", 60)
            self.sleep_until(start + duration + self.args.settle + 1.0, proc)
            proc.stop()
            lags = lags_ms(calls, start, duration)
            expected = jobs * duration
            return {
                "status": "ok" if len(lags) == expected else "missed fires",
                "late_start": ready is None or ready > start or not workers_ready,
                "expected": expected, "executed": len(lags), "missing": expected - len(lags),
                "p50_ms": percentile(lags, 50), "p99_ms": percentile(lags, 99),
                "max_ms": max(lags) if lags else None, "workers": self.args.handoff_workers,
                "error": proc.error_summary(),
            }
        finally:
            for popen, _out in workers or []:
                stop_group(popen)
            self.flush_redis()
            self.dbs.drop(db, name)

    def start_workers(self, db: str, name: str, backend: str, label: str) -> list[tuple[subprocess.Popen, Path]]:
        """--handoff-workers worker processes: one Celery worker with a prefork pool of that many processes,
        or that many db_worker processes."""
        if backend == "celery":
            commands = [["-m", "celery", "-A", "bench_celery", "worker", "--pool", "prefork", "--concurrency",
                         str(self.args.handoff_workers), "--without-gossip", "--without-mingle", "--without-heartbeat",
                         "--loglevel", "INFO", "--hostname", f"bench-{os.getpid()}@%h"]]
        else:
            commands = [["-m", "django", "db_worker", "--interval", "0.05", "--no-startup-delay", "--queue-name",
                         "default"]] * self.args.handoff_workers
        started = []
        for index, command in enumerate(commands):
            out = self.workdir / f"{label}.worker{index}.out"
            with open(out, "w") as output:
                popen = subprocess.Popen([self.args.ours_python, *command], env=self.env_vars(db, name),
                                         stdout=output, stderr=subprocess.STDOUT, cwd=BENCH, start_new_session=True)
            started.append((popen, out))
        return started

    def flush_redis(self) -> None:
        """Delete this run's Redis keys (messages nobody consumed), and only them."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379)
        try:
            keys = list(client.scan_iter(match=f"{self.redis_prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    def idle(self, combos: list[tuple[str, str]], repeat: int) -> dict:
        """K jobs due next week, every combination at once (they are idle): SQL per minute, CPU."""
        names, procs = {}, {}
        try:
            for db, env in combos:
                names[(db, env)] = self.dbs.new(db, env, f"idle{repeat}")
            for db, env in combos:
                procs[(db, env)] = self.start(env, db, names[(db, env)], f"idle_{db}_{env}", [
                    "--weekly-jobs", str(self.args.idle_jobs), "--log", str(self.workdir / "idle.log")])
            for proc in procs.values():
                proc.wait_ready(60)
            time.sleep(3.0)  # start-up transients are not idling
            t0 = time.time()
            cpu0 = {key: proc.cpu_seconds() for key, proc in procs.items()}
            time.sleep(self.args.idle_duration)
            t1 = time.time()
            cpu1 = {key: proc.cpu_seconds() for key, proc in procs.items()}
            results = {}
            minutes = (t1 - t0) / 60
            for key, proc in procs.items():
                stats = proc.stop()
                cpu = None if cpu0[key] is None or cpu1[key] is None else cpu1[key] - cpu0[key]
                results[key] = {
                    "window_s": t1 - t0,
                    "sql_per_min": scaled(sql_window(stats, t0, t1), minutes),
                    "cpu_s": cpu,
                    "cpu_s_per_min": None if cpu is None else cpu / minutes,
                    "error": proc.error_summary(),
                }
            return results
        finally:
            for (db, _env), name in names.items():
                self.dbs.drop(db, name)

    def startup(self, db: str, env: str, repeat: int) -> dict:
        """Time to a running scheduler (its first fire) and peak memory, empty and with K stored jobs."""
        result = {"jobs": self.args.startup_jobs}
        for label, jobs in (("empty", 0), ("full", self.args.startup_jobs)):
            name = self.dbs.new(db, env, f"start{label}{repeat}")
            calls = self.workdir / f"startup_{db}_{env}_{label}_{repeat}.log"
            try:
                if jobs:
                    t = time.time()
                    self.run_tool(env, ["seed", "--weekly-jobs", str(jobs), "--log", str(calls)], db, name,
                                  timeout=300)
                    result["seed_s"] = time.time() - t
                proc = self.start(env, db, name, f"startup_{db}_{env}_{label}", ["--sentinel", "--log", str(calls)])
                ready = proc.wait_ready(120)
                deadline = time.time() + self.args.startup_timeout
                fired = None
                while time.time() < deadline and fired is None and proc.popen.poll() is None:
                    fired = next((r[2] for r in read_log(calls) if r[0] == "sentinel"), None)
                    time.sleep(0.02)
                stats = proc.stop()
                result[label] = {
                    "ready_s": None if ready is None else ready - proc.spawned,
                    "first_fire_s": None if fired is None else fired - proc.spawned,
                    "maxrss_mb": stats["maxrss_kb"] / 1024 if stats else None,
                    "error": proc.error_summary(),
                }
            finally:
                self.dbs.drop(db, name)
        return result

    def live(self, db: str, env: str, repeat: int) -> dict:
        """Another process reschedules a stored job to now: how long until the scheduler runs it."""
        name = self.dbs.new(db, env, f"live{repeat}")
        calls = self.workdir / f"live_{db}_{env}_{repeat}.log"
        try:
            proc = self.start(env, db, name, f"live_{db}_{env}", [
                "--weekly-jobs", str(self.args.idle_jobs), "--log", str(calls)])
            proc.wait_ready(60)
            time.sleep(2.0)
            latencies: list[float | None] = []
            for index in range(self.args.live_changes):
                job_id = f"weekly{index:06d}"
                out = self.run_tool(env, ["change", "--job-id", job_id], db, name, timeout=60)
                changed_at = json.loads(out.strip().splitlines()[-1])["changed_at"]
                deadline = changed_at + self.args.live_timeout
                ran = None
                while ran is None and time.time() < deadline:
                    ran = next((r[2] for r in read_log(calls) if r[0] == job_id), None)
                    time.sleep(0.01)
                latencies.append(None if ran is None else (ran - changed_at) * 1000)
                if ran is None:
                    break  # not obeyed: further changes would only wait as long again
                time.sleep(0.5)
            proc.stop()
            obeyed = [x for x in latencies if x is not None]
            return {
                "latencies_ms": latencies,
                "obeyed": len(obeyed),
                "tried": len(latencies),
                "median_ms": statistics.median(obeyed) if obeyed else None,
                "timeout_s": self.args.live_timeout,
                "error": proc.error_summary(),
            }
        finally:
            self.dbs.drop(db, name)

    def multi(self, db: str, env: str, repeat: int) -> dict:
        """Several schedulers on one database, the same interval jobs: duplicates and misses."""
        count, jobs, duration = self.args.multi_schedulers, self.args.multi_jobs, self.args.multi_duration
        name = self.dbs.new(db, env, f"multi{repeat}")
        calls = self.workdir / f"multi_{db}_{env}_{repeat}.log"
        procs = []
        try:
            start = math.ceil(time.time() + self.args.lead + 1.5 * count)
            for index in range(count):
                procs.append(self.start(env, db, name, f"multi_{db}_{env}_{index}", [
                    "--log", str(calls), "--interval-jobs", str(jobs), "--interval", "1", "--start-at", str(start),
                    "--grace", "30"]))
            readies = [proc.wait_ready(90) for proc in procs]
            self.sleep_until(start + duration + self.args.settle + 0.5, *procs)
            for proc in procs:  # all at once, then collect each one's statistics
                proc.terminate()
            stats = [proc.stop() for proc in procs]
            fires = Counter()
            per_process = Counter()
            for job_id, pid, t in read_log(calls):
                index = math.floor(t - start)  # lag < 1 s: the fire an execution belongs to
                if 0 <= index < duration:
                    fires[(job_id, index)] += 1
                    per_process[pid] += 1
            expected = jobs * duration
            executions = sum(fires.values())
            return {
                "schedulers": count,
                "expected": expected,
                "executions": executions,
                "distinct": len(fires),
                "duplicates": executions - len(fires),
                "misses": expected - len(fires),
                "fires_run_more_than_once": sum(1 for c in fires.values() if c > 1),
                "per_process": sorted(per_process.values(), reverse=True),
                "late_start": any(r is None or r > start for r in readies),
                "alive": [bool(s and s.get("scheduler_alive")) for s in stats],
                "errors": [proc.error_summary() for proc in procs if proc.error_summary()],
            }
        finally:
            for proc in procs:
                proc.stop(timeout=5)
            self.dbs.drop(db, name)

    def sleep_until(self, when: float, *procs: Proc) -> None:
        while time.time() < when:
            if procs and all(p.popen.poll() is not None for p in procs):
                return
            time.sleep(min(0.2, max(0.0, when - time.time())))

    # orchestration ---------------------------------------------------------------------

    def run(self) -> None:
        a = self.args
        scenarios = [s for s in ALL_SCENARIOS if s in a.scenarios]
        dbs = a.dbs
        started = time.time()
        self.results["meta"] = self.machine(set(dbs) | set(a.multi_dbs if "multi" in scenarios else []))
        self.results["settings"] = {k: v for k, v in vars(a).items() if k not in NOT_SETTINGS}
        self.results["command"] = command_line(a)
        for scenario in scenarios:
            t = time.time()
            floor = scenario in FLOOR_SCENARIOS
            if not self.envs(with_reference=floor):
                log(f"{scenario}: skipped, none of --envs {','.join(a.envs)} runs it")
                continue
            if scenario == "idle":
                for repeat in range(a.repeat):
                    combos = [(db, env) for db in dbs for env in self.envs()]
                    log(f"idle: {len(combos)} schedulers at once for {a.idle_duration:g}s (run {repeat + 1})")
                    for (db, env), result in self.idle(combos, repeat).items():
                        self.record("idle", db, env, result)
                        log(f"  idle {db} {env}: {brief('idle', result)}")
            else:
                method = getattr(self, scenario)
                targets = a.multi_dbs if scenario == "multi" else dbs
                for db in targets:
                    for repeat in range(a.repeat):
                        for env in self.envs(with_reference=floor):
                            if scenario == "handoff" and env != "ours":
                                continue  # 0.7.0 has no hand-off
                            try:
                                result = method(db, env, repeat)
                            except Exception as error:  # noqa: BLE001 - a failed run is a result
                                result = {"status": "failed", "error": f"{type(error).__name__}: {error}"[:500]}
                                kill_all()
                            self.record(scenario, db, env, result)
                            log(f"{scenario} {db} {env} #{repeat + 1}: {brief(scenario, result)}")
            log(f"{scenario} took {time.time() - t:.0f}s")
        self.results["meta"]["elapsed_s"] = time.time() - started
        self.results["meta"]["load_average_end"] = os.getloadavg()
        self.save()

    def machine(self, dbs: set[str]) -> dict:
        cpu = "unknown"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(
            (line.split(":", 1)[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
             if line.startswith("MemTotal")), "unknown")
        # 0.7.0's environment also holds SQLAlchemy: asked only when orig or the reference runs.
        asked = ["ours"] + (["orig"] if {"orig", "sqlalchemy"} & set(self.args.envs) else [])
        versions = {env: json.loads(self.run_tool(env, ["info"], "sqlite", "/dev/null", timeout=60))
                    for env in asked}
        return {
            "nproc": os.cpu_count(),
            "cpu": cpu,
            "memory": mem,
            "kernel": platform.release(),
            "load_average_start": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "versions": versions,
            "databases": self.dbs.versions(dbs),
        }


def brief(scenario: str, r: dict) -> str:
    if r.get("status") == "failed":
        return f"FAILED {r.get('error')}"
    if scenario == "burst":
        sql = (r.get("sql") or {}).get("statements")
        fps = r.get("fires_per_s")
        return (f"{r.get('status')} {r.get('fires')}/{r.get('n')} fires, "
                f"{fps or 0:.0f} fires/s, {sql if sql is None else round(sql, 2)} stmts/fire"
                + (f" [{r['error']}]" if r.get("error") else ""))
    if scenario == "addrate":
        bulk = f", bulk {r['bulk_per_s']:.0f}/s" if r.get("bulk_per_s") else ""
        return f"add_job {r.get('add_job_per_s', 0):.0f}/s{bulk}"
    if scenario == "lag":
        return (f"{r['status']}: p50 {r['p50_ms'] or 0:.1f} ms, p99 {r['p99_ms'] or 0:.1f} ms, "
                f"max {r['max_ms'] or 0:.1f} ms, {r['executed']}/{r['expected']} fires"
                + (f" [{r['error']}]" if r.get("error") else ""))
    if scenario == "idle":
        return f"{r['sql_per_min']['statements']} stmts/min, cpu {r['cpu_s']} s"
    if scenario == "startup":
        return f"empty {r['empty']} / {r['jobs']} jobs {r['full']}"
    if scenario == "live":
        return f"latencies {r['latencies_ms']} ms"
    if scenario == "handoff":
        return "; ".join(f"{backend}: {b['burst'].get('fires_per_s') or 0:.0f} fires/s handed off, lag p50 "
                         f"{b['lag'].get('p50_ms') or 0:.0f} ms p99 {b['lag'].get('p99_ms') or 0:.0f} ms"
                         for backend, b in r["backends"].items())
    if scenario == "multi":
        return (f"{r['executions']} executions of {r['expected']} fires: {r['duplicates']} duplicates, "
                f"{r['misses']} misses")
    return str(r)


ALL_ENVS = ("ours", "orig", "sqlalchemy", "memory")
# Options that say where things are, not what was measured.
NOT_SETTINGS = ("ours_python", "orig_python", "py_spy", "results", "render_only")


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run: bench/run.sh plus the options that differ from the defaults."""
    parser = build_parser()
    defaults = vars(resolve(parser, parser.parse_args(["--ours-python", "x", "--orig-python", "x"])))
    parts = ["bench/run.sh"]
    for key, value in vars(args).items():
        if key in NOT_SETTINGS or value == defaults.get(key):
            continue
        if key == "no_doc" and args.profile:
            continue  # implied by --profile
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag)
        elif isinstance(value, list):
            parts += [flag, ",".join(value)]
        else:
            parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Benchmark this package against django-apscheduler 0.7.0 (and APScheduler's "
                    "SQLAlchemyJobStore in the burst). bench/run.sh builds the environments and passes "
                    "the interpreters; run directly, only --ours-python is needed (with --envs ours, the default "
                    "when --orig-python is not given).",
        epilog="--profile DIR runs this package's scheduler processes of the burst and lag scenarios under "
               "py-spy (py-spy record --nonblocking -r 200 -f raw) and writes DIR/<label>.txt (raw samples) and "
               "DIR/<label>.top.txt (top functions by inclusive and by self samples, over all threads). "
               "Profiling slows the process, so a profiled run's numbers are not reported: it implies --no-doc "
               "and saves its results to DIR/results.json unless --results is given.",
    )
    p.add_argument("--ours-python", required=True, help="interpreter of the environment with this package")
    p.add_argument("--orig-python", help="interpreter of the environment with 0.7.0 and SQLAlchemy "
                                         "(needed for --envs orig and sqlalchemy)")
    p.add_argument("--envs", type=csv, default=None,
                   help="comma-separated subset of " + ",".join(ALL_ENVS) + " (default: all three, or ours without "
                        "--orig-python); sqlalchemy runs only in the burst")
    p.add_argument("--scenarios", type=csv, default=list(ALL_SCENARIOS), help="comma-separated: " + ",".join(ALL_SCENARIOS))
    p.add_argument("--dbs", type=csv, default=["sqlite", "postgres"],
                   help="databases of all but the multi scenario: sqlite, postgres, mariadb")
    p.add_argument("--multi-dbs", type=csv, default=["postgres", "mariadb"], help="databases of the multi scenario")
    p.add_argument("--repeat", type=int, default=1, help="runs per measurement; the report gives medians")
    p.add_argument("--burst-jobs", type=int, default=10_000, help="date jobs due at one instant (the issue's 10,000)")
    p.add_argument("--burst-lead", type=float, default=5.0,
                   help="seconds between the start of seeding and the burst instant (seeding 10,000 jobs takes "
                        "about a second)")
    p.add_argument("--burst-timeout", type=float, default=180.0,
                   help="seconds after the burst instant before an unfinished burst is given up (0.7.0 runs "
                        "10,000 jobs in 20-35 s on PostgreSQL)")
    p.add_argument("--stall-timeout", type=float, default=10.0,
                   help="give up a burst after this long without a fire (a crashed scheduler thread ends it at once)")
    p.add_argument("--no-reference", action="store_true",
                   help="skip APScheduler's SQLAlchemyJobStore in the burst (as leaving sqlalchemy out of --envs)")
    p.add_argument("--addrate-jobs", type=int, default=5_000, help="jobs added one add_job at a time (and in bulk)")
    p.add_argument("--lag-jobs", type=int, default=50)
    p.add_argument("--lag-duration", type=int, default=30, help="seconds (30 is the issue's setting)")
    p.add_argument("--idle-jobs", type=int, default=100)
    p.add_argument("--idle-duration", type=float, default=60.0)
    p.add_argument("--startup-jobs", type=int, default=100_000)
    p.add_argument("--startup-timeout", type=float, default=60.0)
    p.add_argument("--live-changes", type=int, default=3)
    p.add_argument("--live-timeout", type=float, default=8.0)
    p.add_argument("--multi-schedulers", type=int, default=4)
    p.add_argument("--multi-jobs", type=int, default=20)
    p.add_argument("--multi-duration", type=int, default=30, help="seconds (30 is the issue's setting)")
    p.add_argument("--handoff-backends", type=csv, default=list(HANDOFF_BACKENDS),
                   help="executors the handoff scenario compares: " + ",".join(HANDOFF_BACKENDS))
    p.add_argument("--handoff-workers", type=int, default=2,
                   help="worker processes taking the handed-off fires in the handoff scenario's lag run")
    p.add_argument("--lead", type=float, default=4.0, help="seconds between starting schedulers and the first fire")
    p.add_argument("--settle", type=float, default=1.0, help="seconds left for the last results to be written")
    p.add_argument("--results", default=None,
                   help=f"where to save the raw results (JSON; default {RESULTS.relative_to(ROOT)})")
    p.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    p.add_argument("--quick", action="store_true",
                   help="development run: the floor scenarios (add rate, burst, lag) and the hand-off with small sizes, on "
                        "--dbs; options given explicitly still win. Its numbers are not for the docs (--no-doc).")
    p.add_argument("--render-only", metavar="RESULTS_JSON", help="only render docs/benchmarks.md from saved results")
    p.add_argument("--profile", metavar="DIR",
                   help="profile this package's burst and lag schedulers with py-spy into DIR (see below); "
                        "profiling slows the process, so the numbers are not reported")
    return p


# --quick: smaller sizes, for a run of a couple of minutes while developing.
QUICK = {"scenarios": ["addrate", "burst", "lag", "handoff"], "burst_jobs": 2_000, "burst_lead": 3.0, "lag_duration": 8,
         "addrate_jobs": 1_000, "lead": 3.0, "settle": 0.5, "no_doc": True}


def apply_quick(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Lower every size left at its default to its --quick value."""
    for key, value in QUICK.items():
        if getattr(args, key) == parser.get_default(key):
            setattr(args, key, value)


def resolve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Check the options against each other and fill in the defaults that depend on others."""
    for option in ("ours_python", "orig_python"):
        path = getattr(args, option)
        if path and os.sep in path:  # the processes run in bench/: keep the venv's own path, absolute
            setattr(args, option, os.path.abspath(path))
    if args.quick:
        apply_quick(parser, args)
    if args.envs is None:
        args.envs = list(ALL_ENVS) if args.orig_python else ["ours", "memory"]
    unknown = [env for env in args.envs if env not in ALL_ENVS]
    if unknown or not args.envs:
        parser.error(f"--envs takes a comma-separated subset of {','.join(ALL_ENVS)}, not {','.join(args.envs)!r}")
    args.envs = [env for env in ALL_ENVS if env in args.envs]
    if {"orig", "sqlalchemy"} & set(args.envs) and not args.orig_python:
        parser.error("--envs orig and sqlalchemy need --orig-python (the environment with 0.7.0 and SQLAlchemy)")
    for option in ("dbs", "multi_dbs"):
        wrong = [db for db in getattr(args, option) if db not in ("sqlite", "postgres", "mariadb")]
        if wrong:
            parser.error(f"--{option.replace('_', '-')}: unknown database {','.join(wrong)} "
                         "(sqlite, postgres, mariadb)")
    wrong = [b for b in args.handoff_backends if b not in HANDOFF_BACKENDS]
    if wrong:
        parser.error(f"--handoff-backends: unknown {','.join(wrong)} ({','.join(HANDOFF_BACKENDS)})")
    wrong = [s for s in args.scenarios if s not in ALL_SCENARIOS]
    if wrong:
        parser.error(f"--scenarios: unknown {','.join(wrong)} ({','.join(ALL_SCENARIOS)})")
    args.py_spy = None
    if args.profile:
        args.no_doc = True  # a profiled run's numbers are not the ones to publish
        if args.results is None:
            args.results = str(Path(args.profile) / "results.json")
        args.py_spy = (shutil.which("py-spy", path=str(Path(args.ours_python).parent)) or shutil.which("py-spy"))
        if not args.py_spy and not args.render_only:
            parser.error("--profile needs py-spy beside --ours-python or on PATH "
                         "(pip install py-spy; it is in this package's bench extra)")
    if args.results is None:
        args.results = str(RESULTS)
    return args


def main() -> None:
    parser = build_parser()
    args = resolve(parser, parser.parse_args())
    import report

    if args.render_only:
        saved = json.loads(Path(args.render_only).read_text())
        if set(saved["scenarios"]) == {"handoff"}:
            report.splice_handoff(saved)  # a hand-off run: its section only
        else:
            report.render(saved)
        return
    bench = Bench(args)

    def interrupted(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        bench.run()
    finally:
        kill_all()
        bench.dbs.drop_all()
        shutil.rmtree(bench.workdir, ignore_errors=True)
    if bench.profile_dir:
        log(f"profiles in {bench.profile_dir}/ (*.top.txt); results in {args.results}, not rendered")
    if not args.no_doc and args.scenarios == ["handoff"]:
        report.splice_handoff(bench.results)  # the rest of the page stays as the last full run wrote it
        log(f"wrote the hand-off section of {report.DOC.relative_to(ROOT)}")
    elif not args.no_doc:
        report.render(bench.results)
        log(f"wrote {report.DOC.relative_to(ROOT)} and plots in {report.PLOTS.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
