"""The layer flows run through Prefect (one test harness per session)."""

import os

import polars as pl
import pytest
import yaml

from pipeline_core.errors import DataError, StorageError
from tests.servers import flaky_file_server, s3_server

pytestmark = pytest.mark.usefixtures("prefect_harness")


def statuses(summaries):
    return {s["layer"]: s["status"] for s in summaries}


def test_full_run_then_cached_rerun_then_config_change(credit_config):
    from flows.layers import run_flow

    first = run_flow(str(credit_config), through="gold")
    assert statuses(first) == {"bronze": "ingested", "silver": "ran", "gold": "ran"}
    assert first[1]["rows_out"] + first[1]["quarantined"] == first[0]["rows_in"]

    second = run_flow(str(credit_config), through="gold")
    assert statuses(second) == {"bronze": "skipped", "silver": "cached", "gold": "cached"}
    assert second[2]["feature_version"] == first[2]["feature_version"]

    # A features-only change recomputes gold and nothing before it.
    third = run_flow(str(credit_config), ["features.age_bins=[30, 50]"], through="gold")
    assert statuses(third) == {"bronze": "skipped", "silver": "cached", "gold": "ran"}
    assert third[2]["feature_version"] != first[2]["feature_version"]

    # A cleaning rule change recomputes silver and gold ...
    fourth = run_flow(str(credit_config), ["features.age_bins=[30, 50]", "cleaning.ranges.AGE.max=70"], through="gold")
    assert statuses(fourth) == {"bronze": "skipped", "silver": "ran", "gold": "ran"}
    assert fourth[1]["quarantined_by_rule"]["range:age"] > first[1]["quarantined_by_rule"]["range:age"]

    # ... while a change that cannot alter silver's content (the failure threshold) reuses gold.
    fifth = run_flow(str(credit_config), ["features.age_bins=[30, 50]", "cleaning.ranges.AGE.max=70", "cleaning.max_failure_rate=0.5"], through="gold")
    assert statuses(fifth) == {"bronze": "skipped", "silver": "unchanged", "gold": "cached"}


def test_cache_hit_is_not_trusted_when_output_was_deleted(credit_config):
    from flows.layers import run_flow

    first = run_flow(str(credit_config), through="gold")
    store = yaml.safe_load(credit_config.read_text())["store"]["root"]
    os.remove(os.path.join(store, "gold", "credit_default", "features_metadata.json"))
    again = run_flow(str(credit_config), through="gold")
    assert statuses(again)["gold"] == "ran"
    assert again[2]["feature_version"] == first[2]["feature_version"]
    assert os.path.exists(os.path.join(store, "gold", "credit_default", "features_metadata.json"))


def test_a_features_run_as_of_a_past_silver_version_is_not_reused_as_the_current_gold(tmp_path, credit_config, demo_dir):
    from flows.layers import features_flow, run_flow

    raw = pl.read_csv(demo_dir / "credit.csv", infer_schema=False)
    day1, day2 = tmp_path / "day1.csv", tmp_path / "day2.csv"
    raw.slice(0, 1000).write_csv(day1)
    raw.slice(1000).write_csv(day2)
    first = run_flow(str(credit_config), [f"dataset.source={day1}"], through="gold")
    second = run_flow(str(credit_config), [f"dataset.source={day2}"], through="gold")
    assert second[2]["rows_out"] > first[2]["rows_out"]

    old = features_flow(str(credit_config), [f"dataset.source={day2}"], as_of=str(first[1]["versions"]["data"]))
    assert old["rows_out"] == first[2]["rows_out"]

    # the plain run that follows builds gold from the current silver again, not from the as-of result
    again = run_flow(str(credit_config), [f"dataset.source={day2}"], through="gold")
    assert again[2]["status"] == "ran"
    assert again[2]["rows_out"] == second[2]["rows_out"] and again[2]["silver_version"] == second[1]["versions"]["data"]


def test_silver_before_bronze_is_a_clear_error(credit_config):
    from flows.layers import silver_flow

    with pytest.raises(DataError, match="run `pipeline-cli bronze` first"):
        silver_flow(str(credit_config))


def test_http_source_retried_on_503(tmp_path, credit_config, demo_dir):
    from flows.layers import bronze_flow

    with flaky_file_server(demo_dir / "credit.csv", failures=2, status=503) as (url, sent):
        summary = bronze_flow(str(credit_config), [f"dataset.source={url}", "dataset.http.backoff_seconds=0.1"])
    assert sent == [503, 503, 200]
    assert summary["status"] == "ingested" and summary["rows_in"] == pl.read_csv(demo_dir / "credit.csv", infer_schema=False).height


def test_http_404_fails_at_once(credit_config, demo_dir):
    from flows.layers import bronze_flow

    with flaky_file_server(demo_dir / "credit.csv", status=404) as (url, sent):
        with pytest.raises(StorageError, match="HTTP 404.*not retried"):
            bronze_flow(str(credit_config), [f"dataset.source={url}", "dataset.http.backoff_seconds=0.1"])
    assert sent == [404]


def test_a_downloaded_source_is_named_by_its_url_in_errors(tmp_path, credit_config):
    from flows.layers import bronze_flow

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with flaky_file_server(empty) as (url, _):
        with pytest.raises(DataError, match=f"^{url}: file is empty$"):  # not the temporary file it was downloaded to
            bronze_flow(str(credit_config), [f"dataset.source={url}"])


def test_s3_round_trip_bronze_to_gold(tmp_path, demo_dir, monkeypatch):
    import boto3

    from flows.layers import run_flow

    with s3_server() as endpoint:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="raw")
        s3.create_bucket(Bucket="lake")
        s3.upload_file(str(demo_dir / "phishing.sqlite"), "raw", "in/phishing.sqlite")
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({
            "dataset": {"name": "phish", "source": "s3://raw/in/phishing.sqlite", "target": "isPhishing"},
            "store": {"root": "s3://lake/layers"},
            "features": {"set": "phishing"},
        }))
        summaries = run_flow(str(config), through="gold")
        assert statuses(summaries) == {"bronze": "ingested", "silver": "ran", "gold": "ran"}
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="lake")["Contents"]}
        assert {"layers/gold/phish/features/_delta_log/00000000000000000000.json", "layers/gold/phish/features_metadata.json",
                "layers/silver/phish/validation_report.json", "layers/silver/phish/quarantine/_delta_log/00000000000000000000.json",
                "layers/bronze/phish/_delta_log/00000000000000000000.json"} <= keys
        assert not any("/.tmp-" in k for k in keys)
        # a second, independent reader (delta-rs to pyarrow to pandas) reads the version the metadata names
        from deltalake import DeltaTable

        options = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                   "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        gold = DeltaTable("s3://lake/layers/gold/phish/features", version=summaries[2]["version"], storage_options=options).to_pandas()
        assert len(gold) == summaries[2]["rows_out"] and "is_phishing" in gold.columns
        assert statuses(run_flow(str(config), through="gold"))["bronze"] == "skipped"

        with pytest.raises(StorageError, match="bucket 'nobucket' does not exist"):
            run_flow(str(config), ["store.root=s3://nobucket/x"], through="gold")
        from pipeline_core.config import load_config
        from pipeline_io import maintenance

        assert {c["name"] for c in maintenance.history(load_config(str(config)))} >= {"bronze", "silver", "gold"}
        with pytest.raises(StorageError, match="store.root s3://lake/typo: nothing is stored under this prefix"):
            maintenance.history(load_config(str(config), ["store.root=s3://lake/typo"]))  # not an empty history

        # nothing serialises two runs on object storage: a commit no report names yet may be a live run's
        from pipeline_io import delta, layout
        from pipeline_io.store import open_store
        from tasks import silver

        cfg = load_config(str(config))
        store = open_store(cfg)
        uri = layout.silver_paths(store, "phish")["data"]
        pinned = delta.version(store, uri)
        delta.write(store, uri, delta.scan(store, uri).head(1), mode="append", run_id="a-live-run", facts={})
        with pytest.raises(StorageError, match=f"version {pinned + 1} was committed .* s ago by a run that has not recorded it yet"):
            silver.refine_to_silver(cfg, store)
        assert delta.version(store, uri) == pinned + 1  # not restored over
        monkeypatch.setattr(delta, "IN_FLIGHT_SECONDS", 0)  # as long after as a killed run's commit
        assert silver.refine_to_silver(cfg, store)["undone"] == [f"data {pinned + 1}..{pinned + 1}"]
        with pytest.raises(DataError, match="no such object"):
            run_flow(str(config), ["dataset.source=s3://raw/missing.csv"], through="gold")
