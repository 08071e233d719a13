"""Duplicate detection: by id where the dataset has one, else by the whole cleaned row."""

from __future__ import annotations

import polars as pl

from pipeline_core.cleaning.expressions import CLEAN, PRESENT, reason_expr, with_cleaned
from pipeline_core.cleaning.spec import REASON, CleaningSpec


def duplicate_expr(spec: CleaningSpec) -> pl.Expr:
    """True for a clean row whose id (or whole row, without an id) appears again later.

    Only clean rows compete, so an invalid later copy never pushes out a valid earlier one;
    the last clean copy wins because bronze batches are read oldest first.
    """
    clean = pl.col(REASON).is_null()
    if spec.id_column:
        key = pl.col(CLEAN + spec.id_column)
    else:
        key = pl.struct([pl.col(CLEAN + n).alias(n) for n in spec.columns])
    return clean & ~pl.when(clean).then(key).otherwise(None).is_last_distinct()


def duplicate_reason(spec: CleaningSpec) -> str:
    return f"duplicate:{spec.id_column or 'row'}"


def flag_rows(frame: pl.LazyFrame, spec: CleaningSpec, deduplicate: bool = True) -> pl.LazyFrame:
    """Raw rows, their cleaned values and a `_reason` column (null when the row is clean), duplicates included.

    ``deduplicate=False`` leaves duplicates unflagged: a whole-frame window cannot stream, so large
    inputs flag them in a separate pass (`duplicate_rows` + `mark_duplicates`).
    """
    staged = with_cleaned(frame, spec)
    schema = staged.collect_schema()
    flagged = staged.with_columns(reason_expr(spec, schema))
    if spec.deduplicate and deduplicate:
        flagged = flagged.with_columns(
            pl.when(duplicate_expr(spec)).then(pl.lit(duplicate_reason(spec))).otherwise(pl.col(REASON)).alias(REASON)
        )
    return flagged.drop([c for c in schema if c.startswith(PRESENT)])


def duplicate_rows(flagged: pl.LazyFrame, spec: CleaningSpec, row: str, within: pl.Expr | None = None,
                   skip: pl.Series | None = None) -> pl.Series:
    """Row numbers (column ``row``, in input order) of the clean rows that `duplicate_expr` flags.

    ``within`` is an expression (the batch) inside whose values copies count as duplicates; ``skip``
    holds row numbers already set aside. Reads only the key and the row number, so memory follows
    the number of distinct keys rather than the width and length of the rows.
    """
    keys = [CLEAN + spec.id_column] if spec.id_column else [CLEAN + n for n in spec.columns]
    clean = flagged.filter(pl.col(REASON).is_null())
    if skip is not None and not skip.is_empty():
        clean = clean.filter(~pl.col(row).is_in(skip.implode()))
    if within is not None:
        clean = clean.with_columns(within.alias("\x00within"))
        keys = ["\x00within", *keys]
    clean = clean.select(row, *keys)
    last = clean.group_by(keys).agg(pl.col(row).max())
    return clean.join(last.select(row), on=row, how="anti").select(row).collect(engine="streaming")[row]


def mark_duplicates(flagged: pl.LazyFrame, spec: CleaningSpec, row: str, rows: pl.Series) -> pl.LazyFrame:
    """``flagged`` with the duplicate reason on the given rows (see `duplicate_rows`)."""
    if rows.is_empty():
        return flagged
    return flagged.with_columns(
        pl.when(pl.col(row).is_in(rows.implode())).then(pl.lit(duplicate_reason(spec))).otherwise(pl.col(REASON)).alias(REASON)
    )
