from datetime import date, datetime, timezone

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from pipeline_io import parquet


def write_parquet(frame: pl.DataFrame, path: str, chunk_rows: int = 100_000) -> None:
    """Write ``frame`` as the scorer does: chunk after chunk."""
    writer = parquet.ParquetChunkWriter(path)
    for chunk in frame.iter_slices(chunk_rows):
        writer.write(chunk)
    writer.close(frame.head(0))


def mixed_frame(n: int = 5_000) -> pl.DataFrame:
    rng = np.random.default_rng(5)
    return pl.DataFrame({
        "id": np.arange(n, dtype=np.int64) * 7 - 3,
        "small": rng.integers(-2, 9, n).astype(np.int8),
        "big": rng.integers(2**62, 2**63 - 1, n, dtype=np.uint64),
        "amount": rng.normal(size=n) * 1e4,
        "rounded": (rng.integers(1, 20, n) * 10_000).astype(np.float64),
        "code": rng.choice(["a", "b", "", "c d"], n),
        "token": [f"t{i}" for i in range(n)],
        "flag": rng.random(n) < 0.3,
        "day": [date(2024, 1, 1 + i % 28) for i in range(n)],
        "level": pl.Series(rng.choice(["x", "y"], n), dtype=pl.Categorical),
        "tags": [[i % 3, i % 5] for i in range(n)],
    }).with_columns(
        pl.when(pl.col("id") % 11 == 0).then(None).otherwise(pl.col("small")).alias("small"),
        pl.when(pl.col("id") % 13 == 0).then(float("nan")).when(pl.col("id") % 17 == 0).then(None).otherwise(pl.col("amount")).alias("amount"),
        pl.when(pl.col("id") % 19 == 0).then(None).otherwise(pl.col("code")).alias("code"),
        pl.lit(datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)).alias("_ingested_at"),
    )


def column_encodings(path) -> dict[str, set[str]]:
    meta = pq.ParquetFile(path).metadata
    out: dict[str, set[str]] = {}
    for g in range(meta.num_row_groups):
        for i in range(meta.num_columns):
            col = meta.row_group(g).column(i)
            out.setdefault(col.path_in_schema.split(".")[0], set()).update(col.encodings)
    return out


def test_round_trip_keeps_every_value_type_and_null(tmp_path):
    frame = mixed_frame()
    path = tmp_path / "out.parquet"
    write_parquet(frame, str(path))
    back = pl.read_parquet(path)
    assert back.schema == frame.schema
    assert back.equals(frame)  # NaN, nulls, empty strings and order survive


def test_encoding_chosen_per_column(tmp_path):
    path = tmp_path / "out.parquet"
    write_parquet(mixed_frame(), str(path))
    enc = column_encodings(path)
    for col in ("id", "small", "big", "day", "_ingested_at"):
        assert "DELTA_BINARY_PACKED" in enc[col], col
    assert "BYTE_STREAM_SPLIT" in enc["amount"]
    for col in ("rounded", "code", "level"):
        assert "RLE_DICTIONARY" in enc[col], col
    assert "RLE_DICTIONARY" not in enc["token"] and "RLE_DICTIONARY" not in enc["id"]
    stats = pq.ParquetFile(path).metadata.row_group(0)
    with_stats = {stats.column(i).path_in_schema: stats.column(i).is_stats_set for i in range(stats.num_columns)}
    assert with_stats["id"] and with_stats["amount"] and with_stats["day"]
    assert not with_stats["code"] and not with_stats["token"]  # min/max of text serve no query


def test_chunks_become_bounded_row_groups_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "ROW_GROUP_MAX_ROWS", 2_000)
    frame = mixed_frame(9_001).filter(pl.col("id") % 2 == 0)
    path = tmp_path / "out.parquet"
    write_parquet(frame, str(path), chunk_rows=2_500)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups > 1
    assert max(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) <= 2_000
    assert pl.read_parquet(path).equals(frame)


def test_no_rows_still_writes_the_schema(tmp_path):
    frame = mixed_frame()
    path = tmp_path / "out.parquet"
    write_parquet(frame.head(0), str(path))
    back = pl.read_parquet(path)
    assert back.height == 0 and back.schema == frame.schema


def test_chunk_writer_needs_the_columns_only_when_nothing_was_written(tmp_path):
    frame = mixed_frame(10)
    written = parquet.ParquetChunkWriter(str(tmp_path / "written.parquet"))
    written.write(frame)
    written.close()
    assert pl.read_parquet(tmp_path / "written.parquet").equals(frame)
    untouched = parquet.ParquetChunkWriter(str(tmp_path / "none.parquet"))
    with pytest.raises(ValueError, match="nothing was written"):
        untouched.close()
    untouched.close(frame.head(0))
    assert pl.read_parquet(tmp_path / "none.parquet").schema == frame.schema
