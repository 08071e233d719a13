"""Outcomes close the loop: labels that arrive after scoring become realized performance per batch and
model version, in the store and in MLflow; a degraded champion emits an event and, when configured,
is rolled back to the previous one."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from pipeline_core.config import PipelineConfig
from pipeline_core.errors import ConfigError, DataError
from pipeline_core.modeling.metrics import classification_metrics
from pipeline_core.modeling.promotion import paired_bootstrap
from pipeline_core.outcomes import degradation, join_outcomes, labels_frame, no_match_message, realized_metrics, shadow_pairs
from pipeline_core.redaction import redact
from pipeline_io import events, layout, outcomes, records, registry
from pipeline_io.sources import detect_format, fetch_to_local, http_headers, scan_source
from pipeline_io.store import open_store
from tasks import reporting
from tasks.caching import retry_transient


def read_labels(config: PipelineConfig, labels_uri: str, label_column: str | None) -> tuple[Any, str]:
    """The raw labels file and its label column, checked for the id and label columns."""
    ds = config.dataset
    if not ds.id_column:
        raise ConfigError("dataset.id_column: outcomes are joined to scored rows by id; the dataset has none")
    column = label_column or ds.target
    with tempfile.TemporaryDirectory(prefix="pipeline-feedback-") as tmp:
        local = fetch_to_local(labels_uri, config.store.s3, Path(tmp), ds.http.timeout_seconds, "labels file",
                               headers=http_headers(ds.http, ds.source, labels_uri))
        raw = scan_source(local, detect_format(labels_uri), None, ds.csv_separator, shown=redact(labels_uri)).collect()
    missing = [c for c in (ds.id_column, column) if c not in raw.columns]
    if missing:
        raise DataError(f"{redact(labels_uri)}: missing column(s) {', '.join(missing)}; the labels need the id column "
                        f"'{ds.id_column}' and the label column '{column}' (--label-column)")
    return raw, column


def _previous_champion_score(client: Any, name: str, metric: str, known: dict[str, dict[str, Any]], current: str) -> tuple[str, float] | None:
    """The previous champion and its score: realized on outcomes when it has some, else its holdout score."""
    line = registry.champion_line(registry.alias_history(client, name))
    if len(line) < 2 or line[-1] != current:
        return None
    previous = line[-2]
    realized = [r for r in known.values() if r["model_name"] == name and r["model_version"] == previous]
    if realized:
        rows = sum(r["labelled_rows"] for r in realized)
        return previous, sum(r["metrics"][metric] * r["labelled_rows"] for r in realized) / rows
    mv = client.get_model_version(name, previous)
    return previous, float(registry.holdout_metrics(client, mv)[metric])


def shadow_evidence(config: PipelineConfig, client: Any, name: str, champion: str,
                    shadowed: list[tuple[dict[str, Any], dict[str, Any], float, pl.DataFrame]]) -> dict[str, Any] | None:
    """The challenger against the champion on the live rows both scored and that now have outcomes:
    a paired bootstrap, kept on the challenger's version; with ``mlflow.promotion.shadow_min_rows``
    met and the interval clear of ``min_improvement``, the challenger becomes champion."""
    challenger = registry.alias_version(client, name, registry.CHALLENGER)
    if challenger is None or challenger == champion:
        return None
    mine = [(s, t, j) for m, s, t, j in shadowed if m.get("name") == name and str(m.get("version")) == champion
            and s.get("name") == name and str(s.get("version")) == challenger]
    pairs = shadow_pairs([j for _, _, j in mine])
    if pairs.height < 50 or pairs["label"].n_unique() < 2:
        return None
    gate, primary = config.mlflow.promotion, config.training.primary_metric
    thresholds = (float(mine[-1][0]["threshold"]), float(mine[-1][1]))
    y, new, old = pairs["label"].to_numpy(), pairs["shadow_probability"].to_numpy(), pairs["probability"].to_numpy()
    evidence = paired_bootstrap(y, new, old, primary, thresholds, gate.confidence or 0.95, gate.resamples, config.training.seed)
    better = evidence.low > gate.min_improvement
    reason = (f"shadow on {pairs.height} labelled live rows: {evidence.describe()}: "
              + ("better" if better else "not better") + f" by more than {gate.min_improvement:g}")
    client.set_model_version_tag(name, challenger, "shadow_evidence",
                                 json.dumps({**asdict(evidence), "champion": champion, "rows": pairs.height}))
    promote = better and gate.shadow_min_rows is not None and pairs.height >= gate.shadow_min_rows
    result = {"challenger": challenger, "champion": champion, "rows": pairs.height, **asdict(evidence), "reason": reason,
              "promoted": promote}
    if promote:
        registry.record_alias(client, name, registry.CHAMPION, challenger, classification_metrics(y, new, thresholds[0]), reason)
        events.emit(events.MODEL_PROMOTED, config.dataset.name, {"reason": reason, "evidence": asdict(evidence), "from": champion},
                    name, challenger)
        get_run_logger().info("feedback: challenger v%s promoted to champion over v%s: %s", challenger, champion, reason)
    else:
        get_run_logger().info("feedback: challenger v%s vs champion v%s, %s", challenger, champion, reason)
    return result


@task(name="record-outcomes", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 8], retry_condition_fn=retry_transient)
def record_outcomes(config: PipelineConfig, labels_uri: str, label_column: str | None = None) -> dict[str, Any]:
    """Join the labels to every recorded batch by id; keep each batch's realized metrics; act on a degraded champion."""
    logger = get_run_logger()
    raw, column = read_labels(config, labels_uri, label_column)
    store = open_store(config)
    name_ds = config.dataset.name
    meta_uri = layout.gold_paths(store, name_ds)["metadata"]
    if not store.exists(meta_uri):
        raise DataError(f"no gold layer for dataset '{name_ds}' in {config.store.root}: train and score before sending outcomes")
    # the positive value is the one gold mapped to 1 when the model was trained
    labels = labels_frame(raw, config.dataset.id_column, column, store.read_json(meta_uri)["positive_label"], redact(labels_uri))
    primary = config.training.primary_metric
    batches, unmatched, gone, judged, shadowed, skipped = [], set(labels["id"].to_list()), [], [], [], []
    joinable, scored_example = 0, None
    for record in records.recent_batches(store, name_ds, last=10**9):
        try:
            scored = outcomes.scored_rows(store, record, config.dataset.id_column)
        except outcomes.Unjoinable as exc:
            # one unusable file must not hold back the outcomes of every other batch
            logger.warning("feedback: %s", exc)
            skipped.append(str(exc))
            continue
        if scored is None:
            gone.append(record["output"])
            continue
        joinable += 1
        joined = join_outcomes(scored, labels)
        if joined.height == 0:
            scored_example = scored_example or next(iter(scored["id"].drop_nulls().head(1).to_list()), None)
            continue
        unmatched -= set(joined["id"].to_list())
        judged.append((record, len(batches)))
        model = record.get("model") or {}
        batches.append({"output": record["output"], "model_name": model.get("name") or "", "model_version": str(model.get("version") or ""),
                        "role": outcomes.SERVED, "inference_timestamp": record["inference_timestamp"],
                        **realized_metrics(joined, record["threshold"])})
        if (shadow := record.get("shadow")) and "shadow_probability" in joined.columns:
            # the challenger on the same live rows, at its own threshold
            batches.append({"output": record["output"], "model_name": shadow.get("name") or "", "role": outcomes.SHADOW,
                            "model_version": str(shadow.get("version") or ""), "inference_timestamp": record["inference_timestamp"],
                            **realized_metrics(joined.with_columns(pl.col("shadow_probability").alias("probability")),
                                               shadow["threshold"])})
            shadowed.append((model, shadow, record["threshold"], joined))
    if not joinable:
        why = (f"{len(skipped)} skipped (first: {skipped[0]}), {len(gone)} with the predictions file gone" if skipped
               else f"{len(gone)} with the predictions file gone" if gone else "none is recorded; predict first")
        raise DataError(f"{redact(labels_uri)}: no scored batch of dataset '{name_ds}' can take outcomes: {why}")
    if not batches:
        raise DataError(f"{redact(labels_uri)}: {no_match_message(config.dataset.id_column, labels, scored_example)}")
    summary: dict[str, Any] = {"layer": "feedback", "status": "ran", "labels": redact(labels_uri), "labelled_ids": labels.height,
                               "matched_ids": labels.height - len(unmatched), "unmatched_ids": len(unmatched),
                               "batches": batches, "missing_outputs": gone, "skipped_outputs": skipped, "events": [], "rollback": None}
    summary["table"] = outcomes.record_performance(store, name_ds, batches)
    client, experiment_id = registry.connect(config)
    run_ids = [registry.log_outcome_run(experiment_id, batch, primary) for batch in batches]
    # each batch's page again, now with what its outcomes say (served and shadow rows of that batch)
    ends = [start for _, start in judged[1:]] + [len(batches)]
    summary["reports"] = [reporting.write_scoring_report(config, record, batches[start:end], run_ids[start])
                          for (record, start), end in zip(judged, ends)]
    logger.info("feedback: %d of %d labelled ids matched rows of %d batch(es)", summary["matched_ids"], labels.height, len(batches))

    name = registry.registered_model_name(config)
    champion = registry.champion_version(client, name)
    if champion is None:
        return summary
    summary["shadow_evidence"] = shadow_evidence(config, client, name, str(champion.version), shadowed)
    if (summary["shadow_evidence"] or {}).get("promoted"):
        summary["events"].append(events.MODEL_PROMOTED)
        return summary  # the champion the outcomes judged below has just been replaced on better live evidence
    version = str(champion.version)
    own = [b for b in batches if b["model_name"] == name and b["model_version"] == version and b["role"] == outcomes.SERVED]
    if not own:
        return summary
    # the champion's realized score: its batches' scores, weighted by their labelled rows
    labelled = sum(b["labelled_rows"] for b in own)
    realized = sum(b["metrics"][primary] * b["labelled_rows"] for b in own) / labelled
    holdout = float(registry.holdout_metrics(client, champion)[primary])
    summary["champion"] = {"version": version, "labelled_rows": labelled, "realized": realized, "holdout": holdout}
    if (short := degradation(realized, holdout, primary, config.monitoring.degraded_margin)) is not None:
        payload = {"metric": primary, "realized": realized, "holdout": holdout, "shortfall": short, "labelled_rows": labelled}
        events.emit(events.PERFORMANCE_DEGRADED, name_ds, payload, name, version)
        summary["events"].append(events.PERFORMANCE_DEGRADED)
        logger.warning("feedback: champion v%s realized %s %.4f, %.4f short of its holdout %.4f", version, primary, realized, short, holdout)
    margin = config.monitoring.rollback_margin
    if margin is not None:
        known = outcomes.latest_performance(store, name_ds)
        previous = _previous_champion_score(client, name, primary, known, version)
        if previous is not None and (short := degradation(realized, previous[1], primary, margin)) is not None:
            reason = (f"realized {primary} {realized:.4f} on {labelled} labelled rows is {short:.4f} below version {previous[0]}'s "
                      f"{previous[1]:.4f} (monitoring.rollback_margin {margin:g})")
            summary["rollback"] = registry.rollback(client, name, reason)
            events.emit(events.MODEL_ROLLED_BACK, name_ds, {"from": version, "to": previous[0], "reason": reason}, name, previous[0])
            summary["events"].append(events.MODEL_ROLLED_BACK)
            logger.warning("feedback: champion rolled back from v%s to v%s: %s", version, previous[0], reason)
    return summary
