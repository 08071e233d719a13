import polars as pl
import pytest

from pipeline_core.cleaning import (
    FAILED,
    REASON,
    CleaningSpec,
    clean_rows,
    duplicate_rows,
    failed_expr,
    flag_rows,
    infer_types,
    mark_duplicates,
    parsed_column,
    quarantine_rows,
    reason_expr,
    resolve_cleaning_spec,
    with_cleaned,
)
from pipeline_core.config import CleaningConfig, DatasetConfig
from pipeline_core.errors import ConfigError, DataError

RAW = pl.DataFrame(
    {
        "Unnamed: 0": ["0", "1", "2", "3", "4", "5"],
        "ID": ["1", "2", "3", "2", "4", "5"],
        "AGE": ["30", "abc", "150", "41", "", "22"],
        "EDUCATION": ["1", "0", "2", "5", "3", "9"],
        "Label": ["1", "0", "0", "1", "0", None],
    }
)
DATASET = DatasetConfig(name="t", source="t.csv", target="Label", id_column="ID")
CLEANING = CleaningConfig(
    types={"ID": "int", "AGE": "int", "EDUCATION": "int"},
    value_maps={"EDUCATION": {0: 4, 5: 4}},
    ranges={"AGE": {"min": 18, "max": 100}},
    allowed_values={"EDUCATION": [1, 2, 3, 4]},
)


def spec():
    return resolve_cleaning_spec(DATASET, CLEANING, RAW)


def test_spec_resolves_names_and_drops_index():
    s = spec()
    assert s.renames == {"ID": "id", "AGE": "age", "EDUCATION": "education", "Label": "label"}
    assert s.dropped == ["Unnamed: 0"]
    assert s.target == "label" and s.id_column == "id"
    assert s.types["label"] == "int"  # inferred from text
    assert set(s.not_null) == {"label", "id"}


def test_reasons_per_row_hand_computed():
    flagged = flag_rows(RAW.lazy(), spec()).collect()
    assert flagged[REASON].to_list() == [
        None,                        # clean
        "cast:age",                  # 'abc' is not a number; id 2 also repeats, but only clean rows compete
        "range:age",                 # 150 > 100
        None,                        # id 2 again: the only clean copy, kept
        None,                        # empty age is missing, not a cast failure
        "null:label; allowed:education",  # 9 is not an allowed code; no label
    ]


def test_failed_flag_is_true_exactly_where_a_reason_is_given():
    s = spec()
    staged = with_cleaned(RAW.lazy(), s)
    schema = staged.collect_schema()
    out = staged.select(failed_expr(s, schema), reason_expr(s, schema)).collect()
    assert out[FAILED].to_list() == [False, True, True, False, False, True]
    assert out[FAILED].to_list() == out[REASON].is_not_null().to_list()
    no_rules = CleaningSpec(renames={"ID": "id"}, dropped=[], types={"id": "str"})
    assert pl.DataFrame({"ID": ["a"]}).select(failed_expr(no_rules, pl.Schema({"ID": pl.String})))[FAILED].to_list() == [False]


def test_parsed_numbers_are_the_values_sent_before_code_maps():
    raw = RAW.with_columns(pl.Series("AGE", ["30", " 41 ", "150", "41.0", "NA", "x"]))
    staged = with_cleaned(raw.lazy(), spec(), keep_parsed=True).collect()
    assert staged[parsed_column("AGE")].to_list() == [30, 41, 150, 41, None, None]
    assert staged[parsed_column("EDUCATION")].to_list() == [1, 0, 2, 5, 3, 9]  # 0 and 5 unmapped
    assert staged.schema[parsed_column("ID")] == pl.Int64
    assert parsed_column("Label") in staged.columns and parsed_column("Unnamed: 0") not in staged.columns
    assert not any(c.startswith("__parsed__") for c in with_cleaned(raw.lazy(), spec()).collect_schema())


@pytest.mark.parametrize("typed", [False, True])
def test_infinite_numbers_are_cast_failures(typed):
    raw = pl.DataFrame({"ID": ["1", "2", "3", "4", "5", "6", "7"], "AMOUNT": ["1.5", "inf", "-inf", "1e400", "", "-1e308", "3e38"],
                        "Label": ["0", "1", "0", "1", "0", "1", "0"]})
    s = resolve_cleaning_spec(DATASET, CleaningConfig(types={"AMOUNT": "float"}), raw)
    if typed:  # a Parquet source arrives with the column already numeric
        raw = raw.with_columns(pl.col("AMOUNT").cast(pl.Float64, strict=False))
    reasons = flag_rows(raw.lazy(), s).collect()[REASON].to_list()
    # beyond float32 (what the boosters compute in) is an overflow too; 3e38 still fits
    assert reasons == [None, "cast:amount", "cast:amount", "cast:amount", None, "cast:amount", None]


def test_duplicate_ids_keep_last_clean_row():
    raw = pl.DataFrame({"ID": ["1", "1", "2", "1"], "Label": ["0", "1", "1", "0"]})
    s = resolve_cleaning_spec(DATASET, CleaningConfig(), raw)
    reasons = flag_rows(raw.lazy(), s).collect()[REASON].to_list()
    assert reasons == ["duplicate:id", "duplicate:id", None, None]


@pytest.mark.parametrize("with_id", [True, False])
def test_separate_duplicate_pass_flags_what_the_window_flags(with_id):
    """Silver finds duplicates in a pass over ids and row numbers only; it must agree with the one-expression definition."""
    raw = pl.DataFrame({"ID": ["1", "1", "2", "1", "3", "3", "2", None, None],
                        "AGE": ["30", "30", "40", "abc", "50", "50", "40", "20", "20"],
                        "Label": ["0", "0", "1", "0", "1", "1", "1", "0", "0"]})
    dataset = DATASET if with_id else DatasetConfig(name="t", source="t.csv", target="Label")
    s = resolve_cleaning_spec(dataset, CleaningConfig(types={"AGE": "int"}, deduplicate=True), raw)
    expected = flag_rows(raw.lazy(), s).collect()[REASON].to_list()
    staged = flag_rows(raw.lazy().with_row_index("row"), s, deduplicate=False)
    got = mark_duplicates(staged, s, "row", duplicate_rows(staged, s, "row")).collect()[REASON].to_list()
    assert got == expected
    if with_id:  # later clean copies win; the invalid copy of id 1 does not compete; null ids fail not-null
        assert expected == ["duplicate:id", None, "duplicate:id", "cast:age", "duplicate:id", None, None, "null:id", "null:id"]
    else:  # whole rows compare, the id included
        assert expected == ["duplicate:row", None, "duplicate:row", "cast:age", "duplicate:row", None, None, "duplicate:row", None]


def test_duplicate_rows_without_id_only_when_asked():
    raw = pl.DataFrame({"a": ["1", "1", "2"], "Label": ["0", "0", "1"]})
    dataset = DatasetConfig(name="t", source="t.csv", target="Label")
    asked = resolve_cleaning_spec(dataset, CleaningConfig(deduplicate=True), raw)
    assert flag_rows(raw.lazy(), asked).collect()[REASON].to_list() == ["duplicate:row", None, None]
    # without an id column identical rows are observations: kept by default
    default = resolve_cleaning_spec(dataset, CleaningConfig(), raw)
    assert not default.deduplicate and flag_rows(raw.lazy(), default).collect()[REASON].to_list() == [None, None, None]
    # with an id column, repeated ids are quarantined by default, and never when switched off
    assert resolve_cleaning_spec(DATASET, CleaningConfig(), pl.DataFrame({"ID": ["1"], "Label": ["0"]})).deduplicate
    assert not resolve_cleaning_spec(DATASET, CleaningConfig(deduplicate=False), pl.DataFrame({"ID": ["1"], "Label": ["0"]})).deduplicate


def test_clean_rows_casts_and_maps_codes():
    out = clean_rows(flag_rows(RAW.lazy(), spec()).filter(pl.col(REASON).is_null()), spec()).collect()
    assert out.columns == ["id", "age", "education", "label"]
    assert out["education"].to_list() == [1, 4, 3]  # 5 -> 4 by the value map
    assert out["age"].to_list() == [30, 41, None]
    assert out.schema["age"] == pl.Int64


def test_quarantine_keeps_raw_values():
    q = quarantine_rows(flag_rows(RAW.lazy(), spec()), spec()).collect()
    assert q["age"].to_list() == ["abc", "150", "22"]
    assert q[REASON].to_list()[0] == "cast:age"


def test_int_refuses_fractions():
    raw = pl.DataFrame({"n": ["3", "3.0", "3.5"], "Label": ["0", "1", "0"]})
    s = resolve_cleaning_spec(DatasetConfig(name="t", source="t", target="Label"), CleaningConfig(types={"n": "int"}), raw)
    assert flag_rows(raw.lazy(), s).collect()[REASON].to_list() == [None, None, "cast:n"]


@pytest.mark.parametrize(
    "values, expected",
    [(["1", "2", None], "int"), (["1.5", "2"], "float"), (["a", "b"], "str"), (["1", "2", "x"] + ["3"] * 97, "int")],
)
def test_infer_type_from_text(values, expected):
    assert infer_types(pl.DataFrame({"v": pl.Series(values, dtype=pl.String)}), threshold=0.95) == {"v": expected}


def test_infer_types_types_every_column_of_a_frame_in_one_pass():
    frame = pl.DataFrame({
        "ints": ["1", " 2 ", "NA", None], "floats": ["1.5", "2", "?", "3"], "text": ["a", "b", "1", "2"],
        "huge": ["9007199254740993", "1", "2", "3"], "empty": pl.Series([None, "", "null", "NaN"], dtype=pl.String),
        "typed": [1, 2, 3, 4], "flags": [True, False, True, True], "mostly": ["1", "2", "3", "x"],
    })
    assert infer_types(frame, threshold=0.7) == {"ints": "int", "floats": "float", "text": "str", "huge": "float", "empty": "str",
                                                 "typed": "int", "flags": "bool", "mostly": "int"}
    assert infer_types(frame, threshold=0.8, columns=["mostly", "ints"]) == {"mostly": "str", "ints": "int"}


def test_missing_target_column_names_it():
    with pytest.raises(DataError, match="dataset.target column 'nope' is missing"):
        resolve_cleaning_spec(DatasetConfig(name="t", source="t", target="nope"), CleaningConfig(), RAW)


def test_missing_id_column_names_it():
    with pytest.raises(DataError, match="dataset.id_column column 'key' is missing"):
        resolve_cleaning_spec(DatasetConfig(name="t", source="t", target="Label", id_column="key"), CleaningConfig(), RAW)


def test_rule_on_unknown_column_names_key():
    with pytest.raises(ConfigError, match="cleaning.ranges.WEIGHT"):
        resolve_cleaning_spec(DATASET, CleaningConfig(ranges={"WEIGHT": {"min": 0}}), RAW)


def test_unparsable_required_value_is_a_cast_failure_not_a_missing_value():
    raw = pl.DataFrame({"n": ["x", None, "2"], "Label": ["0", "1", "0"]})
    s = resolve_cleaning_spec(DatasetConfig(name="t", source="t", target="Label"),
                              CleaningConfig(types={"n": "int"}, not_null=["n"]), raw)
    assert flag_rows(raw.lazy(), s).collect()[REASON].to_list() == ["cast:n", "null:n", None]


def test_numbers_are_trimmed_and_missing_tokens_are_missing_whatever_the_padding():
    cells = ["7", " 7", "\t8\n", "3.0", "3.5", "NaN", " NaN ", "", "  ", "N/A", " ? ", "abc", "1e3", "+4", None, "1,5"]
    raw = pl.DataFrame({"f": cells, "i": cells, "Label": ["0"] * len(cells)})
    s = resolve_cleaning_spec(DatasetConfig(name="t", source="t", target="Label"),
                              CleaningConfig(types={"f": "float", "i": "int"}, deduplicate=False), raw)
    out = flag_rows(raw.lazy(), s).collect()
    none = None
    assert out["__clean__f"].to_list() == [7.0, 7.0, 8.0, 3.0, 3.5, none, none, none, none, none, none, none, 1000.0, 4.0, none, none]
    assert out["__clean__i"].to_list() == [7, 7, 8, 3, none, none, none, none, none, none, none, none, 1000, 4, none, none]
    # a blank or a missing-value token is a missing value; only text that is there and does not parse fails the cast
    assert out[REASON].to_list() == [none, none, none, none, "cast:i", none, none, none, none, none, none,
                                     "cast:f; cast:i", none, none, none, "cast:f; cast:i"]


def test_integers_beyond_float_precision_stay_exact():
    raw = pl.DataFrame({"n": ["9007199254740993", " 9007199254740993 ", "9007199254740993.0"], "Label": ["0", "1", "0"]})
    s = resolve_cleaning_spec(DatasetConfig(name="t", source="t", target="Label"),
                              CleaningConfig(types={"n": "int"}, deduplicate=False), raw)
    # written as a float, it is parsed as one: 2**53 + 1 rounds to 2**53
    assert flag_rows(raw.lazy(), s).collect()["__clean__n"].to_list() == [2**53 + 1, 2**53 + 1, 2**53]
