import polars as pl
import pytest

from pipeline_core.config import PreprocessingConfig
from pipeline_core.errors import ConfigError
from pipeline_core.profiling import basic_profile, categorical_profile, infer_roles, numeric_profile


def frame():
    n = 100
    return pl.DataFrame({
        "customer_id": list(range(n)),
        "amount": [float(i % 37) for i in range(n)],
        "color": ["red", "blue", None, "green"] * 25,
        "token": [f"t{i}" for i in range(n)],
        "free_text": [f"t{i % 60}" for i in range(n)],
        "const": [1] * n,
        "y": [0, 1] * 50,
    })


def test_roles_inferred_from_dtype_and_cardinality():
    profile = basic_profile(frame().lazy())
    roles = infer_roles(profile, PreprocessingConfig(max_categories=50), target="y", id_column=None)
    assert roles == {
        "customer_id": "id_like", "amount": "numeric", "color": "categorical", "token": "id_like",
        "free_text": "high_cardinality", "const": "constant", "y": "target",
    }


def test_explicit_lists_override_and_exclude_the_rest():
    profile = basic_profile(frame().lazy())
    roles = infer_roles(profile, PreprocessingConfig(numeric=["amount"], categorical=["const"]), "y", None)
    assert roles["amount"] == "numeric" and roles["const"] == "categorical" and roles["color"] == "excluded"


def test_unknown_preprocessing_column():
    with pytest.raises(ConfigError, match="preprocessing.numeric"):
        infer_roles(basic_profile(frame().lazy()), PreprocessingConfig(numeric=["nope"]), "y", None)


def test_profile_counts_nulls_and_histogram_covers_all_values():
    lf = frame().lazy()
    assert basic_profile(lf)["color"]["null_count"] == 25
    stats = numeric_profile(lf, ["amount"])["amount"]
    assert stats["min"] == 0.0 and stats["max"] == 36.0
    assert sum(stats["histogram"]["counts"]) == 100
    assert len(stats["histogram"]["counts"]) == len(stats["histogram"]["edges"]) + 1
    levels = categorical_profile(lf, ["color"], top=10)["color"]["levels"]
    assert levels["red"] == 25 and levels["None"] == 25


def test_profiles_computed_a_few_columns_per_pass_equal_one_pass_over_all():
    import numpy as np

    from pipeline_core import profiling

    rng = np.random.default_rng(3)
    frame = pl.DataFrame({f"c{i}": rng.normal(size=500).round(i % 3) for i in range(2 * profiling.COLUMNS_PER_PASS + 1)})
    frame = frame.with_columns(pl.when(pl.col("c0") > 1).then(None).otherwise(pl.col("c1")).alias("c1"))
    one_pass = frame.select([e for c in frame.columns for e in (pl.col(c).null_count().alias(f"{c}/n"), pl.col(c).n_unique().alias(f"{c}/u"))]).row(0, named=True)
    basic = profiling.basic_profile(frame.lazy())
    assert {c: (p["null_count"], p["n_unique"], p["rows"]) for c, p in basic.items()} == \
        {c: (one_pass[f"{c}/n"], one_pass[f"{c}/u"], 500) for c in frame.columns}
    numeric = profiling.numeric_profile(frame.lazy(), frame.columns)
    for c in frame.columns:
        x = frame[c].drop_nulls()
        assert numeric[c]["min"] == x.min() and numeric[c]["max"] == x.max()
        assert numeric[c]["quantiles"]["0.5"] == x.quantile(0.5, "linear")
        assert sum(numeric[c]["histogram"]["counts"]) == len(x)


def test_sorted_profile_matches_direct_counts_quantiles_and_bins():
    """Distinct counts, quantiles and histogram read off sorted values equal the direct computations."""
    import numpy as np

    from pipeline_core import profiling

    rng = np.random.default_rng(11)
    n = 2_000
    frame = pl.DataFrame({
        "ints": rng.integers(0, 7, n),  # many ties: deciles coincide with values
        "floats": rng.normal(size=n),
        "flags": rng.random(n) < 0.2,
        "text": rng.choice(["a", "b", "c"], n),
    }).with_columns(
        pl.when(pl.col("ints") == 3).then(None).otherwise(pl.col("floats")).alias("floats"),
        pl.when(pl.col("ints") == 5).then(float("nan")).otherwise(pl.col("floats")).alias("with_nan"),
    )
    profile = profiling.basic_profile(frame.lazy())
    assert "numeric" not in profile["text"]
    for c in frame.columns:
        assert profile[c]["n_unique"] == frame[c].n_unique() and profile[c]["null_count"] == frame[c].null_count()
    for c in ["ints", "floats", "flags"]:
        values = frame[c].drop_nulls().cast(pl.Float64).to_numpy()
        stats = profile[c]["numeric"]
        for q in profiling.QUANTILES:
            assert stats["quantiles"][str(q)] == np.quantile(values, q)
        edges = stats["histogram"]["edges"]
        assert edges == sorted({float(np.quantile(values, q)) for q in profiling.DECILES})
        bounds = [-np.inf, *edges, np.inf]
        expected = [int(((values > lo) & (values <= hi)).sum()) for lo, hi in zip(bounds, bounds[1:])]
        assert stats["histogram"]["counts"] == expected
    nan_stats = profile["with_nan"]["numeric"]
    assert sum(nan_stats["histogram"]["counts"]) == frame["with_nan"].drop_nulls().len()
    assert nan_stats["histogram"]["counts"][-1] >= int(frame["with_nan"].is_nan().sum())  # NaN sorts last


def test_row_numbers_are_set_aside_by_their_name_or_their_values():
    import numpy as np

    rng = np.random.default_rng(0)
    n = 500
    kept = np.sort(rng.choice(np.arange(1, 531), size=n, replace=False))  # 1..530 with 30 rows gone (quarantined in silver)
    frame = pl.DataFrame({
        "rownames": np.tile(np.arange(1, n // 2 + 1), 2),  # R's row names, restarting in a second batch
        "index_0": np.arange(n),  # a written-out index under another name
        "seq": kept,  # an unnamed row counter with gaps
        "sparse_ids": np.sort(rng.choice(np.arange(10 * n), size=n, replace=False)),  # distinct, but spread: a value
        "count": rng.integers(0, 50, size=n),
        "y": rng.integers(0, 2, size=n),
    })
    roles = infer_roles(basic_profile(frame.lazy()), PreprocessingConfig(), target="y", id_column=None)
    assert roles == {"rownames": "row_number", "index_0": "row_number", "seq": "row_number",
                     "sparse_ids": "numeric", "count": "numeric", "y": "target"}
    # a short table: a run of distinct integers may be a real feature there
    short = frame.head(60).with_columns(pl.int_range(60).alias("seq"))
    assert infer_roles(basic_profile(short.lazy()), PreprocessingConfig(), target="y", id_column=None)["seq"] == "numeric"
