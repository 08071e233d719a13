"""Bad inputs and faults as a user meets them: each is one line naming the culprit, its exit code, and nothing written.

Exit codes (README): 2 config or argument, 3 data, 4 storage or environment, 6 model.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from pipeline_cli.main import app
from tests.servers import flaky_file_server, free_port
from tests.unit.test_model_format import register_pickled_model

runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output[-1500:]
    return lines[0]


# -- config: `config validate` catches what `run` would reject, before anything is written ---------------

CONFIG_CASES = [
    ("dataset.name=bad name!", "dataset.name"),
    ("dataset.format=xlsx", "dataset.format"),
    ("dataset.csv_separator=;;", "dataset.csv_separator"),
    ("dataset.http.timeout_seconds=0", "dataset.http.timeout_seconds"),
    ("dataset.http.retries=-1", "dataset.http.retries"),
    ("dataset.http.headers_from_env={Authorization: 'not a var'}", "dataset.http.headers_from_env.Authorization"),
    ("dataset.target=", "dataset.target"),
    ("dataset.positive_label=[1, 2]", "dataset.positive_label"),
    ("store.root=", "store.root"),
    ("store.retention.days=-1", "store.retention.days"),
    ("cleaning.max_failure_rate=2", "cleaning.max_failure_rate"),
    ("cleaning.types={LIMIT_BAL: decimal}", "cleaning.types.LIMIT_BAL"),
    ("cleaning.ranges={AGE: {min: 90, max: 10}}", "cleaning.ranges.AGE"),
    ("cleaning.deduplicate=perhaps", "cleaning.deduplicate"),
    ("features.set=nope", "features.set"),
    ("features.missing_indicators=some", "features.missing_indicators"),
    ("preprocessing.max_categories=0", "preprocessing.max_categories"),
    ("preprocessing.encoder=label", "preprocessing.encoder"),
    ("training.test_size=0", "training.test_size"),
    ("training.test_size=1.5", "training.test_size"),
    ("training.seed=abc", "training.seed"),
    ("training.primary_metric=auc", "training.primary_metric"),
    ("training.tie_breakers=[nope]", "training.tie_breakers"),
    ("training.models={svm: {}}", "unknown model(s) ['svm']"),
    ("training.models={logistic_regression: {enabled: false}, lightgbm: {enabled: false}, xgboost: {enabled: false}, "
     "random_forest: {enabled: false}}", "no model is enabled"),
    ("training.models.xgboost.search_space={max_depth: {type: int, low: 5, high: 2}}", "training.models.xgboost.search_space.max_depth"),
    ("training.models.xgboost.search_space={eta: {type: float, low: 0, high: 1, log: true}}", "a log scale needs low > 0"),
    ("training.models.xgboost.search_space={booster: {type: categorical, choices: []}}", "needs a non-empty choices list"),
    ("training.models.xgboost.search_space={depth: {type: normal}}", "type must be int, float or categorical"),
    ("training.tuning.cv_folds=1", "training.tuning.cv_folds"),
    ("training.tuning.n_trials=0", "training.tuning.n_trials"),
    ("training.tuning.storage=notadb://x", "unknown storage scheme 'notadb'"),
    ("training.tuning.n_workers=0", "training.tuning.n_workers"),
    ("training.threshold.objective=precision", "training.threshold.objective"),
    ("training.threshold.fp_cost=-1", "training.threshold.fp_cost"),
    ("training.time_budget_seconds=-5", "training.time_budget_seconds"),
    ("training.calibration=platt", "training.calibration"),
    ("training.preset=turbo", "training.preset"),
    ("training.register=some", "training.register"),
    ("training.ensemble=maybe", "training.ensemble"),
    ("training.n_jobs=0", "training.n_jobs"),
    ("training.concurrency.task_runner=ray", "training.concurrency.task_runner"),
    ("training.concurrency.max_models=0", "training.concurrency.max_models"),
    ("training.export_dir=s3://b/x", "training.export_dir"),
    ("mlflow.registered_model=a/b", "mlflow.registered_model"),
    ("mlflow.registered_model=team@model", "mlflow.registered_model"),
    ("mlflow.min_metrics={auc: 0.5}", "mlflow.min_metrics.auc"),
    ("mlflow.min_metrics={roc_auc: 1.5}", "roc_auc: 1.5 is outside the metric's range [0, 1]"),
    ("mlflow.min_metrics={mcc: -2}", "mcc: -2.0 is outside the metric's range [-1, 1]"),
    ("inference.chunk_size=0", "inference.chunk_size"),
    ("inference.model_alias=", "inference.model_alias"),
    ("monitoring.psi_warn=-1", "monitoring.psi_warn"),
    ("monitoring.ks_alert=2", "monitoring.ks_alert"),
    ("monitoring.min_rows=0", "monitoring.min_rows"),
    ("bogus.key=1", "unknown key 'bogus'"),
    ("training.tuning.bogus=1", "unknown key 'training.tuning.bogus'"),
    ("no-equals-sign", "--set"),
    ("training.seed=[", "training.seed"),
    ("dataset=1", "key 'dataset'"),
    ("mlflow.promotion.confidence=1.5", "mlflow.promotion.confidence"),
    ("mlflow.promotion.resamples=0", "mlflow.promotion.resamples"),
    ("mlflow.promotion.min_improvement=-1", "mlflow.promotion.min_improvement"),
    ("monitoring.degraded_margin=-1", "monitoring.degraded_margin"),
    ("monitoring.psi_alert=0.01", "monitoring.psi_warn (0.1) is above monitoring.psi_alert (0.01)"),
    ("training.models.xgboost.search_space={max_depth: {type: int, low: 1}}", "search_space.max_depth: needs low and high"),
    ("store.s3.endpoint_url=not a url", "store.s3.endpoint_url"),
    ("store.root=s3://", "key 'store.root': Value error, name the bucket and a prefix without empty parts"),
    ("store.root=s3://lake//x", "key 'store.root': Value error, name the bucket and a prefix without empty parts"),
    ("store.root=gs://bucket/x", "key 'store.root': Value error, a local folder or s3://bucket/prefix (no other scheme)"),
    ("inference.model_alias=bad alias!", "inference.model_alias"),
    ("training.tuning.timeout_seconds=-1", "training.tuning.timeout_seconds"),
    ("cleaning.null_tokens=5", "unknown key 'cleaning.null_tokens'"),
    ("store.retention.days=1e400", "key 'store.retention.days': Input should be less than or equal to 36500"),
    ("training.models={xgboost: {params: {max_depth: abc}}}", "training.models.xgboost.params: Invalid Parameter format for max_depth"),
    ("training.models={random_forest: {params: {n_estimator: 50}}}", "training.models.random_forest.params.n_estimator: random_forest takes no"),
    ("training.models={logistic_regression: {params: {C: -1}}}", "training.models.logistic_regression.params: The 'C' parameter"),
    # a YAML key without the space after its colon: one unknown name, shown as typed (not as an emoji code)
    ("training.models={xgboost: {params: {max_depth:abc}}}", "training.models.xgboost.params.max_depth:abc: xgboost takes no parameter"),
    ("training.models={lightgbm: {search_space: {num_leavs: {type: int, low: 8, high: 64}}}}",
     "training.models.lightgbm.search_space.num_leavs: lightgbm takes no parameter"),
]


@pytest.mark.parametrize("override, culprit", CONFIG_CASES, ids=[c[0][:60] for c in CONFIG_CASES])
def test_bad_config_value_is_one_line_exit_2_and_run_writes_nothing(tmp_path, credit_config, override, culprit):
    checked = invoke("config", "validate", "--config", credit_config, "--set", override)
    assert checked.exit_code == 2, checked.output
    assert culprit in one_line(checked) and len(one_line(checked)) < 400  # a section's check does not dump the section
    ran = invoke("run", "--config", credit_config, "--set", override)
    assert ran.exit_code == 2 and one_line(ran) == one_line(checked)
    assert not (tmp_path / "store").exists()


# -- data: the source is read, refused with the file or column named, and the store is left as it was --------

def _csv(tmp: Path, name: str, frame: pl.DataFrame) -> Path:
    frame.write_csv(tmp / name)
    return tmp / name


def _sqlite(tmp: Path, name: str, tables: dict[str, pl.DataFrame]) -> Path:
    path = tmp / name
    with sqlite3.connect(path) as conn:
        for table, frame in tables.items():
            frame.to_pandas().to_sql(table, conn, index=False)
    return path


def _data_cases(tmp: Path, credit: pl.DataFrame) -> dict[str, tuple[list[str], int, str]]:
    """{case: (overrides, exit code, text the one line must hold)}"""
    head = credit.head(400)
    (tmp / "empty.csv").write_text("")
    (tmp / "header.csv").write_text(",".join(head.columns) + "\n")
    (tmp / "dup.csv").write_text("ID,AGE,AGE\n1,30,31\n")
    (tmp / "garbage.csv").write_bytes(bytes(range(256)) * 40)
    (tmp / "notparquet.parquet").write_text("plain text, not parquet")
    head.write_parquet(tmp / "whole.parquet")
    (tmp / "trunc.parquet").write_bytes((tmp / "whole.parquet").read_bytes()[:300])
    pl.DataFrame({"a": [[1, 2], [3]], "b": [{"x": 1}, {"x": 2}], "y": [0, 1]}).write_parquet(tmp / "nested.parquet")
    (tmp / "data.xlsx").write_text("x")
    (tmp / "folder.csv").mkdir()
    (tmp / "notsqlite.db").write_text("not a database")
    with sqlite3.connect(tmp / "notables.sqlite") as conn:  # a database file whose only table was dropped
        conn.execute("CREATE TABLE t (x)")
        conn.execute("DROP TABLE t")
    _sqlite(tmp, "two.sqlite", {"a": head, "b": head})
    target = "default payment next month"
    semicolons = _csv(tmp, "semi.csv", head)
    semicolons.write_text(semicolons.read_text().replace(",", ";"))
    (tmp / "page.csv").write_text("<!DOCTYPE html>\n<html><body><a href='credit.csv'>credit.csv</a></body></html>\n")
    lines = _csv(tmp, "latin.csv", credit).read_bytes().split(b"\n")
    lines[-2] = lines[-2].replace(b",", b",\xe9\xff", 1)  # one Latin-1 value far below the header
    latin = tmp / "latin.csv"
    latin.write_bytes(b"\n".join(lines))
    return {
        "missing file": ([f"dataset.source={tmp / 'nope.csv'}"], 3, "nope.csv: source file not found"),
        "folder": ([f"dataset.source={tmp / 'folder.csv'}"], 3, "folder.csv: source file is not a file"),
        "empty csv": ([f"dataset.source={tmp / 'empty.csv'}"], 3, "empty.csv: file is empty"),
        "header only": ([f"dataset.source={tmp / 'header.csv'}"], 3, "header.csv: CSV has a header but no rows"),
        "duplicated header": ([f"dataset.source={tmp / 'dup.csv'}"], 3, "column 'AGE' appears more than once"),
        "not utf-8": ([f"dataset.source={tmp / 'garbage.csv'}"], 3, "garbage.csv: not a readable CSV file"),
        "not parquet": ([f"dataset.source={tmp / 'notparquet.parquet'}"], 3, "notparquet.parquet: not a readable Parquet file"),
        "truncated parquet": ([f"dataset.source={tmp / 'trunc.parquet'}"], 3, "trunc.parquet: not a readable Parquet file"),
        "nested parquet": ([f"dataset.source={tmp / 'nested.parquet'}"], 3, "nested column(s) a (List(Int64)), b (Struct"),
        "unknown extension": ([f"dataset.source={tmp / 'data.xlsx'}"], 3, "data.xlsx: cannot tell the format"),
        "not sqlite": ([f"dataset.source={tmp / 'notsqlite.db'}"], 3, "notsqlite.db: not a readable SQLite database"),
        "sqlite without tables": ([f"dataset.source={tmp / 'notables.sqlite'}"], 3, "SQLite database has no tables"),
        "sqlite, several tables": ([f"dataset.source={tmp / 'two.sqlite'}"], 3, "several tables ['a', 'b']; set dataset.table"),
        "sqlite, no such table": ([f"dataset.source={tmp / 'two.sqlite'}", "dataset.table=c"], 3, "no table 'c' (dataset.table)"),
        "reserved _source": ([f"dataset.source={_csv(tmp, 'r1.csv', head.with_columns(pl.lit('x').alias('_source')))}"], 3,
                             "column(s) _source have names the pipeline uses"),
        "reserved _batch_id": ([f"dataset.source={_csv(tmp, 'r2.csv', head.with_columns(pl.lit('x').alias('_batch_id')))}"], 3,
                               "column(s) _batch_id have names the pipeline uses"),
        "reserved prediction": ([f"dataset.source={_csv(tmp, 'r3.csv', head.with_columns(pl.lit(1).alias('prediction')))}"], 3,
                                "column(s) prediction have names the pipeline uses"),
        "reserved probability": ([f"dataset.source={_csv(tmp, 'r4.csv', head.with_columns(pl.lit(0.5).alias('probability')))}"], 3,
                                 "column(s) probability have names the pipeline uses"),
        "s3 endpoint down": (["store.root=s3://bucket/store", f"store.s3.endpoint_url=http://127.0.0.1:{free_port()}"], 4,
                             "does not answer"),
        "s3 source behind an endpoint that is down": (["dataset.source=s3://raw/in/credit.csv",
                                                       f"store.s3.endpoint_url=http://127.0.0.1:{free_port()}"], 4,
                                                      "s3://raw/in/credit.csv: the S3 endpoint does not answer"),
        "header token not exported": (["dataset.source=http://127.0.0.1:9/credit.csv",
                                       "dataset.http.headers_from_env={X-Token: PIPELINE_TEST_UNSET_TOKEN}"], 2,
                                      "header X-Token (from PIPELINE_TEST_UNSET_TOKEN) not set"),
        # refused by bronze before it stores anything: such a batch would stay in bronze and fail every later silver run
        "target missing": ([f"dataset.source={_csv(tmp, 't1.csv', head.drop(target))}"], 3,
                           f"t1.csv: no dataset.target '{target}' column among 'ID', 'LIMIT_BAL'"),
        "id missing": ([f"dataset.source={_csv(tmp, 't2.csv', head.drop('ID'))}"], 3, "t2.csv: no dataset.id_column 'ID' column among"),
        "semicolon separated": ([f"dataset.source={semicolons}"], 3, "its header looks ';'-separated: set dataset.csv_separator"),
        "an html page": ([f"dataset.source={tmp / 'page.csv'}"], 3, "page.csv: no dataset.target"),
        "not utf-8 further down": ([f"dataset.source={latin}"], 3, "latin.csv: cannot be read as csv"),
        "columns differ in case": ([f"dataset.source={_csv(tmp, 't7.csv', head.with_columns(pl.col('AGE').alias('Age')))}"], 3,
                                   "columns 'AGE' and 'Age' differ only in case"),
        # found by silver, after bronze committed the batch: silver and gold stay absent
        "range on text": ([f"dataset.source={_csv(tmp, 't3.csv', head.with_columns(pl.lit('paris').alias('city')))}",
                           "cleaning.ranges={city: {min: 0, max: 3}}"], 2, "cleaning.ranges: column(s) city (str)"),
        "columns collide": ([f"dataset.source={_csv(tmp, 't4.csv', head.rename({'LIMIT_BAL': 'A B'}).with_columns(pl.lit(1).alias('a_b')))}"],
                            3, "columns 'A B' and 'a_b' both become 'a_b'"),
        "single class": ([f"dataset.source={_csv(tmp, 't5.csv', head.with_columns(pl.lit('0').alias(target)))}"], 3,
                         "has a single class ['0']; a classifier needs both classes"),
        "three classes": ([f"dataset.source={_csv(tmp, 't6.csv', head.with_columns((pl.col('ID').cast(pl.Int64) % 3).cast(pl.String).alias(target)))}"],
                          3, "has 3 classes ['0', '1', '2']; only binary targets are supported"),
        "unknown rename": (["cleaning.rename={NOPE: x}"], 2, "cleaning.rename: column(s) ['NOPE'] not in"),
        "unknown not_null column": (["cleaning.not_null=[NOPE]"], 2, "cleaning.not_null: column 'NOPE' not found"),
    }


@pytest.fixture(scope="module")
def data_cases(tmp_path_factory, demo_dir):
    tmp = tmp_path_factory.mktemp("bad-data")
    credit = pl.read_csv(demo_dir / "credit.csv", infer_schema=False)
    return _data_cases(tmp, credit)


DATA_CASE_NAMES = ["missing file", "folder", "empty csv", "header only", "duplicated header", "not utf-8", "not parquet",
                   "truncated parquet", "nested parquet", "unknown extension", "not sqlite", "sqlite without tables",
                   "sqlite, several tables", "sqlite, no such table", "reserved _source", "reserved _batch_id", "reserved prediction",
                   "reserved probability", "s3 endpoint down", "header token not exported", "target missing", "id missing",
                   "semicolon separated", "an html page", "not utf-8 further down", "columns differ in case", "range on text", "columns collide", "single class", "three classes", "unknown rename", "unknown not_null column"]


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("case", DATA_CASE_NAMES)
def test_bad_source_is_one_line_with_its_exit_code_and_no_layer_written(tmp_path, credit_config, data_cases, case):
    overrides, code, text = data_cases[case]
    args = [a for o in overrides for a in ("--set", o)]
    result = invoke("run", "--config", credit_config, "--through", "gold", *args)
    assert result.exit_code == code, result.output[-1500:]
    assert text in one_line(result)
    store = Path(yaml.safe_load(credit_config.read_text())["store"]["root"])
    # the class count is gold's check: silver holds the cleaned rows by then
    for layer in ("gold",) if case.endswith("class") or case.endswith("classes") else ("silver", "gold"):
        assert not list((store / layer).rglob("_delta_log")), f"{layer} was written"
    if case in BRONZE_REFUSES:
        assert not (store / "bronze").exists() or not any((store / "bronze").iterdir()), "bronze was written"


BRONZE_REFUSES = {"target missing", "id missing", "semicolon separated", "an html page", "not utf-8 further down", "columns differ in case"}


# -- predict: a refused batch writes no output, no quarantine and no temporary file ---------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, prefect_harness, demo_dir):
    from tests.conftest import shipped_config

    tmp = tmp_path_factory.mktemp("predict-faults")
    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp)
    quick = ["training.models={logistic_regression: {}}", "training.tuning.n_trials=2", "training.tuning.cv_folds=3",
             "mlflow.min_metrics={}"]
    result = invoke("run", "--config", config, "--quiet", *[a for o in quick for a in ("--set", o)])
    assert result.exit_code == 0, result.output
    head = pl.read_csv(demo_dir / "credit.csv", infer_schema=False).head(300)
    inputs = tmp / "inputs"
    inputs.mkdir()
    head.drop("AGE").write_csv(inputs / "no_age.csv")
    head.head(0).write_csv(inputs / "empty.csv")
    head.head(20).with_columns(pl.exclude("ID").str.replace(r".*", "n/a?!")).write_csv(inputs / "all_bad.csv")
    head.write_parquet(inputs / "records.parquet")
    (inputs / "trunc.parquet").write_bytes((inputs / "records.parquet").read_bytes()[:200])
    pl.DataFrame({"a": [[1]], "ID": [1]}).write_parquet(inputs / "nested.parquet")
    head.write_csv(inputs / "records.csv")
    (inputs / "records.xlsx").write_text("x")
    return config, inputs


PREDICT_CASES = {
    "missing column": (["{in}/no_age.csv", "{out}/p.parquet"], 3, "missing required column(s) AGE"),
    "no rows": (["{in}/empty.csv", "{out}/p.parquet"], 3, "no rows to score; pass --allow-empty"),
    "every row quarantined": (["{in}/all_bad.csv", "{out}/p.parquet"], 3,
                              "all_bad.csv: every one of its 20 rows failed the cleaning rules, so nothing was scored (most often: cast:"),
    "input is output": (["{in}/records.parquet", "{in}/records.parquet"], 2, "is the INPUT"),
    "output not parquet": (["{in}/records.csv", "{out}/p.csv"], 2, "give a path ending in .parquet"),
    "output under /proc": (["{in}/records.csv", "/proc/p.parquet"], 4, "/proc/p.parquet: cannot write in /proc"),
    "input missing": (["{in}/nope.csv", "{out}/p.parquet"], 3, "nope.csv: input file not found"),
    "input truncated": (["{in}/trunc.parquet", "{out}/p.parquet"], 3, "trunc.parquet: not a readable Parquet file"),
    "input nested": (["{in}/nested.parquet", "{out}/p.parquet"], 3, "nested column(s) a (List(Int64))"),
    "input format unknown": (["{in}/records.xlsx", "{out}/p.parquet"], 3, "records.xlsx: cannot tell the format"),
    "model URI scheme": (["{in}/records.csv", "{out}/p.parquet", "--model", "model.pkl"], 2, "use models:/<name>/<version>"),
    "alias unknown": (["{in}/records.csv", "{out}/p.parquet", "--model", "models:/credit-default-classifier@nope"], 6,
                      "has no version with alias 'nope'"),
    "version unknown": (["{in}/records.csv", "{out}/p.parquet", "--model", "models:/credit-default-classifier/99"], 6,
                        "models:/credit-default-classifier/99: cannot load it"),
    "model unknown": (["{in}/records.csv", "{out}/p.parquet", "--model", "models:/no-such-model@champion"], 6,
                      "model 'no-such-model' has no version with alias 'champion'"),
    "run unknown": (["{in}/records.csv", "{out}/p.parquet", "--model", "runs:/0123456789abcdef/model"], 6, "cannot load it"),
    "http 404": (["{url}", "{out}/p.parquet"], 4, "HTTP 404"),
}


@pytest.mark.parametrize("case", list(PREDICT_CASES))
def test_refused_batch_is_one_line_and_leaves_no_output(tmp_path, trained, demo_dir, case):
    config, inputs = trained
    args, code, text = PREDICT_CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    before = {p: p.read_bytes() for p in inputs.iterdir()}
    with flaky_file_server(demo_dir / "credit.csv", status=404) as (url, _):
        filled = [a.format(**{"in": inputs, "out": out, "url": url}) for a in args]
        result = invoke("predict", "--config", config, *filled)
    assert result.exit_code == code, result.output[-1500:]
    assert text in one_line(result)
    assert list(out.iterdir()) == []  # no predictions, quarantine, drift report or temporary file
    assert {p: p.read_bytes() for p in inputs.iterdir()} == before


# -- the config file itself ------------------------------------------------------------------------------------

CONFIG_FILES = {
    "missing": (None, "config file not found"),
    "a folder": ("<dir>", "a folder, not a config file"),
    "duplicated key": (b"dataset:\n  name: a\ndataset:\n  name: b\n", "key 'dataset' appears twice in one mapping"),
    "malformed": (b"dataset: [\n", "malformed YAML at line 2"),
    "a list": (b"- 1\n- 2\n", "expected a mapping of sections (dataset, store, ...), got list"),
    "empty": (b"", "missing required key 'dataset'"),
    "not utf-8": (b"\xff\xfe\x00bad", "not a UTF-8 text file"),
}


@pytest.mark.parametrize("case", list(CONFIG_FILES))
def test_a_bad_config_file_is_one_line_exit_2_and_nothing_is_written(tmp_path, case):
    content, text = CONFIG_FILES[case]
    path = tmp_path / "config.yaml"
    if content == "<dir>":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    for command in (["config", "validate"], ["run"], ["predict", "in.csv", "out.parquet"]):
        result = invoke(*command, "--config", path)
        assert result.exit_code == 2, result.output
        line = one_line(result)
        assert text in line and "config.yaml" in line
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "results") == (["config.yaml"] if content is not None else [])


# -- command-line arguments --------------------------------------------------------------------------------------

ARGUMENT_CASES = {
    "unknown command": (["nosuch"], "No such command 'nosuch'"),
    "unknown option": (["run", "--config", "c.yaml", "--bogus"], "No such option: --bogus"),
    "missing argument": (["predict", "--config", "c.yaml"], "Missing argument 'INPUT'"),
    "option without value": (["run", "--config"], "Option '--config' requires an argument"),
    "--last 0": (["monitor", "--config", "c.yaml", "--last", "0"], "Invalid value for '--last'"),
    "--threshold 1.5": (["predict", "a.csv", "b.parquet", "--config", "c.yaml", "--threshold", "1.5"], "Invalid value for '--threshold'"),
    "--n-workers 0": (["run", "--config", "c.yaml", "--n-workers", "0"], "Invalid value for '--n-workers'"),
    "--rows 5": (["demo-data", "credit-default", "--rows", "5"], "Invalid value for '--rows'"),
    "--seed -1": (["demo-data", "credit-default", "--seed", "-1"], "Invalid value for '--seed'"),
    "demo-data --out a folder": (["demo-data", "credit-default", "--out", "."], "--out '.': give the path of a file to write"),
    "demo-data --out of another kind": (["demo-data", "phishing", "--out", "credit.csv"], "this demo data is a SQLite database; name it *.sqlite"),
    "features.age_bins empty": (["config", "validate", "--config", "{cfg}", "--set", "features.age_bins=[]"], "features.age_bins"),
    "--through platinum": (["run", "--config", "{cfg}", "--through", "platinum"], "--through 'platinum': choose one of"),
    "--preset turbo": (["run", "--config", "{cfg}", "--preset", "turbo"], "training.preset"),
    "--task-runner ray": (["run", "--config", "{cfg}", "--task-runner", "ray"], "training.concurrency.task_runner"),
    "serve-model on all interfaces": (["serve-model", "--config", "{cfg}", "--host", "0.0.0.0"], "--host 0.0.0.0: the scoring server has no authentication"),
    "serve-model --port 70000": (["serve-model", "--config", "{cfg}", "--port", "70000"], "Invalid value for '--port'"),
    "serve-model --port 0": (["serve-model", "--config", "{cfg}", "--port", "0"], "Invalid value for '--port'"),
    "server on all interfaces": (["server", "start", "--host", "0.0.0.0"], "--host 0.0.0.0 exposes the unauthenticated Prefect"),
    "server --port 99999": (["server", "start", "--port", "99999"], "Invalid value for '--port'"),
    "--table unknown": (["store", "history", "--config", "{cfg}", "--table", "nope"],
                        "--table 'nope': choose bronze, silver, quarantine, gold, monitoring or performance"),
    "--limit too large": (["store", "history", "--config", "{cfg}", "--limit", "100000000000000000000"], "Invalid value for '--limit'"),
    "--last too large": (["monitor", "--config", "{cfg}", "--last", "100000000000000000000"], "Invalid value for '--last'"),
    "--kind unknown": (["report", "open", "--config", "{cfg}", "--kind", "weekly"], "--kind 'weekly': choose training or scoring"),
}


@pytest.mark.parametrize("case", list(ARGUMENT_CASES))
def test_a_bad_argument_is_one_line_exit_2_not_a_usage_panel(tmp_path, credit_config, case):
    args, text = ARGUMENT_CASES[case]
    result = invoke(*[a.replace("{cfg}", str(credit_config)) for a in args])
    assert result.exit_code == 2, result.output
    line = one_line(result)
    assert line.startswith("error: ") and text in line, line
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("command", ["history", "batches", "vacuum", "drop-batch", "monitor"])
def test_store_commands_on_a_mistyped_root_create_nothing(tmp_path, credit_config, command):
    args = ["store", command] if command != "monitor" else ["monitor", "--fail-on-drift"]  # (no batches must not pass the gate)
    result = invoke(*args, "--config", credit_config, "--set", f"store.root={tmp_path / 'sotre'}", *(["2026"] if command == "drop-batch" else []))
    assert result.exit_code == 4, result.output
    assert one_line(result) == f"error: store.root {tmp_path / 'sotre'}: no such folder; check store.root, or run `pipeline-cli run` to create the store"
    assert not (tmp_path / "sotre").exists()


def test_report_open_before_any_report_names_the_command_that_writes_one(tmp_path, credit_config):
    result = invoke("report", "open", "--config", credit_config, "--kind", "scoring")
    assert result.exit_code == 3
    assert one_line(result) == "error: no scoring report for dataset 'credit_default' yet; `pipeline-cli predict` writes one"
    assert not (tmp_path / "store").exists()


# -- the store, the registry and the model's files: a damaged or missing part is named, and nothing else changes --

def _store_copy(trained, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the trained store and a config pointing at it."""
    import shutil

    config, _ = trained
    data = yaml.safe_load(config.read_text())
    shutil.copytree(data["store"]["root"], tmp_path / "store")
    data["store"]["root"] = str(tmp_path / "store")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "store", tmp_path / "c.yaml"


def _fill(arg: str, values: dict[str, object]) -> str:
    for key, value in values.items():
        arg = arg.replace("{" + key + "}", str(value))
    return arg


def _quiet(args: list[str]) -> list[str]:
    """--quiet for the commands that run flows (the registry commands print one table and have no such option)."""
    return ["--quiet"] if args[0] in ("run", "bronze", "silver", "features", "train", "predict", "feedback") else []


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _model_file(config: Path, name: str) -> Path:
    """A file of the champion's registered model, where the registry reads it from."""
    from urllib.parse import unquote, urlparse

    import mlflow

    from pipeline_core.config import load_config
    from pipeline_io import registry

    client, _ = registry.connect(load_config(config))
    version = client.get_model_version_by_alias("credit-default-classifier", "champion")
    folder = Path(unquote(urlparse(client.get_model_version_download_uri(version.name, version.version)).path))
    assert isinstance(client, mlflow.MlflowClient)
    return next(folder.rglob(name))


def _damage(store: Path, config: Path, tmp: Path, case: str) -> None:
    if case == "mlflow.db damaged":
        db = store / "mlflow.db"
        db.write_bytes(b"garbage garbage!" + db.read_bytes()[16:100] + b"\x00" * 4000 + db.read_bytes()[4100:])
    elif case.startswith("truncated"):
        layer = case.split()[1]
        data = sorted(store.rglob(f"{layer}/**/*.parquet"))[0]
        data.write_bytes(data.read_bytes()[:200])
    elif case == "old silver version vacuumed":  # a newer version, then `store vacuum` at zero retention
        from deltalake import DeltaTable, write_deltalake

        table = str(store / "silver" / "credit_default" / "data")
        write_deltalake(table, DeltaTable(table).to_pyarrow_table(), mode="overwrite")
        assert DeltaTable(table).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    elif case == "bronze file deleted":
        sorted(store.rglob("bronze/**/*.parquet"))[0].unlink()
    elif case == "model pipeline replaced":
        import skops.io

        from tests.unit.test_model_format import Payload

        skops.io.dump({"model": Payload(str(tmp / "payload-ran"))}, _model_file(config, "pipeline.skops"))
    elif case == "model spec edited":
        spec = _model_file(config, "model.json")
        spec.write_text(spec.read_text().replace('"threshold"', '"threshold" ', 1))
    elif case == "model file added":
        (_model_file(config, "MLmodel").parent / "python_model.pkl").write_bytes(b"\x80\x04N.")
    elif case == "model file missing":
        _model_file(config, "model.json").unlink()


STORE_CASES = {
    "mlflow.db damaged": (["models", "list"], 4, "mlflow.db: tracking server unreachable or unusable"),
    "truncated gold": (["train", "--refresh", "--set", "training.models={logistic_regression: {}}"], 4, "damaged data file"),
    "truncated silver": (["features", "--full-refresh"], 4, "damaged data file"),
    "bronze file deleted": (["silver", "--full-refresh"], 4, ".parquet: missing"),
    "old silver version vacuumed": (["features", "--as-of", "0"], 4, ".parquet: missing; `pipeline-cli store vacuum` deletes"),
    "model pipeline replaced": (["predict", "{csv}", "{out}"], 4, "pipeline.skops (changed)"),
    "model spec edited": (["predict", "{csv}", "{out}"], 4, "model.json (changed)"),
    "model file added": (["predict", "{csv}", "{out}"], 4, "python_model.pkl (added)"),
    "model file missing": (["predict", "{csv}", "{out}"], 4, "model.json (missing)"),
    "tuning storage unopenable": (["train", "--set", "training.tuning.storage=sqlite:////proc/none/optuna.db"], 4,
                                  "training.tuning.storage sqlite:////proc/none/optuna.db: cannot open it"),
    "export folder is a file": (["train", "--refresh", "--set", "training.export_dir={file}"], 4, "training.export_dir"),
    "preprocessing changed since gold": (["train", "--set", "preprocessing.scaler=standard"], 2,
                                         "features/preprocessing: gold/credit_default version 0 was built with other settings"),
    "gold version unknown": (["train", "--as-of", "999"], 3, "--as-of 999: gold/credit_default/features is only at version"),
    "--as-of not a version": (["features", "--as-of", "nope"], 2, "--as-of 'nope': give a table version"),
    "promote unknown version": (["models", "promote", "credit-default-classifier", "99"], 6, "has no version 99"),
    "rollback without history": (["models", "rollback", "credit-default-classifier"], 6, "nothing to roll back to"),
    "describe unknown model": (["models", "describe", "nope-model"], 6, "no registered model 'nope-model'"),
    "lineage of a missing file": (["lineage", "{tmp}/nope.parquet"], 3, "nope.parquet: no such predictions file"),
    "lineage of a CSV": (["lineage", "{csv}"], 3, "cannot be read as Parquet"),
    "lineage of a foreign Parquet": (["lineage", "{foreign}"], 3, "not a predictions file of this pipeline"),
    "lineage of an unknown version": (["lineage", "models:/credit-default-classifier/99"], 6, "has no version 99"),
    "feedback file missing": (["feedback", "{tmp}/labels.csv"], 3, "labels.csv: labels file not found"),
    "feedback without the label column": (["feedback", "{csv}", "--label-column", "nope"], 3, "missing column(s) nope"),
    "feedback without ids": (["feedback", "{foreign}"], 3, "the labels need the id column 'ID'"),
    "pickled model version": (["predict", "{csv}", "{out}", "--model", "models:/legacy-pickled/1"], 6,
                              "not in this pipeline's model format (a pickled Python model, which is never loaded)"),
    "serve an unknown version": (["serve-model", "--model", "models:/credit-default-classifier/99"], 6,
                                 "--model models:/credit-default-classifier/99: no such registered version"),
    "serve on a busy port": (["serve-model", "--port", "{busy}"], 4, "something already listens on 127.0.0.1:"),
    "drop an unknown batch": (["store", "drop-batch", "nope"], 2,
                              "no bronze batch 'nope' in dataset 'credit_default'; `pipeline-cli store batches` lists them"),
}


@pytest.mark.parametrize("case", list(STORE_CASES))
def test_a_damaged_store_or_a_refused_request_is_one_line_and_changes_nothing(tmp_path, trained, demo_dir, case):
    from pipeline_core.config import load_config
    from pipeline_io import registry

    store, config = _store_copy(trained, tmp_path / "copy")
    args, code, text = STORE_CASES[case]
    (tmp_path / "a-file").write_text("x")
    pl.DataFrame({"label": [1]}).write_parquet(tmp_path / "foreign.parquet")
    marker = tmp_path / "payload-ran"
    if case != "mlflow.db damaged":  # (an open connection would keep reading the undamaged database)
        registry.connect(load_config(config))  # the copy's first use points its registry at its own artifacts
    if case == "pickled model version":
        register_pickled_model(marker)
    _damage(store, config, tmp_path, case)
    before = _files(store)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        fill = {"csv": demo_dir / "credit.csv", "out": tmp_path / "out.parquet", "tmp": tmp_path, "file": tmp_path / "a-file",
                "foreign": tmp_path / "foreign.parquet", "busy": busy.getsockname()[1]}
        result = invoke(*[_fill(a, fill) for a in args], "--config", config, *_quiet(args))
    assert result.exit_code == code, result.output[-1500:]
    assert text in one_line(result)
    assert _files(store) == before  # no layer, registry entry, model or record written, nothing lost
    assert not (tmp_path / "out.parquet").exists() and not marker.exists()


def test_store_batches_and_dropping_one_from_the_command_line(tmp_path, trained):
    store, config = _store_copy(trained, tmp_path / "copy")
    listed = invoke("store", "batches", "--config", config, "--json")
    assert listed.exit_code == 0, listed.output
    (batch,) = json.loads(listed.stdout)["result"]
    assert batch["rows"] == 3006 and batch["source"].endswith("credit.csv")

    before = _files(store)
    preview = invoke("store", "drop-batch", batch["batch_id"][:10], "--config", config, "--dry-run")
    assert preview.exit_code == 0 and preview.stdout.startswith(f"would drop bronze batch {batch['batch_id']} (3,006 rows from ")
    assert _files(store) == before

    dropped = invoke("store", "drop-batch", batch["batch_id"], "--config", config, "--json")
    assert dropped.exit_code == 0, dropped.output
    assert json.loads(dropped.stdout)["result"]["bronze_version"] == 1
    history = json.loads(invoke("store", "history", "--config", config, "--table", "bronze", "--json").stdout)["result"]
    assert [(h["operation"], h.get("dropped_batch")) for h in history] == [("DELETE", batch["batch_id"]), ("WRITE", None)]
    assert json.loads(invoke("store", "batches", "--config", config, "--json").stdout)["result"] == []


# -- secrets: a refused location is named without its credentials --------------------------------------------------

SECRET_CASES = {
    "source URL": (["run", "--through", "bronze", "--set", "dataset.source=http://user:s3cret@127.0.0.1:{port}/x.csv?token=t0ken"],
                   4, "http://***@127.0.0.1:{port}/x.csv?token=***"),
    "predict URL": (["predict", "http://user:s3cret@127.0.0.1:{port}/x.csv?api_key=t0ken", "{tmp}/out.parquet"], 4,
                    "http://***@127.0.0.1:{port}/x.csv?api_key=***"),
    "tracking URI": (["models", "list", "--set", "mlflow.tracking_uri=http://user:s3cret@127.0.0.1:{port}"], 4,
                     "mlflow.tracking_uri http://***@127.0.0.1:{port}: tracking server unreachable"),
    "tuning storage URL": (["train", "--set", "training.tuning.storage=postgresql://user:s3cret@127.0.0.1:{port}/db?password=t0ken"], 4,
                           "training.tuning.storage postgresql://***@127.0.0.1:{port}/db?password=***: cannot open it"),
}


@pytest.mark.parametrize("case", list(SECRET_CASES))
def test_a_refused_location_is_named_without_its_credentials(tmp_path, trained, case):
    _, config = _store_copy(trained, tmp_path / "copy")
    args, code, text = SECRET_CASES[case]
    port = free_port()
    result = invoke(*[a.format(port=port, tmp=tmp_path) for a in args], "--config", config, *_quiet(args),
                    "--set", "dataset.http.retries=0")
    assert result.exit_code == code, result.output[-1500:]
    assert text.format(port=port) in one_line(result)
    assert "s3cret" not in result.output and "t0ken" not in result.output
    logs = [p.read_text() for p in Path("results/logs").glob("*.log")] if Path("results/logs").exists() else []
    assert not any("s3cret" in log or "t0ken" in log for log in logs)


# -- the disk: full, then read-only (a small tmpfs; root can write through permission bits, not through these) --

@pytest.fixture
def small_disk(tmp_path):
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mount)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip()[:100]}); the full-disk cases need one")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.usefixtures("prefect_harness")
def test_a_full_then_read_only_disk_is_one_line_exit_4_and_nothing_stored_is_lost(tmp_path, small_disk, demo_dir):
    import subprocess

    from tests.conftest import shipped_config

    config = shipped_config("credit_default", demo_dir / "credit.csv", small_disk)
    quick = [a for o in ("training.models={logistic_regression: {}}", "training.tuning.enabled=false", "mlflow.min_metrics={}")
             for a in ("--set", o)]
    full = invoke("run", "--config", config, "--quiet", *quick)
    assert full.exit_code == 4, full.output[-1500:]
    assert "no space left on the device; free space where store.root" in one_line(full)

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    done = invoke("run", "--config", config, "--quiet", *quick)  # what the full disk left behind is whole
    assert done.exit_code == 0, done.output[-1500:]
    scored = invoke("predict", demo_dir / "credit.csv", small_disk / "scored.parquet", "--config", config, "--quiet", *quick)
    assert scored.exit_code == 0, scored.output[-1500:]

    # the same store mounted read-only elsewhere (this process still holds files of the first mount open)
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    subprocess.run(["mount", "--bind", str(small_disk), str(read_only)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(read_only)], check=True)
        before = _files(small_disk)
        ro_config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
        data = yaml.safe_load(ro_config.read_text())
        data["store"]["root"] = str(read_only / "store")
        ro_config.write_text(yaml.safe_dump(data))
        for args in (["run", "--refresh"], ["predict", demo_dir / "credit.csv", read_only / "again.parquet"]):
            refused = invoke(*args, "--config", ro_config, "--quiet", *quick)
            assert refused.exit_code == 4, refused.output[-1500:]
            assert "read-only file system; point store.root" in one_line(refused)
        assert _files(small_disk) == before
    finally:
        subprocess.run(["umount", "-l", str(read_only)], capture_output=True)
