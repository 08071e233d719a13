"""Training: the project's `pipeline-cli train` (Optuna + Prefect + MLflow) beside a plain RandomizedSearchCV.

Usage (from the repository root)::

    .venv/bin/python benchmarks/training_benchmark.py [--rows 30000] [--budget-per-model 300]

1. Generates (or reuses) ``benchmarks/work/credit{rows//1000}k.csv`` with ``pipeline-cli demo-data``.
2. In a fresh temporary folder (store + PREFECT_HOME), prepares gold with ``pipeline-cli run --through gold``
   (not timed), then times ``pipeline-cli train --json`` as one subprocess: the wall clock of the whole
   command, Prefect start-up and MLflow logging/registration included.
3. Baseline, in this process: the same gold layer, the same holdout split and preprocessing built with the
   project's own functions, then per enabled model a scikit-learn random search with n_iter=50,
   StratifiedKFold(5, shuffle, seed 42), scoring roc_auc, n_jobs=1, random_state=42, over scipy.stats
   distributions equivalent to the default spaces in ``pipeline_core.modeling.specs``; estimators from
   ``make_estimator(name, {}, seed=42, n_jobs=2)`` (xgboost with n_estimators=300, no early stopping).
   When ``--budget-per-model`` is 0 this is literally ``RandomizedSearchCV``. With a budget, the same 50
   candidates (``ParameterSampler(dists, 50, random_state=42)``, exactly what RandomizedSearchCV draws)
   are cross-validated one by one with ``cross_val_score`` (same CV, same scoring) until the model's
   wall-clock budget is spent; the candidate that is running when the budget runs out is finished. The
   best evaluated candidate is refit on the training part. The report says how many candidates ran.
4. Rewrites ``benchmarks/TRAINING_RESULTS.md`` (after every baseline model, so a cut-off run leaves a
   partial but honest file).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import harness  # noqa: E402
from benchmarks.harness import loadavg  # noqa: E402

WORK = harness.WORK
RESULTS_MD = harness.BENCH / "TRAINING_RESULTS.md"
CONFIG = "configs/credit_default.yaml"
CLI = str(REPO / ".venv" / "bin" / "pipeline-cli")
N_ITER = 50
FOLDS = 5
SEED = 42
AUC_TOLERANCE = 0.002
TIME_RATIO_TARGET = 0.2
PACKAGES = ("scikit-learn", "xgboost", "optuna", "mlflow", "prefect", "scipy", "numpy", "polars")


# -- data + project -----------------------------------------------------------------------

def ensure_csv(rows: int) -> tuple[Path, list[str]]:
    path = WORK / f"credit{rows // 1000}k.csv"
    cmd = [CLI, "demo-data", "credit-default", "--rows", str(rows), "--seed", str(SEED), "--out", str(path.relative_to(REPO))]
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return path, cmd


def prepare_gold(csv: Path, tmp: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect_home")}
    sets = ["--set", f"dataset.source={csv.relative_to(REPO)}", "--set", f"store.root={tmp / 'store'}"]
    subprocess.run([CLI, "run", "--config", CONFIG, "--through", "gold", *sets, "--quiet"], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_project(csv: Path, tmp: Path) -> dict[str, Any]:
    env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect_home")}
    sets = ["--set", f"dataset.source={csv.relative_to(REPO)}", "--set", f"store.root={tmp / 'store'}"]
    prep_cmd = [CLI, "run", "--config", CONFIG, "--through", "gold", *sets, "--quiet"]
    train_cmd = [CLI, "train", "--config", CONFIG, *sets, "--json"]
    prep_s = harness.time_calls(lambda: subprocess.run(prep_cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL,
                                                       stderr=subprocess.DEVNULL), times=1).first_s
    load_before = loadavg()
    train = harness.time_calls(lambda: subprocess.run(train_cmd, cwd=REPO, env=env, capture_output=True, text=True),
                               times=1, keep_results=True)
    proc, wall = train.results[0], train.first_s
    load_after = loadavg()
    (WORK / "training_project_stdout.json").write_text(proc.stdout)
    (WORK / "training_project_stderr.log").write_text(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"pipeline-cli train failed (rc {proc.returncode}); see {WORK / 'training_project_stderr.log'}")
    return parse_project(proc.stdout, proc.stderr, wall, prep_s, load_before, load_after, [" ".join(prep_cmd), " ".join(train_cmd)])


def parse_project(stdout: str, stderr: str, wall: float, prep_s: float, load_before: str, load_after: str,
                  commands: list[str]) -> dict[str, Any]:
    out = json.loads(stdout)
    res = out["result"][0] if isinstance(out, dict) and "result" in out else (out[0] if isinstance(out, list) else out)
    models = {m["name"]: {"roc_auc": m["metrics"]["roc_auc"], "cv_mean": m.get("cv_mean"), "seconds": m.get("seconds"),
                          "n_trials": sum(_count_states(m.get("trials")).values()),
                          "trial_states": _count_states(m.get("trials")), "params": m.get("params")}
              for m in res["models"]}
    warn_lines = [ln for ln in stderr.splitlines() if "warn" in ln.lower() or "error" in ln.lower()]
    return {"wall_s": wall, "prep_s": prep_s, "load_before": load_before, "load_after": load_after,
            "cli_reported_s": out.get("seconds") if isinstance(out, dict) else None,
            "best_model": res.get("best_model"), "models": models,
            "promoted": res.get("promoted"), "reason": res.get("reason"),
            "commands": commands, "warning_lines": warn_lines[:30],
            "n_warning_lines": len(warn_lines)}


def _count_states(trials: dict[str, int] | list[dict[str, Any]] | None) -> dict[str, int]:
    """Trial counts per state: the CLI reports them as {state: count}; older output listed the trials."""
    if isinstance(trials, dict):
        return {state: int(n) for state, n in trials.items() if n}
    counts: dict[str, int] = {}
    for t in trials or []:
        counts[t.get("state", "?")] = counts.get(t.get("state", "?"), 0) + 1
    return counts


# -- baseline -------------------------------------------------------------------------------

class IntLogUniform:
    """Integers log-uniform on [low, high] (the counterpart of Optuna's suggest_int(log=True))."""

    def __init__(self, low: int, high: int) -> None:
        from scipy.stats import loguniform

        self.low, self.high = low, high
        self._d = loguniform(low, high + 1)

    def rvs(self, random_state: Any = None, size: Any = None) -> int:
        return int(min(self.high, np.floor(self._d.rvs(random_state=random_state))))

    def __repr__(self) -> str:
        return f"IntLogUniform({self.low}, {self.high})"


def scipy_space(model: str, y: Any) -> dict[str, Any]:
    """scipy.stats distributions (or lists) equivalent to the model's default Optuna space (``model_spec(model).search_space``);
    ``scale_pos_weight: balanced`` becomes the class ratio of ``y``, which the project resolves at fit time."""
    from scipy.stats import loguniform, randint, uniform

    from pipeline_core.modeling.specs import BALANCED, model_spec, positive_weight

    out: dict[str, Any] = {}
    for name, spec in model_spec(model).search_space.items():
        if spec["type"] == "categorical":
            dist: Any = [positive_weight(y) if c == BALANCED else c for c in spec["choices"]]
        elif spec["type"] == "int":
            lo, hi, step = int(spec["low"]), int(spec["high"]), int(spec.get("step", 1))
            if spec.get("log"):
                dist = IntLogUniform(lo, hi)
            elif step != 1:
                dist = list(range(lo, hi + 1, step))
            else:
                dist = randint(lo, hi + 1)
        else:
            lo, hi = float(spec["low"]), float(spec["high"])
            dist = loguniform(lo, hi) if spec.get("log") else uniform(lo, hi - lo)
        out[f"model__{name}"] = dist
    return out


def load_baseline_data(store_root: Path) -> tuple[Any, Any, dict[str, Any]]:
    from pipeline_core.config import load_config
    from pipeline_io.readers import load_training_data
    from pipeline_io.store import Store

    # the gold version the project trained on, in the same row order, so both split alike
    cfg = load_config(str(REPO / CONFIG), [f"store.root={store_root}"])
    data = load_training_data(cfg, Store(str(store_root)))
    return data.split, cfg, data.preprocessing


def run_baseline_model(name: str, split: Any, prep: dict[str, Any], budget_s: float) -> dict[str, Any]:
    from sklearn.base import clone
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import ParameterSampler, RandomizedSearchCV, StratifiedKFold, cross_val_score
    from sklearn.pipeline import Pipeline

    from pipeline_core.modeling.preprocessing import build_preprocessor
    from pipeline_core.modeling.specs import make_estimator

    est = make_estimator(name, {}, seed=SEED, n_jobs=2)
    if name == "xgboost":
        est.set_params(n_estimators=300)
    pipe = Pipeline([("pre", build_preprocessor(prep)), ("model", est)])
    dists = scipy_space(name, split.y_train)
    cv = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    load_before = loadavg()
    t0 = time.perf_counter()
    if budget_s <= 0:
        search = RandomizedSearchCV(pipe, param_distributions=dists, n_iter=N_ITER, cv=cv, scoring="roc_auc",
                                    n_jobs=1, random_state=SEED, refit=True)
        search.fit(split.X_train, split.y_train)
        best_params, best_cv, n_done, fitted = search.best_params_, float(search.best_score_), N_ITER, search.best_estimator_
        search_s = None
    else:
        cands = list(ParameterSampler(dists, N_ITER, random_state=SEED))
        scores: list[float] = []
        for params in cands:
            if time.perf_counter() - t0 >= budget_s:
                break
            p = clone(pipe).set_params(**params)
            scores.append(float(np.mean(cross_val_score(p, split.X_train, split.y_train, cv=cv, scoring="roc_auc", n_jobs=1))))
        n_done = len(scores)
        search_s = time.perf_counter() - t0
        i = int(np.argmax(scores))
        best_params, best_cv = cands[i], scores[i]
        fitted = clone(pipe).set_params(**best_params).fit(split.X_train, split.y_train)
    seconds = time.perf_counter() - t0
    auc = float(roc_auc_score(split.y_test, fitted.predict_proba(split.X_test)[:, 1]))
    return {"roc_auc": auc, "cv_best": best_cv, "seconds": seconds, "search_s": search_s, "n_iter_done": n_done,
            "best_params": {k.removeprefix("model__"): (v if isinstance(v, (str, int)) else float(v)) for k, v in best_params.items()},
            "load_before": load_before, "load_after": loadavg()}


# -- report ---------------------------------------------------------------------------------

def repo_relative(command: str) -> str:
    """A command as run from the repository root, free of this checkout's absolute path."""
    return command.replace(str(REPO) + os.sep, "")


def write_md(info: dict[str, Any]) -> Path:
    p, b = info["project"], info["baseline"]
    budget = info["budget_per_model_s"]
    lines = [
        "# Training benchmark: project (Optuna + Prefect + MLflow) vs plain RandomizedSearchCV",
        "",
        f"Generated by `{info['command']}` on "
        f"{info['date']}.{'' if info['complete'] else ' **PARTIAL: the baseline had not finished every model when this file was written.**'}",
        "",
        "## Machine",
        "",
        "- " + harness.machine_line(info["machine"], PACKAGES),
        "- The 1/5/15-min load averages before/after each measurement are recorded below: on 2 cores, values well "
        "above 2 mean other jobs shared the machine.",
        "",
        "## Commands",
        "",
        "```",
        repo_relative(" ".join(info["data_cmd"])),
        f"PREFECT_HOME=<tmp>/prefect_home {repo_relative(p['commands'][0])}    # not timed: prepares gold",
        f"PREFECT_HOME=<tmp>/prefect_home {repo_relative(p['commands'][1])}    # timed: whole command",
        "```",
        "",
        f"Data: {info['rows_in_csv']} rows in the CSV ({info['rows']} requested), holdout {info['n_test']} rows, "
        f"training part {info['n_train']} rows (project split, test_size=0.2, seed 42).",
        "",
        "Baseline: same gold layer, same split (`split_data`), same preprocessing (`build_preprocessor`), estimators from "
        "`make_estimator(name, {}, seed=42, n_jobs=2)` (xgboost n_estimators=300, no early stopping), "
        "scipy.stats equivalents of the default search spaces (`pipeline_core.modeling.specs`), n_iter=50, StratifiedKFold(5, shuffle=True, random_state=42), "
        "scoring roc_auc, n_jobs=1, random_state=42, refit of the best candidate on the training part, holdout ROC-AUC "
        "with `sklearn.metrics.roc_auc_score`.",
    ]
    if budget > 0:
        lines += ["", f"**Per-model wall-clock budget for the baseline: {budget:.0f} s.** The 50 candidates are exactly "
                  "those RandomizedSearchCV draws (`ParameterSampler(dists, 50, random_state=42)`); they are "
                  "cross-validated in order with `cross_val_score` until the budget is spent (the running candidate "
                  "is finished). A model with fewer than 50 iterations below did NOT run the full search; nothing "
                  "is extrapolated."]
    lines += ["", "## Results", "", results_table(info)]
    best_p = p["best_model"]
    done = [n for n in info["models"] if n in b]
    best_b = max(done, key=lambda n: b[n]["roc_auc"]) if done else None
    base_total = sum(b[n]["seconds"] for n in done)
    lines += ["", "## Totals", "",
              f"- Project `pipeline-cli train` wall time (Prefect start-up, Optuna, MLflow logging and registry included): "
              f"**{p['wall_s']:.1f} s** (load {p['load_before']} → {p['load_after']}); gold preparation, not timed in the "
              f"comparison: {p['prep_s']:.1f} s." + (f" Note: {p['wall_note']}" if p.get("wall_note") else ""),
              f"- Baseline wall time, sum over {len(done)} of {len(info['models'])} models "
              f"({'full 50-iteration searches' if all(b[n]['n_iter_done'] == N_ITER for n in done) else 'budgeted, see iterations column'}): "
              f"**{base_total:.1f} s**.",
              f"- Ratio project / baseline: **{p['wall_s'] / base_total:.3f}**" if base_total else "- Ratio: n/a",
              f"- Best model: project `{best_p}` holdout ROC-AUC {p['models'][best_p]['roc_auc']:.4f}; "
              + (f"baseline `{best_b}` holdout ROC-AUC {b[best_b]['roc_auc']:.4f}." if best_b else "baseline: none finished."),
              ""]
    if best_b:
        d = p["models"][best_p]["roc_auc"] - b[best_b]["roc_auc"]
        auc_ok = d >= -AUC_TOLERANCE
        ratio = p["wall_s"] / base_total
        full = info["complete"] and all(b[n]["n_iter_done"] == N_ITER for n in done)
        lines += ["## Targets", "",
                  f"- ROC-AUC no lower than the baseline's − {AUC_TOLERANCE}: best-vs-best difference {d:+.4f} → "
                  f"**{'met' if auc_ok else 'NOT met'}**.",
                  f"- At most a fifth of the baseline's wall time: ratio {ratio:.3f} → **{'met' if ratio <= TIME_RATIO_TARGET else 'NOT met'}**"
                  + ("" if full else " (against a budget-truncated baseline: the full baseline would take longer, "
                     "so this ratio is an upper bound for the truncated models; it is not extrapolated)") + ".",
                  "- Per model, project − baseline holdout ROC-AUC: "
                  + ", ".join(f"{n} {p['models'][n]['roc_auc'] - b[n]['roc_auc']:+.4f}" for n in done) + ".", ""]
    lines += ["## Project run notes", "",
              f"- Promotion: {p.get('promoted')} ({p.get('reason')}).",
              f"- stderr lines mentioning warn/error: {p['n_warning_lines']} (full log in `benchmarks/work/training_project_stderr.log`).",
              ]
    for ln in p["warning_lines"][:10]:
        lines.append(f"  - `{ln.strip()[:220]}`")
    lines += ["", "## Raw", "", "```json", json.dumps({k: info[k] for k in ("project", "baseline")}, indent=1, default=str), "```", ""]
    return harness.write_results(RESULTS_MD, "\n".join(lines))


TABLE_HEADER = ["model", "project holdout ROC-AUC", "project trials (states)", "project model s", "baseline holdout ROC-AUC",
                "baseline iterations", "baseline s", "load before → after (baseline)"]


def results_table(info: dict[str, Any]) -> str:
    p, b = info["project"], info["baseline"]
    rows = []
    for name in info["models"]:
        pm = p["models"].get(name, {})
        bm = b.get(name)
        states = ", ".join(f"{k} {n}" for k, n in pm.get("trial_states", {}).items())
        project = [name, f"{pm.get('roc_auc', float('nan')):.4f}", f"{pm.get('n_trials', '?')} ({states})", f"{pm.get('seconds') or float('nan'):.1f}"]
        baseline = ([f"{bm['roc_auc']:.4f}", f"{bm['n_iter_done']} of {N_ITER}", f"{bm['seconds']:.1f}", f"{bm['load_before']} → {bm['load_after']}"]
                    if bm else ["not run", "–", "–", "–"])
        rows.append(project + baseline)
    return harness.markdown_table(TABLE_HEADER, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=30000)
    ap.add_argument("--budget-per-model", type=float, default=300.0,
                    help="baseline wall-clock seconds per model; 0 = plain RandomizedSearchCV with all 50 iterations")
    ap.add_argument("--reuse-project", type=str, default=None,
                    help="JSON file with an earlier measurement of the project side (saved by this script as "
                         "benchmarks/work/training_project_measure.json); gold is re-prepared (not timed), train is not re-run")
    ap.add_argument("--models", nargs="*", default=None, help="subset of the enabled models for the baseline")
    args = ap.parse_args()

    csv, data_cmd = ensure_csv(args.rows)
    tmp = Path(tempfile.mkdtemp(prefix="trainbench-", dir=WORK))
    info: dict[str, Any] = {"command": harness.command_line(__file__), "date": harness.utc_stamp(),
                            "machine": harness.machine_info(*PACKAGES), "rows": args.rows, "data_cmd": data_cmd,
                            "budget_per_model_s": args.budget_per_model, "baseline": {}, "complete": False}
    try:
        print(f"[{loadavg()}] project: pipeline-cli train ...", flush=True)
        if args.reuse_project:
            info["project"] = json.loads(Path(args.reuse_project).read_text())
            info["project"]["reused_from"] = args.reuse_project
            prepare_gold(csv, tmp)
        else:
            info["project"] = run_project(csv, tmp)
            (WORK / "training_project_measure.json").write_text(json.dumps(info["project"], default=str))
        print(json.dumps(info["project"], indent=1, default=str), flush=True)
        split, cfg, prep = load_baseline_data(tmp / "store")
        info["rows_in_csv"] = len(split.y_train) + len(split.y_test)
        info["n_train"], info["n_test"] = len(split.y_train), len(split.y_test)
        enabled = [n for n, mc in cfg.training.models.items() if mc.enabled]
        info["models"] = [n for n in enabled if args.models is None or n in args.models]
        write_md(info)
        for name in info["models"]:
            print(f"[{loadavg()}] baseline {name} ...", flush=True)
            info["baseline"][name] = run_baseline_model(name, split, prep, args.budget_per_model)
            print(name, json.dumps(info["baseline"][name], default=str), flush=True)
            write_md(info)
            (WORK / "training_baseline_measure.json").write_text(json.dumps(info["baseline"], default=str))
        info["complete"] = True
        path = write_md(info)
        print(path.read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
