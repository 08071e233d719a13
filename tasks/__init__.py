"""Prefect tasks: thin wrappers that add retries, caching and logging around pipeline_core."""
