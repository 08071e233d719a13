"""The layer functions on real files, without Prefect: contents, idempotence and bad inputs."""

import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from pipeline_core.config import load_config, parse_config
from pipeline_core.errors import ConfigError, DataError
from pipeline_io import bronze_batches, delta, layout
from pipeline_io.store import Store
from tasks import bronze, gold, silver


def cfg(tmp_path, source, **dataset):
    return parse_config({
        "dataset": {"name": "t", "source": str(source), "target": "y", **dataset},
        "store": {"root": str(tmp_path / "store")},
    })


def read_table(store, report, name):
    """A silver table at exactly the version its report names, in input order."""
    return pl.read_delta(store.uri(report["tables"][name]), version=report["versions"][name]).sort("_batch_id", "_row")


def read_gold(store, meta):
    return pl.read_delta(store.uri(meta["tables"]["features"]), version=meta["version"])


def ingest(config):
    store = Store(config.store.root)
    return bronze.ingest_batch(config, store, Path(config.dataset.source)), store


def test_bronze_is_append_only_and_skips_identical_content(tmp_path):
    src = tmp_path / "a.csv"
    src.write_text("id,x,y\n1,2,0\n2,3,1\n")
    config = cfg(tmp_path, src)
    first, store = ingest(config)
    assert first["status"] == "ingested" and first["rows"] == 2
    again, _ = ingest(config)
    assert again["status"] == "skipped" and again["batch_id"] == first["batch_id"]
    src.write_text("id,x,z,y\n3,4,5,0\n")
    second, _ = ingest(config)
    assert second["status"] == "ingested"
    assert second["schema_change"] == {"added": ["z"], "removed": [], "changed": {}}
    batches = bronze_batches.list_batches(store, "t")
    assert [b["batch_id"] for b in batches] == [first["batch_id"], second["batch_id"]]
    assert [b["rows"] for b in batches] == [2, 1]
    # one Delta table, one commit per batch; the older batch reads the new column as null
    assert (first["version"], second["version"]) == (0, 1)
    data = pl.read_delta(store.uri("bronze", "t")).sort("id")
    assert set(data.columns) == {"id", "x", "z", "y", "_source", "_batch_id", "_ingested_at", "_row"}
    assert data["_row"].to_list() == [1, 2, 1]
    assert data["_batch_id"].to_list() == [first["batch_id"]] * 2 + [second["batch_id"]]
    assert data["z"].to_list() == [None, None, "5"]
    assert pl.read_delta(store.uri("bronze", "t"), version=0).height == 2


def _ingest_in_a_process(root: str, source: str, start) -> str:
    start.wait()
    config = parse_config({"dataset": {"name": "t", "source": source, "target": "y"}, "store": {"root": root}})
    return bronze.ingest_batch(config, Store(root), Path(source))["status"]


def test_two_processes_ingesting_the_same_content_at_once_store_it_once(tmp_path):
    import multiprocessing

    src = tmp_path / "a.csv"
    src.write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20_000)))
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Manager().Barrier(2)
    with ctx.Pool(2) as pool:
        statuses = pool.starmap(_ingest_in_a_process, [(str(tmp_path / "store"), str(src), start)] * 2)
    assert sorted(statuses) == ["ingested", "skipped"]
    assert len(bronze_batches.batch_ids(Store(str(tmp_path / "store")), "t")) == 1


def test_a_copy_committed_by_a_concurrent_run_is_taken_back(tmp_path, monkeypatch):
    """On object storage nothing serialises two ingests: the later commit of the same content is deleted again."""
    src = tmp_path / "a.csv"
    src.write_text("x,y\n1,0\n2,1\n")
    config = cfg(tmp_path, src)
    first, store = ingest(config)
    real, checked = bronze.batch_ids, []

    def before_the_other_commit(*args, **kwargs):  # the second run looked before the first had committed
        if not checked:
            checked.append(True)
            return []
        return real(*args, **kwargs)

    monkeypatch.setattr(bronze, "batch_ids", before_the_other_commit)
    second, _ = ingest(config)
    assert (second["status"], second["batch_id"]) == ("skipped", first["batch_id"])
    assert bronze_batches.batch_ids(store, "t") == [first["batch_id"]]
    newest = delta.history(store, store.uri("bronze", "t"), 1)[0]
    assert newest["operation"] == "DELETE" and newest["dropped_batch"] != first["batch_id"]
    assert newest["dropped_batch"].endswith(first["fingerprint"])


def test_a_dropped_batch_leaves_bronze_in_one_commit_and_silver_rebuilds_without_it(tmp_path):
    src = tmp_path / "a.csv"
    src.write_text("id,x,y\n1,2,0\n2,3,1\n3,4,0\n")
    config = cfg(tmp_path, src, id_column="id")
    first, store = ingest(config)
    src.write_text("id,x,y\n2,30,1\n4,5,1\n")  # updates id 2, adds id 4
    second, _ = ingest(config)
    assert read_table(store, silver.refine_to_silver(config, store), "data")["x"].to_list() == [2, 4, 30, 5]

    with pytest.raises(ConfigError, match="starts 2 bronze batch ids"):
        bronze_batches.drop_batch(store, "t", first["batch_id"][:4])
    with pytest.raises(ConfigError, match="no bronze batch 'nope'.*store batches"):
        bronze_batches.drop_batch(store, "t", "nope")
    preview = bronze_batches.drop_batch(store, "t", second["batch_id"][:-4], dry_run=True)
    assert (preview["batch_id"], preview["rows"]) == (second["batch_id"], 2) and delta.version(store, store.uri("bronze", "t")) == 1

    dropped = bronze_batches.drop_batch(store, "t", second["batch_id"][:-4])
    assert (dropped["bronze_version_before"], dropped["bronze_version"]) == (1, 2)
    assert [b["batch_id"] for b in bronze_batches.list_batches(store, "t")] == [first["batch_id"]]
    assert pl.read_delta(store.uri("bronze", "t"), version=1).height == 5  # the version before still holds it
    rebuilt = silver.refine_to_silver(config, store)
    assert rebuilt["mode"] == "full" and rebuilt["why"] == "bronze lost batches the last run processed"
    assert read_table(store, rebuilt, "data")["x"].to_list() == [2, 3, 4]
    assert ingest(config)[0]["status"] == "ingested"  # the same content is no longer "already stored"

    for batch in bronze_batches.batch_ids(store, "t"):
        bronze_batches.drop_batch(store, "t", batch)
    with pytest.raises(DataError, match="no bronze batches for dataset 't'"):
        silver.refine_to_silver(config, store)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "file is empty"),
        (b"id,x,y\n", "header but no rows"),
        (b"id,x,y\n1,\xff\xfe,0\n", "UTF-8"),
        (b"id,x,y,x\n1,2,0,3\n", "column 'x' appears more than once in the header"),
        (b"id,_source,y,probability\n1,a,0,0.3\n", "column\\(s\\) _source, probability have names the pipeline uses"),
    ],
)
def test_bad_csv_files_fail_clearly_and_write_nothing(tmp_path, content, message):
    src = tmp_path / "bad.csv"
    src.write_bytes(content)
    config = cfg(tmp_path, src)
    with pytest.raises(DataError, match=message) as err:
        ingest(config)
    assert str(src) in str(err.value)
    assert not list((tmp_path / "store").rglob("*.parquet")) and not list((tmp_path / "store").rglob("_delta_log"))


def make_sqlite(path, *statements):
    with sqlite3.connect(path) as conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()
    return path


def test_sqlite_table_errors(tmp_path):
    db = make_sqlite(tmp_path / "d.sqlite", "CREATE TABLE a (y INT)", "CREATE TABLE b (y INT)")
    with pytest.raises(DataError, match=r"several tables \['a', 'b'\]; set dataset.table"):
        ingest(cfg(tmp_path, db))
    with pytest.raises(DataError, match="no table 'c'"):
        ingest(cfg(tmp_path, db, table="c"))
    with pytest.raises(DataError, match="table 'a' has no rows"):
        ingest(cfg(tmp_path, db, table="a"))


def test_sqlite_without_tables_and_non_database(tmp_path):
    empty = make_sqlite(tmp_path / "e.sqlite", "PRAGMA user_version = 1")  # a valid database with no tables
    with pytest.raises(DataError, match="has no tables"):
        ingest(cfg(tmp_path, empty))
    junk = tmp_path / "j.sqlite"
    junk.write_text("this is not a database at all" * 10)
    with pytest.raises(DataError, match="not a readable SQLite database"):
        ingest(cfg(tmp_path, junk))


def test_table_name_is_never_pasted_into_sql(tmp_path):
    db = make_sqlite(tmp_path / "d.sqlite", "CREATE TABLE t (y INT)", "INSERT INTO t VALUES (1)")
    with pytest.raises(DataError, match="no table"):
        ingest(cfg(tmp_path, db, table='t"; DROP TABLE t; --'))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    conn.close()


def test_missing_source_file(tmp_path):
    from pipeline_io.sources import fetch_source

    config = cfg(tmp_path, tmp_path / "nope.csv")
    with pytest.raises(DataError, match="source file not found"):
        fetch_source(config.dataset, config.store.s3, tmp_path)


def test_silver_fails_above_threshold_and_keeps_previous_layer(tmp_path):
    src = tmp_path / "a.csv"
    src.write_text("id,x,y\n1,2,0\n2,3,1\n3,4,0\n4,5,1\n")
    config = cfg(tmp_path, src, id_column="id")
    _, store = ingest(config)
    first = silver.refine_to_silver(config, store)
    paths = layout.silver_paths(store, "t")
    before = Path(paths["report"]).read_bytes()

    src.write_text("id,x,y\n5,oops,0\n6,bad,1\n7,8,0\n")
    ingest(config)
    strict = parse_config({**config.model_dump(mode="json"), "cleaning": {"types": {"x": "int"}, "max_failure_rate": 0.1}})
    # only the new batch is processed (the spec is unchanged), and 2 of its 3 rows fail
    with pytest.raises(DataError, match=r"2 of 3 rows \(66.7%\) fail validation.*cast:x=2.*nothing written"):
        silver.refine_to_silver(strict, store)
    assert Path(paths["report"]).read_bytes() == before
    assert delta.version(store, paths["data"]) == first["versions"]["data"] == 0  # no commit was made
    assert delta.version(store, paths["quarantine"]) == first["versions"]["quarantine"] == 0
    assert first["rows_out"] == 4


def test_quarantine_holds_the_raw_rows_in_input_order_with_their_batch(tmp_path):
    src = tmp_path / "a.csv"
    src.write_text("id,x,y\n1, 2 ,0\n2,oops,1\n3,4,0\n")
    config = cfg(tmp_path, src, id_column="id")
    strict = parse_config({**config.model_dump(mode="json"), "cleaning": {"types": {"x": "int"}, "max_failure_rate": 1.0}})
    first, store = ingest(strict)
    src.write_text("id,x,y\n9,N/A,1\n3, 5.5,1\n1,7 ,1\n")
    second, _ = ingest(strict)
    report = silver.refine_to_silver(strict, store)
    q = read_table(store, report, "quarantine")
    # raw text as ingested (padding kept), oldest batch first
    assert q.select("id", "x", "_reason").rows() == [("2", "oops", "cast:x"), ("3", " 5.5", "cast:x")]
    assert q["_batch_id"].to_list() == [first["batch_id"], second["batch_id"]]
    # the later batch's record of id 1 updates it (not a duplicate: duplicates are copies inside one batch)
    clean = read_table(store, report, "data")
    assert clean.select("id", "x").rows() == [(3, 4), (9, None), (1, 7)]
    assert report["superseded_rows"] == 1 and "duplicate:id" not in report["quarantined_by_rule"]


def test_silver_and_gold_on_demo_credit(credit_config, demo_dir):
    config = load_config(credit_config)
    _, store = ingest(config)
    report = silver.refine_to_silver(config, store)
    raw = pl.read_csv(demo_dir / "credit.csv", infer_schema=False)
    assert report["rows_in"] == raw.height
    assert report["rows_out"] + report["rows_quarantined"] == raw.height
    # every injected problem is caught by its rule
    expected_dupes = raw.height - raw["ID"].n_unique()
    assert report["quarantined_by_rule"]["duplicate:id"] == expected_dupes
    bad_limit = raw.filter(pl.col("LIMIT_BAL") == "n/a?").height
    assert report["quarantined_by_rule"]["cast:limit_bal"] == bad_limit
    assert report["quarantined_by_rule"]["range:age"] == raw.filter(pl.col("AGE") == "150").height
    q = read_table(store, report, "quarantine")
    assert q.height == report["rows_quarantined"] and q["_reason"].null_count() == 0

    meta = gold.build_gold(config, store)
    feats = read_gold(store, meta)
    assert feats.height == report["rows_out"]
    assert set(feats["default_payment_next_month"].unique().to_list()) == {0, 1}
    assert meta["class_balance"]["positive"] == feats["default_payment_next_month"].sum()
    assert 0.15 < meta["class_balance"]["positive_rate"] < 0.3
    assert "age_bin" in meta["roles"]["categorical"] and "utilization" in meta["roles"]["numeric"]
    assert meta["roles"]["id"] == ["id"]
    prep = json.loads(Path(layout.gold_paths(store, "credit_default")["preprocessing"]).read_text())
    assert prep == meta["preprocessing"]
    assert prep["feature_version"] == meta["feature_version"] and prep["scaler"] == "robust"
    cols = {c["name"]: c for c in meta["columns"]}
    assert cols["age"]["null_count"] == feats["age"].null_count()
    assert sum(cols["limit_bal"]["histogram"]["counts"]) == feats["limit_bal"].drop_nulls().len()
    assert meta["feature_spec"]["positive_label"] == "1"


def test_minimal_config_infers_types_and_roles(tmp_path, demo_dir):
    config = parse_config({
        "dataset": {"name": "m", "source": str(demo_dir / "credit.csv"), "target": "default payment next month"},
        "store": {"root": str(tmp_path / "store")},
    })
    _, store = ingest(config)
    report = silver.refine_to_silver(config, store)
    assert report["cleaning_spec"]["types"]["limit_bal"] == "int"
    assert report["quarantined_by_rule"].get("cast:limit_bal", 0) > 0
    meta = gold.build_gold(config, store)
    assert meta["roles"]["id_like"] == ["id"]
    assert "limit_bal" in meta["roles"]["numeric"]


def test_phishing_sqlite_through_gold(phishing_config):
    config = load_config(phishing_config)
    _, store = ingest(config)
    report = silver.refine_to_silver(config, store)
    assert "unnamed_0" not in report["schema"] and report["cleaning_spec"]["dropped"] == ["Unnamed: 0"]
    assert report["quarantined_by_rule"]["range:domain_age_months"] > 0
    assert report["quarantined_by_rule"]["allowed:industry"] > 0
    assert report["quarantined_by_rule"]["duplicate:row"] > 0
    meta = gold.build_gold(config, store)
    assert "line_of_code_missing" in meta["roles"]["numeric"]
    assert set(meta["roles"]["categorical"]) == {"industry", "hosting_provider"}
    feats = read_gold(store, meta)
    assert feats["line_of_code_missing"].sum() == feats["line_of_code"].null_count() > 0


def test_parquet_source_keeps_its_types(tmp_path):
    src = tmp_path / "a.parquet"
    pl.DataFrame({"id": [1, 2], "x": [0.5, None], "y": [True, False]}).write_parquet(src)
    result, store = ingest(cfg(tmp_path, src))
    assert result["columns"] == {"id": "Int64", "x": "Float64", "y": "Boolean"}
    report = silver.refine_to_silver(cfg(tmp_path, src), store)
    assert report["cleaning_spec"]["types"] == {"id": "int", "x": "float", "y": "bool"}


def test_a_column_without_a_value_takes_the_tables_type_or_text(tmp_path):
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pl.DataFrame({"id": [1, 2], "x": [0.5, 1.5], "note": [None, None], "y": [0, 1]}).write_parquet(first)
    pl.DataFrame({"id": [3], "x": [None], "note": ["late"], "y": [1]}).write_parquet(second)
    assert pl.read_parquet_schema(first)["note"] == pl.Null and pl.read_parquet_schema(second)["x"] == pl.Null
    one, store = ingest(cfg(tmp_path, first))
    assert one["columns"]["note"] == "String"  # no value to tell the type from: text, as CSV columns are
    two, _ = ingest(cfg(tmp_path, second))
    assert two["status"] == "ingested" and two["columns"]["x"] == "Float64" and two["schema_change"]["changed"] == {}
    data = pl.read_delta(store.uri("bronze", "t")).sort("id")
    assert data["x"].to_list() == [0.5, 1.5, None] and data["note"].to_list() == [None, None, "late"]


def test_a_column_of_blobs_is_refused_before_anything_is_stored(tmp_path):
    src = tmp_path / "a.sqlite"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, x TEXT, y INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(1, "a", 0), (2, b"\x00\xff", 1)])
    with pytest.raises(DataError, match=r"a.sqlite: column\(s\) x hold binary values \(SQLite BLOBs\)"):
        ingest(cfg(tmp_path, src))
    assert not (tmp_path / "store" / "bronze" / "t" / "_delta_log").exists()


def test_a_tsv_file_is_read_tab_separated(tmp_path):
    src = tmp_path / "a.tsv"
    src.write_text("id\tx\ty\n1\t2,5\t0\n2\t3\t1\n")
    result, store = ingest(cfg(tmp_path, src))
    assert result["columns"] == {"id": "String", "x": "String", "y": "String"}
    assert pl.read_delta(store.uri("bronze", "t")).sort("id")["x"].to_list() == ["2,5", "3"]


def test_corrupt_parquet_is_a_clear_error(tmp_path):
    src = tmp_path / "a.parquet"
    src.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        ingest(cfg(tmp_path, src))


def test_bad_bytes_deep_in_a_csv_leave_no_batch(tmp_path):
    src = tmp_path / "a.csv"
    src.write_bytes(b"id,x,y\n" + b"1,2,0\n" * 5000 + b"2,\xff\xfe,1\n")
    with pytest.raises(DataError, match="not a readable CSV file.*UTF-8"):
        ingest(cfg(tmp_path, src))
    assert bronze_batches.list_batches(Store(str(tmp_path / "store")), "t") == []
    assert not list((tmp_path / "store").rglob("*.parquet"))


def test_repeated_rows_without_an_id_are_kept_and_counted(tmp_path):
    """Census-style data: no id column and 10% legitimately repeated rows must pass a minimal config."""
    rows = [f"{i % 7},{i % 3},{i % 2}" for i in range(90)] + [f"{i % 7},{i % 3},{i % 2}" for i in range(10)]
    src = tmp_path / "census.csv"
    src.write_text("age,band,y\n" + "\n".join(rows) + "\n")
    config = cfg(tmp_path, src)
    _, store = ingest(config)
    report = silver.refine_to_silver(config, store)
    assert report["rows_out"] == 100 and report["rows_quarantined"] == 0
    repeats = len(rows) - len(set(rows))
    assert report["repeated_rows"] == repeats > 10 and report["repeats_quarantined"] is False
    # asked for, the same repeats are quarantined as duplicates
    strict = parse_config({**config.model_dump(mode="json"), "cleaning": {"deduplicate": True, "max_failure_rate": 0.99}})
    again = silver.refine_to_silver(strict, store)
    assert again["quarantined_by_rule"] == {"duplicate:row": repeats} and again["repeats_quarantined"] is True


def test_a_copied_store_reads_its_own_files_once_the_original_is_gone(tmp_path):
    import shutil

    src = tmp_path / "a.csv"
    src.write_text("id,x,y\n" + "\n".join(f"{i},{i % 5},{i % 2}" for i in range(40)) + "\n")
    config = cfg(tmp_path, src, id_column="id")
    _, store = ingest(config)
    silver.refine_to_silver(config, store)
    gold.build_gold(config, store)
    records = [p.read_text() for p in Path(store.root).rglob("*.json")]
    assert records and not any(store.root in text for text in records)  # no record names the store's own location

    moved_root = tmp_path / "elsewhere" / "store"
    shutil.copytree(store.root, moved_root)
    shutil.rmtree(store.root)
    moved = parse_config({**config.model_dump(mode="json"), "store": {"root": str(moved_root)}})
    moved_store = Store(moved.store.root)
    report = silver.refine_to_silver(moved, moved_store)
    meta = gold.build_gold(moved, moved_store)
    assert report["rows_out"] == 40 and meta["row_count"] == 40
    assert read_gold(moved_store, meta).height == 40
