"""Cleaning and validation of raw rows: the spec (`spec`), its polars expressions (`expressions`),
duplicates (`dedup`), column naming (`naming`) and the layer's checks (`validation`)."""

from pipeline_core.cleaning.dedup import duplicate_expr, duplicate_reason, duplicate_rows, flag_rows, mark_duplicates
from pipeline_core.cleaning.expressions import (
    CLEAN,
    FAILED,
    PRESENT,
    CleaningStages,
    clean_rows,
    cleaning_stages,
    failed_expr,
    parsed_column,
    quarantine_rows,
    reason_expr,
    rule_checks,
    with_cleaned,
)
from pipeline_core.cleaning.spec import (
    LINEAGE_COLUMNS,
    NULL_TOKENS,
    REASON,
    RESERVED_COLUMNS,
    CleaningSpec,
    case_clashes,
    infer_types,
    missing_required,
    reserved_names,
    resolve_cleaning_spec,
)
from pipeline_core.cleaning.validation import check_failure_rate, count_reasons, schema_diff, validation_report, with_lineage

__all__ = [
    "CLEAN", "FAILED", "LINEAGE_COLUMNS", "NULL_TOKENS", "PRESENT", "REASON", "RESERVED_COLUMNS", "CleaningSpec", "CleaningStages", "case_clashes", "clean_rows",
    "check_failure_rate", "cleaning_stages", "count_reasons", "duplicate_expr", "duplicate_reason", "duplicate_rows", "failed_expr", "flag_rows", "infer_types",
    "mark_duplicates", "missing_required", "parsed_column", "quarantine_rows", "reason_expr", "reserved_names", "resolve_cleaning_spec", "rule_checks", "schema_diff", "validation_report", "with_lineage", "with_cleaned",
]
