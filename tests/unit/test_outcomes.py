"""Outcomes joined to scored rows: the pairs the shadow comparison rests on."""

from __future__ import annotations

import polars as pl
import pytest

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


def test_float_written_labels_and_ids_equal_their_integers():
    """A labels CSV that pandas wrote with a gap has 1.0/0.0 and ids 2.0: still the positive class and id 2."""
    from pipeline_core.outcomes import join_outcomes, labels_frame

    raw = pl.DataFrame({"ID": ["1.0", "2.0", "3.0", "123456789012345678.0", None], "y": ["1.0", "0.0", None, "1", "1.0"]})
    labels = labels_frame(raw, "ID", "y", 1, "l.csv")
    assert labels.to_dicts() == [{"id": "1", "label": 1}, {"id": "2", "label": 0}, {"id": "123456789012345678", "label": 1}]
    assert labels_frame(pl.DataFrame({"ID": [1, 2], "y": [True, False]}), "ID", "y", True)["label"].to_list() == [1, 0]
    scored = pl.DataFrame({"id": ["1", "2.0", "123456789012345678", "4"], "probability": [0.9, 0.2, 0.7, 0.5], "prediction": [1, 0, 1, 1]})
    assert join_outcomes(scored, labels).select("id", "label").to_dicts() == [
        {"id": "1", "label": 1}, {"id": "2", "label": 0}, {"id": "123456789012345678", "label": 1}]


@pytest.mark.parametrize(("values", "shown"), [(["yes", "no", "yes"], "2 values ('no', 'yes')"),
                                               (["3", "5", "5"], "2 values ('3', '5')"),
                                               (["0", "1", "2"], "3 values ('0', '1', '2')")])
def test_labels_that_cannot_be_the_models_two_classes_are_refused(values, shown):
    from pipeline_core.errors import DataError
    from pipeline_core.outcomes import labels_frame

    raw = pl.DataFrame({"ID": [1, 2, 3], "outcome": values})
    with pytest.raises(DataError) as caught:
        labels_frame(raw, "ID", "outcome", 1, "late.csv")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"late.csv: label column 'outcome' has {shown}") and "'1' (positive)" in message


def test_a_batch_whose_file_is_not_its_predictions_is_unjoinable(tmp_path):
    """Gone: None; a later batch's file, a quarantine file, a file without ids or not Parquet: Unjoinable naming the file."""
    from datetime import datetime, timedelta, timezone

    from pipeline_io.outcomes import Unjoinable, scored_rows
    from pipeline_io.store import Store

    store = Store(str(tmp_path / "store"))
    stamp = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    out = tmp_path / "r.parquet"
    record = {"output": str(out), "inference_timestamp": stamp.isoformat()}
    assert scored_rows(store, record, "ID") is None

    def predictions(at: datetime, **extra) -> pl.DataFrame:
        return pl.DataFrame({"ID": [7, 8], "probability": [0.9, 0.1], "prediction": [1, 0], **extra,
                             "inference_timestamp": pl.Series([at, at], dtype=pl.Datetime("us", "UTC"))})

    predictions(stamp).write_parquet(out)
    assert scored_rows(store, record, "ID").to_dicts() == [{"id": "7", "probability": 0.9, "prediction": 1},
                                                           {"id": "8", "probability": 0.1, "prediction": 0}]
    predictions(stamp + timedelta(hours=1)).write_parquet(out)
    with pytest.raises(Unjoinable, match=rf"^{out}: overwritten by a later batch \(scored 2024-05-01T13:00:00.123456\+00:00\)"):
        scored_rows(store, record, "ID")
    pl.DataFrame({"ID": ["x"], "_reason": ["LIMIT_BAL: not a number"]}).write_parquet(out)
    with pytest.raises(Unjoinable, match=rf"^{out}: not a predictions file \(no probability, prediction, inference_timestamp\)"):
        scored_rows(store, record, "ID")
    predictions(stamp).drop("ID").write_parquet(out)
    with pytest.raises(Unjoinable, match=rf"^{out}: no id column 'ID' \(dataset.id_column\) in the predictions, no id to join"):
        scored_rows(store, record, "ID")
    out.write_text("not parquet")
    with pytest.raises(Unjoinable, match=rf"^{out}: not a readable Parquet file"):
        scored_rows(store, record, "ID")
