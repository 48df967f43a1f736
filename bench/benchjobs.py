"""The benchmark's job function; it must be importable by its dotted path (benchjobs:record)."""

import os
import time


def record(log_path: str, job_id: str) -> None:
    """Note one real execution: job id, pid, wall-clock start. One O_APPEND write, shared by processes."""
    line = f"{job_id} {os.getpid()} {time.time():.6f}\n"
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
