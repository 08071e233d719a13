"""The demo datasets written to disk: CSV, or a SQLite database like the phishing data's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl

from pipeline_io.atomic import atomic_path


def write_csv(frame: pl.DataFrame, out: Path) -> None:
    with atomic_path(out) as tmp:
        frame.write_csv(tmp)


def write_sqlite(frame: pl.DataFrame, out: Path, table: str = "websites") -> None:
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    marks = ", ".join("?" for _ in frame.columns)
    types = {pl.Int64: "INTEGER", pl.Float64: "REAL"}
    decl = ", ".join(f'"{c}" {types.get(t, "TEXT")}' for c, t in frame.schema.items())
    with atomic_path(out) as tmp:
        conn = sqlite3.connect(tmp)
        try:
            with conn:
                conn.execute(f'CREATE TABLE "{table}" ({decl})')
                conn.executemany(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', frame.iter_rows())
        finally:
            conn.close()
