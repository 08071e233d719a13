"""Scoring of raw records, one chunk at a time: pure functions over frames and the loaded model.

Nothing here re-implements a step of training: each chunk goes through `cleaning_stages` and the
model's `feature_rows`, i.e. the code the silver and gold layers ran.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from pipeline_core.cleaning import (
    CLEAN,
    FAILED,
    PRESENT,
    REASON,
    CleaningSpec,
    CleaningStages,
    cleaning_stages,
    failed_expr,
    parsed_column,
    reason_expr,
)
from pipeline_core.errors import DataError
from pipeline_core.serving import feature_rows

OUTPUT_COLUMNS = ("prediction", "probability", "inference_timestamp", "model_name", "model_version")


@dataclass
class ScoringModel:
    uri: str
    name: str | None
    version: str | None
    run_id: str | None
    model: Any  # the RawRecordClassifier inside the MLflow pyfunc
    input_columns: list[str]


def inference_spec(cleaning: dict[str, Any], rules: bool) -> CleaningSpec:
    """Training's cleaning spec for scoring: no de-duplication, no rule on the target or the id.

    Uncastable values always quarantine a row; the silver rules (ranges, allowed values,
    not-null) do too unless ``rules`` is off, since the model never saw rows that break them.
    """
    spec = CleaningSpec.from_dict(cleaning)
    skip = {spec.target, spec.id_column}
    keep = (lambda c: c not in skip) if rules else (lambda c: False)
    return replace(spec, deduplicate=False, not_null=[c for c in spec.not_null if keep(c)],
                   ranges={c: r for c, r in spec.ranges.items() if keep(c)},
                   allowed_values={c: v for c, v in spec.allowed_values.items() if keep(c)})


def check_input_columns(columns: list[str], model: ScoringModel, source: str) -> None:
    id_raw = next((raw for raw, new in model.model.cleaning["renames"].items() if new == model.model.cleaning.get("id_column")), None)
    missing = [c for c in model.input_columns if c not in columns and c != id_raw]
    if missing:
        raise DataError(f"{source}: missing required column(s) {', '.join(missing)}; the model reads {', '.join(model.input_columns)}")
    clash = [c for c in OUTPUT_COLUMNS if c in columns]
    if clash:
        raise DataError(f"{source}: column(s) {', '.join(clash)} would be overwritten by the predictions; rename them first")


@dataclass
class FlaggedChunk:
    good: pl.DataFrame  # input columns of the rows that can be scored, numbers read as text parsed
    features: pl.DataFrame  # their features, as `feature_rows` makes them
    quarantined: pl.DataFrame  # input columns as text + _reason
    model_input: Any = None  # the features as the model's scikit-learn pipeline reads them

    @property
    def rows(self) -> int:
        return self.good.height + self.quarantined.height


@dataclass
class ScoredChunk:
    scored: pl.DataFrame  # input columns + prediction columns, in input order
    quarantined: pl.DataFrame  # input columns as text + _reason
    features: pl.DataFrame
    probabilities: np.ndarray
    predictions: np.ndarray


@dataclass(frozen=True)
class ChunkPlan:
    """The expressions `flag_chunk` applies to chunks of one input schema, built once per input.

    Built once per input: rebuilding them per chunk is Python work under the GIL, beside the model.
    """

    schema: pl.Schema  # of the input chunks
    cleaning: CleaningStages
    kept: tuple[pl.Expr, ...]  # input columns (numbers parsed), cleaned values, presence flags, the failure flag
    as_text: tuple[pl.Expr, ...]  # input columns as text, for the quarantine
    reason: pl.Expr


def chunk_plan(schema: pl.Schema, spec: CleaningSpec) -> ChunkPlan:
    cleaning = cleaning_stages(schema, spec, keep_parsed=True)
    staged = cleaning.apply(pl.LazyFrame(schema=schema)).collect_schema()
    originals = [pl.col(parsed_column(c)).alias(c) if parsed_column(c) in staged else pl.col(c) for c in schema]
    helpers = [pl.col(c) for c in staged if c.startswith((CLEAN, PRESENT))]
    return ChunkPlan(schema, cleaning, (*originals, *helpers, failed_expr(spec, staged)),
                     tuple(pl.col(c).cast(pl.String) for c in schema), reason_expr(spec, staged))


def flag_chunk(model: Any, raw: pl.DataFrame, spec: CleaningSpec, plan: ChunkPlan | None = None) -> FlaggedChunk:
    """Flag rows that cannot be scored, and featurise the rest with the model's own code.

    ``plan`` (from `chunk_plan` for ``raw``'s schema) saves rebuilding the expressions for every chunk.
    """
    if plan is None or plan.schema != raw.schema:
        plan = chunk_plan(raw.schema, spec)
    # Keep only what the steps below read, and stay lazy: an eager step on the wide staged frame
    # (raw, parsed, cleaned and presence columns) costs about as much as the cleaning itself.
    flagged = plan.cleaning.apply(raw.lazy()).select(plan.kept).collect()
    bad = flagged.get_column(FAILED)
    good = flagged.lazy().filter(~pl.col(FAILED))
    features = feature_rows(good, model.cleaning, model.features).collect()
    outputs = good.select(raw.columns).collect()
    if bad.any():  # reasons are joined for the few failing rows only: for every row they would cost a third of the cleaning
        quarantined = pl.concat([raw.lazy().filter(bad).select(plan.as_text),
                                 flagged.lazy().filter(pl.col(FAILED)).select(plan.reason)], how="horizontal").collect()
    else:
        quarantined = pl.DataFrame(schema=dict.fromkeys([*raw.columns, REASON], pl.String))
    return FlaggedChunk(outputs, features, quarantined, model.model_input(features) if outputs.height else None)


def predict_chunk(model: Any, flagged: FlaggedChunk, threshold: float, stamp: datetime,
                  name: str | None, version: str | None) -> ScoredChunk:
    """The model's probabilities for the rows that can be scored, appended to their input columns."""
    proba = model.pipeline.predict_proba(flagged.model_input)[:, 1] if flagged.good.height else np.zeros(0)
    pred = (proba >= threshold).astype("int64")
    scored = flagged.good.with_columns(
        pl.Series("prediction", pred, dtype=pl.Int64),
        pl.Series("probability", proba, dtype=pl.Float64),
        pl.lit(stamp, dtype=pl.Datetime("us", "UTC")).alias("inference_timestamp"),
        pl.lit(name or "", dtype=pl.String).alias("model_name"),
        pl.lit(version or "", dtype=pl.String).alias("model_version"),
    )
    return ScoredChunk(scored, flagged.quarantined, flagged.features, proba, pred)


SHADOW_COLUMNS = {"shadow_probability": pl.Float64, "shadow_model_version": pl.String}


def shadow_probabilities(shadow: Any, served: Any, flagged: FlaggedChunk) -> np.ndarray:
    """A shadow model's probabilities for the rows the served model scored.

    Trained on the same cleaning and features, it reads the served model's input as it is; otherwise
    it cleans and featurises the rows with its own specs, as it would when served.
    """
    if not flagged.good.height:
        return np.zeros(0)
    same = (shadow.cleaning, shadow.features, shadow.numeric, shadow.categorical) == \
           (served.cleaning, served.features, served.numeric, served.categorical)
    if same:
        return shadow.pipeline.predict_proba(flagged.model_input)[:, 1]
    return shadow.predict_proba(flagged.good.to_pandas())


def with_shadow(chunk: ScoredChunk, probabilities: np.ndarray, version: str | None) -> ScoredChunk:
    """The chunk's predictions with the shadow model's probability beside the served one's."""
    scored = chunk.scored.with_columns(pl.Series("shadow_probability", probabilities, dtype=pl.Float64),
                                       pl.lit(version or "", dtype=pl.String).alias("shadow_model_version"))
    return ScoredChunk(scored, chunk.quarantined, chunk.features, chunk.probabilities, chunk.predictions)


def score_chunk(model: Any, raw: pl.DataFrame, spec: CleaningSpec, threshold: float, stamp: datetime,
                name: str | None, version: str | None) -> ScoredChunk:
    """Flag, featurise and score one chunk of raw records."""
    return predict_chunk(model, flag_chunk(model, raw, spec), threshold, stamp, name, version)
