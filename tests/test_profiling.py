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
