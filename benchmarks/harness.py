"""What every benchmark here shares: machine info, CPU load, timing, memory and report writing.

Set ``BENCH_RESULTS_DIR`` to have the report writers write there instead of ``benchmarks/``
(for smoke runs that must leave the committed results alone).
"""

from __future__ import annotations

import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
WORK = BENCH / "work"  # generated data and scratch stores (git-ignored)


# -- machine ---------------------------------------------------------------------------------

def machine_info(*packages: str) -> dict[str, Any]:
    """Cores, CPU model, memory, OS, Python and the given packages' versions."""
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
            **{p: package_version(p) for p in packages}}


def package_version(package: str) -> str:
    for name in (package, f"{package}-cpu"):  # xgboost ships its CPU-only build as xgboost-cpu
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def machine_line(m: dict[str, Any], packages: Iterable[str] = ()) -> str:
    """One line for a report: cores, CPU, memory, OS, Python and the named packages from ``machine_info``."""
    return ", ".join([f"{m['nproc']} CPU cores ({m['cpu']})", f"{m['ram_gib']} GiB RAM", m["os"], f"Python {m['python']}",
                      *(f"{p} {m[p]}" for p in packages)])


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def git(*args: str) -> str:
    """Output of a read-only git command in the repository ('' on failure); takes no index lock."""
    try:
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_head() -> str:
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + ("+uncommitted changes" if dirty else "")


# -- CPU load (the machine is shared) ----------------------------------------------------------

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


def wait_for_idle(max_wait_s: float, threshold: float = 0.2, window_s: float = 3.0) -> dict[str, Any]:
    """Wait up to ``max_wait_s`` for the CPUs to be less than ``threshold`` busy, so other jobs slow a run less."""
    started = time.perf_counter()
    while True:
        busy = busy_share(window_s)
        waited = time.perf_counter() - started
        if busy < threshold or waited >= max_wait_s:
            return {"waited_s": round(waited, 1), "busy_before": round(busy, 3), "idle": busy < threshold}


class OtherLoad:
    """Share of the machine's CPU used by everything but this process and its waited-for children, over a `with` block.

    On a shared machine it says how much a measurement was disturbed.
    """

    def __enter__(self) -> OtherLoad:
        self._busy0, _ = cpu_jiffies()
        self._own0 = self._own()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        busy1, _ = cpu_jiffies()
        self.wall_s = time.perf_counter() - self._wall0
        machine_s = (busy1 - self._busy0) / os.sysconf("SC_CLK_TCK")
        self.own_cpu_s = self._own() - self._own0
        self.share = max(0.0, machine_s - self.own_cpu_s) / (self.wall_s * (os.cpu_count() or 1))

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system


# -- timing -------------------------------------------------------------------------------------

@dataclass
class Timings:
    """Wall and CPU seconds of repeated calls: the first (cold) and the fastest (least disturbed)."""

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)  # only with keep_results

    @property
    def first_s(self) -> float:
        return self.seconds[0]

    @property
    def fastest_index(self) -> int:
        return min(range(len(self.seconds)), key=self.seconds.__getitem__)

    @property
    def fastest_s(self) -> float:
        return self.seconds[self.fastest_index]

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    def summary(self) -> dict[str, Any]:
        return {"first": self.first_s, "min": self.fastest_s, "median": self.median_s, "all": list(self.seconds)}


def time_calls(call: Callable[[], Any], times: int = 3, keep_results: bool = False) -> Timings:
    """Call ``call`` ``times`` times, timing each (wall and own CPU incl. waited children).

    Results are dropped unless ``keep_results``, so a large one does not add to the next call's memory.
    """
    out = Timings()
    for _ in range(times):
        cpu0, start = OtherLoad._own(), time.perf_counter()
        result = call()
        out.seconds.append(time.perf_counter() - start)
        out.cpu_seconds.append(OtherLoad._own() - cpu0)
        if keep_results:
            out.results.append(result)
        del result
    return out


def run_checked(command: Sequence[str], env: dict[str, str] | None = None, cwd: Path = REPO, timeout: float = 1800) -> str:
    """stdout of a command that must succeed (its stderr tail in the error otherwise)."""
    done = subprocess.run(list(command), capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


# -- memory -------------------------------------------------------------------------------------

def rss_kib(pid: int | str = "self") -> int:
    """Current resident set size of a process, in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and all its descendants, in KiB (for a watchdog; a peak comes from ``peak_rss_kib``)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        children = []
    return rss_kib(pid) + sum(tree_rss_kib(int(c)) for c in children)


def peak_rss_kib() -> int:
    """This process's peak RSS so far, in KiB (``VmHWM``): interpreter and imports included.

    Not ``ru_maxrss``: Linux carries it over from the parent through fork and exec, so a child of a
    benchmark that had just generated a large CSV reported the parent's peak as its own.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_mib() -> float:
    return peak_rss_kib() / 1024


def process_cpu_s() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def mib(kib: float) -> float:
    return kib / 1024


# -- reports ------------------------------------------------------------------------------------

def utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def command_line(script: str | Path, argv: Sequence[str] | None = None) -> str:
    """The exact command that ran ``script``, as typed from the repository root."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join([".venv/bin/python", str(Path(script).resolve().relative_to(REPO)), *args])


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A Markdown table; ``align`` has one letter per column (l or r; default l); short rows are padded."""
    marks = ["---:" if (align[i:i + 1] or "l") == "r" else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    for row in rows:
        cells = [str(c) for c in row] + [""] * (len(header) - len(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_path(default: Path) -> Path:
    """Where a results file goes: ``default``, or the same name under ``BENCH_RESULTS_DIR`` when set."""
    folder = os.environ.get("BENCH_RESULTS_DIR")
    if not folder:
        return default
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) / default.name


def report(table: str, results: Path | None = None, *, command: str = "", intro: Sequence[str] = (),
           after: Sequence[str] = (), preamble: str = "") -> Path | None:
    """Print ``table``; with ``results``, also append it as a dated section headed by the exact command.

    A results file that does not exist yet starts with ``preamble``. Returns the file written, if any.
    """
    print(table, flush=True)
    if results is None:
        return None
    path = results_path(results)
    if not path.exists() and preamble:
        path.write_text(preamble.rstrip("\n") + "\n")
    section = ["", f"### Run of {utc_stamp()}: `{command}`", *intro, "", table, *after]
    with path.open("a") as fh:
        fh.write("\n".join(section) + "\n")
    print(f"appended to {display(path)}", flush=True)
    return path


def write_results(results: Path, text: str) -> Path:
    """Rewrite a whole results file."""
    path = results_path(results)
    path.write_text(text)
    return path


def read_results(results: Path) -> str:
    path = results_path(results)
    return path.read_text() if path.exists() else ""


def kept_notes(results: Path, start: str, end: str) -> str:
    """The hand-written notes between ``start`` and ``end`` in a results file, kept when a benchmark rewrites it."""
    text = read_results(results)
    if start in text and end in text:
        notes = text.split(start, 1)[1].split(end, 1)[0]
        return "" if notes.strip() == "(none yet)" else notes
    return ""


def replace_section(results: Path, start: str, end: str, section: str) -> Path:
    """Put ``section`` (which carries its own start/end markers) in place of the marked one, or at the end."""
    text = read_results(results)
    if start in text and end in text:
        text = text.split(start, 1)[0] + section + text.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    return write_results(results, text)


def display(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
