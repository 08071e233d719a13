"""The cleaning spec: every rename, cast, code fix and rule, resolved against the raw columns.

`resolve_cleaning_spec` turns the config plus a sample of raw rows into a `CleaningSpec`, a plain
JSON-serialisable record. The same spec is stored with silver and travels inside the served
model, so a raw record is cleaned by exactly the same expressions in training and in serving.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from pipeline_core.cleaning.naming import silver_name
from pipeline_core.config import CleaningConfig, DatasetConfig
from pipeline_core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = ("_source", "_batch_id", "_ingested_at", "_row")  # _row: the record's number in its source (1 = first)
REASON = "_reason"
# Names the pipeline adds: a source column of the same name would lose its values to them.
RESERVED_COLUMNS = (*LINEAGE_COLUMNS, REASON, "prediction", "probability", "inference_timestamp", "model_name", "model_version")


def reserved_names(columns: list[str]) -> list[str]:
    """The source columns whose names the pipeline uses for its own columns (compared case-sensitively, as polars does)."""
    return [c for c in columns if c in RESERVED_COLUMNS]


def case_clashes(columns: list[str]) -> list[tuple[str, str]]:
    """Pairs of columns whose names differ only in case: a Delta table's names are case-insensitive."""
    seen: dict[str, str] = {}
    clashes = []
    for c in columns:
        if c.lower() in seen:
            clashes.append((seen[c.lower()], c))
        seen.setdefault(c.lower(), c)
    return clashes


def missing_required(dataset: DatasetConfig, cleaning: CleaningConfig, columns: list[str]) -> list[str]:
    """The configured target and id columns (``key 'name'``) that a batch with ``columns`` lacks; raw or cleaned names both count."""
    names = set(columns) | {silver_name(c, cleaning.rename, cleaning.snake_case) for c in columns}
    refs = [("dataset.target", dataset.target), ("dataset.id_column", dataset.id_column)]
    return [f"{key} '{ref}'" for key, ref in refs
            if ref and ref not in names and silver_name(ref, cleaning.rename, cleaning.snake_case) not in names]
NULL_TOKENS = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"]
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]


@dataclass(frozen=True)
class CleaningSpec:
    """Everything row-level cleaning needs, resolved against real column names."""

    renames: dict[str, str]  # raw name -> silver name, in output order
    dropped: list[str]
    types: dict[str, str]  # silver name -> int | float | str | bool
    value_maps: dict[str, dict[str, Any]] = field(default_factory=dict)  # keys as strings
    not_null: list[str] = field(default_factory=list)
    ranges: dict[str, dict[str, float | None]] = field(default_factory=dict)
    allowed_values: dict[str, list[Any]] = field(default_factory=dict)
    id_column: str | None = None
    target: str = ""
    deduplicate: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CleaningSpec:
        return cls(**data)

    @property
    def columns(self) -> list[str]:
        return list(self.renames.values())


def infer_types(sample: pl.DataFrame, threshold: float, columns: list[str] | None = None) -> dict[str, str]:
    """Types (int | float | str | bool) of ``columns`` of ``sample``: from the dtype, and for text columns from the
    share of values that parse as numbers, all text columns in one pass."""
    columns = list(sample.columns) if columns is None else columns
    types: dict[str, str] = {}
    text = []
    for name in columns:
        dtype = sample.schema[name]
        if dtype == pl.Boolean:
            types[name] = "bool"
        elif dtype.is_integer():
            types[name] = "int"
        elif dtype.is_float():
            types[name] = "float"
        elif dtype == pl.String:
            text.append(name)
        else:
            types[name] = "str"
    if text:
        stats = _numeric_stats(sample.lazy(), text).collect().row(0, named=True)
        for i, name in enumerate(text):
            total, parsed = stats[f"{i}:text"], stats[f"{i}:parsed"]
            share = parsed / total if total else 0.0
            integral = parsed > 0 and bool(stats[f"{i}:integral"])
            types[name] = ("int" if integral else "float") if share >= threshold else "str"
    return {name: types[name] for name in columns}


def _numeric_stats(frame: pl.LazyFrame, text: list[str]) -> pl.LazyFrame:
    """Per text column: its non-null values, how many parse as numbers, whether those are all integral.

    Staged selects, so each column is stripped and parsed once (nulls drop out of the counts and of ``all``).
    """
    col = [f"{i}" for i in range(len(text))]
    stripped = frame.select(pl.col(name).str.strip_chars().alias(c) for name, c in zip(text, col))
    present = stripped.select(pl.when(~pl.col(c).is_in(NULL_TOKENS)).then(pl.col(c)).alias(c) for c in col)
    parsed = present.with_columns(pl.col(c).cast(pl.Float64, strict=False).alias(f"{c}:n") for c in col)
    return parsed.select(e for c in col for e in (
        pl.col(c).count().alias(f"{c}:text"),
        pl.col(f"{c}:n").count().alias(f"{c}:parsed"),
        ((pl.col(f"{c}:n") == pl.col(f"{c}:n").floor()) & (pl.col(f"{c}:n").abs() < 2**53)).all().alias(f"{c}:integral"),
    ))


def resolve_cleaning_spec(
    dataset: DatasetConfig, cleaning: CleaningConfig, sample: pl.DataFrame, source: str = "source"
) -> CleaningSpec:
    """Resolve config references against the raw columns of ``sample`` (raw or cleaned names both work)."""
    raw_columns = [c for c in sample.columns if c not in LINEAGE_COLUMNS]
    drop = {c for c in cleaning.drop_columns if c in raw_columns}
    drop |= {c for c in raw_columns if c.startswith("Unnamed: ") and c not in cleaning.rename}
    renames: dict[str, str] = {}
    for col in raw_columns:
        if col in drop:
            continue
        new = silver_name(col, cleaning.rename, cleaning.snake_case)
        if new in renames.values():
            other = next(k for k, v in renames.items() if v == new)
            raise DataError(f"{source}: columns '{other}' and '{col}' both become '{new}'; add a cleaning.rename entry for one")
        renames[col] = new
    unknown_renames = [k for k in cleaning.rename if k not in raw_columns]
    if unknown_renames:
        raise ConfigError(f"cleaning.rename: column(s) {unknown_renames} not in {source}; columns are {raw_columns}")

    silver_cols = list(renames.values())

    def resolve(ref: str, key: str) -> str:
        if ref in silver_cols:
            return ref
        name = silver_name(ref, cleaning.rename, cleaning.snake_case)
        if name in silver_cols:
            return name
        raise ConfigError(f"{key}: column '{ref}' not found in {source}; columns are {silver_cols}")

    target = _resolve_required(dataset.target, "dataset.target", resolve, source, silver_cols)
    id_column = _resolve_required(dataset.id_column, "dataset.id_column", resolve, source, silver_cols) if dataset.id_column else None

    declared = {resolve(k, f"cleaning.types.{k}"): v for k, v in cleaning.types.items()}
    inferred = infer_types(sample, cleaning.numeric_parse_threshold, [raw for raw, new in renames.items() if not declared.get(new)])
    types = {new: declared.get(new) or inferred[raw] for raw, new in renames.items()}

    ranges = {resolve(k, f"cleaning.ranges.{k}"): r.model_dump() for k, r in cleaning.ranges.items()}
    text_ranged = [f"{k} ({types[n]})" for k, n in zip(cleaning.ranges, ranges) if types[n] not in ("int", "float")]
    if text_ranged:
        raise ConfigError(f"cleaning.ranges: column(s) {', '.join(text_ranged)} in {source} are not numeric; a range needs numbers: "
                          "remove the rule, use cleaning.allowed_values, or declare the column in cleaning.types")
    not_null = [resolve(c, "cleaning.not_null") for c in cleaning.not_null]
    for required in (target, id_column):
        if required and required not in not_null:
            not_null.append(required)
    return CleaningSpec(
        renames=renames,
        dropped=sorted(drop),
        types=types,
        value_maps={resolve(k, f"cleaning.value_maps.{k}"): {str(a): b for a, b in m.items()} for k, m in cleaning.value_maps.items()},
        not_null=not_null,
        ranges=ranges,
        allowed_values={resolve(k, f"cleaning.allowed_values.{k}"): list(v) for k, v in cleaning.allowed_values.items()},
        id_column=id_column,
        target=target,
        deduplicate=bool(id_column) if cleaning.deduplicate is None else cleaning.deduplicate,
    )


def _resolve_required(ref: str | None, key: str, resolve: Any, source: str, cols: list[str]) -> str:
    try:
        return resolve(ref, key)
    except ConfigError:
        raise DataError(f"{source}: {key} column '{ref}' is missing; columns are {cols}") from None
