"""The predictions' Parquet files, written chunk by chunk by pyarrow with an encoding chosen per column.

(The layers are Delta tables written by deltalake; this writer serves the scored batches.)
polars' own writer tries a dictionary for every column and only falls back to plain values
once the dictionary overflows, which is most of its cost on ids, amounts and free text. The
choice, per column:

- integers, dates and times: delta encoding (smaller and cheaper than a dictionary even for a
  handful of codes);
- other columns with few distinct values in the first rows (text codes, rounded amounts): a dictionary;
- other floats: byte-stream split, which zstd compresses well;
- other text: plain.

Column statistics (min/max) are kept for every column but text: they let readers skip row
groups on numbers and times, while min/max of raw text serve no query and cost CPU.
"""

from __future__ import annotations

from typing import Any

import polars as pl

COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1  # polars' default level 3 costs more CPU for barely smaller files
FEW_DISTINCT = 0.01  # a column gets a dictionary when at most this share of its first rows are distinct
ROW_GROUP_MAX_ROWS = 1_000_000


def encoding_plan(frame: pl.DataFrame) -> tuple[list[str], dict[str, str], list[str]]:
    """(dictionary columns, {column: encoding} of the others, columns with statistics) for ``frame``'s columns."""
    limit = max(16, int(frame.height * FEW_DISTINCT))
    flat = [name for name, dtype in frame.schema.items() if dtype in (pl.String, pl.Binary) or dtype.is_float() or dtype.is_decimal()]
    distinct = frame.select(pl.col(flat).n_unique()).row(0, named=True) if frame.height and flat else dict.fromkeys(flat, 0)
    dictionary: list[str] = []
    encoding: dict[str, str] = {}
    for name, dtype in frame.schema.items():
        if dtype.is_integer() or dtype.is_temporal():
            encoding[name] = "DELTA_BINARY_PACKED"
        elif isinstance(dtype, (pl.Categorical, pl.Enum)):
            dictionary.append(name)
        elif dtype in (pl.String, pl.Binary) or dtype.is_float() or dtype.is_decimal():
            if distinct[name] <= limit:
                dictionary.append(name)
            elif dtype.is_float():
                encoding[name] = "BYTE_STREAM_SPLIT"
        # booleans, nested and null columns keep pyarrow's plain encodings
    statistics = [name for name, dtype in frame.schema.items() if dtype != pl.String]
    return dictionary, encoding, statistics


def to_arrow(frame: pl.DataFrame) -> Any:
    """``frame`` as an Arrow table, text columns as string views.

    polars holds text as views, so handing them over needs no copy; converting them to plain
    Arrow strings would copy every cell.
    Parquet stores views as ordinary strings. Other types keep the classic Arrow layout, which
    the Parquet writer takes for every type (a categorical's view dictionary it does not).
    """
    import pyarrow as pa

    text = [c for c, dtype in frame.schema.items() if dtype == pl.String]
    if not text:
        return frame.to_arrow()
    views = frame.select(text).to_arrow(compat_level=pl.CompatLevel.newest())
    rest = frame.drop(text).to_arrow()
    return pa.table({c: (views if c in text else rest).column(c) for c in frame.columns})


class ParquetChunkWriter:
    """Appends frames to one Parquet file; the encodings are fixed by the first frame written."""

    def __init__(self, path: str, *, compression: str = COMPRESSION, statistics: bool = True) -> None:
        self.path = path
        self.compression = compression
        self.statistics = statistics
        self.writer: Any = None
        self.rows = 0

    def write(self, frame: pl.DataFrame) -> None:
        table = to_arrow(frame)
        if self.writer is None:
            self._open(table.schema, frame)
        self.writer.write_table(table.cast(self.schema), row_group_size=ROW_GROUP_MAX_ROWS)
        self.rows += frame.height

    def close(self, empty: pl.DataFrame | None = None) -> None:
        """Finish the file; ``empty`` (no rows, the right columns) gives the schema, needed only when nothing was written."""
        if self.writer is None:
            if empty is None:
                raise ValueError(f"{self.path}: nothing was written; pass an empty frame with the file's columns")
            self._open(to_arrow(empty).schema, empty)
        self.writer.close()

    def abandon(self) -> None:
        """Release the file after a failure without finishing it."""
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - a second error would hide the first
                pass

    def _open(self, schema: Any, frame: pl.DataFrame) -> None:
        import pyarrow.parquet as pq

        dictionary, encoding, statistics = encoding_plan(frame)
        self.schema = schema
        level = {"compression_level": COMPRESSION_LEVEL} if self.compression == "zstd" else {}
        self.writer = pq.ParquetWriter(self.path, schema, use_dictionary=dictionary, column_encoding=encoding or None,
                                       write_statistics=statistics if self.statistics else False,
                                       compression=self.compression, **level)
