"""Prefect flows: wiring of the stage tasks only, one flow per layer plus the full pipeline."""

from pipeline_core.redaction import install_log_redaction

install_log_redaction()  # whatever process runs these flows (CLI, worker, served deployment) logs no credentials
