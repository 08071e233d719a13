"""Prefect flows: wiring of the stage tasks only, one flow per layer plus the full pipeline."""
