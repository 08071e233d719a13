"""What machine a benchmark ran on (cores, CPU model, memory, OS, Python and package versions) and how busy it was."""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata
from typing import Any


def machine_info(*packages: str) -> dict[str, Any]:
    with open("/proc/meminfo") as fh:
        mem_kib = int(next(line for line in fh if line.startswith("MemTotal:")).split()[1])
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_kib / 2**20, 1),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            **{p: metadata.version(p) for p in packages}}


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat (idle and iowait count as not busy)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total


def busy_share(window_s: float = 3.0) -> float:
    """Share of all CPUs busy over a short window: how loaded the machine is right now."""
    b0, t0 = cpu_jiffies()
    time.sleep(window_s)
    b1, t1 = cpu_jiffies()
    return (b1 - b0) / max(t1 - t0, 1)


class OtherLoad:
    """Share of the machine's CPU used by everything but this process and its children, over a `with` block.

    On a shared machine it says how much a measurement was disturbed.
    """

    def __enter__(self) -> OtherLoad:
        self._busy0, _ = cpu_jiffies()
        self._own0 = self._own()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        busy1, _ = cpu_jiffies()
        wall = time.perf_counter() - self._wall0
        machine_s = (busy1 - self._busy0) / os.sysconf("SC_CLK_TCK")
        self.own_cpu_s = self._own() - self._own0
        self.share = max(0.0, machine_s - self.own_cpu_s) / (wall * (os.cpu_count() or 1))

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system
