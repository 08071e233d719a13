"""Orchestration costs: first run vs cached rerun, the fixed cost of a flow run, CLI start-up.

Usage (from the repository root)::

    .venv/bin/python benchmarks/orchestration_benchmark.py [--rows 30000] [--repeat 3] [--through gold training]

Measures, each in fresh child processes as a user would run them:

- `pipeline-cli --help` and `pipeline-cli config validate` wall time (interpreter start included);
- one trivial `@flow` run: the whole process and the flow call alone, with no server
  (the temporary server Prefect starts when PREFECT_API_URL is unset) and with a running one
  (`deployments.local_server`, as `pipeline-cli server start` runs it);
- `pipeline-cli run --through gold|training` on demo credit data: a first run on an empty store,
  then the same command again (cache hits), with and without a running server;
- Optuna tuning throughput (finished trials per minute) of one model with one worker and with two
  worker processes sharing one study through a journal file.

Prints the tables and rewrites the "Orchestration" section of ``benchmarks/RESULTS.md``
(between its markers, after the layer benchmark's data line, which that benchmark keeps).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import harness  # noqa: E402
from benchmarks.harness import OtherLoad, run_checked, time_calls  # noqa: E402

RESULTS_MD = harness.BENCH / "RESULTS.md"
SECTION_START = "<!-- orchestration:start -->"
SECTION_END = "<!-- orchestration:end -->"
NOTES_START = "<!-- orchestration-notes:start -->"
NOTES_END = "<!-- orchestration-notes:end -->"

TRIVIAL_FLOW = r"""
import contextlib, json, sys, time
t0 = time.perf_counter()
from prefect import flow

@flow(name="noop")
def noop() -> int:
    return 1

t1 = time.perf_counter()
if sys.argv[1] == "no-heartbeats":  # as pipeline-cli runs its flows
    from pipeline_io.workarounds import without_flow_heartbeats
    context = without_flow_heartbeats()
else:
    context = contextlib.nullcontext()
with context:
    noop()
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "flow_s": t2 - t1}))
"""


# -- measuring ---------------------------------------------------------------------------

def env_for(home: Path, api_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline_cli.main", *args]


# -- the three measurements --------------------------------------------------------------------

def measure_cli(repeat: int, work: Path) -> dict[str, Any]:
    env = env_for(work / "prefect-home-cli", None)
    out: dict[str, Any] = {}
    for name, args in [("--help", ["--help"]), ("config validate", ["config", "validate", "--config", "configs/credit_default.yaml"])]:
        run_checked(cli(*args), env)  # warm the page cache once
        with OtherLoad() as load:
            walls = time_calls(lambda: run_checked(cli(*args), env), repeat)  # noqa: B023
        out[name] = {**walls.summary(), "other_share": load.share}
        print(f"  pipeline-cli {name}: median {out[name]['median']:.3f} s", flush=True)
    return out


def measure_trivial_flow(repeat: int, home: Path, api_url: str | None, heartbeats: bool = True) -> dict[str, Any]:
    env = env_for(home, api_url)
    command = [sys.executable, "-c", TRIVIAL_FLOW, "heartbeats" if heartbeats else "no-heartbeats"]
    run_checked(command, env)  # first use of this PREFECT_HOME creates its database: not counted
    with OtherLoad() as load:
        walls = time_calls(lambda: run_checked(command, env), repeat, keep_results=True)
    inner = [json.loads(stdout.strip().splitlines()[-1]) for stdout in walls.results]
    return {"process": walls.summary(), "flow_call": harness.Timings([r["flow_s"] for r in inner]).summary(),
            "import": harness.Timings([r["import_s"] for r in inner]).summary(), "other_share": load.share}


def write_config(work: Path, source: Path, store: Path, through: str, n_trials: int | None, tuning_timeout: float | None) -> Path:
    """The shipped demo config on this data and store; tuning as `make run` tunes unless told otherwise."""
    import yaml

    data = yaml.safe_load((REPO / "configs" / "credit_default.yaml").read_text())
    data["dataset"]["source"] = str(source)
    data["store"]["root"] = str(store)
    if n_trials is not None:
        data["training"]["tuning"]["n_trials"] = n_trials
    if tuning_timeout is not None:
        data["training"]["tuning"]["timeout_seconds"] = tuning_timeout
    path = work / f"config-{through}-{store.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def measure_pipeline(work: Path, source: Path, through: str, home: Path, api_url: str | None, n_trials: int | None,
                     tuning_timeout: float | None) -> dict[str, Any]:
    mode = "server" if api_url else "temporary"
    store = work / f"store-{through}-{mode}"
    shutil.rmtree(store, ignore_errors=True)
    config = write_config(work, source, store, through, n_trials, tuning_timeout)
    env = env_for(home, api_url)
    runs = []
    for attempt in ("first", "rerun"):
        with OtherLoad() as load:
            timing = time_calls(lambda: run_checked(cli("run", "--config", str(config), "--through", through, "--json"), env, work),
                                times=1, keep_results=True)
        wall, payload = timing.first_s, json.loads(timing.results[0])
        stages = [{"layer": s["layer"], "status": s["status"], "seconds": s.get("seconds")} for s in payload["result"]]
        runs.append({"attempt": attempt, "wall_s": wall, "command_s": payload["seconds"], "stages": stages,
                     "other_share": load.share})
        statuses = ", ".join(f"{s['layer']} {s['status']}" for s in stages)
        print(f"  run --through {through} ({mode}), {attempt}: {wall:.1f} s wall, {statuses}", flush=True)
    return {"through": through, "mode": mode, "runs": runs,
            "ratio_wall": runs[0]["wall_s"] / runs[1]["wall_s"], "ratio_command": runs[0]["command_s"] / runs[1]["command_s"]}


TUNING_WORKER = r"""
import json, sys, tempfile, time
from pathlib import Path
from pipeline_core.config import load_config
from pipeline_core.modeling.preprocessing import build_preprocessor
from pipeline_core.modeling.tuning import tune
from pipeline_io.readers import load_training_data
from pipeline_io.store import Store
from tasks import bronze, gold, silver

config_path, model, n_trials, workers, journal = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
config = load_config(config_path)
store = Store(config.store.root)
if not Path(config.store.root, "gold").exists():
    bronze.ingest_batch(config, store, Path(config.dataset.source))
    silver.refine_to_silver(config, store)
    gold.build_gold(config, store)
data = load_training_data(config, store)
cfg = config.training.model_copy(deep=True)
cfg.tuning.n_trials, cfg.tuning.timeout_seconds, cfg.tuning.n_workers = n_trials, None, workers
cfg.tuning.storage = journal
t0 = time.perf_counter()
_, trials, _ = tune(model, config.training.models[model], build_preprocessor(data.preprocessing), data.split, cfg, 1, f"bench-{workers}")
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "finished": len(trials),
                  "states": {s: sum(t["state"] == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")}}))
"""


def measure_tuning(work: Path, source: Path, model: str, n_trials: int) -> dict[str, Any]:
    """Trials per minute of one model's study, one worker vs two worker processes (one thread per fit each)."""
    store = work / "store-tuning"
    config = write_config(work, source, store, "tuning", None, None)
    out: dict[str, Any] = {"model": model, "n_trials": n_trials, "runs": {}}
    for workers in (1, 2):
        journal = work / f"optuna-{workers}.journal"
        command = [sys.executable, "-c", TUNING_WORKER, str(config), model, str(n_trials), str(workers), str(journal)]
        with OtherLoad() as load:
            timing = time_calls(lambda: run_checked(command, {**os.environ, "PYTHONPATH": str(REPO)}), times=1, keep_results=True)  # noqa: B023
        result = json.loads(timing.results[0].strip().splitlines()[-1])
        result.update(trials_per_min=60 * result["finished"] / result["seconds"], other_share=load.share, process_s=timing.first_s)
        out["runs"][workers] = result
        print(f"  {model}, {workers} worker(s): {result['finished']} trials in {result['seconds']:.1f} s "
              f"= {result['trials_per_min']:.1f}/min", flush=True)
    out["speedup"] = out["runs"][2]["trials_per_min"] / out["runs"][1]["trials_per_min"]
    return out


# -- report ------------------------------------------------------------------------------------

PACKAGES = ("prefect", "fastapi", "sqlalchemy", "typer", "mlflow")


def load_note(share: float) -> str:
    return f"{share:.0%}"


def render(data: dict[str, Any], notes: str) -> str:
    table = harness.markdown_table
    mode_label = {"server": "running server", "temporary": "temporary server"}
    cli_rows = [[f"`pipeline-cli {name}`", f"{r['median']:.3f}", f"{r['min']:.3f}", len(r["all"]), load_note(r["other_share"])]
                for name, r in data["cli"].items()]
    flow_rows = []
    for mode, label in (("temporary", "none (temporary server per process)"), ("server", "running local server"),
                        ("server_no_heartbeats", "running local server, no flow heartbeats (as `pipeline-cli` runs flows)")):
        r = data["trivial_flow"][mode]
        flow_rows.append([label, f"{r['process']['median']:.2f}", f"{r['import']['median']:.2f}", f"{r['flow_call']['median']:.2f}",
                          len(r["process"]["all"]), load_note(r["other_share"])])
    run_rows = []
    for p in data["pipeline"]:
        first, rerun = p["runs"]
        statuses = ", ".join(f"{s['layer']} {s['status']}" for s in rerun["stages"])
        run_rows.append([p["through"], mode_label[p["mode"]], f"{first['wall_s']:.1f}", f"{rerun['wall_s']:.1f}", f"{p['ratio_wall']:.1f}x",
                         statuses, f"{load_note(first['other_share'])} / {load_note(rerun['other_share'])}"])
    lines = [
        SECTION_START,
        "## Orchestration",
        "",
        f"Generated by `benchmarks/orchestration_benchmark.py` on {data['date']} (code {data['code']}): "
        f"{harness.machine_line(data['machine'], ('prefect', 'fastapi', 'sqlalchemy'))}. Each number is the wall time of fresh child processes "
        "(interpreter start and imports included) unless it says otherwise. The machine is shared: the \"other load\" column "
        "is the share of all CPU time used by processes outside the benchmark while it measured.",
        "",
        "### CLI start-up",
        "",
        table(["command", "median s", "min s", "runs", "other load"], cli_rows, align="lrrrr"),
        "",
        "Target: under 0.5 s.",
        "",
        "### Fixed cost of one trivial flow run",
        "",
        table(["Prefect API", "whole process, median s", "`import prefect` + flow definition s", "flow call s", "runs", "other load"],
              flow_rows, align="lrrrrr"),
        "",
        f"The local server (`prefect server start`, fresh PREFECT_HOME) answered `/api/health` after {data['server_start_s']:.1f} s.",
        "",
        f"### First run vs cached rerun (`pipeline-cli run`, demo credit data, {data['rows']:,} rows)",
        "",
        table(["through", "Prefect API", "first run s", "rerun s", "ratio", "rerun statuses", "other load (first / rerun)"],
              run_rows, align="llrrrlr"),
        "",
        "Stage seconds inside the runs (as the CLI reports them; `cached`/`skipped` stages include the cache lookup):",
        "",
    ]
    for p in data["pipeline"]:
        for r in p["runs"]:
            stages = ", ".join(f"{s['layer']} {s['seconds']:.2f}" for s in r["stages"] if s.get("seconds") is not None)
            lines.append(f"- through {p['through']}, {mode_label[p['mode']]}, {r['attempt']}: command {r['command_s']:.1f} s of "
                         f"{r['wall_s']:.1f} s wall; {stages}")
    if data.get("tuning"):
        t = data["tuning"]
        tuning_rows = [[workers, r["finished"], f"{r['states']['COMPLETE']} / {r['states']['PRUNED']} / {r['states']['FAIL']}",
                        f"{r['seconds']:.1f}", f"{r['trials_per_min']:.1f}", load_note(r["other_share"])]
                       for workers, r in sorted(t["runs"].items(), key=lambda kv: int(kv[0]))]
        lines += [
            "",
            f"### Tuning throughput ({t['model']}, {t['n_trials']} trials, one thread per fit, study shared through a journal file)",
            "",
            table(["workers", "finished trials", "complete / pruned / failed", "tuning s", "trials/min", "other load"],
                  tuning_rows, align="rrlrrr"),
            "",
            f"Two workers: {t['speedup']:.2f}x the trials per minute of one (worker start-up and the journal included).",
        ]
    lines += ["", "Reproduce: `" + data["command"] + "`", "", "### Notes", "", NOTES_START, notes.strip() or "(none yet)", NOTES_END,
              "", SECTION_END, ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000, help="rows of demo credit data (default: the `make run` size)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--through", nargs="+", default=["gold"], choices=["gold", "training"])
    parser.add_argument("--n-trials", type=int, default=None, help="Optuna trials per model through training (default: the demo config's)")
    parser.add_argument("--tuning-timeout", type=float, default=None, help="seconds of tuning per model (default: the demo config's)")
    parser.add_argument("--tuning-model", default="xgboost", help="model of the one-vs-two-workers tuning measurement")
    parser.add_argument("--tuning-trials", type=int, default=16, help="trials of that measurement (0: skip it)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()

    from deployments import local_server
    from pipeline_core.demo_data import credit_default_frame
    from pipeline_io.demo_files import write_csv

    work = Path(tempfile.mkdtemp(prefix="orchestration-bench-"))
    data: dict[str, Any] = {"machine": harness.machine_info(*PACKAGES), "code": harness.git_head(), "rows": args.rows,
                            "date": harness.utc_stamp(), "command": harness.command_line(__file__)}
    server_state = work / "server-state"
    server_home = work / "prefect-home-server"
    try:
        print("CLI start-up", flush=True)
        data["cli"] = measure_cli(args.repeat, work)

        print("local server start", flush=True)
        os.environ["PREFECT_HOME"] = str(server_home)  # the server's own home; children get explicit envs
        t0 = time.perf_counter()
        service, _ = local_server.start_prefect(server_state, port=local_server.free_port())
        data["server_start_s"] = time.perf_counter() - t0
        api_url = service.api_url

        print("trivial flow", flush=True)
        data["trivial_flow"] = {
            "temporary": measure_trivial_flow(args.repeat, work / "prefect-home-temporary", None),
            "server": measure_trivial_flow(args.repeat, server_home, api_url),
            "server_no_heartbeats": measure_trivial_flow(args.repeat, server_home, api_url, heartbeats=False),
        }
        for mode, r in data["trivial_flow"].items():
            print(f"  {mode}: process {r['process']['median']:.2f} s, flow call {r['flow_call']['median']:.2f} s", flush=True)

        print("full pipeline", flush=True)
        source = work / "credit_default.csv"
        write_csv(credit_default_frame(args.rows, 42), source)
        data["pipeline"] = []
        for through in args.through:
            data["pipeline"].append(measure_pipeline(work, source, through, server_home, api_url, args.n_trials, args.tuning_timeout))
            data["pipeline"].append(measure_pipeline(work, source, through, work / "prefect-home-temporary", None,
                                                     args.n_trials, args.tuning_timeout))
        if args.tuning_trials:
            print("tuning throughput", flush=True)
            data["tuning"] = measure_tuning(work, source, args.tuning_model, args.tuning_trials)
    finally:
        local_server.stop(server_state, local_server.PREFECT)
        shutil.rmtree(work, ignore_errors=True)

    section = render(data, harness.kept_notes(RESULTS_MD, NOTES_START, NOTES_END))
    print()
    harness.report(section)
    if not args.no_write:
        path = harness.replace_section(RESULTS_MD, SECTION_START, SECTION_END, section)
        print(f"wrote {harness.display(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
