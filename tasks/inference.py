"""Tasks of batch inference: score a batch (with its drift counts), then publish the drift report."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from pipeline_core import inference, monitoring, progress, tracking
from pipeline_core.config import PipelineConfig
from pipeline_core.drift import report_markdown
from pipeline_core.gold import gold_paths
from tasks.caching import retry_transient
from tasks.layers import make_store


@task(name="score-batch", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 8], retry_condition_fn=retry_transient)
def score_batch(config: PipelineConfig, input_uri: str, output_uri: str, model_uri: str | None, threshold: float | None,
                allow_empty: bool) -> dict[str, Any]:
    """Score one batch with the registered model and keep its record for `monitor`."""
    client, _ = tracking.connect(config)
    model = inference.load_scoring_model(model_uri or inference.default_model_uri(config), client)
    store = make_store(config)
    meta_uri = gold_paths(store, config.dataset.name)["metadata"]
    gold_metadata = store.read_json(meta_uri) if store.exists(meta_uri) else None
    summary = inference.score_file(config, model, input_uri, output_uri, gold_metadata=gold_metadata, threshold=threshold,
                                   allow_empty=allow_empty, progress=lambda done, total: progress.report("scoring", done, total))
    summary["record"] = monitoring.record_batch(store, config.dataset.name, summary)
    get_run_logger().info("scored %d of %d rows (%d quarantined) with %s in %.1fs; drift: %s", summary["rows_scored"],
                          summary["rows_in"], summary["rows_quarantined"], model.uri, summary["seconds"], summary["drift_status"])
    return summary


@task(name="publish-drift-report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def publish_drift(config: PipelineConfig, summary: dict[str, Any]) -> str:
    """The drift report as an MLflow run of the experiment and as a Prefect artifact."""
    from prefect.artifacts import create_markdown_artifact

    _, experiment_id = tracking.connect(config)
    model = summary["model"]
    markdown = report_markdown(summary["drift"], f"Drift of {summary['output']} ({model['name'] or model['uri']} v{model['version'] or '-'})")
    run_id = tracking.log_inference_run(experiment_id, summary, markdown)
    create_markdown_artifact(key=f"drift-{config.dataset.name}".lower().replace("_", "-").replace(".", "-"), markdown=markdown,
                             description=f"{summary['rows_scored']} rows scored; drift status {summary['drift_status']}")
    for alert in summary["drift"].get("alerts", []):
        get_run_logger().warning("drift: %s", alert)
    return run_id
