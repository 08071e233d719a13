"""Outcomes joined to scored rows: the pairs the shadow comparison rests on."""

from __future__ import annotations

import polars as pl

from pipeline_core.outcomes import shadow_pairs


def test_shadow_pairs_count_an_id_once_from_the_newest_batch():
    newest = pl.DataFrame({"id": ["1", "2"], "label": [1, 0], "probability": [0.9, 0.2], "shadow_probability": [0.8, 0.1],
                           "prediction": [1, 0]})
    older = pl.DataFrame({"id": ["2", "3"], "label": [0, 1], "probability": [0.5, 0.7], "shadow_probability": [0.4, 0.6],
                          "prediction": [0, 1]})
    pairs = shadow_pairs([newest, older])
    assert pairs.to_dicts() == [{"id": "1", "label": 1, "probability": 0.9, "shadow_probability": 0.8},
                                {"id": "2", "label": 0, "probability": 0.2, "shadow_probability": 0.1},
                                {"id": "3", "label": 1, "probability": 0.7, "shadow_probability": 0.6}]
    assert shadow_pairs([]).height == 0
