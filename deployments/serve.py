"""Serve the pipeline's flows from one long-running process, for users without a work pool.

    python -m deployments.serve --config configs/credit_default.yaml

Schedules mirror prefect.yaml. Needs a Prefect server (PREFECT_API_URL) to be useful.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/credit_default.yaml")
    args = parser.parse_args()

    from prefect import serve

    from flows.layers import run_flow

    params = {"config_path": args.config, "overrides": []}
    serve(
        run_flow.to_deployment(name="feature-pipeline-daily", cron="0 4 * * *", parameters=params),
        run_flow.to_deployment(name="full-pipeline-on-demand", parameters=params),
    )


if __name__ == "__main__":
    main()
