"""Real Celery workers for the Celery tests: started, watched, stopped, their Redis keys removed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REDIS = ("127.0.0.1", 6379)


def require_redis() -> None:
    """Skip when Redis is not there, as the suite does for a database; under CI it is a failure."""
    try:
        socket.create_connection(REDIS, timeout=3).close()
    except OSError:
        message = f"Redis is not reachable on {REDIS[0]}:{REDIS[1]} (the Celery tests' broker)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class CeleryFleet:
    """Celery worker processes (``celery -A tests.celery_app worker``) on this run's own Redis keys."""

    env: dict
    workdir: Path
    prefix: str = field(default_factory=lambda: f"dja-tests-{os.getpid()}-{uuid.uuid4().hex[:8]}:")
    workers: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = dict(self.env)
        self.env.update(
            DJANGO_APSCHEDULER_CELERY_PREFIX=self.prefix,
            DJANGO_APSCHEDULER_CELERY_LOG=str(self.witness_log),
            DJANGO_SETTINGS_MODULE="tests.settings",
        )

    @property
    def witness_log(self) -> Path:
        return self.workdir / "celery_received.jsonl"

    def start(self, count: int, concurrency: int = 1) -> None:
        """``count`` workers, each a prefork pool of ``concurrency`` processes."""
        for _ in range(count):
            index = len(self.workers)
            output_path = self.workdir / f"worker{index}.out"
            command = [
                sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "--pool", "prefork",
                "--concurrency", str(concurrency), "--hostname", f"w{index}-{self.prefix.strip(':')}@%h",
                # No broadcast chatter: workers of other test runs share this Redis.
                "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
            ]
            with open(output_path, "w") as output:
                process = subprocess.Popen(command, env=self.env, stdout=output, stderr=subprocess.STDOUT)
            process.output_path = output_path
            self.workers.append(process)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for process in self.workers:
            while " ready." not in process.output_path.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"celery worker did not start:\n{process.output_path.read_text()[-3000:]}")
                time.sleep(0.1)

    def pool_pids(self) -> set[int]:
        """The pids of the processes that run tasks: the children of the worker processes."""
        parents = {p.pid for p in self.workers}
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) in parents:
                found.add(int(entry.name))
        return found

    def received(self) -> list[dict]:
        """What the workers' witness saw of each task they ran (tests/celery_app.py)."""
        if not self.witness_log.exists():
            return []
        return [json.loads(line) for line in self.witness_log.read_text().splitlines() if line.strip()]

    def outputs(self) -> str:
        return "\n".join(f"--- worker pid {p.pid} ---\n{p.output_path.read_text()[-4000:]}" for p in self.workers)

    def stop(self, timeout: float = 30) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish
        for process in self.workers:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.flush_keys()

    def flush_keys(self) -> int:
        """Delete this run's keys (and only them) from Redis."""
        import redis

        client = redis.Redis(host=REDIS[0], port=REDIS[1], db=0)
        try:
            keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            return len(keys)
        finally:
            client.close()
