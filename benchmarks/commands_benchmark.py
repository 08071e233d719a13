"""Per-command wall time of `pipeline-cli`, with and without a running Prefect server.

What a person waits for at the prompt: each command runs in a fresh process (interpreter start and
imports included), first once ("cold": the first call after the store was built or the server
started) and then ``--repeat`` more times ("warm": the median of those). Without a server, the
flow commands start a temporary one per call; with one (`pipeline-cli server start --mlflow`, found
by the CLI on its own), they use it, and `models list` asks the MLflow server beside it; the registry
and store commands never need a Prefect server.

Setup (not timed): demo credit data (``--rows``), one `run --preset fast` through training with
`--predict`, and a 2,000-row batch for `predict`. Results: `benchmarks/COMMANDS_RESULTS.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    REPO,
    OtherLoad,
    command_line,
    git_head,
    kept_notes,
    machine_info,
    machine_line,
    markdown_table,
    run_checked,
    utc_stamp,
    write_results,
)

RESULTS = REPO / "benchmarks" / "COMMANDS_RESULTS.md"
# the targets, in seconds: (command, with a server?) -> warm median at most
NOTES_START, NOTES_END = "<!-- notes:start (hand-written, kept when the file is rewritten) -->", "<!-- notes:end -->"
TARGETS = {("models list", True): 2.0, ("models list", False): 3.0, ("predict 2,000 rows", True): 5.0,
           ("run (unchanged)", True): 4.0}


def env_for(home: Path, state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PIPELINE_SERVER_STATE_DIR=str(state_dir))
    return env


def cli(*args: object) -> list[str]:
    return [str(Path(sys.executable).with_name("pipeline-cli")), *map(str, args)]


def commands(config: Path, batch: Path, out: Path) -> dict[str, list[object]]:
    return {
        "--help": ["--help"],
        "config validate": ["config", "validate", "--config", config],
        "models list": ["models", "list", "--config", config],
        "monitor": ["monitor", "--config", config],
        "predict 2,000 rows": ["predict", batch, out, "--config", config, "--quiet"],
        "run (unchanged)": ["run", "--config", config, "--preset", "fast", "--quiet"],
    }


def time_command(args: list[object], env: dict[str, str], repeat: int) -> dict[str, Any]:
    walls = []
    with OtherLoad() as load:
        for _ in range(1 + repeat):
            start = time.perf_counter()
            done = subprocess.run(cli(*args), env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
            walls.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"pipeline-cli {' '.join(map(str, args))} failed ({done.returncode}): {done.stderr[-800:]}")
    warm = sorted(walls[1:])
    return {"cold": walls[0], "warm_median": warm[len(warm) // 2] if warm else walls[0], "all": walls, "other_share": load.share}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3, help="warm calls per command (after the cold one)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results file alone")
    args = parser.parse_args()

    work = REPO / "benchmarks" / "work" / "commands"
    run_checked(["rm", "-rf", str(work)])
    work.mkdir(parents=True)
    state_dir, home = work / "server-state", work / "prefect-home"
    env = env_for(home, state_dir)
    data = work / "credit.csv"
    run_checked(cli("demo-data", "credit-default", "--rows", args.rows, "--out", data), env)
    config = work / "config.yaml"
    config.write_text(f"dataset:\n  name: credit_default\n  source: {data}\n  target: default payment next month\n"
                      f"  id_column: ID\nstore:\n  root: {work / 'store'}\n")
    batch = work / "batch.csv"
    batch.write_text("".join(data.read_text().splitlines(keepends=True)[:2001]))
    print("setup: first run through training (fast preset) ...", flush=True)
    run_checked(cli("run", "--config", config, "--preset", "fast", "--quiet", "--predict", batch, work / "first.parquet"), env)

    results: dict[str, dict[str, Any]] = {}
    for with_server in (False, True):
        if with_server:
            run_checked(cli("server", "start", "--port", _free_port(), "--mlflow", "--mlflow-port", _free_port(), "--config", config,
                            "--state-dir", state_dir), env)
        try:
            for name, command in commands(config, batch, work / "scored.parquet").items():
                key = f"{name}|{'server' if with_server else 'none'}"
                results[key] = time_command(command, env, args.repeat)
                print(f"  {name:<20} {'with' if with_server else 'without'} server: cold {results[key]['cold']:.2f} s, "
                      f"warm {results[key]['warm_median']:.2f} s", flush=True)
        finally:
            if with_server:
                run_checked(cli("server", "stop", "--state-dir", state_dir), env)

    text = render(results, args)
    print(text)
    if not args.no_write:
        path = write_results(RESULTS, text)
        print(f"wrote {path}")
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    names = list(commands(Path("c"), Path("b"), Path("o")))
    rows = []
    for name in names:
        none, server = results[f"{name}|none"], results[f"{name}|server"]
        rows.append([f"`{name}`", f"{none['cold']:.2f}", f"{none['warm_median']:.2f}", f"{server['cold']:.2f}",
                     f"{server['warm_median']:.2f}", f"{max(none['other_share'], server['other_share']):.0%}"])
    table = markdown_table(["command", "no server: cold s", "no server: warm s", "server: cold s", "server: warm s", "other load"],
                           rows, "lrrrrr")
    targets = []
    for (name, with_server), limit in TARGETS.items():
        got = results[f"{name}|{'server' if with_server else 'none'}"]["warm_median"]
        targets.append(f"- `{name}` {'with' if with_server else 'without'} a server: {got:.2f} s (warm median); "
                       f"target < {limit:g} s: **{'met' if got < limit else 'not met'}**.")
    machine = machine_info("prefect", "mlflow", "polars")
    return "\n".join([
        "# Per-command wall time (`benchmarks/commands_benchmark.py`)", "",
        f"Generated on {utc_stamp()} (code {git_head()}): {machine_line(machine, ('prefect', 'mlflow', 'polars'))}.", "",
        f"Command: `{command_line(Path(__file__), sys.argv[1:])}`", "",
        "Each number is the wall time of a fresh `pipeline-cli` process (interpreter start and imports included), on the "
        f"demo credit data ({args.rows:,} rows) after one `run --preset fast`. Cold: the first call; warm: the median of "
        f"the next {args.repeat}. \"Server\": a Prefect server and the MLflow UI on the store, started with "
        "`pipeline-cli server start --mlflow`, which the CLI finds on its own; \"no server\": neither, so each flow command "
        "starts a temporary Prefect server and `models list` opens the store itself. \"Other load\": the share of the "
        "machine's CPU used by other processes meanwhile (the machine is shared).", "",
        table, "", "## Targets", "", *targets, "",
        "## Notes", "", NOTES_START, kept_notes(RESULTS, NOTES_START, NOTES_END).strip("\n") or "(none yet)", NOTES_END, "",
        "<!-- results-json: " + json.dumps({"results": results, "rows": args.rows, "repeat": args.repeat}) + " -->", "",
    ])


if __name__ == "__main__":
    raise SystemExit(main())
