"""One module per stage: the stage function (read through pipeline_io, call pipeline_core, write)
and the Prefect task that wraps it with retries, caching and logging."""
