"""Starting, stopping and inspecting real scheduler processes for the multi-scheduler tests."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# Liveness settings of the scheduler processes in most cluster tests: a dead peer is
# noticed within seconds, a live one starved of CPU for a moment is not taken for dead.
QUICK_LIVENESS = {
    "APSCHEDULER_POLL_INTERVAL": "1",
    "APSCHEDULER_HEARTBEAT_INTERVAL": "0.5",
    "APSCHEDULER_HEARTBEAT_TIMEOUT": "3",
}


@dataclass
class Cluster:
    env: dict
    workdir: Path
    processes: list = field(default_factory=list)

    @property
    def calls_log(self) -> Path:
        return self.workdir / "calls.log"

    def start(self, count=1, env=None, **options) -> list:
        """Start ``count`` scheduler processes; ``env`` adds variables (a callable gets the index)."""
        started = []
        for _ in range(count):
            index = len(self.processes)
            output = open(self.workdir / f"scheduler{index}.out", "w")
            command = [sys.executable, "-m", "tests.procs.scheduler_process", "--log", str(self.calls_log)]
            for key, value in options.items():
                flag = f"--{key.replace('_', '-')}"
                command += [flag] if value is True else [flag, str(value)]
            process_env = dict(self.env)
            process_env.update((env(index) if callable(env) else env) or {})
            process = subprocess.Popen(command, env=process_env, stdout=output, stderr=subprocess.STDOUT)
            process.output_path = self.workdir / f"scheduler{index}.out"
            self.processes.append(process)
            started.append(process)
        return started

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        for process in self.processes:
            while "READY" not in process.output_path.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"scheduler did not start:\n{process.output_path.read_text()}")
                time.sleep(0.1)

    def stop(self, timeout=60):
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def outputs(self) -> str:
        return "\n".join(f"--- pid {p.pid} ---\n{p.output_path.read_text()}" for p in self.processes)

    def calls(self) -> Counter:
        """How many times each job's function really ran, from the shared log."""
        if not self.calls_log.exists():
            return Counter()
        return Counter(line.split()[0] for line in self.calls_log.read_text().splitlines() if line.strip())

    def cpu_seconds(self, process) -> float:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


def assert_clean_logs(text: str) -> None:
    for forbidden in ("IntegrityError", "MultipleObjectsReturned", "Deadlock", "deadlock", "Traceback"):
        assert forbidden not in text, f"{forbidden!r} in scheduler output:\n{text[-5000:]}"
