"""What processes cost while a benchmark runs: resident memory and CPU, from /proc and
Redis's INFO."""

from __future__ import annotations

import os
from pathlib import Path

import redis

from tests.harness import process_tree

TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MiB."""
    total = 0
    for child in [pid, *process_tree(pid)]:
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its children, living and reaped (a run's
    whole cost; ``benchmarks.__main__.cpu_seconds`` counts the living ones only)."""
    total = 0
    for child in [pid, *process_tree(pid)]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def redis_cpu(store: redis.Redis) -> float:
    """CPU seconds Redis has used, user and system."""
    info = store.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
