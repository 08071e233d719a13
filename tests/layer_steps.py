"""bronze -> silver -> gold on one config, without Prefect: the process that fault and concurrency tests start (and kill).

    python -m tests.layer_steps CONFIG [--set KEY=VALUE ...]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pipeline_core.config import PipelineConfig, load_config
from pipeline_core.errors import PipelineError
from pipeline_io.store import open_store
from tasks import bronze, gold, silver


def run_layers(config: PipelineConfig) -> dict[str, Any]:
    store = open_store(config)
    batch = bronze.ingest_batch(config, store, Path(config.dataset.source))
    report = silver.refine_to_silver(config, store)
    meta = gold.build_gold(config, store)
    return {"batch": batch, "silver": report, "gold": meta}


if __name__ == "__main__":
    args = sys.argv[1:]
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    try:
        run_layers(load_config(args[0], overrides))
    except PipelineError as exc:  # what the CLI does: one line, a non-zero exit
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(4)
