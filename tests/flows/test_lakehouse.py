"""The layers as Delta tables: incremental runs, time travel, kills at every commit point, concurrent runs, damage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipeline_core.config import load_config
from pipeline_core.errors import StorageError
from pipeline_io import delta, layout
from pipeline_io import layer_records as readers
from pipeline_io.store import Store
from tasks import bronze, gold, silver
from tests.conftest import shipped_config
from tests.layer_steps import run_layers

REPO = Path(__file__).resolve().parents[2]
ORIGIN = ("_batch_id", "_ingested_at", "_source")  # differ between stores that ingest the same files


@pytest.fixture(scope="module")
def batches(tmp_path_factory, demo_dir):
    """Two daily files of the credit data: the second brings new ids and new records of 500 known ones."""
    d = tmp_path_factory.mktemp("batches")
    raw = pl.read_csv(demo_dir / "credit.csv", infer_schema=False)
    first, second = raw.slice(0, 2000), raw.slice(1500)
    changed = second.with_columns(pl.when(pl.int_range(pl.len()) < 500).then(pl.lit("1")).otherwise(pl.col("EDUCATION")).alias("EDUCATION"))
    first.write_csv(d / "day1.csv")
    changed.write_csv(d / "day2.csv")
    return d / "day1.csv", d / "day2.csv"


def layer_config(tmp_path: Path, source: Path, name: str = "store"):
    path = shipped_config("credit_default", source, tmp_path)
    return load_config(path, [f"store.root={tmp_path / name}"]), path


def with_source(config, source: Path):
    return config.model_copy(update={"dataset": config.dataset.model_copy(update={"source": str(source)})})


def pinned(store: Store, dataset: str) -> dict[str, pl.DataFrame]:
    """Silver, quarantine and gold at exactly the versions their reports name, in a comparable order."""
    report = readers.silver_report(store, dataset)
    meta = readers.current_gold_metadata(store, dataset)
    s_paths, g_paths = layout.silver_paths(store, dataset), layout.gold_paths(store, dataset)
    return {
        "silver": delta.scan(store, s_paths["data"], report["versions"]["data"]).collect().drop(ORIGIN).sort("id"),
        "quarantine": delta.scan(store, s_paths["quarantine"], report["versions"]["quarantine"]).collect().drop(ORIGIN).sort("_row", "id"),
        "gold": delta.scan(store, g_paths["features"], meta["version"]).collect().sort("id"),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, batches):
    """Both days processed one after the other, uninterrupted."""
    tmp = tmp_path_factory.mktemp("reference")
    config, _ = layer_config(tmp, batches[0])
    run_layers(config)
    run_layers(with_source(config, batches[1]))
    return pinned(Store(config.store.root), config.dataset.name)


def test_a_new_day_is_merged_incrementally_and_matches_a_full_rebuild(tmp_path, batches):
    config, _ = layer_config(tmp_path, batches[0])
    store = Store(config.store.root)
    day1 = run_layers(config)
    assert (day1["silver"]["mode"], day1["gold"]["mode"]) == ("full", "full")
    day2 = run_layers(with_source(config, batches[1]))
    s, g = day2["silver"], day2["gold"]
    assert s["mode"] == "incremental" and s["rows_in"] == pl.read_csv(batches[1], infer_schema=False).height  # only the new batch
    assert s["bronze_batches"] == [day1["batch"]["batch_id"], day2["batch"]["batch_id"]]
    # 500 ids came again: their newest record replaced the old one (minus any that failed a rule in either batch)
    assert 450 < s["superseded_rows"] <= 500
    assert g["mode"] == "incremental" and g["changed_rows"] == s["rows_out"] and g["silver_version"] == s["versions"]["data"]
    incremental = pinned(store, config.dataset.name)
    assert incremental["silver"]["id"].is_unique().all() and incremental["gold"].height == incremental["silver"].height
    resent = pl.read_csv(batches[1], infer_schema=False).head(500)["ID"].cast(pl.Int64)
    updated = incremental["silver"].filter(pl.col("id").is_in(resent.implode()))
    assert (updated["education"] == 1).mean() > 0.95  # the second day's record won (bar the few it sent invalid)

    rebuilt_s = silver.refine_to_silver(config, store, full_refresh=True)
    rebuilt_g = gold.build_gold(config, store, full_refresh=True)
    assert (rebuilt_s["mode"], rebuilt_g["mode"]) == ("full", "full")
    full = pinned(store, config.dataset.name)
    for name in ("silver", "quarantine", "gold"):
        assert full[name].equals(incremental[name]), name
    assert rebuilt_s["table_rows"] == s["table_rows"] and rebuilt_s["quarantine_rows"] == s["quarantine_rows"]

    # time travel: the incremental versions are still readable, as the reports of those versions name them
    old = readers.silver_report(store, config.dataset.name, s["versions"]["data"])
    assert old["mode"] == "incremental"
    assert delta.scan(store, layout.silver_paths(store, "credit_default")["data"], s["versions"]["data"]).collect().height == s["table_rows"]


def test_nothing_new_means_no_commit(tmp_path, batches):
    config, _ = layer_config(tmp_path, batches[0])
    first = run_layers(config)
    again = run_layers(config)
    assert again["batch"]["status"] == "skipped"
    assert again["silver"]["mode"] == "unchanged" and again["gold"]["mode"] == "unchanged"
    assert again["silver"]["versions"] == first["silver"]["versions"] and again["gold"]["version"] == first["gold"]["version"]


def test_features_as_of_an_old_silver_version_rebuild_the_old_gold(tmp_path, batches):
    config, _ = layer_config(tmp_path, batches[0])
    store = Store(config.store.root)
    day1 = run_layers(config)
    run_layers(with_source(config, batches[1]))
    old = gold.build_gold(config, store, as_of=str(day1["silver"]["versions"]["data"]))
    assert old["mode"] == "full" and old["silver_version"] == day1["silver"]["versions"]["data"]
    assert old["row_count"] == day1["gold"]["row_count"]
    first_gold = delta.scan(store, layout.gold_paths(store, "credit_default")["features"], day1["gold"]["version"]).collect().sort("id")
    assert delta.scan(store, layout.gold_paths(store, "credit_default")["features"], old["version"]).collect().sort("id").equals(first_gold)
    with pytest.raises(Exception, match="only at version"):
        gold.build_gold(config, store, as_of="99")


COMMIT_POINTS = ["bronze:before-commit", "bronze:after-commit", "silver:after-data", "silver:after-quarantine",
                 "silver:after-version-record", "gold:after-data", "gold:after-version-record"]


def consistent(store: Store, dataset: str) -> None:
    """Every report and metadata names versions that read back whole and agree with it."""
    report = readers.silver_report(store, dataset)
    meta = readers.current_gold_metadata(store, dataset)
    tables = pinned(store, dataset)
    assert tables["silver"].height == report["table_rows"]
    assert tables["quarantine"].height == report["quarantine_rows"]
    assert tables["gold"].height == meta["row_count"]
    gold_silver = delta.scan(store, layout.silver_paths(store, dataset)["data"], meta["silver_version"]).select(pl.len()).collect().item()
    assert gold_silver == meta["row_count"]  # gold holds one row per row of the silver version it names


@pytest.mark.parametrize("point", COMMIT_POINTS)
def test_a_kill_at_any_commit_point_leaves_a_readable_store_and_the_rerun_finishes_the_job(tmp_path, batches, reference, point):
    config, path = layer_config(tmp_path, batches[0])
    store = Store(config.store.root)
    run_layers(config)
    before = pinned(store, config.dataset.name)
    env = {**os.environ, delta.FAULT_ENV: point}
    killed = subprocess.run([sys.executable, "-m", "tests.layer_steps", str(path), "--set", f"store.root={config.store.root}",
                             "--set", f"dataset.source={batches[1]}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    consistent(store, config.dataset.name)
    if point.startswith("bronze") or point.startswith("silver:after-data") or point == "silver:after-quarantine":
        now = pinned(store, config.dataset.name)
        for name in ("silver", "quarantine", "gold"):
            assert now[name].equals(before[name]), (point, name)  # the interrupted run left the previous state

    rerun = run_layers(with_source(config, batches[1]))
    assert rerun["silver"]["mode"] in ("incremental", "unchanged")
    consistent(store, config.dataset.name)
    final = pinned(store, config.dataset.name)
    for name in ("silver", "quarantine", "gold"):
        assert final[name].equals(reference[name]), (point, name)


def test_two_runs_at_once_both_finish_or_one_fails_clearly(tmp_path, batches, reference):
    config, path = layer_config(tmp_path, batches[0])
    store = Store(config.store.root)
    run_layers(config)
    bronze.ingest_batch(with_source(config, batches[1]), store, batches[1])
    command = [sys.executable, "-m", "tests.layer_steps", str(path), "--set", f"store.root={config.store.root}",
               "--set", f"dataset.source={batches[1]}"]
    runs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(r.wait(timeout=300), r.stderr.read()) for r in runs]
    for code, err in results:
        assert code == 0 or (code == 4 and len(err.strip().splitlines()) == 1 and "another run" in err), err[-2000:]
    assert any(code == 0 for code, _ in results)
    consistent(store, config.dataset.name)
    final = pinned(store, config.dataset.name)
    for name in ("silver", "quarantine", "gold"):
        assert final[name].equals(reference[name]), name


def test_a_truncated_data_file_is_one_clear_error_naming_it(tmp_path, batches):
    from pipeline_io.readers import load_training_data

    config, _ = layer_config(tmp_path, batches[0])
    store = Store(config.store.root)
    run_layers(config)
    data_file = next((Path(config.store.root) / "gold" / "credit_default" / "features").glob("*.parquet"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    with pytest.raises(StorageError, match=rf"gold/credit_default/features/{data_file.name}: damaged data file"):
        load_training_data(config, store)


def test_a_second_reader_reads_the_tables(tmp_path, batches):
    """delta-rs through pyarrow to pandas, no polars: the tables are plain Delta."""
    from deltalake import DeltaTable

    config, _ = layer_config(tmp_path, batches[0])
    result = run_layers(config)
    root = Path(config.store.root)
    frame = DeltaTable(str(root / "gold" / "credit_default" / "features"), version=result["gold"]["version"]).to_pandas()
    assert len(frame) == result["gold"]["row_count"] and frame["id"].is_unique
    bronze_rows = DeltaTable(str(root / "bronze" / "credit_default")).to_pyarrow_table().num_rows
    assert bronze_rows == pl.read_csv(batches[0], infer_schema=False).height


def test_vacuum_keeps_what_the_reports_name_and_old_versions_then_fail_clearly(tmp_path, batches):
    from pipeline_io import maintenance
    from pipeline_io.readers import load_training_data

    config, path = layer_config(tmp_path, batches[0])
    store = Store(config.store.root)
    day1 = run_layers(config)
    run_layers(with_source(config, batches[1]))
    before = pinned(store, config.dataset.name)
    week = load_config(path, [f"store.root={config.store.root}", "store.retention.days=7"])
    kept = maintenance.vacuum(week)
    assert kept["total"] == 0  # every version is younger than a week
    zero = load_config(path, [f"store.root={config.store.root}", "store.retention.days=0"])
    dry = maintenance.vacuum(zero, dry_run=True)
    assert dry["files"]["gold"] > 0 and dry["files"]["bronze"] == 0  # bronze only appends: every file is still current
    done = maintenance.vacuum(zero)
    assert done["files"] == dry["files"]
    after = pinned(store, config.dataset.name)
    for name in ("silver", "quarantine", "gold"):
        assert after[name].equals(before[name]), name
    with pytest.raises(StorageError, match="missing; `pipeline-cli store vacuum`"):
        load_training_data(config, store, as_of=str(day1["gold"]["version"]))


def test_a_store_of_the_earlier_parquet_layout_is_refused_not_overwritten(tmp_path, batches):
    config, _ = layer_config(tmp_path, batches[0])
    old = Path(config.store.root) / "bronze" / "credit_default" / "batch=20261101T000000Z-abc"
    old.mkdir(parents=True)
    (old / "data.parquet").write_bytes(b"PAR1")
    with pytest.raises(StorageError, match="Parquet batches of an earlier version"):
        run_layers(config)
    assert sorted(p.name for p in old.parent.iterdir()) == [old.name]


def test_a_commit_that_loses_to_another_writer_is_one_clear_line(tmp_path, monkeypatch):
    """What object storage gives two writers at once (no local lock there): Delta's optimistic commit refuses the later one."""
    store = Store(str(tmp_path / "store"))
    uri = store.uri("t")
    rows = pl.DataFrame({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0]})
    delta.write(store, uri, rows, mode="overwrite", run_id="a", facts={})
    stale = delta.table(store, uri)  # the snapshot a second writer started from
    delta.merge(store, uri, pl.DataFrame({"id": [3, 4], "x": [30.0, 4.0]}), keys=["id"], update=True, run_id="b", facts={})
    monkeypatch.setattr(delta, "table", lambda *args, **kwargs: stale)
    with pytest.raises(StorageError, match=r"^t: another run committed to this table at the same time; nothing of this run was kept"):
        delta.merge(store, uri, pl.DataFrame({"id": [2, 5], "x": [20.0, 5.0]}), keys=["id"], update=True, run_id="c", facts={})
    monkeypatch.undo()
    assert delta.scan(store, uri).collect().sort("id")["x"].to_list() == [1.0, 2.0, 30.0, 4.0]  # the winner's state, whole


def test_a_table_checkpoints_every_ten_commits_and_keeps_every_version_readable(tmp_path):
    """Opening a table replays the commits since its last checkpoint, so a daily bronze must not replay a hundred;
    the checkpoint must not take the older versions' log with it (only `store vacuum` decides what goes)."""
    store = Store(str(tmp_path / "store"))
    uri = store.uri("t")
    for day in range(23):
        delta.write(store, uri, pl.DataFrame({"day": [day]}), mode="append", run_id=f"r{day}", facts={})
    log = sorted(p.name for p in (tmp_path / "store" / "t" / "_delta_log").iterdir())
    assert [name for name in log if name.endswith(".checkpoint.parquet")] == [
        "00000000000000000009.checkpoint.parquet", "00000000000000000019.checkpoint.parquet"]
    assert len([name for name in log if name.endswith(".json")]) == 23  # every commit is still in the log
    assert delta.scan(store, uri, 0).collect()["day"].to_list() == [0]
    assert delta.scan(store, uri, 15).collect()["day"].sort().to_list() == list(range(16))
    assert delta.table(store, uri).metadata().configuration == delta.TABLE_PROPERTIES


def test_a_table_made_before_the_properties_gets_them_at_its_next_write_with_its_data_and_history_whole(tmp_path):
    """Delta applies table properties when a table is created; an older store's tables get them by a commit of their own."""
    store = Store(str(tmp_path / "store"))
    for name, first_write in (("appended", "append"), ("merged", "merge")):
        uri = store.uri(name)
        pl.DataFrame({"id": [1, 2], "x": [1.0, 2.0]}).lazy().sink_delta(uri)  # as an earlier version of the pipeline made it
        assert delta.table(store, uri).metadata().configuration == {}
        new_rows = pl.DataFrame({"id": [2, 3], "x": [20.0, 3.0]})
        if first_write == "append":
            version = delta.write(store, uri, new_rows, mode="append", run_id="r1", facts={})
            expected = [1.0, 2.0, 20.0, 3.0]
        else:
            version = delta.merge(store, uri, new_rows, keys=["id"], update=True, run_id="r1", facts={})[0]
            expected = [1.0, 20.0, 3.0]
        assert delta.table(store, uri).metadata().configuration == delta.TABLE_PROPERTIES
        assert version == 2  # version 1 set the properties; the run's own commit is found by its id after it
        assert delta.scan(store, uri, version).collect()["x"].sort().to_list() == sorted(expected)
        assert delta.scan(store, uri, 0).collect().sort("id")["x"].to_list() == [1.0, 2.0]
        assert [h["operation"] for h in delta.history(store, uri)] == ["MERGE" if first_write == "merge" else "WRITE", "SET TBLPROPERTIES", "WRITE"]
        delta.write(store, uri, new_rows, mode="append", run_id="r2", facts={})
        assert delta.version(store, uri) == 3  # set once, not at every write
