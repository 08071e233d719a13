"""Row-level cleaning and validation rules as polars expressions.

`resolve_cleaning_spec` turns the config plus the raw columns into a `CleaningSpec`: a plain,
JSON-serialisable description of every rename, cast, code fix and rule. The same spec is
stored with the silver layer and reused at inference, so a raw record is cleaned by exactly
the same expressions in training and in serving.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from pipeline_core.config import CleaningConfig, DatasetConfig
from pipeline_core.errors import ConfigError, DataError
from pipeline_core.naming import silver_name

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = ("_source", "_batch_id", "_ingested_at")
REASON = "_reason"
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


def _numeric_share(values: pl.Series) -> tuple[float, bool]:
    """Share of non-null text values that parse as numbers, and whether all are integral."""
    text = values.cast(pl.String).str.strip_chars()
    text = text.filter(text.is_not_null() & ~text.is_in(NULL_TOKENS))
    if text.len() == 0:
        return 0.0, False
    nums = text.cast(pl.Float64, strict=False)
    ok = nums.drop_nulls()
    share = ok.len() / text.len()
    integral = ok.len() > 0 and bool((ok == ok.floor()).all()) and bool((ok.abs() < 2**53).all())
    return share, integral


def infer_type(values: pl.Series, threshold: float) -> str:
    """Column type for a column the config does not type, from its dtype or a sample of its text."""
    dtype = values.dtype
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    if dtype == pl.String:
        share, integral = _numeric_share(values)
        if share >= threshold:
            return "int" if integral else "float"
    return "str"


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
    types: dict[str, str] = {}
    for raw, new in renames.items():
        types[new] = declared.get(new) or infer_type(sample.get_column(raw), cleaning.numeric_parse_threshold)

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
        ranges={resolve(k, f"cleaning.ranges.{k}"): r.model_dump() for k, r in cleaning.ranges.items()},
        allowed_values={resolve(k, f"cleaning.allowed_values.{k}"): list(v) for k, v in cleaning.allowed_values.items()},
        id_column=id_column,
        target=target,
        deduplicate=cleaning.deduplicate,
    )


def _resolve_required(ref: str | None, key: str, resolve: Any, source: str, cols: list[str]) -> str:
    try:
        return resolve(ref, key)
    except ConfigError:
        raise DataError(f"{source}: {key} column '{ref}' is missing; columns are {cols}") from None


# -- expressions ---------------------------------------------------------------------

def _text(raw: str) -> pl.Expr:
    """The raw value as trimmed text with the usual missing-value tokens turned into null."""
    t = pl.col(raw).cast(pl.String).str.strip_chars()
    return pl.when(t.is_in(NULL_TOKENS)).then(None).otherwise(t)


def cast_expr(raw: str, kind: str, raw_dtype: pl.DataType) -> pl.Expr:
    """Cast one raw column to its silver type; values that do not parse become null."""
    if kind == "str":
        return _text(raw) if raw_dtype == pl.String else pl.col(raw).cast(pl.String)
    source = _text(raw) if raw_dtype == pl.String else pl.col(raw)
    if kind == "bool":
        if raw_dtype == pl.Boolean:
            return pl.col(raw)
        low = source.cast(pl.String).str.to_lowercase()
        return pl.when(low.is_in(_TRUE)).then(True).when(low.is_in(_FALSE)).then(False).otherwise(None)
    as_float = source.cast(pl.Float64, strict=False)
    if kind == "float":
        return as_float
    # int: accept "3" and "3.0", refuse "3.5"
    return pl.when(as_float == as_float.floor()).then(as_float).otherwise(None).cast(pl.Int64, strict=False)


def _present(raw: str, raw_dtype: pl.DataType) -> pl.Expr:
    return _text(raw).is_not_null() if raw_dtype == pl.String else pl.col(raw).is_not_null()


def _mapped(expr: pl.Expr, kind: str, mapping: dict[str, Any]) -> pl.Expr:
    convert = {"int": int, "float": float, "bool": lambda v: str(v).lower() in _TRUE, "str": str}[kind]
    old = [convert(float(k)) if kind == "int" else convert(k) for k in mapping]
    new = [None if v is None else convert(v) for v in mapping.values()]
    return expr.replace(old, new)


def cleaned_columns(spec: CleaningSpec, schema: pl.Schema) -> dict[str, pl.Expr]:
    """silver name -> expression computing the cleaned value from the raw columns."""
    out: dict[str, pl.Expr] = {}
    for raw, name in spec.renames.items():
        kind = spec.types[name]
        expr = cast_expr(raw, kind, schema[raw]) if raw in schema else pl.lit(None, dtype=_polars_type(kind))
        if name in spec.value_maps:
            expr = _mapped(expr, kind, spec.value_maps[name])
        out[name] = expr
    return out


def _polars_type(kind: str) -> pl.DataType:
    return {"int": pl.Int64(), "float": pl.Float64(), "str": pl.String(), "bool": pl.Boolean()}[kind]


def rule_checks(spec: CleaningSpec, schema: pl.Schema) -> list[tuple[str, pl.Expr]]:
    """(reason, failed?) pairs, each computed from the cleaned values."""
    cleaned = cleaned_columns(spec, schema)
    checks: list[tuple[str, pl.Expr]] = []
    cast_failed: dict[str, pl.Expr] = {}
    for raw, name in spec.renames.items():
        if raw in schema and spec.types[name] != "str":
            cast_failed[name] = _present(raw, schema[raw]) & cleaned[name].is_null()
            checks.append((f"cast:{name}", cast_failed[name]))
    for name in spec.not_null:
        # a value that was there but did not parse is a cast failure, not a missing value
        checks.append((f"null:{name}", cleaned[name].is_null() & ~cast_failed.get(name, pl.lit(False))))
    for name, bounds in spec.ranges.items():
        lo, hi = bounds.get("min"), bounds.get("max")
        fail = pl.lit(False)
        if lo is not None:
            fail = fail | (cleaned[name] < lo)
        if hi is not None:
            fail = fail | (cleaned[name] > hi)
        checks.append((f"range:{name}", fail.fill_null(False)))
    for name, values in spec.allowed_values.items():
        checks.append((f"allowed:{name}", cleaned[name].is_not_null() & ~cleaned[name].is_in(values)))
    return checks


def reason_expr(spec: CleaningSpec, schema: pl.Schema) -> pl.Expr:
    """All failed rules of a row joined by '; ', or null for a clean row."""
    parts = [pl.when(failed).then(pl.lit(reason)).otherwise(None) for reason, failed in rule_checks(spec, schema)]
    if not parts:
        return pl.lit(None, dtype=pl.String).alias(REASON)
    joined = pl.concat_str(parts, separator="; ", ignore_nulls=True)
    return pl.when(joined == "").then(None).otherwise(joined).alias(REASON)


def duplicate_expr(spec: CleaningSpec, schema: pl.Schema) -> pl.Expr:
    """True for a clean row whose id (or whole row, without an id) appears again later.

    Only clean rows compete, so an invalid later copy never pushes out a valid earlier one;
    the last clean copy wins because bronze batches are read oldest first.
    """
    clean = pl.col(REASON).is_null()
    if spec.id_column:
        key = cleaned_columns(spec, schema)[spec.id_column]
    else:
        key = pl.struct([e.alias(n) for n, e in cleaned_columns(spec, schema).items()])
    return clean & ~pl.when(clean).then(key).otherwise(None).is_last_distinct()


def flag_rows(frame: pl.LazyFrame, spec: CleaningSpec) -> pl.LazyFrame:
    """Raw rows plus a `_reason` column (null when the row is clean), duplicates included."""
    schema = frame.collect_schema()
    flagged = frame.with_columns(reason_expr(spec, schema))
    if not spec.deduplicate:
        return flagged
    dup_reason = f"duplicate:{spec.id_column or 'row'}"
    return flagged.with_columns(
        pl.when(duplicate_expr(spec, schema)).then(pl.lit(dup_reason)).otherwise(pl.col(REASON)).alias(REASON)
    )


def clean_rows(frame: pl.LazyFrame, spec: CleaningSpec, keep: list[str] | None = None) -> pl.LazyFrame:
    """Cleaned silver columns (plus any ``keep`` columns carried through unchanged)."""
    schema = frame.collect_schema()
    exprs = [e.alias(n) for n, e in cleaned_columns(spec, schema).items()]
    carried = [pl.col(c) for c in (keep or []) if c in schema and c not in spec.columns]
    return frame.select([*exprs, *carried])


def quarantine_rows(frame: pl.LazyFrame, spec: CleaningSpec) -> pl.LazyFrame:
    """Failed rows with their raw values (renamed, uncast) so the bad value stays visible."""
    schema = frame.collect_schema()
    cols = [pl.col(raw).cast(pl.String).alias(name) for raw, name in spec.renames.items() if raw in schema]
    lineage = [pl.col(c) for c in LINEAGE_COLUMNS if c in schema]
    return frame.filter(pl.col(REASON).is_not_null()).select([*cols, *lineage, pl.col(REASON)])
