"""Outcomes close the loop: realized metrics per batch and model version, a degraded champion's event, automatic rollback."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipeline_core.errors import ConfigError, DataError
from pipeline_core.modeling.metrics import classification_metrics
from pipeline_core.modeling.promotion import paired_bootstrap
from pipeline_core.outcomes import degradation, join_outcomes, labels_frame

QUICK = ["training.models={logistic_regression: {}}", "training.tuning.n_trials=2", "training.tuning.cv_folds=3",
         "mlflow.min_metrics={}"]
TARGET = "default payment next month"


def test_labels_are_mapped_like_the_target_and_joined_by_id_as_text():
    raw = pl.DataFrame({"ID": [1, 2, 3, 3, None, 5], "y": ["yes", "no", "no", "yes", "yes", None]})
    labels = labels_frame(raw, "ID", "y", "yes")
    assert labels.to_dicts() == [{"id": "1", "label": 1}, {"id": "2", "label": 0}, {"id": "3", "label": 1}]  # last label wins
    scored = pl.DataFrame({"id": [" 1", "2", "4"], "probability": [0.9, 0.2, 0.5], "prediction": [1, 0, 1]})
    assert join_outcomes(scored, labels)["id"].to_list() == ["1", "2"]


def test_degradation_respects_the_metric_direction_and_margin():
    assert degradation(0.70, 0.80, "roc_auc", 0.05) == pytest.approx(0.10)
    assert degradation(0.78, 0.80, "roc_auc", 0.05) is None
    assert degradation(0.30, 0.20, "brier", 0.05) == pytest.approx(0.10)
    assert degradation(0.10, 0.20, "brier", 0.05) is None


def _events(name: str, timeout: float = 20.0) -> list[dict]:
    """Events of one name from the harness server (its event persister writes them shortly after)."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    deadline = time.time() + timeout
    while True:
        found = httpx.post(f"{PREFECT_API_URL.value()}/events/filter", json={"filter": {"event": {"name": [name]}}, "limit": 50},
                           timeout=10).json()["events"]
        if found or time.time() > deadline:
            return found
        time.sleep(1)


def test_outcomes_give_realized_metrics_and_a_degraded_champion_is_rolled_back(tmp_path, prefect_harness, demo_dir):
    import mlflow

    from flows.feedback import feedback_flow
    from flows.inference import inference_flow
    from flows.layers import run_flow
    from flows.training import training_flow
    from pipeline_core.config import load_config
    from pipeline_io import outcomes, registry
    from pipeline_io.store import Store
    from tests.conftest import shipped_config

    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    run_flow(str(config), QUICK)
    source = pl.read_csv(demo_dir / "credit.csv", infer_schema=False)
    batch = tmp_path / "batch.csv"
    source.head(1500).write_csv(batch)
    scored = inference_flow(str(config), str(batch), str(tmp_path / "scored.parquet"), overrides=QUICK)

    # late, partial outcomes: 60% of the scored ids, plus ids never scored
    labelled = source.head(900).select("ID", TARGET)
    extra = pl.DataFrame({"ID": ["999001", "999002"], TARGET: ["0", "1"]})
    pl.concat([labelled, extra]).write_csv(tmp_path / "labels.csv")
    fed = feedback_flow(str(config), str(tmp_path / "labels.csv"), QUICK)
    [got] = fed["batches"]
    # by hand: the predictions file joined to the labels (quarantined rows were not scored, so they have no outcome here)
    predictions = pl.read_parquet(tmp_path / "scored.parquet").with_columns(pl.col("ID").cast(pl.String))
    expected = predictions.join(labelled.unique("ID", keep="last").with_columns(pl.col(TARGET).cast(pl.Int8).alias("y")), on="ID")
    want = classification_metrics(expected["y"].to_numpy(), expected["probability"].to_numpy(), scored["threshold"])
    matched = expected["ID"].n_unique()
    assert 800 < matched <= 900 and (fed["labelled_ids"], fed["matched_ids"], fed["unmatched_ids"]) == (902, matched, 902 - matched)
    assert got["labelled_rows"] == expected.height
    assert got["metrics"] == pytest.approx(want, abs=1e-12)
    assert (got["model_version"], fed["events"], fed["rollback"]) == ("1", [], None)  # healthy: nothing to act on
    cfg = load_config(config, QUICK)
    stored = outcomes.latest_performance(Store(cfg.store.root), cfg.dataset.name)
    assert stored[outcomes.batch_key(got)]["metrics"]["roc_auc"] == pytest.approx(want["roc_auc"])
    from pipeline_io import maintenance

    commits = maintenance.history(cfg, "performance")  # the outcomes table is one of the store's tables
    assert [(c["version"], c["operation"], c["rows"]) for c in commits] == [(0, "WRITE", 1)]
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.kind = 'outcomes'", output_format="list")
    assert runs[0].data.metrics["realized_roc_auc"] == pytest.approx(want["roc_auc"])

    # a second champion, retrained on other rows and promoted by hand, scores a batch whose outcomes turn out badly
    training_flow(str(config), [*QUICK, "training.seed=7"], refresh=True)
    client = mlflow.MlflowClient()
    name = registry.registered_model_name(cfg)
    registry.promote(client, name, "2", "try the retrained model")
    later = tmp_path / "later.csv"
    source.slice(1500, 1500).write_csv(later)
    inference_flow(str(config), str(later), str(tmp_path / "scored2.parquet"), overrides=QUICK)
    # its outcomes contradict its predictions (the first batch's outcomes stand)
    flipped = source.slice(1500, 900).select("ID", TARGET).with_columns((1 - pl.col(TARGET).cast(pl.Int8)).cast(pl.String).alias(TARGET))
    flipped.write_csv(tmp_path / "bad.csv")
    bad = feedback_flow(str(config), str(tmp_path / "bad.csv"), [*QUICK, "monitoring.rollback_margin=0.05"])
    assert bad["champion"]["version"] == "2" and bad["champion"]["realized"] < 0.5
    assert bad["events"] == ["pipeline.performance.degraded", "pipeline.model.rolled-back"]
    assert bad["rollback"]["version"] == "1" and bad["rollback"]["rollback_of"] == "2"
    assert "below version 1's" in bad["rollback"]["reason"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    degraded = _events("pipeline.performance.degraded")
    assert degraded and degraded[0]["payload"]["metric"] == "roc_auc" and degraded[0]["related"][0]["pipeline.model.version"] == "2"
    assert _events("pipeline.model.rolled-back")[0]["payload"]["to"] == "1"
    # monitor: realized performance beside drift, per batch, newest first
    from typer.testing import CliRunner

    from pipeline_cli.main import app

    shown = CliRunner().invoke(app, ["monitor", "--config", str(config), *[a for o in QUICK for a in ("--set", o)], "--json"])
    rows = json.loads(shown.stdout)["result"]
    [latest_batch] = [b for b in bad["batches"] if b["model_version"] == "2"]
    assert rows[0]["realized"] == pytest.approx(latest_batch["metrics"]["roc_auc"]) and rows[0]["labelled"] == latest_batch["labelled_rows"]
    assert rows[1]["realized"] == pytest.approx(want["roc_auc"]) and rows[0]["realized_metric"] == "roc_auc"


def test_labels_without_the_id_or_label_column_and_datasets_without_ids_are_refused(tmp_path, prefect_harness, demo_dir):
    from flows.feedback import feedback_flow
    from tests.conftest import shipped_config

    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    pl.DataFrame({"customer": [1], TARGET: [1]}).write_csv(tmp_path / "noid.csv")
    with pytest.raises(DataError, match="noid.csv: missing column\\(s\\) ID; the labels need the id column 'ID'"):
        feedback_flow(str(config), str(tmp_path / "noid.csv"), QUICK)
    with pytest.raises(ConfigError, match="dataset.id_column: outcomes are joined to scored rows by id"):
        feedback_flow(str(config), str(tmp_path / "noid.csv"), [*QUICK, "dataset.id_column=null"])
    from typer.testing import CliRunner

    from pipeline_cli.main import app

    result = CliRunner().invoke(app, ["feedback", str(tmp_path / "noid.csv"), "--config", str(config)])
    assert result.exit_code == 3 and result.stderr.strip().count("\n") == 0 and "missing column(s) ID" in result.stderr


def test_realized_metrics_match_a_direct_computation_on_random_rows():
    from pipeline_core.outcomes import realized_metrics

    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"id": [str(i) for i in range(500)], "probability": rng.random(500), "prediction": 0,
                          "label": rng.integers(0, 2, 500).astype(np.int8)})
    out = realized_metrics(frame, 0.4)
    assert out["labelled_rows"] == 500 and out["positives"] == int(frame["label"].sum())
    assert json.dumps(out["metrics"]) == json.dumps(classification_metrics(frame["label"].to_numpy(), frame["probability"].to_numpy(), 0.4))


def test_shadow_scoring_stores_the_challengers_probabilities_and_outcomes_judge_both(tmp_path, prefect_harness, demo_dir):
    """`predict --shadow`: the challenger scores the same rows beside the champion; outcomes give each its realized metrics."""
    import mlflow
    from typer.testing import CliRunner

    from flows.feedback import feedback_flow
    from flows.inference import inference_flow
    from flows.layers import run_flow
    from flows.training import training_flow
    from pipeline_cli.main import app
    from tests.conftest import shipped_config

    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    run_flow(str(config), QUICK)
    # a challenger the gate keeps out: another seed, and an improvement no model can show
    second = training_flow(str(config), [*QUICK, "training.seed=7", "mlflow.promotion.min_improvement=1"], refresh=True)
    assert (second["version"], second["promoted"]) == ("2", False)
    source = pl.read_csv(demo_dir / "credit.csv", infer_schema=False)
    source.head(1200).write_csv(tmp_path / "batch.csv")
    scored = inference_flow(str(config), str(tmp_path / "batch.csv"), str(tmp_path / "shadowed.parquet"), overrides=QUICK, shadow=True)
    assert scored["model"]["version"] == "1" and scored["shadow"]["version"] == "2"
    out = pl.read_parquet(tmp_path / "shadowed.parquet")
    assert out["shadow_model_version"].unique().to_list() == ["2"] and out["shadow_probability"].null_count() == 0
    # the shadow's numbers are the challenger's own predictions of the same rows
    alone = inference_flow(str(config), str(tmp_path / "batch.csv"), str(tmp_path / "v2.parquet"), overrides=QUICK,
                           model_uri="models:/credit-default-classifier/2")
    v2 = pl.read_parquet(alone["output"]).select("ID", pl.col("probability").alias("v2"))
    both = out.join(v2, on="ID")
    assert both.height == out.height and np.abs(both["shadow_probability"] - both["v2"]).max() < 1e-12
    assert np.abs(out["shadow_probability"] - out["probability"]).max() > 1e-6  # a different model, not a copy

    source.head(800).select("ID", TARGET).write_csv(tmp_path / "labels.csv")
    fed = feedback_flow(str(config), str(tmp_path / "labels.csv"), QUICK)
    mine = {(b["output"], b["role"]): b for b in fed["batches"]}
    served, shadow = mine[(scored["output"], "served")], mine[(scored["output"], "shadow")]
    assert (served["model_version"], shadow["model_version"]) == ("1", "2")
    labelled = out.join(source.head(800).select(pl.col("ID").cast(pl.Int64), pl.col(TARGET).cast(pl.Int8).alias("y")), on="ID")
    want = classification_metrics(labelled["y"].to_numpy(), labelled["shadow_probability"].to_numpy(), scored["shadow"]["threshold"])
    assert shadow["labelled_rows"] == labelled.height and shadow["metrics"] == pytest.approx(want, abs=1e-12)
    assert fed["champion"]["version"] == "1" and fed["champion"]["labelled_rows"] == served["labelled_rows"]  # the shadow's rows are not the champion's

    shown = CliRunner().invoke(app, ["monitor", "--config", str(config), *[a for o in QUICK for a in ("--set", o)], "--json"])
    [row] = [r for r in json.loads(shown.stdout)["result"] if r["shadow"]]
    assert row["shadow"] == "v2" and row["shadow_realized"] == pytest.approx(want["roc_auc"])

    # the paired comparison on those live rows, kept on the challenger; without shadow_min_rows it only informs
    evidence = fed["shadow_evidence"]
    direct = paired_bootstrap(labelled["y"].to_numpy(), labelled["shadow_probability"].to_numpy(), labelled["probability"].to_numpy(),
                              "roc_auc", (scored["shadow"]["threshold"], scored["threshold"]), 0.95, 1000, 42)
    assert (evidence["challenger"], evidence["champion"], evidence["rows"], evidence["promoted"]) == ("2", "1", labelled.height, False)
    assert (evidence["delta"], evidence["low"], evidence["high"]) == pytest.approx((direct.delta, direct.low, direct.high))
    # each batch's page is written again with its outcomes: the served and the shadow rows
    [page] = [p for p in fed["reports"] if p and "shadowed" in p]
    text = re.sub(r"<[^>]+>", " ", Path(page).read_text())
    assert re.search(rf"served\s+1\s+{served['labelled_rows']}\s+{served['metrics']['roc_auc']:.4f}", text)
    assert re.search(rf"shadow\s+2\s+{shadow['labelled_rows']}\s+{shadow['metrics']['roc_auc']:.4f}", text)
    listed = CliRunner().invoke(app, ["report", "open", "--kind", "scoring", "--config", str(config), *[a for o in QUICK for a in ("--set", o)]])
    assert listed.exit_code == 0 and Path(listed.stdout.strip()).name.startswith("scoring-")
    # the training page of v2: the gate kept it out, and says why
    training_page = re.sub(r"<[^>]+>", " ", Path(second["report"]).read_text())
    assert "kept as challenger" in training_page and "not better by more than 1 at that confidence" in training_page
    assert re.search(r"1\s+logistic_regression\s+" + f"{second['models'][0]['metrics']['roc_auc']:.4f}", training_page)
    logged = [a.path for a in mlflow.MlflowClient().list_artifacts(second["parent_run_id"], "report")]
    assert logged == [f"report/{Path(second['report']).name}"]
    # and each page is published as a Prefect artifact naming where it is
    import httpx
    from prefect.settings import PREFECT_API_URL

    artifacts = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", timeout=10, json={
        "artifacts": {"key": {"any_": ["training-report-credit-default", "scoring-report-credit-default"]}}}).json()
    assert any(second["report"] in a["data"] and a["key"] == "training-report-credit-default" for a in artifacts)
    assert any(page in a["data"] and a["key"] == "scoring-report-credit-default" for a in artifacts)


def test_a_challenger_clearly_better_on_live_outcomes_is_promoted_from_shadow_evidence(tmp_path, prefect_harness, demo_dir):
    """mlflow.promotion.shadow_min_rows: enough labelled live rows and an interval clear of min_improvement promote the challenger."""
    import mlflow

    from flows.feedback import feedback_flow
    from flows.inference import inference_flow
    from flows.layers import run_flow
    from flows.training import training_flow
    from tests.conftest import shipped_config

    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    stump = ["training.models={random_forest: {params: {n_estimators: 3, max_depth: 1}}}", "training.tuning.enabled=false",
             "mlflow.min_metrics={}"]
    run_flow(str(config), stump)  # v1: a weak champion
    second = training_flow(str(config), [*QUICK, "mlflow.promotion.min_improvement=1"], refresh=True)
    assert (second["version"], second["promoted"]) == ("2", False)  # the gate keeps it out on the holdout
    source = pl.read_csv(demo_dir / "credit.csv", infer_schema=False)
    source.head(1500).write_csv(tmp_path / "batch.csv")
    inference_flow(str(config), str(tmp_path / "batch.csv"), str(tmp_path / "shadowed.parquet"), overrides=QUICK, shadow=True)
    source.head(1500).select("ID", TARGET).write_csv(tmp_path / "labels.csv")

    too_few = feedback_flow(str(config), str(tmp_path / "labels.csv"), [*QUICK, "mlflow.promotion.shadow_min_rows=100000"])
    assert too_few["shadow_evidence"]["low"] > 0 and too_few["shadow_evidence"]["promoted"] is False
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("credit-default-classifier", "champion").version) == "1"

    fed = feedback_flow(str(config), str(tmp_path / "labels.csv"), [*QUICK, "mlflow.promotion.shadow_min_rows=500"])
    evidence = fed["shadow_evidence"]
    assert evidence["promoted"] is True and evidence["rows"] >= 1400 and evidence["low"] > 0.02
    assert fed["events"] == ["pipeline.model.promoted"]
    assert str(client.get_model_version_by_alias("credit-default-classifier", "champion").version) == "2"
    kept = json.loads(client.get_model_version("credit-default-classifier", "2").tags["shadow_evidence"])
    assert kept["rows"] == evidence["rows"] and kept["champion"] == "1"
    deadline = time.time() + 30  # the harness persists events shortly after they are emitted
    while not (found := [e for e in _events("pipeline.model.promoted") if "shadow on" in e["payload"]["reason"]]) and time.time() < deadline:
        time.sleep(1)
    assert found and found[0]["payload"]["from"] == "1" and found[0]["related"][0]["pipeline.model.version"] == "2"


def test_feedback_joins_each_batch_to_its_own_rows_and_skips_files_that_are_not_its_predictions(tmp_path, prefect_harness, demo_dir):
    """Float-written labels and ids count as their integers; a batch without ids, a predictions path now
    holding a quarantine file, and a batch whose file a later predict replaced are skipped with a warning,
    and realized performance stays with the batch it was measured on."""
    import shutil

    from typer.testing import CliRunner

    from flows.feedback import feedback_flow
    from flows.inference import inference_flow
    from flows.layers import run_flow
    from pipeline_cli.main import app
    from pipeline_core.config import load_config
    from pipeline_io import layout, outcomes, records
    from pipeline_io.store import Store
    from tests.conftest import shipped_config

    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    run_flow(str(config), QUICK)
    cfg = load_config(config, QUICK)
    store = Store(cfg.store.root)
    source = pl.read_csv(demo_dir / "credit.csv", infer_schema=False)
    out = tmp_path / "r.parquet"
    source.head(1000).write_csv(tmp_path / "first.csv")
    first = inference_flow(str(config), str(tmp_path / "first.csv"), str(out), overrides=QUICK)
    source.slice(1000, 500).drop("ID").write_csv(tmp_path / "noid.csv")
    inference_flow(str(config), str(tmp_path / "noid.csv"), str(tmp_path / "noid.parquet"), overrides=QUICK)
    source.slice(1500, 300).write_csv(tmp_path / "other.csv")
    inference_flow(str(config), str(tmp_path / "other.csv"), str(tmp_path / "other.parquet"), overrides=QUICK)
    shutil.copy(tmp_path / "r.quarantine.parquet", tmp_path / "other.parquet")  # another predict's quarantine file now there

    def realized(output: Path, labels: pl.DataFrame, threshold: float) -> dict:
        rows = pl.read_parquet(output).with_columns(pl.col("ID").cast(pl.String)).join(labels, on="ID")
        return classification_metrics(rows["y"].to_numpy(), rows["probability"].to_numpy(), threshold) | {"rows": rows.height}

    # as pandas writes a labels file once a column has a gap: ids 2.0, labels 1.0 / 0.0
    truth = source.head(700).select("ID", pl.col(TARGET).cast(pl.Int8).alias("y"))
    (truth.select(pl.col("ID").cast(pl.Float64), pl.col("y").cast(pl.Float64).alias(TARGET))
          .vstack(pl.DataFrame({"ID": [5000.0], TARGET: [None]}, schema={"ID": pl.Float64, TARGET: pl.Float64}))
          .write_csv(tmp_path / "floats.csv"))
    assert "1.0" in (tmp_path / "floats.csv").read_text()
    fed = feedback_flow(str(config), str(tmp_path / "floats.csv"), QUICK)
    want = realized(out, truth, first["threshold"])
    [got] = fed["batches"]
    assert got["output"] == str(out) and got["labelled_rows"] == want["rows"] > 600  # a few rows were quarantined, not scored
    assert (fed["labelled_ids"], fed["matched_ids"]) == (700, want["rows"])  # the id without a label is dropped
    assert got["metrics"]["roc_auc"] == pytest.approx(want["roc_auc"], abs=1e-12) and got["metrics"]["roc_auc"] > 0.6
    assert sorted(fed["skipped_outputs"]) == [
        f"{tmp_path / 'noid.parquet'}: no id column 'ID' (dataset.id_column) in the predictions, no id to join outcomes on; not joined",
        f"{tmp_path / 'other.parquet'}: not a predictions file (no probability, prediction, inference_timestamp), so not joined"]

    # a later predict to the same path: the new batch has no outcomes yet, the old keeps its own
    source.slice(1800, 600).write_csv(tmp_path / "second.csv")
    second = inference_flow(str(config), str(tmp_path / "second.csv"), str(out), overrides=QUICK)
    [newest, *_, oldest] = records.recent_batches(store, cfg.dataset.name, last=10)
    assert (newest["inference_timestamp"], oldest["inference_timestamp"]) == (second["inference_timestamp"], first["inference_timestamp"])
    known = outcomes.latest_performance(store, cfg.dataset.name)
    assert outcomes.batch_key(newest) not in known
    assert known[outcomes.batch_key(oldest)]["metrics"]["roc_auc"] == pytest.approx(want["roc_auc"])
    later = source.slice(1800, 400).select("ID", pl.col(TARGET).cast(pl.Int8).alias("y"))
    later.rename({"y": TARGET}).write_csv(tmp_path / "later.csv")
    shown = CliRunner().invoke(app, ["feedback", str(tmp_path / "later.csv"), "--config", str(config),
                                     *[a for o in QUICK for a in ("--set", o)], "--json"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("overwritten by a later batch") == 1
    [now] = json.loads(shown.stdout)["result"]["batches"]
    want2 = realized(out, later, second["threshold"])
    assert now["labelled_rows"] == want2["rows"] and now["metrics"]["roc_auc"] == pytest.approx(want2["roc_auc"], abs=1e-12)
    known = outcomes.latest_performance(store, cfg.dataset.name)
    assert known[outcomes.batch_key(newest)]["metrics"]["roc_auc"] == pytest.approx(want2["roc_auc"])
    assert known[outcomes.batch_key(oldest)]["metrics"]["roc_auc"] == pytest.approx(want["roc_auc"])  # not credited with the new rows

    # labels that cannot be joined are one line of error, and nothing is recorded
    table = layout.performance_table(store, cfg.dataset.name)
    before = pl.read_delta(table).height
    pl.DataFrame({"ID": ["C-1", "C-2"], TARGET: ["1", "0"]}).write_csv(tmp_path / "foreign.csv")
    pl.DataFrame({"ID": ["1", "2"], TARGET: ["yes", "no"]}).write_csv(tmp_path / "yesno.csv")
    for name, expected in [("foreign.csv", "none of the 2 labelled ids matches a scored row by 'ID' (dataset.id_column): the labels "
                                           "have ids like 'C-1', the scored batches like '1801'"),
                           ("yesno.csv", f"label column '{TARGET}' has 2 values ('no', 'yes')")]:
        result = CliRunner().invoke(app, ["feedback", str(tmp_path / name), "--config", str(config),
                                          *[a for o in QUICK for a in ("--set", o)]])
        assert result.exit_code == 3 and result.stderr.strip().count("\n") == 0 and expected in result.stderr, result.output
    assert pl.read_delta(table).height == before
