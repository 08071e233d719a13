"""Column profiles and feature roles: what each column is, how it is distributed, how much is missing.

The profile is the reference later drift checks compare against (decile histograms suit PSI).
"""

from __future__ import annotations

import re
from typing import Any, Callable

import polars as pl

from pipeline_core.config import PreprocessingConfig
from pipeline_core.errors import ConfigError

QUANTILES = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
DECILES = [i / 10 for i in range(1, 10)]
_ID_NAME = re.compile(r"(^|_)(id|uuid|index|key)$")
# The row names R's write.csv puts first unless told not to (pandas' "Unnamed: 0" never reaches gold: silver drops it).
_ROW_NAMES = re.compile(r"^row[._]?names$", re.IGNORECASE)
# Fewer rows than this, and a contiguous run of distinct integers could be a real feature.
MIN_ROWS_FOR_ROW_NUMBER = 100


# Columns aggregated per pass. The in-memory engine loads every column a selection touches (exact
# distinct counts and quantiles do not stream), so one selection over all columns would hold the
# whole gold table; a few at a time bound the peak by the pass, not the table (benchmarks/RESULTS.md).
COLUMNS_PER_PASS = 2


def aggregate_in_passes(frame: pl.LazyFrame, columns: list[str], exprs_for: Callable[[str], list[pl.Expr]]) -> dict[str, Any]:
    """One row of named aggregates, ``exprs_for(column)`` of every column, a few columns per pass."""
    row: dict[str, Any] = {}
    for i in range(0, len(columns), COLUMNS_PER_PASS):
        exprs = [e for c in columns[i:i + COLUMNS_PER_PASS] for e in exprs_for(c)]
        row.update(frame.select(exprs).collect().row(0, named=True))
    return row


def basic_profile(frame: pl.LazyFrame) -> dict[str, dict[str, Any]]:
    """dtype, null count and distinct count of every column, and ``numeric`` stats where numbers.

    ``numeric`` (see ``numeric_stats``) is there for every column whose values are numbers
    (integers, floats, booleans, dates, times), whatever role it later gets. One read of the data,
    a few columns at a time; each column is sorted once and its distinct count, quantiles and
    histogram are read off the sorted values. At 10M rows that took half the time of hashing every
    value for the distinct count and selecting quantiles from unsorted values.
    """
    schema = frame.collect_schema()
    rows = frame.select(pl.len()).collect().item()
    columns = list(schema)
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(columns), COLUMNS_PER_PASS):
        group = frame.select(columns[i:i + COLUMNS_PER_PASS]).collect()
        numeric = [c for c in group.columns if _numeric_dtype(group.schema[c])]
        summaries = _summaries(group, numeric)
        hashed = [c for c in group.columns if not _sortable(group.schema[c])]
        # Types that do not sort (lists, structs, ...) are hashed.
        unique = group.select(pl.col(hashed).n_unique(), pl.col(hashed).null_count().name.suffix("\x00nulls")).row(0, named=True) if hashed else {}
        ordered = group.select(pl.col(c).sort(nulls_last=True) for c in group.columns if c not in hashed)
        del group
        for c in columns[i:i + COLUMNS_PER_PASS]:
            entry: dict[str, Any] = {"dtype": str(schema[c]), "rows": rows}
            if c in hashed:
                entry["null_count"] = unique[f"{c}\x00nulls"]
                entry["n_unique"] = unique[c]
            else:
                values = _valid(ordered.get_column(c))
                entry["null_count"] = rows - values.len()
                entry["n_unique"] = values.n_unique() + (1 if entry["null_count"] else 0)
                if c in summaries:
                    entry["numeric"] = numeric_stats(summaries[c], values.cast(pl.Float64).set_sorted())
            out[c] = entry
    return out


def _numeric_dtype(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype.is_temporal() or dtype == pl.Boolean


def _sortable(dtype: pl.DataType) -> bool:
    return _numeric_dtype(dtype) or dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)


def _valid(ordered: pl.Series) -> pl.Series:
    """The non-null values of a series sorted with nulls last, flagged as sorted."""
    return ordered.head(ordered.len() - ordered.null_count()).set_sorted()


def _summaries(group: pl.DataFrame, columns: list[str]) -> dict[str, dict[str, Any]]:
    """min, max, mean and std, computed over the values in their stored order.

    (Summing sorted values would change the mean's last digits against every earlier profile.)
    """
    if not columns:
        return {}
    exprs = []
    for c in columns:
        x = pl.col(c).cast(pl.Float64)
        exprs += [x.min().alias(f"{c}\x00min"), x.max().alias(f"{c}\x00max"),
                  x.mean().alias(f"{c}\x00mean"), x.std().alias(f"{c}\x00std")]
    row = group.lazy().select(exprs).collect().row(0, named=True)
    return {c: {k: row[f"{c}\x00{k}"] for k in ("min", "max", "mean", "std")} for c in columns}


def numeric_stats(summary: dict[str, Any], values: pl.Series) -> dict[str, Any]:
    """Summary stats, quantiles and a decile histogram from a column's sorted non-null Float64 values.

    Histogram bins are ``(edge[i-1], edge[i]]`` between the distinct deciles, open at both ends;
    NaN sorts above every number and so falls in the last bin.
    """
    levels = {q: (values.quantile(q, "linear") if values.len() else None) for q in sorted(set(QUANTILES + DECILES))}
    edges = sorted({levels[q] for q in DECILES if levels[q] is not None})
    at_or_below = values.search_sorted(pl.Series(edges, dtype=pl.Float64), side="right").to_list() if edges else []
    bounds = [0, *at_or_below, values.len()]
    return {
        **summary,
        "quantiles": {str(q): levels[q] for q in QUANTILES},
        "histogram": {"edges": edges, "counts": [hi - lo for lo, hi in zip(bounds, bounds[1:])]},
    }


def infer_roles(profile: dict[str, dict[str, Any]], prep: PreprocessingConfig, target: str, id_column: str | None) -> dict[str, str]:
    """Role of each column: target, id, numeric, categorical, or set aside (id_like, row_number, constant, ...)."""
    columns = list(profile)
    for key, refs in (("numeric", prep.numeric), ("categorical", prep.categorical), ("exclude", prep.exclude)):
        unknown = [r for r in refs or [] if r not in columns]
        if unknown:
            raise ConfigError(f"preprocessing.{key}: column(s) {unknown} not in the gold layer; columns are {columns}")
    roles: dict[str, str] = {}
    for col, p in profile.items():
        rows = max(p["rows"], 1)
        non_null_unique = p["n_unique"] - (1 if p["null_count"] else 0)
        dtype = p["dtype"]
        if col == target:
            roles[col] = "target"
        elif col == id_column:
            roles[col] = "id"
        elif col.startswith("_"):
            roles[col] = "lineage"
        elif col in prep.exclude:
            roles[col] = "excluded"
        elif prep.numeric is not None and col in prep.numeric:
            roles[col] = "numeric"
        elif prep.categorical is not None and col in prep.categorical:
            roles[col] = "categorical"
        elif col.endswith("_missing") and dtype == "Int8":
            roles[col] = "numeric"  # missing-value indicators are always features
        elif prep.numeric is not None and prep.categorical is not None:
            roles[col] = "excluded"  # both lists given: they are the whole feature set
        elif non_null_unique <= 1:
            roles[col] = "constant"
        elif dtype in ("String", "Categorical") or dtype.startswith("Enum"):
            if non_null_unique <= prep.max_categories:
                roles[col] = "categorical"
            else:
                roles[col] = "id_like" if non_null_unique / rows > 0.95 else "high_cardinality"
        elif _ID_NAME.search(col) and dtype.startswith(("Int", "UInt")) and non_null_unique / rows > 0.95:
            roles[col] = "id_like"
        elif dtype.startswith(("Int", "UInt")) and (_ROW_NAMES.match(col) or _is_row_number(p)):
            roles[col] = "row_number"  # the file's row order: a model would learn where a row sat, not what it says
        else:
            roles[col] = "numeric"
    return roles


def _is_row_number(p: dict[str, Any]) -> bool:
    """Every row a different integer, together (nearly) one contiguous run: 1..n, 0..n-1, 1001..1000+n,
    with the gaps the rows quarantined or de-duplicated in silver leave (at most a tenth)."""
    stats = p.get("numeric") or {}
    rows = p["rows"]
    if rows < MIN_ROWS_FOR_ROW_NUMBER or p["null_count"] or p["n_unique"] != rows or stats.get("min") is None:
        return False
    return rows <= stats["max"] - stats["min"] + 1 <= rows / 0.9


def numeric_profile(frame: pl.LazyFrame, columns: list[str]) -> dict[str, dict[str, Any]]:
    """``numeric_stats`` of columns cast to Float64, for columns whose stored type is not a number."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(columns), COLUMNS_PER_PASS):
        group = frame.select(pl.col(columns[i:i + COLUMNS_PER_PASS]).cast(pl.Float64)).collect()
        summaries = _summaries(group, group.columns)
        ordered = group.select(pl.all().sort(nulls_last=True))
        out.update({c: numeric_stats(summaries[c], _valid(ordered.get_column(c))) for c in group.columns})
    return out


def categorical_profile(frame: pl.LazyFrame, columns: list[str], top: int) -> dict[str, dict[str, Any]]:
    """Level frequencies (top ``top`` levels) per categorical column."""
    out = {}
    for c in columns:
        # Count first, then cast the few distinct values (casting every row to text cost more than counting).
        counts = frame.select(pl.col(c).value_counts(sort=True, name="n")).unnest(c).head(top).collect()
        counts = counts.with_columns(pl.col(c).cast(pl.String))
        out[c] = {"levels": {str(k): v for k, v in zip(counts[c].to_list(), counts["n"].to_list())}}
    return out
