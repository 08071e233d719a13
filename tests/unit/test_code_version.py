"""A stage's cache key changes with the source of every project module the stage imports, and only those."""

import pytest

from tasks.code_version import _source, code_version, imported_modules, module_closure


def _edited(module: str):
    """A source reader that sees one module with an extra line."""

    def read(name: str) -> str | None:
        text = _source(name)
        return None if text is None else (text + "\n# edited\n" if name == module else text)

    return read


@pytest.mark.parametrize("stage", ["tasks.silver", "tasks.gold", "tasks.training"])
def test_every_imported_module_changes_the_stage_key(stage):
    baseline = code_version(stage, read=_source)
    closure = module_closure(stage)
    assert stage in closure and len(closure) > 10
    for module in closure:
        assert code_version(stage, read=_edited(module)) != baseline, module


def test_training_key_follows_what_the_registered_model_embeds():
    closure = module_closure("tasks.training")
    # the served model carries cleaning, features and the drift reference: a change to any retrains
    for module in ("tasks.model_training", "pipeline_core.drift", "pipeline_core.serving", "pipeline_core.features", "pipeline_core.cleaning.expressions",
                   "pipeline_core.modeling.tuning", "pipeline_core.modeling.specs", "pipeline_io.registry"):
        assert module in closure, module


def test_modules_a_stage_does_not_import_leave_its_key_alone():
    silver = module_closure("tasks.silver")
    assert "pipeline_core.modeling.training" not in silver and "tasks.scoring" not in silver
    assert code_version("tasks.silver", read=_edited("tasks.scoring")) == code_version("tasks.silver", read=_source)


def test_the_cached_version_is_the_file_version():
    assert code_version("tasks.gold") == code_version("tasks.gold", read=_source)


def test_the_unit_tier_imports_neither_prefect_nor_mlflow():
    import subprocess
    import sys

    code = ("import pipeline_core.cleaning, pipeline_core.features, pipeline_core.profiling, pipeline_core.scoring, "
            "pipeline_core.drift, pipeline_core.serving, pipeline_core.modeling.training, pipeline_core.modeling.tuning, "
            "pipeline_core.modeling.specs, pipeline_core.modeling.promotion, pipeline_core.modeling.holdout, sys; "
            "print(sorted(m for m in ('prefect', 'typer') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # the core never imports Prefect or the CLI


def test_imports_are_found_at_any_depth_and_in_any_layout():
    source = '''"""A module.

import this line is prose in a docstring, not code
"""
from pipeline_core import (
    features,  # the engineered columns
    drift,
)
import pipeline_io.layout as layout


def load():
    from pipeline_io.store import open_store
    if True:
        import pipeline_core.scoring; import json
    return open_store, \\
        json
'''
    found = imported_modules("tasks.example", source)
    assert {"pipeline_core.features", "pipeline_core.drift", "pipeline_io.layout", "pipeline_io.store", "pipeline_core.scoring"} <= found
    assert "json" not in found and not any(name.startswith("this") for name in found)
    assert "pipeline_io.s3" in imported_modules("tasks.example", "try: import pipeline_io.s3\nexcept ImportError: pass\n")
