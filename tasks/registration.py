"""Registration: the best model of a run becomes `challenger`; `champion` moves only through the gate."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from pipeline_core.config import PipelineConfig
from pipeline_core.modeling.holdout import TrainingData, raw_holdout
from pipeline_core.modeling.metrics import classification_metrics
from pipeline_core.modeling.promotion import (
    MIN_SHARED_ROWS,
    gate_decision,
    incomparable,
    paired_bootstrap,
    predicted_class,
    split_tags,
    unseen_by_both,
)
from pipeline_io import events, layout, model_format, model_integrity, registry
from pipeline_io.readers import load_training_data
from pipeline_io.registry import champion_version
from pipeline_io.store import open_store
from pipeline_io.workarounds import quiet_stderr

log = logging.getLogger(__name__)


def lineage_tags(data: TrainingData) -> dict[str, str]:
    meta = data.metadata
    return {"gold_table": meta["tables"]["features"], "gold_version": str(meta["version"]), "silver_version": str(meta["silver_version"]),
            "feature_version": meta["feature_version"], **predicted_class(meta)}


def champion_predicts(config: PipelineConfig, tags: dict[str, str]) -> dict[str, str] | None:
    """The champion's target and positive label: from its tags, or (a version registered before they were tagged)
    from the gold metadata of the version it learnt from; None when neither is there to read."""
    if "target" in tags and "positive_label" in tags:
        return {"target": tags["target"], "positive_label": tags["positive_label"]}
    if not tags.get("gold_version", "").isdigit():
        return None
    store = open_store(config)
    uri = layout.version_record(layout.gold_paths(store, config.dataset.name)["versions"], int(tags["gold_version"]))
    return predicted_class(store.read_json(uri)) if store.exists(uri) else None


def register_and_gate(config: PipelineConfig, data: TrainingData, ranked: list[dict[str, Any]], parent_run_id: str,
                      candidate_probabilities: Any = None) -> dict[str, Any]:
    """Register the best model as `challenger`; move `champion` only through the gate (with the candidate's
    holdout probabilities, a paired bootstrap against the champion's on the same rows).

    Reading the champion and moving the alias are one step per registered model (`registry.gate_turn`):
    two trainings at once would otherwise both find "no champion yet", and the later one would
    replace the other's champion uncompared.
    """
    import mlflow

    with registry.gate_turn(mlflow.get_tracking_uri(), registry.registered_model_name(config)):
        return _register_and_gate(config, data, ranked, parent_run_id, candidate_probabilities)


def _register_and_gate(config: PipelineConfig, data: TrainingData, ranked: list[dict[str, Any]], parent_run_id: str,
                       candidate_probabilities: Any) -> dict[str, Any]:
    import mlflow

    cfg = config.training
    best = ranked[0]
    name = registry.registered_model_name(config)
    client = mlflow.MlflowClient()
    holdout = raw_holdout(data)
    current = champion_version(client, name)
    champion_metrics, evidence, gate_metrics = None, None, best["metrics"]
    judged_by = current.tags.get(model_integrity.HOLDOUT_DIGEST_TAG) if current is not None else None
    champion_class = champion_predicts(config, current.tags) if current is not None else None
    mismatch = incomparable(name, str(current.version), champion_class, predicted_class(data.metadata)) if champion_class else None
    # a champion that predicts another class is not scored at all: against these labels it would answer the wrong question
    rival = None if mismatch else current
    shared = holdout_unseen_by_champion(data, config, rival.tags) if rival is not None else None
    if shared is not None and (len(shared) < MIN_SHARED_ROWS or len(set(data.split.y_test[shared].tolist())) < 2):
        mismatch, rival = (f"the champion ({name} v{current.version}) drew its holdout with split seed {current.tags['split_seed']} and "
                           f"test size {current.tags['test_size']}: only {len(shared)} rows of this holdout are unseen by both models; "
                           f"keep training.seed and training.test_size to compare, or promote by hand"), None
    elif shared is not None and candidate_probabilities is None:
        mismatch, rival = (f"the champion ({name} v{current.version}) drew its holdout otherwise, and this run kept no holdout "
                           "probabilities to compare on the rows both holdouts hold; promote by hand"), None
    if rival is not None and rival.tags.get("refit_full") == "true" and judged_by is None:
        # refitted on all rows by an earlier release, which kept no record of the model it was judged by before the
        # refit: it has seen this holdout, so its holdout scores from before the refit stand in
        champion_metrics = registry.holdout_metrics(client, rival)
    elif rival is not None and rival.tags.get(model_format.FORMAT_TAG) != model_format.FORMAT:
        # an older release's pickled champion is never loaded: its own recorded holdout scores stand in
        log.warning("champion %s v%s predates the safe model format: compared by the metrics recorded with it, not rescored",
                    name, rival.version)
        champion_metrics = registry.holdout_metrics(client, rival)
    elif rival is not None:
        shown = f"models:/{name}@{registry.CHAMPION}"
        if judged_by is not None:
            # refitted on all rows, the champion has seen this holdout; the model it was judged by before the refit
            # has not, and is what the candidate's holdout model is compared with: with an id column a row keeps
            # its side of the split as gold grows (`keyed_split`); without one, after new rows it may have trained
            # on some of this holdout, like any champion
            champion = model_integrity.load_judged_model(rival.tags["holdout_run_id"], judged_by, shown)
        else:
            champion = model_integrity.load_verified(client, name, str(rival.version), shown)
        proba = champion.predict(holdout)["probability"].to_numpy()
        champion_threshold = float(rival.tags.get("threshold", 0.5))
        y_gate = data.split.y_test
        if shared is not None:  # split otherwise, the champion trained on the rest of this holdout: both judged on these rows
            y_gate, proba = y_gate[shared], proba[shared]
            candidate_probabilities = np.asarray(candidate_probabilities)[shared]
            primary = classification_metrics(y_gate, candidate_probabilities, best["threshold"])[cfg.primary_metric]
            gate_metrics = {**best["metrics"], cfg.primary_metric: primary}  # the minimums stay the whole holdout's
        champion_metrics = classification_metrics(y_gate, proba, champion_threshold)
        gate = config.mlflow.promotion
        if gate.confidence > 0 and candidate_probabilities is not None:
            evidence = paired_bootstrap(y_gate, candidate_probabilities, proba, cfg.primary_metric,
                                        (best["threshold"], champion_threshold), gate.confidence, gate.resamples, cfg.seed)
    judged = None
    if best.get("refit_full"):  # the model the gate rescores while this version is champion, read before registering
        with tempfile.TemporaryDirectory(prefix="pipeline-digests-") as tmp:
            judged = model_integrity.run_model_digests(best["holdout_run_id"], Path(tmp))
    with quiet_stderr() as said:
        version = mlflow.register_model(best["model_uri"], name)
    log.info("%s", said.getvalue().strip())
    with tempfile.TemporaryDirectory(prefix="pipeline-digests-") as tmp:
        model_integrity.record_digests(client, name, str(version.version), Path(tmp))
    client.set_model_version_tag(name, version.version, "threshold", str(best["threshold"]))
    client.set_model_version_tag(name, version.version, "run_id", best["run_id"])
    if judged is not None:
        client.set_model_version_tag(name, version.version, "refit_full", "true")
        client.set_model_version_tag(name, version.version, "holdout_run_id", best["holdout_run_id"])
        client.set_model_version_tag(name, version.version, model_integrity.HOLDOUT_DIGEST_TAG,
                                     json.dumps(judged, sort_keys=True, separators=(",", ":")))
    for key, value in {**lineage_tags(data), **version_split_tags(config, data)}.items():  # what it learnt from, and its holdout
        client.set_model_version_tag(name, version.version, key, value)
    registry.record_alias(client, name, registry.CHALLENGER, version.version, best["metrics"], "best model of this training run")
    promote, reason = (False, mismatch) if mismatch else gate_decision(gate_metrics, champion_metrics, cfg.primary_metric,
                                                                      config.mlflow.min_metrics, evidence, config.mlflow.promotion.min_improvement)
    if shared is not None and not mismatch:
        reason += (f" (judged on the {len(shared):,} rows of this holdout that the champion's own holdout, drawn with split seed "
                   f"{current.tags['split_seed']} and test size {current.tags['test_size']}, also held)")
    if evidence is not None:  # the interval the decision rests on, kept with the version it judged
        client.set_model_version_tag(name, version.version, "gate_evidence", json.dumps({**asdict(evidence), "champion": str(current.version)}))
    if promote and (moved := champion_moved(client, name, current)):
        promote, reason, current = False, moved, champion_version(client, name)
    if promote:
        registry.record_alias(client, name, registry.CHAMPION, version.version, best["metrics"], reason)
    client.set_tag(parent_run_id, "registry_outcome", ("promoted: " if promote else "not promoted: ") + reason)
    return {"registered_model": name, "version": str(version.version), "best_model": best["name"], "promoted": promote,
            "reason": reason, "evidence": asdict(evidence) if evidence else None, "champion_version": str(version.version) if promote else (str(current.version) if current else None),
            "previous_champion": str(current.version) if current else None,
            "leaderboard": [{k: r[k] for k in ("rank", "name", "metrics", "threshold", "cv_mean", "cv_std", "run_id", "seconds")} for r in ranked]}


def version_split_tags(config: PipelineConfig, data: TrainingData) -> dict[str, str]:
    return split_tags(config.training.seed, config.training.test_size, bool(data.preprocessing.get("id_column")))


def holdout_unseen_by_champion(data: TrainingData, config: PipelineConfig, champion_tags: dict[str, str]) -> Any:
    """Positions of this holdout the champion did not train on either, when it drew its holdout otherwise (`unseen_by_both`)."""
    id_column = data.preprocessing.get("id_column")
    if not id_column:
        return None
    y = np.empty(len(data.gold), dtype=data.split.y_test.dtype)
    y[data.split.train_index], y[data.split.test_index] = data.split.y_train, data.split.y_test
    return unseen_by_both(data.gold[id_column].to_numpy(), y, data.split.test_index, champion_tags,
                          config.training.seed, config.training.test_size)


def champion_moved(client: Any, name: str, judged_against: Any) -> str | None:
    """Why not to promote when another run moved `champion` after this gate read it (only possible with a
    tracking server, which `registry.gate_turn` cannot lock): the comparison would be with a model that is gone."""
    now = champion_version(client, name)
    if (None if now is None else str(now.version)) == (None if judged_against is None else str(judged_against.version)):
        return None
    before = "no champion" if judged_against is None else f"champion v{judged_against.version}"
    return (f"champion moved to v{now.version if now else '-'} while this run was judged against {before}; "
            "train again to compare with it, or promote by hand")


def register_each(config: PipelineConfig, data: TrainingData, ranked: list[dict[str, Any]]) -> dict[str, str]:
    """``training.register: all``: every candidate also under ``<registered name>-<model>``, so any of them
    can be scored by URI; only the best (under the plain name) goes through the champion gate."""
    import mlflow

    name = registry.registered_model_name(config)
    client = mlflow.MlflowClient()
    uris = {}
    for r in ranked:
        with quiet_stderr():
            version = mlflow.register_model(r["model_uri"], f"{name}-{r['name']}")
        with tempfile.TemporaryDirectory(prefix="pipeline-digests-") as tmp:
            model_integrity.record_digests(client, version.name, str(version.version), Path(tmp))
        refit = {"refit_full": "true", "holdout_run_id": r["holdout_run_id"]} if r.get("refit_full") else {}
        for key, value in {"threshold": str(r["threshold"]), "run_id": r["run_id"], **refit, **lineage_tags(data),
                           **version_split_tags(config, data)}.items():
            client.set_model_version_tag(version.name, version.version, key, value)
        uris[r["name"]] = f"models:/{version.name}/{version.version}"
    return uris


def log_leaderboard(ranked: list[dict[str, Any]], primary: str) -> None:
    """CSV and Markdown leaderboards as artifacts of the active (parent) run."""
    import mlflow

    from pipeline_core.modeling.selection import leaderboard_markdown, leaderboard_rows

    columns = list(ranked[0]["metrics"])
    with tempfile.TemporaryDirectory() as tmp:
        pd.DataFrame(leaderboard_rows(ranked, columns)).to_csv(os.path.join(tmp, "leaderboard.csv"), index=False)
        with open(os.path.join(tmp, "leaderboard.md"), "w") as fh:
            fh.write(leaderboard_markdown(ranked, columns))
        mlflow.log_artifacts(tmp, "leaderboard")
    mlflow.log_dict({"primary_metric": primary, "ranking": [r["name"] for r in ranked]}, "leaderboard/ranking.json")


@task(name="register-best", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def register_best(config: PipelineConfig, ranked: list[dict[str, Any]], parent_run_id: str, gold_version: int,
                  candidate_probabilities: list[float] | None = None) -> dict[str, Any]:
    import mlflow

    registry.connect(config)
    data = load_training_data(config, open_store(config), as_of=str(gold_version))
    with mlflow.start_run(run_id=parent_run_id):
        log_leaderboard(ranked, config.training.primary_metric)
        mlflow.log_dict(config.model_dump(mode="json", by_alias=True), "config_snapshot.json")
        mlflow.log_dict(data.metadata["feature_spec"], "feature_spec.json")
    outcome = register_and_gate(config, data, ranked, parent_run_id, candidate_probabilities)
    if config.training.registration == "all":
        outcome["model_versions"] = register_each(config, data, ranked)
    from prefect.artifacts import create_table_artifact

    from pipeline_core.modeling.selection import leaderboard_rows

    create_table_artifact(
        key=f"leaderboard-{config.dataset.name}".lower().replace("_", "-").replace(".", "-"),
        table=leaderboard_rows(ranked, list(ranked[0]["metrics"])),
        description=f"{outcome['registered_model']} v{outcome['version']}: {'promoted' if outcome['promoted'] else 'not promoted'} ({outcome['reason']})",
    )
    if outcome["promoted"]:
        events.emit(events.MODEL_PROMOTED, config.dataset.name,
                    {"reason": outcome["reason"], "metrics": ranked[0]["metrics"], "evidence": outcome["evidence"]},
                    outcome["registered_model"], outcome["version"])
    get_run_logger().info("registry: %s v%s %s (%s)", outcome["registered_model"], outcome["version"],
                          "promoted to champion" if outcome["promoted"] else "kept as challenger", outcome["reason"])
    return outcome


@task(name="export-model", cache_policy=NO_CACHE)
def export_model(config: PipelineConfig, outcome: dict[str, Any], ranked: list[dict[str, Any]]) -> str:
    from pipeline_io import export

    registry.connect(config)
    path = export.export_registered_model(config, outcome, ranked[0])
    get_run_logger().info("exported %s v%s to %s", outcome["registered_model"], outcome["version"], path)
    return str(path)
