"""The feature module: the single source of engineered features for training and inference.

Each feature is an expression factory; `engineer_features` applies them in one `with_columns`
on a LazyFrame, so the same code runs on a 10M-row silver table and on one raw record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from pipeline_core.cleaning.naming import silver_name
from pipeline_core.cleaning.spec import CleaningSpec
from pipeline_core.config import PipelineConfig, PreprocessingConfig
from pipeline_core.errors import ConfigError, DataError

BILL_COLUMNS = [f"bill_amt{i}" for i in range(1, 7)]  # bill_amt1 = most recent month
PAY_AMT_COLUMNS = [f"pay_amt{i}" for i in range(1, 7)]
CREDIT_COLUMNS = ["limit_bal", "age", *BILL_COLUMNS, *PAY_AMT_COLUMNS]
MISSING_SUFFIX = "_missing"


@dataclass(frozen=True)
class FeatureSpec:
    """What `engineer_features` needs, resolved and stored with the gold layer."""

    feature_set: str
    target: str
    positive_label: Any
    missing_indicators: list[str] = field(default_factory=list)
    age_bins: list[int] = field(default_factory=lambda: [25, 35, 45, 55, 65])
    id_column: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(**data)


# -- generic helpers -------------------------------------------------------------------

def missing_indicator(column: str) -> pl.Expr:
    """1 where the value is missing: keeps informative missingness after imputation."""
    return pl.col(column).is_null().cast(pl.Int8).alias(f"{column}{MISSING_SUFFIX}")


def safe_ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator, null when the denominator is not positive."""
    return pl.when(denominator > 0).then(numerator.cast(pl.Float64) / denominator).otherwise(None)


# -- credit-card default ---------------------------------------------------------------

def age_bin(cuts: list[int], column: str = "age") -> pl.Expr:
    """Age band label: cuts [25, 35] give '<25', '25-34', '35+'."""
    age = pl.col(column)
    expr = pl.when(age.is_null()).then(None).when(age < cuts[0]).then(pl.lit(f"<{cuts[0]}"))
    for lo, hi in zip(cuts, cuts[1:]):
        expr = expr.when(age < hi).then(pl.lit(f"{lo}-{hi - 1}"))
    return expr.otherwise(pl.lit(f"{cuts[-1]}+")).alias("age_bin")


def bill_trend() -> pl.Expr:
    """Least-squares slope of the monthly bill over the six months (oldest to newest)."""
    months = len(BILL_COLUMNS)
    centre = (months - 1) / 2
    denom = sum((t - centre) ** 2 for t in range(months))
    # bill_amt6 is the oldest month (t=0), bill_amt1 the newest (t=5).
    terms = [pl.col(c) * ((months - 1 - i) - centre) for i, c in enumerate(BILL_COLUMNS)]
    return (pl.sum_horizontal(terms, ignore_nulls=False) / denom).alias("bill_trend")


def pay_ratio() -> pl.Expr:
    """Share of the six months' bills that was paid (null when nothing was billed)."""
    paid = pl.sum_horizontal([pl.col(c) for c in PAY_AMT_COLUMNS], ignore_nulls=False)
    billed = pl.sum_horizontal([pl.col(c) for c in BILL_COLUMNS], ignore_nulls=False)
    return safe_ratio(paid, billed).alias("pay_ratio")


def utilization() -> pl.Expr:
    """Latest bill over the credit limit."""
    return safe_ratio(pl.col("bill_amt1"), pl.col("limit_bal")).alias("utilization")


def credit_default_features(spec: FeatureSpec) -> list[pl.Expr]:
    return [age_bin(spec.age_bins), bill_trend(), pay_ratio(), utilization()]


# -- phishing websites -----------------------------------------------------------------

PHISHING_INFORMATIVE_MISSING = ["line_of_code"]


def phishing_features(spec: FeatureSpec) -> list[pl.Expr]:
    # A page whose line count could not be measured is itself a phishing signal.
    return [missing_indicator(c) for c in PHISHING_INFORMATIVE_MISSING if c not in spec.missing_indicators]


FEATURE_SETS = {"none": lambda spec: [], "credit_default": credit_default_features, "phishing": phishing_features}
REQUIRED_COLUMNS = {"none": [], "credit_default": CREDIT_COLUMNS, "phishing": PHISHING_INFORMATIVE_MISSING}


def check_inputs(feature_set: str, columns: list[str], source: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS[feature_set] if c not in columns]
    if missing:
        raise DataError(f"{source}: features.set={feature_set} needs column(s) {missing}; set features.set: none for a generic dataset")


def target_expr(target: str, positive_label: Any) -> pl.Expr:
    """The target as 0/1 (null stays null)."""
    as_text = pl.col(target).cast(pl.String).str.to_lowercase()
    return pl.when(pl.col(target).is_null()).then(None).otherwise((as_text == label_text(positive_label)).cast(pl.Int8)).alias(target)


def label_text(value: Any) -> str:
    """Canonical text of a label, so that 1, 1.0, '1' and True compare as the same."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().lower()


def resolve_positive_label(values: list[Any], configured: Any, target: str) -> Any:
    """The positive class among the target's observed values."""
    distinct = sorted({label_text(v) for v in values if v is not None})
    if len(distinct) > 2:
        raise DataError(f"target '{target}' has {len(distinct)} classes {distinct[:10]}; only binary targets are supported")
    if len(distinct) < 2:
        raise DataError(f"target '{target}' has a single class {distinct}; a classifier needs both classes")
    if configured is not None:
        if label_text(configured) not in distinct:
            raise ConfigError(f"dataset.positive_label: {configured!r} is not a value of target '{target}'; values are {distinct}")
        return label_text(configured)
    for candidate in ("1", "true", "yes", "y", "positive"):
        if candidate in distinct:
            return candidate
    raise ConfigError(f"dataset.positive_label: target '{target}' has values {distinct}; set dataset.positive_label to one of them")


def engineer_features(frame: pl.LazyFrame, spec: FeatureSpec) -> pl.LazyFrame:
    """Silver-shaped rows -> feature rows: missing indicators, then the domain set, in one pass."""
    exprs = [missing_indicator(c) for c in spec.missing_indicators]
    exprs += FEATURE_SETS[spec.feature_set](spec)
    if spec.target in frame.collect_schema():
        exprs.append(target_expr(spec.target, spec.positive_label))
    return frame.with_columns(exprs)


# -- resolving the config against silver ----------------------------------------------

def resolve_feature_spec(config: PipelineConfig, silver_report: dict[str, Any], target_values: list[Any]) -> FeatureSpec:
    """Pick the missing indicators and the positive label; check the feature set's inputs."""
    spec = CleaningSpec.from_dict(silver_report["cleaning_spec"])
    cols = spec.columns
    feats = config.features
    check_inputs(feats.set, cols, f"silver/{config.dataset.name}")
    if feats.missing_indicators == "auto":
        rates = silver_report["null_rates"]
        indicators = [c for c in cols if c not in (spec.target, spec.id_column) and rates.get(c, 0) >= feats.auto_missing_min_rate and rates.get(c, 0) > 0]
    else:
        indicators = []
        for ref in feats.missing_indicators:
            name = silver_name(ref, config.cleaning.rename, config.cleaning.snake_case)
            if name not in cols:
                raise ConfigError(f"features.missing_indicators: column '{ref}' not in silver; columns are {cols}")
            indicators.append(name)
    return FeatureSpec(
        feature_set=feats.set,
        target=spec.target,
        positive_label=resolve_positive_label(target_values, config.dataset.positive_label, spec.target),
        missing_indicators=indicators,
        age_bins=list(feats.age_bins),
        id_column=spec.id_column,
    )


def resolve_preprocessing_refs(config: PipelineConfig) -> PreprocessingConfig:
    """The preprocessing column lists with raw names turned into silver names."""
    prep = config.preprocessing
    clean = config.cleaning

    def names(refs: list[str] | None) -> list[str] | None:
        return None if refs is None else [silver_name(r, clean.rename, clean.snake_case) for r in refs]

    return prep.model_copy(update={"numeric": names(prep.numeric), "categorical": names(prep.categorical), "exclude": names(prep.exclude)})
