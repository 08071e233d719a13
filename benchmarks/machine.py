"""What machine a benchmark ran on: cores, CPU model, memory, OS, Python and package versions."""

from __future__ import annotations

import os
import platform
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
