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
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
SECTION_START = "<!-- orchestration:start -->"
SECTION_END = "<!-- orchestration:end -->"
NOTES_START = "<!-- orchestration-notes:start -->"
NOTES_END = "<!-- orchestration-notes:end -->"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TRIVIAL_FLOW = r"""
import contextlib, json, sys, time
t0 = time.perf_counter()
from prefect import flow

@flow(name="noop")
def noop() -> int:
    return 1

t1 = time.perf_counter()
if sys.argv[1] == "no-heartbeats":  # as pipeline-cli runs its flows
    from pipeline_cli.runtime import without_flow_heartbeats
    context = without_flow_heartbeats()
else:
    context = contextlib.nullcontext()
with context:
    noop()
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "flow_s": t2 - t1}))
"""


# -- measuring ---------------------------------------------------------------------------

def cpu_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class Load:
    """Share of the machine's CPU used by processes other than this benchmark and its children."""

    def __enter__(self) -> "Load":
        self.busy0, self.total0 = cpu_jiffies()
        self.own0 = self._own()
        self.wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        busy1, total1 = cpu_jiffies()
        hz = os.sysconf("SC_CLK_TCK")
        wall = time.perf_counter() - self.wall0
        machine_busy = (busy1 - self.busy0) / hz
        own = self._own() - self.own0
        self.other_share = max(0.0, machine_busy - own) / (wall * (os.cpu_count() or 1))

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system


def env_for(home: Path, api_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=1800)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, done.stdout


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline_cli.main", *args]


def summary(values: list[float]) -> dict[str, Any]:
    return {"min": min(values), "median": statistics.median(values), "all": values}


# -- the three measurements --------------------------------------------------------------------

def measure_cli(repeat: int, work: Path) -> dict[str, Any]:
    env = env_for(work / "prefect-home-cli", None)
    out: dict[str, Any] = {}
    for name, args in [("--help", ["--help"]), ("config validate", ["config", "validate", "--config", "configs/credit_default.yaml"])]:
        timed(cli(*args), env, REPO)  # warm the page cache once
        with Load() as load:
            walls = [timed(cli(*args), env, REPO)[0] for _ in range(repeat)]
        out[name] = {**summary(walls), "other_share": load.other_share}
        print(f"  pipeline-cli {name}: median {out[name]['median']:.3f} s", flush=True)
    return out


def measure_trivial_flow(repeat: int, home: Path, api_url: str | None, heartbeats: bool = True) -> dict[str, Any]:
    env = env_for(home, api_url)
    command = [sys.executable, "-c", TRIVIAL_FLOW, "heartbeats" if heartbeats else "no-heartbeats"]
    timed(command, env, REPO)  # first use of this PREFECT_HOME creates its database: not counted
    walls, flows, imports = [], [], []
    with Load() as load:
        for _ in range(repeat):
            wall, stdout = timed(command, env, REPO)
            inner = json.loads(stdout.strip().splitlines()[-1])
            walls.append(wall)
            flows.append(inner["flow_s"])
            imports.append(inner["import_s"])
    return {"process": summary(walls), "flow_call": summary(flows), "import": summary(imports), "other_share": load.other_share}


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
        with Load() as load:
            wall, stdout = timed(cli("run", "--config", str(config), "--through", through, "--json"), env, work)
        payload = json.loads(stdout)
        stages = [{"layer": s["layer"], "status": s["status"], "seconds": s.get("seconds")} for s in payload["result"]]
        runs.append({"attempt": attempt, "wall_s": wall, "command_s": payload["seconds"], "stages": stages,
                     "other_share": load.other_share})
        statuses = ", ".join(f"{s['layer']} {s['status']}" for s in stages)
        print(f"  run --through {through} ({mode}), {attempt}: {wall:.1f} s wall, {statuses}", flush=True)
    return {"through": through, "mode": mode, "runs": runs,
            "ratio_wall": runs[0]["wall_s"] / runs[1]["wall_s"], "ratio_command": runs[0]["command_s"] / runs[1]["command_s"]}


TUNING_WORKER = r"""
import json, sys, tempfile, time
from pathlib import Path
from pipeline_core import bronze, gold, silver
from pipeline_core.config import load_config
from pipeline_core.preprocessing import build_preprocessor
from pipeline_core.storage import Store
from pipeline_core.train_job import load_training_data
from pipeline_core.tuning import tune

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
        with Load() as load:
            wall, stdout = timed([sys.executable, "-c", TUNING_WORKER, str(config), model, str(n_trials), str(workers), str(journal)],
                                 {**os.environ, "PYTHONPATH": str(REPO)}, REPO)
        result = json.loads(stdout.strip().splitlines()[-1])
        result.update(trials_per_min=60 * result["finished"] / result["seconds"], other_share=load.other_share, process_s=wall)
        out["runs"][workers] = result
        print(f"  {model}, {workers} worker(s): {result['finished']} trials in {result['seconds']:.1f} s "
              f"= {result['trials_per_min']:.1f}/min", flush=True)
    out["speedup"] = out["runs"][2]["trials_per_min"] / out["runs"][1]["trials_per_min"]
    return out


# -- report ------------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    from benchmarks.machine import machine_info as base

    return base("prefect", "fastapi", "sqlalchemy", "typer", "mlflow")


def git_head() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=REPO)
    return done.stdout.strip() + ("+uncommitted changes" if dirty.stdout.strip() else "")


def load_note(share: float) -> str:
    return f"{share:.0%}"


def previous_notes() -> str:
    """The hand-written notes of the section, kept across reruns."""
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    if NOTES_START in text and NOTES_END in text:
        notes = text.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0]
        return "" if notes.strip() == "(none yet)" else notes
    return ""


def render(data: dict[str, Any], notes: str) -> str:
    m = data["machine"]
    lines = [
        SECTION_START,
        "## Orchestration",
        "",
        f"Generated by `benchmarks/orchestration_benchmark.py` on {data['date']} (code {data['code']}): {m['nproc']} CPU cores "
        f"({m['cpu']}), {m['ram_gib']} GiB RAM, {m['os']}, Python {m['python']}, prefect {m['prefect']}, "
        f"fastapi {m['fastapi']}, SQLAlchemy {m['sqlalchemy']}. Each number is the wall time of fresh child processes "
        "(interpreter start and imports included) unless it says otherwise. The machine is shared: the \"other load\" column "
        "is the share of all CPU time used by processes outside the benchmark while it measured.",
        "",
        "### CLI start-up",
        "",
        "| command | median s | min s | runs | other load |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in data["cli"].items():
        lines.append(f"| `pipeline-cli {name}` | {r['median']:.3f} | {r['min']:.3f} | {len(r['all'])} | {load_note(r['other_share'])} |")
    lines += [
        "",
        "Target: under 0.5 s.",
        "",
        "### Fixed cost of one trivial flow run",
        "",
        "| Prefect API | whole process, median s | `import prefect` + flow definition s | flow call s | runs | other load |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode, label in (("temporary", "none (temporary server per process)"), ("server", "running local server"),
                        ("server_no_heartbeats", "running local server, no flow heartbeats (as `pipeline-cli` runs flows)")):
        r = data["trivial_flow"][mode]
        lines.append(f"| {label} | {r['process']['median']:.2f} | {r['import']['median']:.2f} | {r['flow_call']['median']:.2f} "
                     f"| {len(r['process']['all'])} | {load_note(r['other_share'])} |")
    lines += [
        "",
        f"The local server (`prefect server start`, fresh PREFECT_HOME) answered `/api/health` after {data['server_start_s']:.1f} s.",
        "",
        f"### First run vs cached rerun (`pipeline-cli run`, demo credit data, {data['rows']:,} rows)",
        "",
        "| through | Prefect API | first run s | rerun s | ratio | rerun statuses | other load (first / rerun) |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for p in data["pipeline"]:
        first, rerun = p["runs"]
        statuses = ", ".join(f"{s['layer']} {s['status']}" for s in rerun["stages"])
        label = "running server" if p["mode"] == "server" else "temporary server"
        lines.append(f"| {p['through']} | {label} | {first['wall_s']:.1f} | {rerun['wall_s']:.1f} | {p['ratio_wall']:.1f}x "
                     f"| {statuses} | {load_note(first['other_share'])} / {load_note(rerun['other_share'])} |")
    lines += [
        "",
        "Stage seconds inside the runs (as the CLI reports them; `cached`/`skipped` stages include the cache lookup):",
        "",
    ]
    for p in data["pipeline"]:
        for r in p["runs"]:
            stages = ", ".join(f"{s['layer']} {s['seconds']:.2f}" for s in r["stages"] if s.get("seconds") is not None)
            label = "running server" if p["mode"] == "server" else "temporary server"
            lines.append(f"- through {p['through']}, {label}, {r['attempt']}: command {r['command_s']:.1f} s of {r['wall_s']:.1f} s wall; {stages}")
    if data.get("tuning"):
        t = data["tuning"]
        lines += [
            "",
            f"### Tuning throughput ({t['model']}, {t['n_trials']} trials, one thread per fit, study shared through a journal file)",
            "",
            "| workers | finished trials | complete / pruned / failed | tuning s | trials/min | other load |",
            "|---:|---:|---|---:|---:|---:|",
        ]
        for workers, r in sorted(t["runs"].items(), key=lambda kv: int(kv[0])):
            st = r["states"]
            lines.append(f"| {workers} | {r['finished']} | {st['COMPLETE']} / {st['PRUNED']} / {st['FAIL']} | {r['seconds']:.1f} "
                         f"| {r['trials_per_min']:.1f} | {load_note(r['other_share'])} |")
        lines += ["", f"Two workers: {t['speedup']:.2f}x the trials per minute of one (worker start-up and the journal included)."]
    lines += ["", "Reproduce: `" + data["command"] + "`", "", "### Notes", "", NOTES_START, notes.strip() or "(none yet)", NOTES_END,
              "", SECTION_END, ""]
    return "\n".join(lines)


def write_section(section: str) -> None:
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    if SECTION_START in text and SECTION_END in text:
        before = text.split(SECTION_START, 1)[0]
        after = text.split(SECTION_END, 1)[1].lstrip("\n")
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS_MD.write_text(text)


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
    from pipeline_core.demo_data import credit_default_frame, write_csv

    work = Path(tempfile.mkdtemp(prefix="orchestration-bench-"))
    data: dict[str, Any] = {"machine": machine_info(), "code": git_head(), "rows": args.rows,
                            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                            "command": ".venv/bin/python benchmarks/orchestration_benchmark.py " + " ".join(sys.argv[1:])}
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

    section = render(data, previous_notes())
    print()
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"wrote {RESULTS_MD.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
