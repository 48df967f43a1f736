"""A database built and used by django-apscheduler 0.7.0 upgrades in place.

For real, with no mocks: django-apscheduler 0.7.0 is installed from PyPI into its
own virtual environment (same import name as this package, so it cannot share this
interpreter), migrates a fresh database of the backend selected by ``DB``, stores
jobs through its DjangoJobStore, runs them so that it records executions itself,
and adds execution rows of every status through its models. Then this package
migrates that same database, must keep every job and execution row unchanged,
and a scheduler with this package's DjangoJobStore must run the old jobs and record
new executions.

The helper scripts live in ``tests/upgrade/`` and run as subprocesses with their
own minimal settings (``upgrade_settings``); pytest-django's test database is not
used. The 0.7.0 environment is built once and cached in ``.cache/``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.upgrade

OLD_VERSION = "0.7.0"
OLD_REQUIREMENTS = [
    f"django-apscheduler=={OLD_VERSION}",
    "Django>=4.2,<5.3",
    "apscheduler>=3.10,<4",
    "psycopg[binary]",
    "PyMySQL",
]
OLD_MIGRATIONS = [
    "0001_initial",
    "0002_auto_20180412_0758",
    "0003_auto_20200716_1632",
    "0004_auto_20200717_1043",
    "0005_migrate_name_to_id",
    "0006_remove_djangojob_name",
    "0007_auto_20200717_1404",
    "0008_remove_djangojobexecution_started",
    "0009_djangojobexecution_unique_job_executions",
]
SQUASHED = "0001_squashed_0009_djangojobexecution_unique_job_executions"
OURS = "0010_multi_scheduler_history"
JOB_IDS = {"interval_job", "cron_job", "failing_job", "paused_job", "date_job"}

ROOT = Path(__file__).resolve().parents[2]
HELPERS = ROOT / "tests" / "upgrade"
# This package's migrations after the squashed one: all an upgraded 0.7.0 database lacks.
OUR_LATER_MIGRATIONS = sorted(
    path.stem
    for path in (ROOT / "django_apscheduler" / "migrations").glob("[0-9][0-9][0-9][0-9]_*.py")
    if path.stem != SQUASHED
)
CACHE = ROOT / ".cache"
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKEND = os.environ.get("DB", "sqlite")

# How long this package's scheduler runs the old jobs (interval 1 s, cron every 2 s).
OUR_RUN_SECONDS = 8


def _unavailable(reason: str) -> None:
    """Under CI a missing prerequisite is a failure; on a developer's machine, a skip."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _run(cmd: list, env: dict, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a helper; on failure, fail the test with its command line and output."""
    try:
        result = subprocess.run(
            [str(part) for part in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{cmd} timed out after {timeout} s\nstdout:\n{exc.stdout}\nstderr:\n{exc.stderr}")
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited with {result.returncode}\n"
            f"stdout:\n{_tail(result.stdout)}\nstderr:\n{_tail(result.stderr)}"
        )
    return result


# --- the 0.7.0 environment ---------------------------------------------------


def _build_old_venv(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True, timeout=120)
    try:
        result = subprocess.run(
            [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--retries", "2", "--timeout", "30",
             *OLD_REQUIREMENTS],
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(path, ignore_errors=True)
        _unavailable(f"pip install of django-apscheduler {OLD_VERSION} from PyPI timed out")
    if result.returncode != 0:
        shutil.rmtree(path, ignore_errors=True)
        _unavailable(
            f"could not install django-apscheduler {OLD_VERSION} from PyPI (no network?); "
            f"pip exited with {result.returncode}:\n{_tail(result.stderr, 15)}"
        )


@pytest.fixture(scope="session")
def old_python() -> Path:
    """Python of a cached virtual environment holding django-apscheduler 0.7.0 from PyPI."""
    key = hashlib.sha256("\n".join([sys.version, *OLD_REQUIREMENTS]).encode()).hexdigest()[:10]
    venv = CACHE / f"venv-{OLD_VERSION}-py{sys.version_info.major}{sys.version_info.minor}-{key}"
    python = venv / "bin" / "python"
    complete = venv / ".complete"
    CACHE.mkdir(parents=True, exist_ok=True)
    # Concurrent test sessions build it once: the others wait for the lock.
    with open(CACHE / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not complete.exists() or not python.exists():
            _build_old_venv(venv)
            complete.write_text("\n".join(OLD_REQUIREMENTS) + "\n")
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('django-apscheduler'))"],
        capture_output=True,
        text=True,
        cwd=CACHE,
    )
    assert probe.stdout.strip() == OLD_VERSION, f"{venv} is not a django-apscheduler {OLD_VERSION} environment: {probe}"
    return python


# --- databases ---------------------------------------------------------------


class Databases:
    """Creates throw-away databases of the selected backend and drops them afterwards."""

    def __init__(self, backend: str, directory: Path) -> None:
        self.backend = backend
        self.directory = directory
        self.created: list[str] = []
        self.prefix = f"upgrade_070_{secrets.token_hex(4)}"

    def _pg(self):
        import psycopg

        return psycopg.connect(
            host=os.environ.get("PGHOST", "127.0.0.1"),
            port=os.environ.get("PGPORT", "5432"),
            user=os.environ.get("PGUSER", "postgres"),
            password=os.environ.get("PGPASSWORD", ""),
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )

    def _mysql(self):
        import pymysql

        return pymysql.connect(
            host=os.environ.get("MYSQL_HOST", "127.0.0.1"),
            port=int(os.environ.get("MYSQL_PORT", "3306")),
            user=os.environ.get("MYSQL_USER", "root"),
            password=os.environ.get("MYSQL_PASSWORD", ""),
            connect_timeout=5,
            autocommit=True,
        )

    def create(self, suffix: str) -> str:
        """Return the settings' NAME of a new, empty database."""
        name = f"{self.prefix}_{suffix}"
        if self.backend == "sqlite":
            return str(self.directory / f"{name}.sqlite3")
        try:
            if self.backend == "postgres":
                with self._pg() as connection:
                    connection.execute(f'CREATE DATABASE "{name}"')
            elif self.backend == "mariadb":
                connection = self._mysql()
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
                finally:
                    connection.close()
            else:
                pytest.fail(f"Unknown DB={self.backend!r}")
        except Exception as exc:  # the server is down or refuses us
            _unavailable(f"cannot create a {self.backend} database for the upgrade test: {exc}")
        self.created.append(name)
        return name

    def drop_all(self) -> None:
        for name in self.created:
            if self.backend == "postgres":
                with self._pg() as connection:
                    connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            elif self.backend == "mariadb":
                connection = self._mysql()
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
                finally:
                    connection.close()
        self.created.clear()


@pytest.fixture(scope="module")
def databases(tmp_path_factory):
    dbs = Databases(BACKEND, tmp_path_factory.mktemp("upgrade_070_db"))
    yield dbs
    dbs.drop_all()


def _env(database_name: str, phase: str, **extra: str) -> dict:
    """Environment of a helper subprocess: its own settings, the database, the helpers on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTHONHOME")}
    env.update(
        DJANGO_SETTINGS_MODULE="upgrade_settings",
        PYTHONPATH=str(HELPERS),
        PYTHONDONTWRITEBYTECODE="1",
        UPGRADE_DB=BACKEND,
        UPGRADE_DB_NAME=database_name,
        UPGRADE_PHASE=phase,
        **extra,
    )
    return env


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _fires(log: Path) -> Counter:
    """How many times each (job label, phase) wrote its line."""
    if not log.exists():
        return Counter()
    return Counter(tuple(line.split()) for line in log.read_text(encoding="utf-8").splitlines() if line.strip())


# --- the scenario: seed with 0.7.0, migrate with ours, run ours ----------------


@pytest.fixture(scope="module")
def upgraded(old_python, databases, tmp_path_factory):
    """A database seeded by 0.7.0, then migrated by this package; snapshots of both moments."""
    work = tmp_path_factory.mktemp("upgrade_070")
    name = databases.create("upgraded")
    fires_log = work / "fires.log"

    # The subprocesses run in `work`, so /work/main (and its django_apscheduler) is never on
    # the 0.7.0 interpreter's path; the snapshots record which package each one imported.
    # 0.7.0 needs IMMEDIATE transactions to survive its own threads on SQLite (see
    # upgrade_settings); this package then runs with SQLite's defaults.
    seed_env = _env(name, "070", UPGRADE_SQLITE_IMMEDIATE="1")
    _run([old_python, HELPERS / "seed_with_070.py", fires_log, work / "seed.json"], seed_env, work)
    seed = _load(work / "seed.json")
    fires_070 = _fires(fires_log)

    ours = _env(name, "ours")
    migrate = _run([sys.executable, "-m", "django", "migrate", "--noinput"], ours, work)
    migrate_check = _run([sys.executable, "-m", "django", "migrate", "--check", "--noinput"], ours, work)
    showmigrations = _run([sys.executable, "-m", "django", "showmigrations", "django_apscheduler"], ours, work)
    _run([sys.executable, HELPERS / "upgrade_snapshot.py", work / "after.json"], ours, work)

    return SimpleNamespace(
        work=work,
        name=name,
        fires_log=fires_log,
        seed=seed,
        fires_070=fires_070,
        migrate=migrate,
        migrate_check=migrate_check,
        showmigrations=showmigrations,
        after=_load(work / "after.json"),
    )


@pytest.fixture(scope="module")
def fresh(databases, tmp_path_factory):
    """A snapshot of an empty database migrated by this package alone."""
    work = tmp_path_factory.mktemp("upgrade_070_fresh")
    env = _env(databases.create("fresh"), "fresh")
    _run([sys.executable, "-m", "django", "migrate", "--noinput"], env, work)
    _run([sys.executable, HELPERS / "upgrade_snapshot.py", work / "fresh.json"], env, work)
    return _load(work / "fresh.json")


@pytest.fixture(scope="module")
def ran(upgraded):
    """This package's scheduler, run for a few seconds on the upgraded database."""
    result_path = upgraded.work / "ran.json"
    _run(
        [sys.executable, HELPERS / "run_our_scheduler.py", OUR_RUN_SECONDS, result_path],
        _env(upgraded.name, "ours"),
        upgraded.work,
        timeout=OUR_RUN_SECONDS + 60,
    )
    result = _load(result_path)
    result["fires"] = _fires(upgraded.fires_log)
    return SimpleNamespace(**result)


def test_the_old_database_was_really_built_and_used_by_070(upgraded, old_python):
    seed = upgraded.seed
    assert seed["package_version"] == OLD_VERSION
    assert Path(seed["package_file"]).is_relative_to(old_python.parent.parent)
    assert seed["migrations"] == OLD_MIGRATIONS
    assert {job["id"] for job in seed["jobs"]} == JOB_IDS
    assert {job["id"] for job in seed["jobs"] if job["next_run_time"] is None} == {"paused_job"}

    # 0.7.0's own scheduler ran jobs and recorded them.
    assert upgraded.fires_070[("interval", "070")] >= 1
    statuses = Counter((row["job_id"], row["status"]) for row in seed["executions"])
    assert statuses[("interval_job", "Executed")] >= 1
    assert statuses[("failing_job", "Error!")] >= 1
    recorded_error = next(row for row in seed["executions"] if row["job_id"] == "failing_job")
    assert "boom" in recorded_error["exception"]
    assert "ValueError" in recorded_error["traceback"]
    # Rows of every status, written through 0.7.0's models.
    assert {row["status"] for row in seed["executions"]} == {
        "Executed", "Error!", "Started execution", "Missed!", "Max instances!"
    }


def test_migrate_adds_only_our_migration(upgraded):
    assert OURS in OUR_LATER_MIGRATIONS
    applying = [line.strip() for line in upgraded.migrate.stdout.splitlines() if "Applying" in line]
    expected = [f"Applying django_apscheduler.{name}... OK" for name in OUR_LATER_MIGRATIONS]
    assert applying == expected, upgraded.migrate.stdout
    assert upgraded.migrate_check.returncode == 0

    shown = upgraded.showmigrations.stdout
    assert f"[X] {SQUASHED}" in shown, shown
    for name in OUR_LATER_MIGRATIONS:
        assert f"[X] {name}" in shown, shown
    assert "[ ]" not in shown, shown

    after = upgraded.after
    assert Path(after["package_file"]).is_relative_to(ROOT / "django_apscheduler")
    assert set(after["migrations"]) == {*OLD_MIGRATIONS, SQUASHED, *OUR_LATER_MIGRATIONS}


def test_every_job_and_execution_survives_unchanged(upgraded):
    # The pickles are the same bytes; the upgrade signed each of them (migration 0018).
    assert [job["signed"] for job in upgraded.seed["jobs"]] == [False] * len(JOB_IDS)
    assert [job["signed"] for job in upgraded.after["jobs"]] == [True] * len(JOB_IDS)
    unsigned = [{**job, "signed": None} for job in upgraded.after["jobs"]]
    assert unsigned == [{**job, "signed": None} for job in upgraded.seed["jobs"]]
    assert upgraded.after["executions"] == upgraded.seed["executions"]


def _schema_differences(upgraded: dict, fresh: dict) -> list[str]:
    differences = []
    for table in sorted(set(upgraded) | set(fresh)):
        if table not in upgraded or table not in fresh:
            differences.append(f"{table}: only in the {'fresh' if table in fresh else 'upgraded'} database")
            continue
        for what in ("columns", "constraints"):
            mine = Counter(json.dumps(item) for item in upgraded[table][what])
            theirs = Counter(json.dumps(item) for item in fresh[table][what])
            differences += [f"{table}: {what[:-1]} only after the upgrade: {item}" for item in mine - theirs]
            differences += [f"{table}: {what[:-1]} only in a fresh database: {item}" for item in theirs - mine]
    return differences


def test_upgraded_schema_is_the_schema_of_a_fresh_database(upgraded, fresh):
    """Columns, their types and nullability, keys and indexes (names aside) are the same."""
    differences = _schema_differences(upgraded.after["schema"], fresh["schema"])
    assert not differences, "\n".join(differences)


def test_old_jobs_run_under_our_scheduler(upgraded, ran):
    seed = upgraded.seed
    assert set(ran.loaded_jobs) == JOB_IDS
    assert ran.loaded_jobs["paused_job"]["next_run_time"] is None
    assert ran.loaded_jobs["interval_job"]["func_ref"] == "upgrade_jobs:append_line"
    assert ran.loaded_jobs["cron_job"]["trigger"] == "cron[second='*/2']"

    # The jobs ran, in this package's scheduler; the paused and the future date job did not.
    assert ran.fires[("interval", "ours")] >= 3, ran.fires
    assert ran.fires[("cron", "ours")] >= 2, ran.fires
    assert not any(label in ("paused", "date") for label, _phase in ran.fires), ran.fires

    # New execution rows, recorded by this package, next to the old ones.
    last_old_id = max(row["id"] for row in seed["executions"])
    new_rows = [row for row in ran.snapshot["executions"] if row["id"] > last_old_id]
    new_statuses = Counter((row["job_id"], row["status"]) for row in new_rows)
    assert new_statuses[("interval_job", "Executed")] >= 3, new_statuses
    assert new_statuses[("cron_job", "Executed")] >= 2, new_statuses
    assert new_statuses[("failing_job", "Error!")] >= 1, new_statuses
    assert not {"paused_job", "date_job"} & {row["job_id"] for row in new_rows}
    error = next(row for row in new_rows if row["status"] == "Error!")
    assert "boom" in error["exception"] and "ValueError" in error["traceback"]
    newest_old_run = max(datetime.fromisoformat(row["run_time"]) for row in seed["executions"])
    assert all(datetime.fromisoformat(row["run_time"]) > newest_old_run for row in new_rows)
    executed_ids = {row["id"] for row in new_rows if row["status"] == "Executed"}
    assert all(row["scheduler_id"] is not None for row in ran.new_columns if row["id"] in executed_ids)

    # The old history is still there, untouched; so are the jobs that did not run.
    old_rows = [row for row in ran.snapshot["executions"] if row["id"] <= last_old_id]
    assert old_rows == seed["executions"]
    jobs_after = {job["id"]: job for job in ran.snapshot["jobs"]}
    for job in seed["jobs"]:
        if job["id"] in ("paused_job", "date_job"):
            # Same pickle, now signed by the upgrade (migration 0018).
            assert jobs_after[job["id"]] == {**job, "signed": True}
    assert set(jobs_after) == JOB_IDS
