"""Batch inference and drift: pure drift maths, then scoring through the flow and the CLI on a trained model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipeline_core.config import MonitoringConfig
from pipeline_core.drift import DriftAccumulator, bin_counts, ks_statistic, psi
from pipeline_core.errors import ConfigError, DataError, ModelError, StorageError

FAST = ["training.models={logistic_regression: {}}", "training.tuning.enabled=false", "training.tuning.cv_folds=3",
        "inference.chunk_size=700"]


# -- drift maths -----------------------------------------------------------------------

def test_psi_and_ks_by_hand():
    assert psi(np.array([10, 20, 70]), np.array([1, 2, 7])) == pytest.approx(0.0)
    # shares (0.5, 0.5) -> (0.25, 0.75): 0.25*ln(0.5) * -1 + 0.25*ln(1.5)
    assert psi(np.array([50, 50]), np.array([25, 75])) == pytest.approx(-0.25 * np.log(0.5) + 0.25 * np.log(1.5))
    assert ks_statistic(np.array([50, 50]), np.array([25, 75])) == pytest.approx(0.25)
    assert psi(np.array([100, 0]), np.array([50, 50])) < 10  # an empty reference bin is floored, not infinite


def test_bin_counts_match_the_gold_histogram_convention():
    # gold bins are (-inf, e0], (e0, e1], (e1, inf): a value equal to an edge falls in the lower bin
    assert bin_counts(np.array([1.0, 2.0, 2.5, 3.0, 9.0, np.nan]), [2.0, 3.0]).tolist() == [2, 2, 1]


@pytest.mark.parametrize("edges", [[], [0.0], [-1.0, 0.0, 0.5, 2.0], np.linspace(-2, 2, 9).tolist()])
def test_bin_counts_equal_a_binary_search_per_value(edges):
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(size=5000), np.repeat(edges, 3), [np.nan] * 7, [np.inf, -np.inf]])
    x = values[~np.isnan(values)]
    expected = np.bincount(np.searchsorted(np.asarray(edges, dtype=float), x, side="left"), minlength=len(edges) + 1)
    counts = bin_counts(values, edges)
    assert counts.tolist() == expected.tolist() and counts.sum() == values.size - 7


def _reference():
    return {"x": {"role": "numeric", "histogram": {"edges": [1.0, 2.0, 3.0], "counts": [25, 25, 25, 25]}, "null_rate": 0.0},
            "c": {"role": "categorical", "levels": {"a": 50, "b": 50}, "null_rate": 0.0}}


def _batch(x, c):
    return pl.DataFrame({"x": x, "c": c}, schema={"x": pl.Float64, "c": pl.String})


def test_clean_batch_is_ok_and_shifted_batch_drifts():
    rng = np.random.default_rng(0)
    t = MonitoringConfig()
    clean = DriftAccumulator(_reference())
    for _ in range(3):  # chunk by chunk, as scoring feeds it
        x = rng.choice([0.5, 1.5, 2.5, 3.5], 400)
        clean.update(_batch(x, rng.choice(["a", "b"], 400).tolist()), np.full(400, 0.3), np.zeros(400))
    report = clean.report(t)
    assert report["status"] == "ok" and report["rows"] == 1200 and not report["alerts"]

    shifted = DriftAccumulator(_reference())
    x = np.where(rng.random(1000) < 0.1, np.nan, 3.5)  # all mass in the top bin, 10% missing
    c = rng.choice(["a", "zzz"], 1000).tolist()
    shifted.update(_batch(x, c), np.full(1000, 0.3), np.zeros(1000))
    report = shifted.report(t)
    by_name = {f["name"]: f for f in report["features"]}
    assert report["status"] == "drift"
    assert by_name["x"]["status"] == "drift" and by_name["x"]["ks"] == pytest.approx(0.75)
    assert by_name["x"]["null_rate"] == pytest.approx(np.isnan(x).mean())
    assert by_name["c"]["unseen_rate"] == pytest.approx(c.count("zzz") / 1000) and by_name["c"]["unseen_levels"] == ["zzz"]


def test_small_batches_are_not_judged():
    acc = DriftAccumulator(_reference())
    acc.update(_batch([3.5] * 10, ["zzz"] * 10), np.full(10, 0.9), np.ones(10))
    report = acc.report(MonitoringConfig(min_rows=100))
    assert report["status"] == "insufficient" and "only 10 rows" in report["alerts"][0]


# -- streaming the input ---------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 100])
def test_csv_is_streamed_in_exact_chunks_with_the_text_a_whole_read_gives(tmp_path, chunk_size):
    from pipeline_io.sources import scan_source
    from tasks.scoring import read_chunks

    path = tmp_path / "batch.csv"
    # quoted separators and line breaks, padded and empty fields, missing-value tokens stay text
    path.write_text('ID,NAME,AMT\n1,"a, b",10\n2,"line\nbreak", 20 \n3,,NA\n4,x,\n5,"",7.5\n6,y,abc\n7,z,1e3\n')
    whole = pl.read_csv(path, infer_schema=False)
    total, schema, chunks = read_chunks(scan_source(path, "csv", allow_empty=True), chunk_size)
    got = list(chunks)
    assert total == whole.height == 7 and dict(schema) == {"ID": pl.String, "NAME": pl.String, "AMT": pl.String}
    assert [c.height for c in got] == [min(chunk_size, 7 - i) for i in range(0, 7, chunk_size)]
    assert pl.concat(got).equals(whole)
    assert pl.concat(got)["AMT"].to_list() == ["10", " 20 ", "NA", None, "7.5", "abc", "1e3"]


# -- scoring on a trained model --------------------------------------------------------

@pytest.fixture(scope="module")
def model_env(tmp_path_factory, prefect_harness, demo_dir):
    from flows.layers import run_flow
    from tests.conftest import shipped_config

    tmp = tmp_path_factory.mktemp("infer")
    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp)
    summaries = run_flow(str(config), FAST, predict_input=str(demo_dir / "credit.csv"), predict_output=str(tmp / "run.parquet"))
    assert [s["layer"] for s in summaries] == ["bronze", "silver", "gold", "training", "inference"]
    assert summaries[-1]["model"]["version"] == summaries[-2]["version"] and (tmp / "run.parquet").exists()
    return config, summaries[-2], tmp


def _predict(config, input_uri, output_uri, **kwargs):
    from flows.inference import inference_flow

    return inference_flow(str(config), str(input_uri), str(output_uri), overrides=FAST, **kwargs)


def test_scoring_training_rows_reproduces_training_probabilities(model_env, demo_dir, tmp_path):
    """No skew, proof 1: raw rows through predict give the probabilities training evaluation computed."""
    import mlflow

    config, training, _ = model_env
    out = _predict(config, demo_dir / "credit.csv", tmp_path / "p.parquet")
    best = training["models"][0]
    holdout = mlflow.artifacts.load_dict(mlflow.get_run(best["run_id"]).info.artifact_uri + "/holdout_predictions.json")
    table = pl.DataFrame(holdout["data"], schema=holdout["columns"], orient="row")
    expected = table.select(pl.col("id").cast(pl.Int64).alias("ID"), pl.col("probability").alias("expected"))
    raw = pl.read_csv(demo_dir / "credit.csv", infer_schema=False)
    # re-sent ids were de-duplicated in silver
    once = raw.group_by("ID").len().filter(pl.col("len") == 1).select(pl.col("ID").cast(pl.Int64))
    scored = pl.read_parquet(out["output"]).join(once, on="ID").join(expected, on="ID")
    assert scored.height > 400
    assert np.max(np.abs(scored["probability"].to_numpy() - scored["expected"].to_numpy())) < 1e-9
    assert out["rows_in"] == raw.height and out["rows_scored"] + out["rows_quarantined"] == raw.height
    assert out["model"]["version"] == training["version"] and out["threshold"] == pytest.approx(best["threshold"])
    preds = pl.read_parquet(out["output"])
    assert preds.columns[: raw.width] == raw.columns  # original columns first
    # numbers read as text come back typed, with the values the text holds
    assert preds.schema["ID"] == pl.Int64 and preds.schema["LIMIT_BAL"] == pl.Float64 and preds.schema["EDUCATION"] == pl.Int64
    sent = raw.select(pl.col("ID").cast(pl.Int64), pl.col("LIMIT_BAL").alias("text")).join(once, on="ID")
    pairs = preds.join(sent, on="ID")
    assert pairs.height > 400
    assert pairs["LIMIT_BAL"].to_list() == pairs["text"].str.strip_chars().cast(pl.Float64).to_list()
    assert preds["prediction"].to_list() == (preds["probability"] >= best["threshold"]).cast(pl.Int64).to_list()
    assert set(preds["model_version"].unique()) == {training["version"]}


def test_stock_pyfunc_in_a_fresh_process_matches_the_cli(model_env, demo_dir, tmp_path):
    """No skew, proof 2: `mlflow.pyfunc.load_model(...).predict(pd.read_csv(source))` equals `pipeline-cli predict`,
    with the id column or without it, and from JSON records."""
    from typer.testing import CliRunner

    from pipeline_cli.main import app
    from pipeline_core.config import load_config
    from pipeline_io import registry

    config, training, _ = model_env
    sample = pl.read_csv(demo_dir / "credit.csv", infer_schema=False).head(200)
    sample.write_csv(tmp_path / "batch.csv")
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "batch.csv"), str(tmp_path / "cli.parquet"), "--config", str(config),
                                      *sum((["--set", o] for o in FAST), []), "--json"])
    assert result.exit_code == 0, result.output
    cli = pl.read_parquet(tmp_path / "cli.parquet").select("ID", "probability")
    uri = registry.tracking_uri(load_config(config))
    script = f"""
import json, mlflow, pandas as pd
mlflow.set_tracking_uri({uri!r}); mlflow.set_registry_uri({uri!r})
model = mlflow.pyfunc.load_model("models:/{training['registered_model']}@champion")
raw = pd.read_csv({str(tmp_path / 'batch.csv')!r})  # as pandas reads it: int64, float64, text, the target column too
out = model.predict(raw)
without_id = model.predict(raw.drop(columns=["ID"]))  # the id is optional in the signature
records = model.predict(pd.DataFrame(json.loads(raw.head(20).to_json(orient="records"))))  # what a JSON client sends
assert out.fillna(-1).equals(without_id.fillna(-1))
assert records.fillna(-1).equals(out.head(20).fillna(-1))
answers = zip(out["probability"].tolist(), out["prediction"].tolist(), out["quarantine_reason"].tolist())
missing = lambda v: v is None or v is pd.NA or v != v  # pandas' missing values, as JSON's null
print(json.dumps(dict(zip(raw["ID"].astype(str), ([None if missing(v) else v for v in row] for row in answers)))))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stock = json.loads(proc.stdout.strip().splitlines()[-1])
    assert cli.height >= 190
    for row in cli.iter_rows(named=True):
        assert stock[str(row["ID"])][0] == pytest.approx(row["probability"], abs=1e-12) and stock[str(row["ID"])][2] is None
    # the rows predict quarantined get no answer from the stock client either, and the same reason
    quarantined = pl.read_parquet(tmp_path / "cli.quarantine.parquet")
    assert quarantined.height == sample.height - cli.height > 0
    for row in quarantined.iter_rows(named=True):
        assert stock[row["ID"]] == [None, None, row["_reason"]]


def test_bad_inputs(model_env, demo_dir, tmp_path):
    config, training, _ = model_env
    raw = pl.read_csv(demo_dir / "credit.csv", infer_schema=False).head(300)
    raw.drop("AGE", "LIMIT_BAL").write_csv(tmp_path / "missing.csv")
    (tmp_path / "keep.parquet").write_bytes(b"previous output")
    with pytest.raises(DataError, match="missing required column\\(s\\) LIMIT_BAL, AGE"):
        _predict(config, tmp_path / "missing.csv", tmp_path / "keep.parquet")
    assert (tmp_path / "keep.parquet").read_bytes() == b"previous output"  # a failed run leaves the old output alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.parquet", "missing.csv"]

    raw.head(0).write_csv(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="no rows to score; pass --allow-empty"):
        _predict(config, tmp_path / "empty.csv", tmp_path / "e.parquet")
    out = _predict(config, tmp_path / "empty.csv", tmp_path / "e.parquet", allow_empty=True)
    empty = pl.read_parquet(out["output"])
    assert empty.height == 0 and empty.columns == [*raw.columns, "prediction", "probability", "inference_timestamp", "model_name", "model_version"]
    quarantine = pl.read_parquet(out["quarantine"])
    assert quarantine.height == 0 and quarantine.columns == [*raw.columns, "_reason"]
    assert "shadow_skipped" not in out
    # a shadow asked for with no challenger registered: scored alone, and the summary (the console) says so
    alone = _predict(config, tmp_path / "empty.csv", tmp_path / "e.parquet", allow_empty=True, shadow=True)
    assert "shadow_probability" not in pl.read_parquet(alone["output"]).columns and not alone.get("shadow")
    assert alone["shadow_skipped"].startswith(f"no shadow: {training['registered_model']} has no challenger other than the served version")

    with pytest.raises(ModelError, match="has no version with alias 'nope'"):
        _predict(config, demo_dir / "credit.csv", tmp_path / "x.parquet", model_uri="models:/credit-default-classifier@nope")
    with pytest.raises(ConfigError, match="use models:/"):
        _predict(config, demo_dir / "credit.csv", tmp_path / "x.parquet", model_uri="model.pkl")
    with pytest.raises(ConfigError, match="ending in .parquet"):
        _predict(config, demo_dir / "credit.csv", tmp_path / "x.csv")
    raw.write_parquet(tmp_path / "records.parquet")
    before = (tmp_path / "records.parquet").read_bytes()
    with pytest.raises(ConfigError, match="is the INPUT: predictions would replace the records they score"):
        _predict(config, tmp_path / "records.parquet", tmp_path / "." / "records.parquet")
    assert (tmp_path / "records.parquet").read_bytes() == before


def test_dirty_values_are_quarantined_and_unknown_columns_and_levels_scored(model_env, demo_dir, tmp_path):
    config, _, _ = model_env
    raw = pl.read_csv(demo_dir / "credit.csv", infer_schema=False).head(400)
    raw.write_csv(tmp_path / "raw.csv")
    base = _predict(config, tmp_path / "raw.csv", tmp_path / "base.parquet")
    scorable = pl.read_parquet(base["output"]).select(pl.col("ID").cast(pl.String))
    raw = raw.join(scorable, on="ID", maintain_order="left").head(300)  # rows that score as they are
    dirty = raw.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("lots")).when(pl.int_range(pl.len()) == 7).then(pl.lit("inf"))
        .otherwise(pl.col("LIMIT_BAL")).alias("LIMIT_BAL"),
        pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("150")).otherwise(pl.col("AGE")).alias("AGE"),
        pl.when(pl.int_range(pl.len()).is_between(10, 39)).then(pl.lit("9")).otherwise(pl.col("SEX")).alias("SEX"),
        pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("5")).otherwise(pl.col("EDUCATION")).alias("EDUCATION"),
        pl.when(pl.int_range(pl.len()) == 6).then(pl.lit(" 2.0 ")).otherwise(pl.col("PAY_0")).alias("PAY_0"),
        pl.lit("carried").alias("batch_note"),
    )
    dirty.write_csv(tmp_path / "dirty.csv")
    out = _predict(config, tmp_path / "dirty.csv", tmp_path / "d.parquet")
    quarantine = pl.read_parquet(out["quarantine"])
    reasons = dict(zip(quarantine["ID"], quarantine["_reason"]))
    assert reasons[dirty["ID"][3]] == "cast:limit_bal" and reasons[dirty["ID"][4]] == "range:age"
    assert reasons[dirty["ID"][7]] == "cast:limit_bal"  # infinity is no amount, and scikit-learn would refuse the chunk
    assert reasons[dirty["ID"][10]] == "allowed:sex" and quarantine.height == 33
    assert quarantine["LIMIT_BAL"].to_list().count("lots") == 1  # the bad value stays visible
    scored = pl.read_parquet(out["output"])
    assert scored.height + quarantine.height == 300 and set(scored["batch_note"]) == {"carried"}
    # the output shows the value sent, typed: code 5 before cleaning maps it to 4, padded " 2.0 " as 2
    by_id = {r["ID"]: r for r in scored.iter_rows(named=True)}
    assert by_id[int(dirty["ID"][5])]["EDUCATION"] == 5 and by_id[int(dirty["ID"][6])]["PAY_0"] == 2
    assert scored.schema["batch_note"] == pl.String and scored.schema["PAY_0"] == pl.Int64

    # Without the silver rules only uncastable rows are held back; an unseen level is scored and counted.
    from flows.inference import inference_flow

    loose = inference_flow(str(config), str(tmp_path / "dirty.csv"), str(tmp_path / "l.parquet"),
                           overrides=[*FAST, "inference.quarantine_rules=false"])
    assert loose["rows_quarantined"] == 2 and loose["rows_scored"] == 298
    assert loose["unseen_category_values"] == 30
    sex = next(f for f in loose["drift"]["features"] if f["name"] == "sex")
    assert sex["unseen_levels"] == ["9"] and sex["unseen_rate"] == pytest.approx(0.1, abs=0.001)


def test_chunked_scoring_matches_one_chunk(model_env, demo_dir, tmp_path):
    config, _, _ = model_env
    from flows.inference import inference_flow

    small = _predict(config, demo_dir / "credit.csv", tmp_path / "a.parquet")  # chunk_size 700 in FAST
    whole = inference_flow(str(config), str(demo_dir / "credit.csv"), str(tmp_path / "b.parquet"),
                           overrides=[*FAST, "inference.chunk_size=100000"])
    a, b = pl.read_parquet(small["output"]), pl.read_parquet(whole["output"])
    rest = ["inference_timestamp", "probability"]
    assert a.drop(rest).equals(b.drop(rest))
    # BLAS may block a 700-row matrix differently from a 3,000-row one: equal up to rounding
    assert np.max(np.abs(a["probability"].to_numpy() - b["probability"].to_numpy())) < 1e-12
    assert [f["psi"] for f in small["drift"]["features"]] == pytest.approx([f["psi"] for f in whole["drift"]["features"]], abs=1e-9)


def test_csv_parquet_and_sqlite_inputs_score_identically(model_env, demo_dir, tmp_path):
    """Every input format is streamed through the same path: the same rows give the same output, byte for byte."""
    import sqlite3

    config, _, _ = model_env
    raw = pl.read_csv(demo_dir / "credit.csv", infer_schema=False)  # text columns, as a CSV is read
    raw.write_parquet(tmp_path / "batch.parquet")
    with sqlite3.connect(tmp_path / "batch.sqlite") as conn:
        conn.execute(f"CREATE TABLE batch ({', '.join(f'{chr(34)}{c}{chr(34)} TEXT' for c in raw.columns)})")
        conn.executemany(f"INSERT INTO batch VALUES ({', '.join('?' * raw.width)})", raw.rows())
    outs = {fmt: _predict(config, path, tmp_path / f"{fmt}.parquet") for fmt, path in
            [("csv", demo_dir / "credit.csv"), ("parquet", tmp_path / "batch.parquet"), ("sqlite", tmp_path / "batch.sqlite")]}
    frames = {fmt: pl.read_parquet(out["output"]).drop("inference_timestamp") for fmt, out in outs.items()}
    assert frames["csv"].height == outs["csv"]["rows_scored"] > 2900
    assert frames["parquet"].equals(frames["csv"]) and frames["sqlite"].equals(frames["csv"])
    assert frames["csv"].columns[: raw.width] == raw.columns
    quarantined = {fmt: pl.read_parquet(out["quarantine"]) for fmt, out in outs.items()}
    assert quarantined["parquet"].equals(quarantined["csv"]) and quarantined["sqlite"].equals(quarantined["csv"])
    assert len({json.dumps(out["drift"]["features"], sort_keys=True) for out in outs.values()}) == 1


def test_injected_drift_is_flagged_and_monitor_reports_it(model_env, tmp_path):
    from typer.testing import CliRunner

    from pipeline_cli.main import app
    from pipeline_core import demo_data
    from pipeline_io import demo_files

    config, _, _ = model_env
    fresh = demo_data.credit_default_frame(2000, seed=99)  # same process, new draw: no drift
    demo_files.write_csv(fresh, tmp_path / "fresh.csv")
    clean = _predict(config, tmp_path / "fresh.csv", tmp_path / "fresh.parquet")
    assert clean["drift_status"] in ("ok", "warn") and not clean["drift"]["alerts"], clean["drift"]["alerts"]

    shifted = fresh.with_columns((pl.col("LIMIT_BAL").cast(pl.Float64, strict=False) * 4).alias("LIMIT_BAL"),
                                 (pl.col("PAY_0").cast(pl.Int64, strict=False) + 2).clip(upper_bound=8).alias("PAY_0"))
    demo_files.write_csv(shifted, tmp_path / "shifted.csv")
    drifted = _predict(config, tmp_path / "shifted.csv", tmp_path / "shifted.parquet")
    flagged = {f["name"] for f in drifted["drift"]["features"] if f["status"] == "drift"}
    assert drifted["drift_status"] == "drift" and {"limit_bal", "pay_1"} <= flagged  # PAY_0 is renamed pay_1 in silver
    report = json.loads((tmp_path / "shifted.drift.json").read_text())
    assert report["status"] == "drift" and "limit_bal" in (tmp_path / "shifted.drift.md").read_text()

    runner = CliRunner()
    args = ["monitor", "--config", str(config), *sum((["--set", o] for o in FAST), [])]
    latest = runner.invoke(app, [*args, "--last", "1", "--json"])
    assert latest.exit_code == 0, latest.output
    rows = json.loads(latest.output)["result"]
    assert len(rows) == 1 and rows[0]["status"] == "drift" and rows[0]["input"].endswith("shifted.csv")
    assert runner.invoke(app, [*args, "--last", "1", "--fail-on-drift"]).exit_code == 5
    older = runner.invoke(app, [*args, "--last", "20", "--json"])
    assert any(r["input"].endswith("fresh.csv") and r["status"] != "drift" for r in json.loads(older.output)["result"])

    import mlflow

    runs = mlflow.search_runs(experiment_names=["credit_default"], filter_string="tags.kind = 'inference'")
    assert "drift" in set(runs["tags.drift_status"]) and "metrics.psi_limit_bal" in runs.columns


def test_s3_to_s3_scoring(model_env, demo_dir, monkeypatch):
    import boto3

    from tests.servers import s3_server

    config, _, _ = model_env
    with s3_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="batches")
        s3.upload_file(str(demo_dir / "credit.csv"), "batches", "in/credit.csv")
        out = _predict(config, "s3://batches/in/credit.csv", "s3://batches/out/{date}/preds.parquet")
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="batches", Prefix="out/")["Contents"]}
        day = out["inference_timestamp"][:10]
        assert {f"out/{day}/preds.parquet", f"out/{day}/preds.drift.json", f"out/{day}/preds.quarantine.parquet"} <= keys
        body = s3.get_object(Bucket="batches", Key=f"out/{day}/preds.parquet")["Body"].read()
        import io

        assert pl.read_parquet(io.BytesIO(body)).height == out["rows_scored"] > 2900


def test_lineage_of_a_predictions_file_and_the_store_history(model_env, demo_dir):
    from typer.testing import CliRunner

    from pipeline_cli.main import app

    config, training, tmp = model_env
    runner = CliRunner()
    sets = sum((["--set", o] for o in FAST), [])
    shown = runner.invoke(app, ["lineage", str(tmp / "run.parquet"), "--config", str(config), *sets, "--json"])
    assert shown.exit_code == 0, shown.output
    links = json.loads(shown.stdout)["result"]
    assert links["predictions"]["model"] == f"models:/{training['registered_model']}/{training['version']}"
    assert links["model"]["run_id"] == training["models"][0]["run_id"]
    assert links["gold"]["version"] == training["gold_version"] and links["gold"]["silver_version"] == links["silver"]["version"]
    assert [b["source"] for b in links["bronze"]["batches"]] == [str(demo_dir / "credit.csv")]
    assert links["bronze"]["batches"][0]["rows"] == pl.read_csv(demo_dir / "credit.csv", infer_schema=False).height

    bad = runner.invoke(app, ["lineage", str(demo_dir / "credit.csv"), "--config", str(config), *sets])
    assert bad.exit_code == 3 and "cannot be read as Parquet" in bad.stderr

    history = runner.invoke(app, ["store", "history", "--config", str(config), *sets, "--json"])
    assert history.exit_code == 0, history.output
    commits = json.loads(history.stdout)["result"]
    tables = {c["name"] for c in commits}
    assert {"bronze", "silver", "quarantine", "gold", "monitoring"} <= tables
    first_bronze = min((c for c in commits if c["name"] == "bronze"), key=lambda c: c["version"])
    assert first_bronze["operation"] == "WRITE" and first_bronze["layer"] == "bronze" and first_bronze["batch_id"]

    dry = runner.invoke(app, ["store", "vacuum", "--config", str(config), *sets, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["result"]["dry_run"] is True


def test_a_replaced_model_file_is_refused_not_run(model_env, demo_dir, tmp_path):
    """The registered model's files live in the artifact store: a replaced file is refused before anything is built."""
    import hashlib
    import json
    from urllib.parse import unquote, urlparse

    import mlflow
    import skops.io

    from pipeline_io import model_integrity
    from pipeline_io.model_format import FORMAT, FORMAT_TAG, PIPELINE_FILE, SPEC_FILE
    from pipeline_io.model_integrity import DIGEST_TAG
    from tests.unit.test_model_format import Payload

    config, training, _ = model_env
    client = mlflow.MlflowClient()
    name, version = training["registered_model"], str(training["version"])
    tags = client.get_model_version(name, version).tags
    recorded = json.loads(tags[DIGEST_TAG])
    assert tags[FORMAT_TAG] == FORMAT and "MLmodel" in recorded and all(len(d) == 64 for d in recorded.values())
    folder = Path(unquote(urlparse(client.get_model_version_download_uri(name, version)).path))
    assert not list(folder.rglob("*.pkl"))  # nothing in the model is a pickle
    assert {p.name for p in folder.rglob("*") if p.is_file()} >= {"MLmodel", SPEC_FILE, PIPELINE_FILE}
    fitted = next(folder.rglob(PIPELINE_FILE))
    assert recorded[fitted.relative_to(folder).as_posix()] == hashlib.sha256(fitted.read_bytes()).hexdigest()
    marker = tmp_path / "payload-ran"
    original = fitted.read_bytes()
    try:
        skops.io.dump({"model": Payload(str(marker))}, fitted)
        with pytest.raises(StorageError, match=f"the files of version {version} differ from those registered "
                                               rf"\(.*{PIPELINE_FILE} \(changed\)\); refusing to load them"):
            _predict(config, demo_dir / "credit.csv", tmp_path / "out.parquet", model_uri=f"models:/{name}/{version}")
        assert not marker.exists() and not (tmp_path / "out.parquet").exists()
    finally:
        fitted.write_bytes(original)
    # files gone from the artifact store (a bucket emptied), or the run of a refitted champion's judged model: one line
    moved = folder.with_name(folder.name + ".moved")
    folder.rename(moved)
    try:
        with pytest.raises(StorageError, match=rf"models:/{name}/{version}: the files of version {version} differ .*MLmodel \(missing\)"):
            _predict(config, demo_dir / "credit.csv", tmp_path / "out.parquet", model_uri=f"models:/{name}/{version}")
    finally:
        moved.rename(folder)
    gone = "0" * 32
    with pytest.raises(StorageError, match=rf"champion: the model it was judged by before its refit \(run {gone}\) cannot be read"):
        model_integrity.load_judged_model(gone, "{}", "champion")
    scored = _predict(config, demo_dir / "credit.csv", tmp_path / "out.parquet", model_uri=f"models:/{name}/{version}")
    assert scored["rows_scored"] > 0 and not marker.exists()


def test_a_pickled_model_from_an_older_release_is_never_unpickled(model_env, demo_dir, tmp_path):
    """A cloudpickled pyfunc (what earlier releases registered) is refused by its MLmodel, before MLflow reads the pickle."""
    from pipeline_core.errors import ModelError
    from tests.unit.test_model_format import register_pickled_model

    config, _, _ = model_env
    marker = tmp_path / "payload-ran"
    legacy, logged = register_pickled_model(marker)
    for uri in (f"models:/legacy-pickled/{legacy.version}", logged):
        with pytest.raises(ModelError, match=r"not in this pipeline's model format \(a pickled Python model, which is never loaded\)"):
            _predict(config, demo_dir / "credit.csv", tmp_path / "out.parquet", model_uri=uri)
    assert not marker.exists() and not (tmp_path / "out.parquet").exists()


def test_outputs_and_the_monitoring_record_are_published_together_or_not_at_all(model_env, demo_dir, tmp_path, monkeypatch):
    """A failure after the files are out (here the monitoring record) takes them back and restores the previous ones."""
    from pipeline_io import records

    config, _, _ = model_env
    first = _predict(config, demo_dir / "credit.csv", tmp_path / "scored.parquet")
    published = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(published) == {"scored.parquet", "scored.quarantine.parquet", "scored.drift.json", "scored.drift.md"}
    assert first["record"]

    def refuse(*args, **kwargs):
        raise StorageError("monitoring store is read-only")

    monkeypatch.setattr(records, "record_batch", refuse)
    with pytest.raises(StorageError, match="read-only"):
        _predict(config, demo_dir / "credit.csv", tmp_path / "scored.parquet", threshold=0.9)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == published  # the first run's files, and nothing else
    with pytest.raises(StorageError, match="read-only"):
        _predict(config, demo_dir / "credit.csv", tmp_path / "fresh.parquet")
    assert {p.name for p in tmp_path.iterdir()} == set(published)  # no partial second set
    monkeypatch.undo()
    again = _predict(config, demo_dir / "credit.csv", tmp_path / "scored.parquet", threshold=0.9)
    assert again["threshold"] == 0.9 and pl.read_parquet(tmp_path / "scored.parquet")["prediction"].sum() < first["positives"]
    assert {p.name for p in tmp_path.iterdir()} == set(published)  # replaced in place; no backup left behind


def test_serve_model_answers_raw_json_records_like_predict(model_env, demo_dir, tmp_path):
    """`pipeline-cli serve-model`: MLflow's scoring server on a checked copy of the champion, raw records in, predict's numbers out."""
    import signal
    import time

    import httpx

    from tests.servers import free_port

    config, _, _ = model_env
    port = free_port()
    cli = Path(sys.executable).with_name("pipeline-cli")
    args = [a for o in FAST for a in ("--set", o)]
    refused = subprocess.run([str(cli), "serve-model", "--config", str(config), "--host", "0.0.0.0", *args],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "has no authentication" in refused.stderr
    server = subprocess.Popen([str(cli), "serve-model", "--config", str(config), "--port", str(port), *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for _ in range(120):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.communicate()
            time.sleep(1)
        raw = pl.read_csv(demo_dir / "credit.csv").head(50)  # typed as JSON carries them: numbers, not text
        records = [{k: v for k, v in row.items() if k != "ID"} for row in raw.to_dicts()]  # the id is optional
        answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": records}, timeout=60)
        assert answer.status_code == 200, answer.text
        served = dict(zip(raw["ID"].cast(pl.String).to_list(), (p["probability"] for p in answer.json()["predictions"])))
        raw.write_csv(tmp_path / "fifty.csv")
        _predict(config, tmp_path / "fifty.csv", tmp_path / "fifty.parquet")
        cli = pl.read_parquet(tmp_path / "fifty.parquet").select(pl.col("ID").cast(pl.String), "probability")
        assert cli.height >= 45  # the rest were quarantined by predict
        for row in cli.iter_rows(named=True):
            assert served[row["ID"]] == pytest.approx(row["probability"], abs=1e-12)
        server.terminate()  # SIGTERM to the command alone, as a service manager sends it: the scoring server stops too
        server.wait(timeout=60)
        for _ in range(20):
            try:
                httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2)
            except httpx.TransportError:
                break
            time.sleep(1)
        else:
            pytest.fail("the scoring server still answers after serve-model was terminated")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
            server.wait(timeout=60)


def test_a_moved_store_scores_with_its_own_copy_of_the_model(tmp_path, prefect_harness, demo_dir):
    """MLflow records absolute artifact paths: a moved store's database is rebased on first use, so nothing
    points at the old place and the registered model loads (checked against its digests) from the new one."""
    import shutil
    import sqlite3

    from flows.layers import run_flow
    from tests.conftest import shipped_config

    first = tmp_path / "first"
    first.mkdir()
    config = shipped_config("credit_default", demo_dir / "credit.csv", first)
    run_flow(str(config), FAST)
    moved = tmp_path / "elsewhere"
    shutil.copytree(first / "store", moved / "store")
    shutil.rmtree(first)
    config = shipped_config("credit_default", demo_dir / "credit.csv", moved)
    scored = _predict(config, demo_dir / "credit.csv", tmp_path / "out.parquet")
    assert scored["rows_scored"] > 2900 and scored["model"]["version"] == "1"
    with sqlite3.connect(moved / "store" / "mlflow.db") as db:
        dump = "\n".join(db.iterdump())
    assert str(first) not in dump and f"file://{moved / 'store' / 'mlartifacts'}" in dump


def test_predict_reaches_the_store_through_its_mlflow_server_and_falls_back_when_it_stops(model_env, demo_dir, tmp_path, monkeypatch,
                                                                                          caplog):
    """With the MLflow server of `server start --mlflow` on the store (`PIPELINE_MLFLOW_SERVER`, set by the CLI), scoring
    loads the champion and records its drift run through that server, with the numbers the store gives directly; once
    the server stops, the same call uses the store itself."""
    import logging

    import mlflow
    from mlflow import MlflowClient

    from deployments import local_server
    from pipeline_core.config import load_config
    from pipeline_io import registry
    from tests.servers import free_port

    config, training, _ = model_env
    loaded = load_config(config)
    store_uri = registry.tracking_uri(loaded)
    pl.read_csv(demo_dir / "credit.csv", infer_schema=False).head(300).write_csv(tmp_path / "batch.csv")
    direct = _predict(config, tmp_path / "batch.csv", tmp_path / "direct.parquet")
    state = tmp_path / "server-state"
    service, _ = local_server.start_mlflow(state, store_uri, port=free_port())
    monkeypatch.setenv(registry.SERVER_ENV, f"{service.url} {store_uri}")
    caplog.set_level(logging.INFO, logger="pipeline_io.registry")
    try:
        try:
            served = _predict(config, tmp_path / "batch.csv", tmp_path / "served.parquet")
        finally:
            local_server.stop(state, local_server.MLFLOW)
        said = [r.getMessage() for r in caplog.records if r.name == "pipeline_io.registry"]
        # loading the model, then recording the drift run (more if Prefect retried a task)
        assert len(said) >= 2 and set(said) == {f"tracking store {store_uri} reached through the MLflow server at {service.url}"}
        assert served["model"]["version"] == direct["model"]["version"] == training["version"]

        def scored(name: str) -> pl.DataFrame:
            return pl.read_parquet(tmp_path / name).drop("inference_timestamp")

        assert scored("served.parquet").equals(scored("direct.parquet"))
        store = MlflowClient(store_uri, store_uri)
        recorded = store.get_run(served["mlflow_run_id"])  # written by the server into the store itself
        assert recorded.data.metrics["rows_scored"] == direct["rows_scored"] == served["rows_scored"]

        caplog.clear()
        after = _predict(config, tmp_path / "batch.csv", tmp_path / "after.parquet")  # the server is gone
        # found gone by its health check, before MLflow's client would retry it for seconds
        assert [r.getMessage() for r in caplog.records if r.name == "pipeline_io.registry" and r.levelno == logging.WARNING] == [
            f"the MLflow server at {service.url} did not answer; using the store directly"] * 2
        assert scored("after.parquet").equals(scored("direct.parquet"))
        assert store.get_run(after["mlflow_run_id"]).info.status == "FINISHED"
        assert mlflow.get_tracking_uri() == store_uri
    finally:
        monkeypatch.delenv(registry.SERVER_ENV)
        registry.connect(loaded)  # the module's other tests read through MLflow's global tracking URI
