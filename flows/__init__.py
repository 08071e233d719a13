"""Prefect flows: composition of tasks, one flow per layer plus the full pipeline."""
