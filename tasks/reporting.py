"""The HTML reports at the edge: gather the facts, render them (`pipeline_core.reports`), write the
page under the store's reports folder, log it to MLflow and publish it as a Prefect artifact.

A report is a view of what is already recorded: when it cannot be written the run says so in a
warning and carries on, so a registered model or a published batch is never undone by its page.
"""

from __future__ import annotations

import logging
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline_core.config import PipelineConfig
from pipeline_core.reports import data_profile, leaderboard_rows, scoring_report_html, training_report_html
from pipeline_io import layout
from pipeline_io.atomic import write_bytes_atomic
from pipeline_io.layer_records import silver_report
from pipeline_io.store import Store

log = logging.getLogger(__name__)

IMPORTANCE_REPEATS = 3
REALIZED_SHOWN = ("roc_auc", "pr_auc", "f1", "precision", "recall", "brier", "ece")
FIGURES = {"confusion_matrix.png": "Confusion matrix", "roc_curve.png": "ROC curve", "pr_curve.png": "Precision-recall curve",
           "calibration_curve.png": "Calibration", "feature_importance.png": "Permutation importance (top 20)"}


def _artifact_key(kind: str, dataset: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", f"{kind}-report-{dataset}".lower())


def _publish(config: PipelineConfig, path: Path, html: str, run_id: str | None, kind: str, markdown: str) -> str:
    """Write the page (whole or not at all), attach it to the MLflow run and publish a Prefect artifact naming it."""
    import mlflow
    from prefect.artifacts import create_markdown_artifact

    write_bytes_atomic(path, html.encode("utf-8"))
    if run_id:
        mlflow.MlflowClient().log_artifact(run_id, str(path), "report")
    create_markdown_artifact(key=_artifact_key(kind, config.dataset.name), markdown=f"{markdown}\n\nReport: `{path}`",
                             description=f"{kind} report of {config.dataset.name}")
    return str(path)


@task(name="training-report", cache_policy=NO_CACHE)
def write_training_report(config: PipelineConfig, store: Store, data: Any, best: dict[str, Any], ranked: list[dict[str, Any]],
                          outcome: dict[str, Any], parent_run_id: str) -> str | None:
    """The training run's page; ``best`` carries its fitted pipeline and holdout probabilities (before any refit)."""
    try:
        return _training_report(config, store, data, best, ranked, outcome, parent_run_id)
    except Exception as exc:  # noqa: BLE001 - the page is a view; the registered model stands without it
        log.warning("training report not written: %s", exc)
        return None


def _training_report(config: PipelineConfig, store: Store, data: Any, best: dict[str, Any], ranked: list[dict[str, Any]],
                     outcome: dict[str, Any], parent_run_id: str) -> str:
    import numpy as np

    from pipeline_core.modeling.explain import permutation_importance_by_column
    from pipeline_core.modeling.plots import write_evaluation_plots

    primary = config.training.primary_metric
    split = data.split
    probabilities = np.asarray(best["holdout_probabilities"])
    importance = permutation_importance_by_column(best["pipeline"], split.X_test, split.y_test, primary, best["threshold"],
                                                  config.training.seed, IMPORTANCE_REPEATS)
    with tempfile.TemporaryDirectory(prefix="pipeline-report-") as tmp:
        write_evaluation_plots(tmp, split.y_test, probabilities, best["threshold"], {r["name"]: r["mean"] for r in importance}, [])
        figures = {caption: (Path(tmp) / name).read_bytes() for name, caption in FIGURES.items() if (Path(tmp) / name).exists()}
    meta = data.metadata
    evidence = outcome.get("evidence")
    decision = {"promoted": outcome["promoted"], "reason": outcome["reason"], "model": best["name"], "version": outcome["version"],
                "evidence": {**evidence, "champion": outcome.get("previous_champion") or "-"} if evidence else None}
    stamp = datetime.now(timezone.utc)
    html = training_report_html(
        title=f"Training of {config.dataset.name}: {outcome['registered_model']} v{outcome['version']}",
        subtitle=f"{stamp:%Y-%m-%d %H:%M} UTC · MLflow run {parent_run_id} · gold version {meta['version']} · primary metric {primary}",
        decision=decision, profile=data_profile(meta, silver_report(store, config.dataset.name, meta.get("silver_version"))),
        leaderboard=leaderboard_rows(ranked, primary), primary=primary, metrics=best["metrics"], figures=figures,
        importance=importance, importance_repeats=IMPORTANCE_REPEATS, ranked_by=outcome.get("ranked_by", "holdout"))
    path = layout.reports_dir(config.store.root, config.dataset.name) / f"training-{stamp:%Y%m%dT%H%M%S}-v{outcome['version']}.html"
    verdict = "promoted to champion" if outcome["promoted"] else "kept as challenger"
    markdown = (f"# {outcome['registered_model']} v{outcome['version']}: {verdict}\n\n{outcome['reason']}\n\n"
                f"Best model **{best['name']}**: holdout {primary} {best['metrics'][primary]:.4f}; top columns: "
                + ", ".join(r["name"] for r in importance[:5]))
    return _publish(config, path, html, parent_run_id, "training", markdown)


def scoring_report_path(config: PipelineConfig, record: dict[str, Any]) -> Path:
    """One page per scored batch, named by its scoring time and output, so outcomes rewrite the same page."""
    stamp = re.sub(r"[^0-9T]", "", record["inference_timestamp"][:19])
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(str(record["output"])).name.removesuffix(".parquet"))
    return layout.reports_dir(config.store.root, config.dataset.name) / f"scoring-{stamp}-{stem}.html"


@task(name="scoring-report", cache_policy=NO_CACHE)
def write_scoring_report(config: PipelineConfig, record: dict[str, Any], realized: list[dict[str, Any]], run_id: str | None) -> str | None:
    """A scored batch's page (again, with ``realized`` metrics, once outcomes arrive)."""
    try:
        model, shadow = record.get("model") or {}, record.get("shadow")
        batch = {**{k: record.get(k) for k in ("rows_in", "rows_scored", "rows_quarantined", "positive_rate", "threshold", "drift_status")},
                 "model": f"{model.get('name') or model.get('uri')} v{model.get('version') or '-'}",
                 "shadow": f"{shadow.get('name')} v{shadow.get('version')}" if shadow else None}
        html = scoring_report_html(
            title=f"Scored batch {Path(str(record['output'])).name}",
            subtitle=f"scored {record['inference_timestamp'][:19]} UTC · input {record['input']} · output {record['output']}",
            batch=batch, drift=record.get("drift") or {}, realized=realized, realized_metrics=list(REALIZED_SHOWN))
        markdown = (f"# Scored batch {record['output']}\n\n{record.get('rows_scored')} rows scored, drift **{record.get('drift_status')}**"
                    + (f"; outcomes for {sum(r['labelled_rows'] for r in realized)} row(s)" if realized else ""))
        return _publish(config, scoring_report_path(config, record), html, run_id, "scoring", markdown)
    except Exception as exc:  # noqa: BLE001 - the page is a view; the scored batch stands without it
        log.warning("scoring report not written: %s", exc)
        return None


def latest_report(config: PipelineConfig, kind: str) -> Path | None:
    """The newest report of ``kind`` ('training' or 'scoring') of the dataset, or None."""
    folder = layout.reports_dir(config.store.root, config.dataset.name)
    pages = sorted(folder.glob(f"{kind}-*.html")) if folder.is_dir() else []
    return pages[-1] if pages else None
