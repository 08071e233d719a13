"""The edges: the store and its layout, sources, Parquet, the MLflow registry, and workarounds of upstream quirks."""
