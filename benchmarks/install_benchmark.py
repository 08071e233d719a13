"""Install size: what `make run` installs, per distribution, and what each direct dependency brings alone.

Builds a fresh virtual environment the way `make install` does (``requirements/runtime.lock`` with its
hashes checked, then the project itself without dependencies), then measures it from the inside: the
files each installed distribution lists in its RECORD, split into byte-code (``.pyc``, which pip
compiles at install time), test folders shipped inside the wheels, and the rest. The dependency graph
comes from the installed metadata, so "alone" means: the distributions reachable from that direct
dependency and from no other one, i.e. what dropping it would save.

Usage: ``.venv/bin/python benchmarks/install_benchmark.py`` (about two minutes, mostly pip).
Results: ``benchmarks/INSTALL_RESULTS.md`` (hand-written notes kept).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness  # noqa: E402

RESULTS = harness.BENCH / "INSTALL_RESULTS.md"
VENV = harness.WORK / "install-venv"
LOCK = harness.REPO / "requirements" / "runtime.lock"
PROJECT = "tabular-pipeline"
TARGET_MB = 1000  # "under 1 GB", in decimal megabytes
NOTES = ("<!-- notes:start (hand-written, kept when the file is rewritten) -->", "<!-- notes:end -->")

# Runs inside the measured environment: sizes of each distribution's files, and its requirements.
PROBE = r"""
import json, sys
from importlib import metadata
from pathlib import Path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

out = {}
for dist in metadata.distributions():
    name = canonicalize_name(dist.metadata["Name"])
    sizes = {"pyc": 0, "tests": 0, "other": 0}
    for f in dist.files or ():
        path = Path(dist.locate_file(f))
        try:
            size = path.stat().st_size
        except OSError:
            continue
        parts = set(Path(str(f)).parts[:-1])
        kind = "pyc" if path.suffix == ".pyc" else "tests" if parts & {"tests", "test", "testing_data"} else "other"
        sizes[kind] += size
    requires = {}  # extra ("" for none) -> [[name, [extras it asks of that dependency]]]
    for text in dist.requires or ():
        req = Requirement(text)
        for extra in ["", *(dist.metadata.get_all("Provides-Extra") or ())]:
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                requires.setdefault(extra, []).append([canonicalize_name(req.name), sorted(req.extras)])
                break
    out[name] = {"version": dist.version, "sizes": sizes, "requires": requires}
json.dump(out, sys.stdout)
"""


def build_venv(venv: Path) -> float:
    """A fresh environment with the runtime lock and the project, as `make install` makes it; returns pip's seconds."""
    import time

    shutil.rmtree(venv, ignore_errors=True)
    harness.run_checked([sys.executable, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    started = time.perf_counter()
    harness.run_checked([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    harness.run_checked([py, "-m", "pip", "install", "--quiet", "--require-hashes", "-r", str(LOCK)], timeout=3600)
    harness.run_checked([py, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(harness.REPO)])
    return time.perf_counter() - started


def probe(venv: Path) -> dict[str, Any]:
    return json.loads(harness.run_checked([str(venv / "bin" / "python"), "-c", PROBE]))


def disk_bytes(path: Path) -> int:
    """Blocks on disk (what `du` reports), not apparent sizes."""
    return int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]) * 1024


def requirements(dists: dict[str, Any], name: str, extras: list[str] = ()) -> list[tuple[str, list[str]]]:
    """What ``name`` requires, with the extras a dependent asked of it."""
    table = dists[name]["requires"]
    return [(dep, dep_extras) for extra in ["", *extras] for dep, dep_extras in table.get(extra, []) if dep in dists]


def reach(dists: dict[str, Any], roots: set[str]) -> set[str]:
    """The distributions installed because of ``roots`` (which are included), following requested extras."""
    seen: set[tuple[str, str]] = set()
    todo = [(r, []) for r in roots if r in dists]
    while todo:
        name, extras = todo.pop()
        for extra in ["", *extras]:
            if (name, extra) not in seen:
                seen.add((name, extra))
                todo.extend(requirements(dists, name, [extra] if extra else []))
    return {name for name, _ in seen}


def analyse(dists: dict[str, Any]) -> dict[str, Any]:
    direct = {name for name, _ in requirements(dists, PROJECT)}
    everything = reach(dists, direct)
    alone = {d: sorted(everything - reach(dists, direct - {d})) for d in direct}
    brought_by = {name: sorted(d for d in direct if name in reach(dists, {d})) for name in everything}
    return {"direct": sorted(direct), "alone": alone, "brought_by": brought_by,
            "venv_tools": sorted(set(dists) - everything - {PROJECT})}


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f}"


def size(dists: dict[str, Any], names: Any, kinds: tuple[str, ...] = ("pyc", "tests", "other")) -> int:
    return sum(dists[n]["sizes"][k] for n in names for k in kinds)


def largest_first(dists: dict[str, Any], names: list[str], shown: int = 6) -> str:
    names = sorted(names, key=lambda n: -size(dists, [n]))
    more = f" and {len(names) - shown} smaller" if len(names) > shown else ""
    return ", ".join(f"{n} ({mb(size(dists, [n]))})" for n in names[:shown]) + more or "-"


def without_requirements(data: dict[str, Any]) -> dict[str, Any]:
    """The results as stored in the report: the graph's conclusions, not every distribution's requirement lists."""
    return {**data, "dists": {n: {k: v for k, v in d.items() if k != "requires"} for n, d in data["dists"].items()}}


def render(data: dict[str, Any], notes: str) -> str:
    dists, graph = data["dists"], data["graph"]
    everything = set(graph["brought_by"])
    total = size(dists, dists)
    pyc, tests = size(dists, dists, ("pyc",)), size(dists, dists, ("tests",))
    tools = size(dists, graph["venv_tools"])
    rows = sorted(everything, key=lambda n: -size(dists, [n]))
    top = [[f"{n} {dists[n]['version']}", mb(size(dists, [n], ("other",))), mb(dists[n]["sizes"]["tests"]), mb(dists[n]["sizes"]["pyc"]),
            mb(size(dists, [n])), ", ".join(graph["brought_by"][n]) if n not in graph["direct"] else "(direct)"] for n in rows[:30]]
    rest = rows[30:]
    top.append([f"{len(rest)} more", mb(size(dists, rest, ("other",))), mb(size(dists, rest, ("tests",))), mb(size(dists, rest, ("pyc",))),
                mb(size(dists, rest)), ""])
    alone = sorted(graph["direct"], key=lambda d: -size(dists, graph["alone"][d]))
    alone_rows = [[d, mb(size(dists, graph["alone"][d])), mb(size(dists, graph["alone"][d], ("pyc",))),
                   largest_first(dists, [n for n in graph["alone"][d] if n != d])] for d in alone]
    ok = data["venv_disk_bytes"] < TARGET_MB * 1e6
    lines = [
        "# Install size",
        "",
        f"Generated by `benchmarks/install_benchmark.py` on {data['date']} (code {data['git']}): {data['machine']}.",
        "",
        f"Command: `{data['command']}`",
        "",
        "A fresh virtual environment built as `make install` builds it: `pip install --require-hashes -r requirements/runtime.lock`,",
        f"then the project with `--no-deps` ({data['pip_s']:.0f} s of pip from the local package index). Sizes are the files each",
        "installed distribution lists in its RECORD (apparent bytes), in decimal MB; \"pyc\" is the byte-code pip compiles at",
        "install time, \"tests\" the test folders shipped inside the wheels.",
        "",
        "## Totals",
        "",
        harness.markdown_table(["", "MB"], [
            ["virtual environment on disk (`du`)", f"**{mb(data['venv_disk_bytes'])}**"],
            ["all installed files (apparent)", mb(total)],
            ["of which byte-code (`.pyc`)", mb(pyc)],
            ["of which test folders inside the wheels", mb(tests)],
            [f"of which the environment's own tools ({', '.join(graph['venv_tools'])})", mb(tools)],
            [f"distributions installed for the pipeline ({len(everything)})", mb(size(dists, everything))],
        ], "lr"),
        "",
        "## Target",
        "",
        f"- Runtime install {mb(data['venv_disk_bytes'])} MB on disk; target < {TARGET_MB:,} MB: **{'met' if ok else 'not met'}**.",
        "",
        "## Largest distributions",
        "",
        "\"Brought in by\": the project's direct dependencies from which the distribution is reachable.",
        "",
        harness.markdown_table(["distribution", "code and data MB", "tests MB", "pyc MB", "total MB", "brought in by"], top, "lrrrrl"),
        "",
        "## What each direct dependency brings alone",
        "",
        "The distributions reachable from that dependency and from no other one: what dropping it would save (pyc included).",
        "",
        harness.markdown_table(["direct dependency", "alone MB", "of which pyc MB", "with"], alone_rows, "lrrl"),
        "",
        "## Notes",
        "",
        NOTES[0],
        notes.strip("\n") or "(none yet)",
        NOTES[1],
        "",
        f"<!-- results-json: {json.dumps(without_requirements(data))} -->",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=VENV, help="where to build the environment (default: benchmarks/work/install-venv)")
    parser.add_argument("--reuse", action="store_true", help="measure the environment already at --venv instead of rebuilding it")
    parser.add_argument("--no-write", action="store_true", help="print only; leave INSTALL_RESULTS.md alone")
    args = parser.parse_args(argv)
    pip_s = 0.0 if args.reuse else build_venv(args.venv)
    dists = probe(args.venv)
    data = {"date": harness.utc_stamp(), "git": harness.git_head(), "command": harness.command_line(__file__, argv),
            "machine": harness.machine_line(harness.machine_info()), "pip_s": pip_s,
            "venv_disk_bytes": disk_bytes(args.venv), "dists": dists, "graph": analyse(dists)}
    text = render(data, harness.kept_notes(RESULTS, *NOTES))
    if args.no_write:
        print(text)
    else:
        print(text.split("## Notes")[0])
        print(f"wrote {harness.display(harness.write_results(RESULTS, text))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
