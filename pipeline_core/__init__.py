"""The pipeline's logic: plain functions over data, with I/O at the edges (flows wrap them)."""

from pipeline_core.allocator import configure_polars_allocator

configure_polars_allocator()  # before anything imports polars: its allocator reads the setting once
