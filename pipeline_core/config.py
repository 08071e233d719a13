"""The pipeline's typed configuration: one pydantic model tree loaded from YAML.

Unknown keys are errors, every error names its key path, and any value can be overridden
from the command line with ``--set a.b.c=value``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError, field_validator, model_validator

from pipeline_core.errors import ConfigError
from pipeline_core.modeling.specs import DEFAULT_MODELS, MODEL_SPECS, validate_space
from pipeline_core.redaction import redact, redact_optional

Scalar = Union[bool, int, float, str]
# A location that may carry credentials: used as given, shown and stored (config snapshots,
# Prefect parameters, cache keys) without them.
Location = Annotated[str, PlainSerializer(redact, when_used="json")]
OptionalLocation = Annotated[str | None, PlainSerializer(redact_optional, when_used="json")]
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_SQL_DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")  # what Optuna's RDBStorage opens through SQLAlchemy


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class HttpSettings(StrictModel):
    timeout_seconds: float = Field(30.0, gt=0, description="Per-request timeout.")
    retries: int = Field(3, ge=0, le=20, description="Retries on 5xx and connection errors (never on 4xx).")
    backoff_seconds: float = Field(1.0, ge=0, description="First retry delay; doubles on each retry.")
    headers_from_env: dict[str, Annotated[str, Field(pattern=_ENV_NAME)]] = Field(
        default_factory=dict,
        description="Request headers whose values come from environment variables, e.g. {Authorization: SOURCE_TOKEN}; "
                    "sent to dataset.source's host only (also for predict inputs on that host).")


class DatasetConfig(StrictModel):
    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Names the dataset's folders in the store.")
    source: Location = Field(..., min_length=1, description="Local path, http(s):// URL or s3:// URI of the raw data.")
    format: Literal["auto", "csv", "parquet", "sqlite"] = Field("auto", description="Source format; auto = from the file extension.")
    table: str | None = Field(None, description="SQLite table to read; default: the only table in the database.")
    id_column: str | None = Field(None, description="Row identifier, used for de-duplication and carried to predictions.")
    target: str = Field(..., min_length=1, description="Binary target column.")
    positive_label: Scalar | None = Field(None, description="Target value meaning 'positive'; default: 1/true/yes when present.")
    csv_separator: str = Field(",", min_length=1, max_length=1)
    http: HttpSettings = Field(default_factory=HttpSettings)


class S3Settings(StrictModel):
    """Where s3:// lives. Credentials come only from the environment (AWS_ACCESS_KEY_ID, ...)."""

    endpoint_url: OptionalLocation = Field(None, description="S3-compatible endpoint; default: $AWS_ENDPOINT_URL, else AWS.")
    region: str | None = Field(None, description="Default: $AWS_REGION or $AWS_DEFAULT_REGION, else us-east-1.")

    @field_validator("endpoint_url")
    @classmethod
    def _http_endpoint(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:9000")
        return v


class RetentionConfig(StrictModel):
    """How long old table versions stay readable (time travel, --as-of) before `store vacuum` may delete their files."""

    days: float = Field(7.0, ge=0, le=36500, description="Versions newer than this many days stay readable after `pipeline-cli store vacuum`.")


class StoreConfig(StrictModel):
    root: Location = Field("data/store", min_length=1, description="Local folder or s3://bucket/prefix holding the layers.")
    s3: S3Settings = Field(default_factory=S3Settings)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @field_validator("root")
    @classmethod
    def _local_or_bucket(cls, v: str) -> str:
        if "://" not in v:
            return v
        scheme, rest = v.split("://", 1)
        if scheme != "s3":
            raise ValueError("a local folder or s3://bucket/prefix (no other scheme)")
        bucket = rest.split("/", 1)[0]
        if not bucket or "//" in rest.rstrip("/") or "@" in bucket:
            raise ValueError("name the bucket and a prefix without empty parts, e.g. s3://my-bucket/pipeline")
        return v


class RangeRule(StrictModel):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "RangeRule":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max}): no value could pass")
        return self


class CleaningConfig(StrictModel):
    drop_columns: list[str] = Field(default_factory=lambda: ["Unnamed: 0"], description="Index-like columns to drop; absent ones are ignored.")
    rename: dict[str, str] = Field(default_factory=dict, description="Raw name -> new name, applied before snake-casing.")
    snake_case: bool = True
    types: dict[str, Literal["int", "float", "str", "bool"]] = Field(default_factory=dict, description="Column types; others are inferred.")
    value_maps: dict[str, dict[Scalar, Scalar | None]] = Field(default_factory=dict, description="Per-column code fixes, e.g. invalid codes -> 'other'.")
    not_null: list[str] = Field(default_factory=list)
    ranges: dict[str, RangeRule] = Field(default_factory=dict)
    allowed_values: dict[str, list[Scalar]] = Field(default_factory=dict)
    deduplicate: bool | None = Field(
        None, description="Quarantine repeats as duplicates. Default: repeated ids where there is an id column; without one, "
                          "identical rows are observations and are kept (and counted). true: also identical rows without an "
                          "id column; false: never.")
    max_failure_rate: float = Field(0.05, ge=0, le=1, description="Fail the run when more rows than this share are quarantined.")
    numeric_parse_threshold: float = Field(0.95, gt=0, le=1, description="Share of values that must parse as numbers for a text column to be typed numeric.")


class FeaturesConfig(StrictModel):
    set: Literal["none", "credit_default", "phishing"] = Field("none", description="Domain feature set on top of the generic ones.")
    missing_indicators: list[str] | Literal["auto"] = Field("auto", description="Columns whose missingness is informative; auto = any with a null rate >= auto_missing_min_rate.")
    auto_missing_min_rate: float = Field(0.01, ge=0, le=1)
    age_bins: list[int] = Field(default_factory=lambda: [25, 35, 45, 55, 65], min_length=1,
                                description="Upper-exclusive age cut points (credit set).")

    @field_validator("age_bins")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if v != sorted(set(v)):
            raise ValueError("must be strictly increasing")
        return v


class PreprocessingConfig(StrictModel):
    numeric: list[str] | None = Field(None, description="Numeric feature columns; default: inferred.")
    categorical: list[str] | None = Field(None, description="Categorical feature columns; default: inferred.")
    exclude: list[str] = Field(default_factory=list, description="Columns never used as features.")
    max_categories: int = Field(50, ge=2, description="Text columns with more distinct values are set aside, not one-hot encoded.")
    scaler: Literal["robust", "standard", "minmax", "none"] = "robust"
    encoder: Literal["onehot"] = "onehot"
    numeric_imputation: Literal["median", "mean"] = "median"
    categorical_imputation: Literal["most_frequent", "constant"] = "most_frequent"


class ModelConfig(StrictModel):
    enabled: bool = True
    params: dict[str, Any] = Field(default_factory=dict, description="Fixed hyperparameters (used as-is when tuning is off).")
    search_space: dict[str, dict[str, Any]] | None = Field(
        None, description="Optuna space per hyperparameter: {type: int|float|categorical, low, high, log, choices}; default: built in."
    )


class TuningConfig(StrictModel):
    enabled: bool = True
    n_trials: int | None = Field(
        None, ge=1, description="Optional cap on trials per model (the study's total, also across workers and resumed runs); "
                                "default: as many as training.time_budget_seconds allows.")
    timeout_seconds: float | None = Field(
        None, gt=0, description="Optional cap on one model's tuning time, inside training.time_budget_seconds."
    )
    cv_folds: int = Field(5, ge=2, le=20)
    storage: OptionalLocation = Field(
        None, description="Optuna storage: an RDB URL (sqlite:///..., postgresql://...) or a journal file path; "
                          "default: in memory, or a journal file under the store root when n_workers > 1."
    )
    n_workers: int = Field(1, ge=1, le=64, description="Optuna worker processes sharing one study per model.")

    @field_validator("storage")
    @classmethod
    def _known_storage(cls, v: str | None) -> str | None:
        # Optuna finds out only when the first study opens, after the data layers ran
        if v is not None and "://" in v:
            scheme = v.split("://", 1)[0]
            if scheme.split("+", 1)[0].lower() not in _SQL_DIALECTS:
                raise ValueError(f"unknown storage scheme {scheme!r}; use an RDB URL ({', '.join(f'{d}://' for d in _SQL_DIALECTS)}) "
                                 "or a journal file path")
        return v


class ConcurrencyConfig(StrictModel):
    """How the model tasks of one training run are spread over cores or a Dask cluster."""

    task_runner: Literal["thread", "dask"] = Field("thread", description="thread: a bounded thread pool; dask: prefect-dask's DaskTaskRunner.")
    dask_address: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9+]*://\S+$",
        description="Scheduler of an existing Dask cluster (tcp://host:8786); default: a LocalCluster sized to the cores.",
    )
    max_models: int | None = Field(None, ge=1, description="Models trained at once; default: as many as the cores allow.")

    @model_validator(mode="after")
    def _address_needs_dask(self) -> "ConcurrencyConfig":
        if self.dask_address and self.task_runner != "dask":
            raise ValueError("training.concurrency.dask_address is set but training.concurrency.task_runner is not 'dask'")
        return self


class ThresholdConfig(StrictModel):
    objective: Literal["auto", "f1", "accuracy", "balanced_accuracy", "mcc", "cost", "fixed"] = Field(
        "auto", description="auto: the primary metric when it is f1, accuracy, balanced_accuracy or mcc, else f1.")
    fp_cost: float = Field(1.0, ge=0)
    fn_cost: float = Field(1.0, ge=0)
    fixed: float = Field(0.5, ge=0, le=1)


# What each training preset sets, under whatever the config sets itself (as AutoGluon's presets).
TRAINING_PRESETS: dict[str, dict[str, Any]] = {
    # strong defaults, no search, an ensemble: a first look, and the answer for large data
    "fast": {"time_budget_seconds": 60.0, "tuning": {"enabled": False}},
    "balanced": {},  # the field defaults below
    # more time and two more model families for the search and the ensemble
    "best": {"time_budget_seconds": 600.0,
             "models": {**{n: {} for n in DEFAULT_MODELS}, "hist_gradient_boosting": {}, "extra_trees": {}}},
}


# The keys of `classification_metrics` (a test keeps them equal), as a type: config validation and
# the JSON Schema name them, with no import of scikit-learn.
Metric = Literal["accuracy", "precision", "recall", "f1", "specificity", "fpr", "fnr", "balanced_accuracy", "mcc",
                 "roc_auc", "pr_auc", "brier", "ece"]


class TrainingConfig(StrictModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    preset: Literal["fast", "balanced", "best"] = Field(
        "balanced", description="fast: defaults and an ensemble, no tuning (60 s); balanced: the defaults here; "
                                "best: 600 s and six model families. Keys set in the config win over the preset.")
    time_budget_seconds: float | None = Field(
        120.0, gt=0, description="Wall time for all models together: defaults first, then tuning of the most promising, "
                                 "then the final fits; null: no limit (then training.tuning.n_trials, default 20, bounds tuning).")
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    primary_metric: Metric = Field("roc_auc", description="Metric that ranks models and gates promotion.")
    tie_breakers: list[Metric] = Field(default_factory=lambda: ["accuracy", "f1", "balanced_accuracy", "mcc"])
    rank_by: Literal["auto", "cv", "holdout"] = Field(
        "auto", description="What orders the leaderboard: the cross-validated mean of the primary metric (cv), or its holdout score "
                            "(holdout), the tie-breakers after either. auto: cv for a metric without a threshold (roc_auc, pr_auc, "
                            "brier, ece), whose five-fold mean is steadier than one holdout; holdout for a thresholded metric, "
                            "scored at each model's own threshold.")
    models: dict[str, ModelConfig] = Field(
        default_factory=lambda: {n: ModelConfig() for n in DEFAULT_MODELS},
        description="The models to train, each with its settings: a mapping given here replaces the default list "
                    "(as FLAML's estimator_list does), so name every model to train.")
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    ensemble: bool = Field(True, description="Add a greedy weighted ensemble of the models (on out-of-fold predictions) as a candidate.")
    refit_full: bool = Field(
        True, description="Refit the chosen model on training + holdout rows before registering it; its holdout metrics "
                          "stay those scored before the refit, and the gate compares the models as they were before it.")
    calibration: Literal["none", "isotonic", "sigmoid"] = Field(
        "none", description="Calibrate each model's probabilities with a map fitted on its out-of-fold predictions.")
    # `register` in the YAML; the attribute has another name because pydantic models have a `register` method
    registration: Literal["best", "all"] = Field(
        "best", alias="register",
        description="all: also register every candidate as <registered model>-<model>, to score any of them by URI.")
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
    n_jobs: int | None = Field(None, ge=1, description="Threads per model fit; default: the cores divided among concurrent models and tuning workers.")
    concurrency: ConcurrencyConfig = Field(default_factory=ConcurrencyConfig)
    export_dir: str | None = Field(None, min_length=1, description="Local folder to export the registered best model to (model, metadata, preprocessor, config); default: off.")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") not in TRAINING_PRESETS:
            return data  # no preset, or an unknown one: field validation names it
        preset = TRAINING_PRESETS[data["preset"]]
        merged = {**preset, **data}
        for section in ("tuning",):
            if isinstance(preset.get(section), dict) and isinstance(data.get(section), dict):
                merged[section] = {**preset[section], **data[section]}
        return merged

    @field_validator("models")
    @classmethod
    def _known_models(cls, v: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        unknown = [k for k in v if k not in MODEL_SPECS]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; allowed: {', '.join(MODEL_SPECS)}")
        if not any(m.enabled for m in v.values()):
            raise ValueError(f"no model is enabled: training.models names the models to train, in place of the default list "
                             f"({', '.join(DEFAULT_MODELS)}); name at least one that is not `enabled: false`")
        for name, model in v.items():
            if model.search_space:
                try:
                    validate_space(name, model.search_space)
                except ConfigError as exc:
                    raise ValueError(str(exc)) from None
        return v

    @field_validator("export_dir")
    @classmethod
    def _local_folder(cls, v: str | None) -> str | None:
        if v is not None and "://" in v:
            raise ValueError("must be a local folder (the MLflow store holds the remote copy)")
        return v


class PromotionConfig(StrictModel):
    """How sure the gate must be that a challenger beats the champion (both scored on the same holdout)."""

    min_improvement: float = Field(0.0, ge=0, description="The primary metric must improve by more than this (in its own units).")
    confidence: float = Field(0.95, ge=0, lt=1, description="Confidence of the paired bootstrap interval whose lower end must clear "
                                                            "min_improvement; 0 = a plain comparison of the two scores.")
    resamples: int = Field(1000, ge=100, le=100_000, description="Bootstrap resamples of the holdout rows.")
    shadow_min_rows: int | None = Field(
        None, ge=50, description="Promote the challenger on live evidence: once it has shadow-scored at least this many labelled rows "
                                 "beside the champion and the paired bootstrap on those rows clears min_improvement, it becomes champion. "
                                 "Default: off (the shadow comparison is reported, not acted on).")


class MlflowConfig(StrictModel):
    tracking_uri: OptionalLocation = Field(None, description="Default: sqlite:///<store.root>/mlflow.db (or ./results/mlflow.db for an s3 store).")
    experiment: str | None = Field(None, description="Default: the dataset name.")
    registered_model: str | None = Field(None, description="Default: <dataset name>-classifier. No '/', ':' or '@'.")
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    min_metrics: dict[Metric, float] = Field(
        default_factory=dict, description="Holdout bounds a model must meet to become champion: minimums, maximums for fpr, fnr, brier, ece.")

    @field_validator("min_metrics")
    @classmethod
    def _reachable(cls, v: dict[str, float]) -> dict[str, float]:
        for metric, bound in v.items():
            low = -1.0 if metric == "mcc" else 0.0
            if not low <= bound <= 1:
                raise ValueError(f"{metric}: {bound} is outside the metric's range [{low:g}, 1]")
        return v

    @field_validator("registered_model")
    @classmethod
    def _registrable(cls, v: str | None) -> str | None:
        # MLflow refuses '/' and ':' (found only after training), and '@' would read as an alias in models:/NAME@ALIAS
        if v is not None and (not v.strip() or v != v.strip() or any(c in v for c in "/:@")):
            raise ValueError("a registered model name cannot contain '/', ':' or '@', nor start or end with a space")
        return v


class InferenceConfig(StrictModel):
    chunk_size: int = Field(100_000, ge=1, description="Rows scored at a time; bounds memory, not the input size.")
    model_alias: str = Field("champion", pattern=r"^[A-Za-z0-9_-]+$",
                             description="Registry alias scored when no --model is given (letters, digits, '_' and '-').")
    quarantine_rules: bool = Field(True, description="Quarantine rows that break the silver rules (ranges, allowed values, not-null) as well as uncastable ones.")


class MonitoringConfig(StrictModel):
    """Drift thresholds, all effect sizes: p-values flag everything on large batches."""

    psi_warn: float = Field(0.1, ge=0, description="PSI at or above this is a warning.")
    psi_alert: float = Field(0.25, ge=0, description="PSI at or above this is drift.")
    ks_alert: float = Field(0.2, ge=0, le=1, description="KS statistic (numeric features) at or above this is drift.")
    null_rate_change: float = Field(0.1, ge=0, le=1, description="Absolute change of a column's null rate that counts as drift.")
    unseen_rate: float = Field(0.05, ge=0, le=1, description="Share of values in categories unseen in training that counts as drift.")
    prediction_psi_alert: float = Field(0.25, ge=0, description="PSI of the probability distribution against training that counts as drift.")
    min_rows: int = Field(100, ge=1, description="Below this many scored rows the batch is reported but not judged.")
    degraded_margin: float = Field(0.05, ge=0, description="Outcomes: the champion's realized primary metric below its holdout "
                                                           "score by more than this emits pipeline.performance.degraded.")
    rollback_margin: float | None = Field(None, ge=0, description="Outcomes: the champion's realized primary metric below the "
                                                                  "previous champion's by more than this rolls champion back; "
                                                                  "default: never automatically.")

    @model_validator(mode="after")
    def _warn_before_alert(self) -> MonitoringConfig:
        if self.psi_warn > self.psi_alert:
            raise ValueError(f"monitoring.psi_warn ({self.psi_warn}) is above monitoring.psi_alert ({self.psi_alert}); "
                             "a warning comes before drift")
        return self


class PipelineConfig(StrictModel):
    dataset: DatasetConfig
    store: StoreConfig = Field(default_factory=StoreConfig)
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)

    def section_json(self, *names: str) -> str:
        """Canonical JSON of some sections: the config part of a cache key."""
        data = {n: getattr(self, n).model_dump(mode="json") for n in names}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides; values are parsed as YAML scalars/lists."""
    result = json.loads(json.dumps(raw))  # deep copy of plain data
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. --set store.root=/tmp/store")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return result


def _format_error(source: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:3]:
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{path}'{_allowed_keys_hint(e['loc'])}")
        elif e["type"] == "missing":
            parts.append(f"missing required key '{path}'")
        else:
            given = e.get("input")
            # a section's own check names the key inside it; the whole section would not fit on the line
            got = "" if isinstance(given, (dict, list)) and e["type"] == "value_error" else f" (got {given!r})"
            parts.append(f"key '{path}': {e['msg']}{got}")
    more = f" (+{len(err.errors()) - 3} more)" if len(err.errors()) > 3 else ""
    return f"{source}: " + "; ".join(parts) + more


def _allowed_keys_hint(loc: tuple[Any, ...]) -> str:
    """The keys a section accepts, as the YAML spells them (a field's alias where it has one)."""
    model: Any = PipelineConfig
    for part in loc[:-1]:
        keys = {f.alias or n: f for n, f in model.model_fields.items()} if hasattr(model, "model_fields") else {}
        field = keys.get(str(part))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return ""
        model = field.annotation
    return "; allowed keys: " + ", ".join(f.alias or n for n, f in model.model_fields.items())


def parse_config(raw: Any, overrides: list[str] | None = None, source: str = "config") -> PipelineConfig:
    """Validate plain data (already parsed YAML) plus overrides into a config."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (dataset, store, ...), got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides or [])
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(source, err)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key '{key}' appears twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | os.PathLike[str], overrides: list[str] | None = None) -> PipelineConfig:
    """Load, override and validate a YAML config file."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: a folder, not a config file (pass --config path/to/config.yaml)")
    if not p.is_file():
        raise ConfigError(f"config file not found: {p} (pass --config path/to/config.yaml)")
    try:
        raw = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{p}: malformed YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text file") from None
    return parse_config(raw, overrides, source=str(p))


def config_json_schema() -> dict[str, Any]:
    return PipelineConfig.model_json_schema()
