"""The reports open in a real browser (headless Chromium from the system's packages) with no network:
the page paints, its figures load, and the console stays clean."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package for this test")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # no network for the page: a report must not need one, and this machine has none to give
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                                              "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            yield b
        finally:
            b.close()


def open_page(browser, path, shot):
    """Load a local page; return what went wrong (console errors, page errors, failed requests) and the painted images."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, offline=True)
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(path.as_uri(), wait_until="load")
    painted = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(shot), full_page=True)
    context.close()
    return problems, painted


def ink(png_path) -> float:
    """The share of the screenshot's pixels that are not background white."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png_path.read_bytes())).convert("L"), dtype=float)
    return float((pixels < 240).mean())


def test_a_training_report_renders_with_its_figures_and_no_console_errors(browser, tmp_path):
    from pipeline_core.modeling.plots import write_evaluation_plots
    from pipeline_core.reports import training_report_html
    from tests.unit.test_reports import training_facts

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.clip(y * 0.4 + rng.random(400) * 0.6, 0, 1)
    write_evaluation_plots(str(tmp_path), y, p, 0.5, {"pay_1": 0.08, "age": 0.01}, [])
    figures = {name: (tmp_path / f"{name}.png").read_bytes() for name in ("roc_curve", "pr_curve", "calibration_curve", "confusion_matrix",
                                                                          "feature_importance")}
    page = tmp_path / "training.html"
    page.write_text(training_report_html(**training_facts(figures=figures)))
    problems, painted = open_page(browser, page, tmp_path / "training.png")
    assert problems == []
    assert painted == [True] * 5  # every inlined figure decoded and drawn
    assert ink(tmp_path / "training.png") > 0.02  # text, tables and plots, not a blank page


def test_a_blank_page_is_told_apart(browser, tmp_path):
    """The blank-page check can fail: an empty body paints nothing."""
    page = tmp_path / "blank.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>x</title></head><body></body></html>")
    problems, painted = open_page(browser, page, tmp_path / "blank.png")
    assert problems == [] and painted == [] and ink(tmp_path / "blank.png") < 0.001


def test_a_scoring_report_renders_with_no_console_errors(browser, tmp_path):
    from pipeline_core.reports import scoring_report_html

    drift = {"status": "warn", "alerts": [], "prediction": {"positive_rate": 0.3, "reference_positive_rate": 0.28, "psi": 0.12},
             "features": [{"name": f"f{i}", "kind": "numeric", "status": "warn" if i == 0 else "ok", "psi": 0.12 / (i + 1), "ks": 0.05,
                           "null_rate": 0.0, "reference_null_rate": 0.0, "reasons": []} for i in range(20)]}
    batch = {"rows_in": 100, "rows_scored": 98, "rows_quarantined": 2, "positive_rate": 0.3, "threshold": 0.4, "drift_status": "warn",
             "model": "m v1", "shadow": "m v2"}
    realized = [{"role": "served", "model_version": "1", "labelled_rows": 50, "metrics": {"roc_auc": 0.7}}]
    page = tmp_path / "scoring.html"
    page.write_text(scoring_report_html("Scored batch b.parquet", "s", batch, drift, realized, ["roc_auc"]))
    problems, _ = open_page(browser, page, tmp_path / "scoring.png")
    assert problems == [] and ink(tmp_path / "scoring.png") > 0.02
