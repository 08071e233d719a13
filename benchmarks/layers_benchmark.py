"""Bronze -> silver -> gold throughput: the project's polars core beside a plain pandas version.

Usage (from the repository root)::

    .venv/bin/python benchmarks/layers_benchmark.py --rows 1000000 10000000 [--skip-pandas-above N]

For every size the script generates (or reuses) a credit-card-default CSV under
``benchmarks/work/``, then runs each implementation in its own child process on a fresh store
folder: the project's ``ingest_batch`` / ``refine_to_silver`` / ``build_gold`` (no Prefect, so
no fixed orchestration overhead), and the ``pandas_*`` functions below, an idiomatic, vectorised
pandas implementation of the same transforms that writes the same layers. Each child reports its stage
times, its row counts and its own peak RSS (``VmHWM``). The script prints a markdown table
and rewrites ``benchmarks/RESULTS.md`` (sizes not re-run keep their earlier numbers; the notes
section between the ``notes`` markers is kept as it is).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import harness  # noqa: E402
from benchmarks.harness import mib  # noqa: E402

WORK = harness.WORK
RESULTS_MD = harness.BENCH / "RESULTS.md"
CONFIG = REPO / "configs" / "credit_default.yaml"
DATASET = "bench"
ROWS_PER_CHUNK = 1_000_000
TARGET_ROWS_PER_S = 1_000_000
TARGET_SPEEDUP = 5.0
NOTES_START = "<!-- notes:start -->"
NOTES_END = "<!-- notes:end -->"
JSON_MARK = "<!-- results-json:"


# -- data ------------------------------------------------------------------------------

def dataset_path(rows: int, seed: int) -> Path:
    return WORK / f"credit_default_{rows}_seed{seed}.csv"


def ensure_csv(rows: int, seed: int) -> Path:
    """The benchmark CSV for ``rows`` (generated in 1M-row chunks, ids offset per chunk); reused if present."""
    out = dataset_path(rows, seed)
    if out.exists():
        return out
    import polars as pl

    from pipeline_core.demo_data import credit_default_frame
    from pipeline_io.demo_files import write_csv

    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if rows <= ROWS_PER_CHUNK:
        write_csv(credit_default_frame(rows, seed), out)
    else:
        tmp = out.with_name(f".tmp-{out.name}")
        with open(tmp, "wb") as fh:
            for index, start in enumerate(range(0, rows, ROWS_PER_CHUNK)):
                n = min(ROWS_PER_CHUNK, rows - start)
                frame = credit_default_frame(n, seed + index)
                frame = frame.with_columns((pl.col("ID").cast(pl.Int64) + start).cast(pl.String))
                frame.write_csv(fh, include_header=index == 0)
                del frame
        tmp.replace(out)
    print(f"generated {out.relative_to(REPO)} ({out.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s", flush=True)
    return out


def warm_page_cache(path: Path) -> None:
    """Read the file once so both implementations start from the same (warm) page cache."""
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


# -- child: the project's polars core ------------------------------------------------------

def run_polars(csv: Path, store_root: Path) -> dict[str, Any]:
    import polars as pl

    from pipeline_core.config import load_config
    from pipeline_io.store import Store
    from tasks.bronze import ingest_batch
    from tasks.gold import build_gold
    from tasks.silver import refine_to_silver

    cfg = load_config(CONFIG, overrides=[f"dataset.source={csv}", f"store.root={store_root}", f"dataset.name={DATASET}"])
    store = Store(cfg.store.root, cfg.store.s3)
    baseline = harness.rss_kib()
    t0 = time.perf_counter()
    bronze = ingest_batch(cfg, store, Path(csv))
    t1 = time.perf_counter()
    silver = refine_to_silver(cfg, store)
    t2 = time.perf_counter()
    gold = build_gold(cfg, store)
    t3 = time.perf_counter()
    if bronze["status"] != "ingested":
        raise RuntimeError(f"bronze did not ingest (status {bronze['status']}); the store folder was not fresh")
    means = {c["name"]: c["mean"] for c in gold["columns"] if c.get("mean") is not None}
    return {
        "impl": "polars",
        "versions": {"polars": pl.__version__},
        "stages": {"bronze": t1 - t0, "silver": t2 - t1, "gold": t3 - t2},
        "total": t3 - t0,
        "rows_in": bronze["rows"],
        "silver_rows": silver["rows_out"],
        "quarantine_rows": silver["rows_quarantined"],
        "quarantined_by_rule": silver["quarantined_by_rule"],
        "gold_rows": gold["row_count"],
        "gold_means": means,
        "baseline_rss_kib": baseline,
    }


# -- child: straightforward pandas -----------------------------------------------------------

# The same transforms as configs/credit_default.yaml + pipeline_core (cleaning, features, profiling),
# written the way one would in pandas for this one schema.
NULL_TOKENS = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"]
LINEAGE = ["_source", "_batch_id", "_ingested_at"]
RENAME = {"PAY_0": "PAY_1"}
FLOAT_COLUMNS = {"limit_bal"}  # every other column is an integer column
VALUE_MAPS = {"education": {0: 4, 5: 4, 6: 4}, "marriage": {0: 3}}
TARGET = "default_payment_next_month"
ID = "id"
NOT_NULL = ["limit_bal", "sex", "education", "marriage", TARGET, ID]
RANGES = {"limit_bal": (1, None), "age": (18, 100)}
ALLOWED = {"sex": [1, 2], "education": [1, 2, 3, 4], "marriage": [1, 2, 3]}
BILLS = [f"bill_amt{i}" for i in range(1, 7)]  # bill_amt1 = newest month
PAYS = [f"pay_amt{i}" for i in range(1, 7)]
AGE_CUTS = [25, 35, 45, 55, 65]
AUTO_MISSING_MIN_RATE = 0.01
CATEGORICAL = ["sex", "education", "marriage", "age_bin"]
NUMERIC = ["limit_bal", "age", *[f"pay_{i}" for i in range(1, 7)], *BILLS, *PAYS, "bill_trend", "pay_ratio", "utilization"]
QUANTILES = sorted({0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, *[i / 10 for i in range(1, 10)]})
DECILES = [i / 10 for i in range(1, 10)]
MAX_CATEGORIES = 50


def pandas_bronze(csv: Path, root: Path) -> tuple[Path, int]:
    import pandas as pd

    digest = hashlib.sha256()
    with open(csv, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    fingerprint = digest.hexdigest()
    now = datetime.now(timezone.utc)
    batch_id = f"{now:%Y%m%dT%H%M%S%fZ}-{fingerprint[:8]}"
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""])  # raw text, empty -> missing
    raw["_source"] = str(csv)
    raw["_batch_id"] = batch_id
    raw["_ingested_at"] = pd.Timestamp(now)
    path = root / "bronze" / DATASET / f"batch={batch_id}" / "data.parquet"
    path.parent.mkdir(parents=True)
    raw.to_parquet(path, engine="pyarrow", index=False)
    (path.parent / "_batch.json").write_text(json.dumps({"batch_id": batch_id, "fingerprint": fingerprint, "rows": len(raw)}))
    return path, len(raw)


def snake(name: str) -> str:
    from pipeline_core.cleaning.naming import snake_case

    return snake_case(RENAME.get(name, name))


def pandas_silver(bronze_path: Path, root: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    raw = pd.read_parquet(bronze_path, engine="pyarrow")
    names = {c: snake(c) for c in raw.columns if c not in LINEAGE}

    cleaned: dict[str, pd.Series] = {}
    failed: dict[str, pd.Series] = {}
    for col, name in names.items():
        text = raw[col].str.strip()
        text = text.mask(text.isin(NULL_TOKENS))
        value = pd.to_numeric(text, errors="coerce")
        if name not in FLOAT_COLUMNS:
            value = value.where(value == np.floor(value))  # "3" and "3.0" are ints, "3.5" is not
        if name in VALUE_MAPS:
            value = value.replace(VALUE_MAPS[name])
        cleaned[name] = value
        failed[f"cast:{name}"] = text.notna() & value.isna()
    for name in NOT_NULL:
        # a value that was there but did not parse is a cast failure, not a missing value
        failed[f"null:{name}"] = cleaned[name].isna() & ~failed[f"cast:{name}"]
    for name, (lo, hi) in RANGES.items():
        fail = pd.Series(False, index=raw.index)
        if lo is not None:
            fail |= cleaned[name] < lo
        if hi is not None:
            fail |= cleaned[name] > hi
        failed[f"range:{name}"] = fail
    for name, values in ALLOWED.items():
        failed[f"allowed:{name}"] = cleaned[name].notna() & ~cleaned[name].isin(values)

    flags = pd.DataFrame(failed)
    bad = flags.any(axis=1)
    reason = pd.Series(None, index=raw.index, dtype="str")
    reason[bad] = flags[bad].dot(flags.columns + "; ").str[:-2]  # "rule; rule" for the failing rows only
    by_rule = flags.sum().loc[lambda s: s > 0].to_dict()
    # Among clean rows the last copy of an id wins; the earlier ones are quarantined as duplicates.
    dup = pd.Series(False, index=raw.index)
    dup[~bad] = cleaned[ID][~bad].duplicated(keep="last")
    reason[dup] = f"duplicate:{ID}"
    by_rule[f"duplicate:{ID}"] = int(dup.sum())
    keep = reason.isna()

    silver_dir = root / "silver" / DATASET
    (silver_dir / "quarantine").mkdir(parents=True)
    quarantine = raw.loc[~keep].rename(columns=names)
    quarantine["_reason"] = reason[~keep]
    quarantine.to_parquet(silver_dir / "quarantine" / "quarantine.parquet", engine="pyarrow", index=False)

    silver = pd.DataFrame({name: (v[keep] if name in FLOAT_COLUMNS else v[keep].astype("Int64")) for name, v in cleaned.items()})
    for col in LINEAGE:
        silver[col] = raw.loc[keep, col]
    silver.to_parquet(silver_dir / "data.parquet", engine="pyarrow", index=False)
    null_counts = silver[list(names.values())].isna().sum()
    report = {
        "rows_in": len(raw),
        "rows_out": int(keep.sum()),
        "rows_quarantined": int((~keep).sum()),
        "quarantined_by_rule": {k: int(v) for k, v in sorted(by_rule.items())},
        "null_rates": (null_counts / len(silver)).to_dict(),
    }
    (silver_dir / "validation_report.json").write_text(json.dumps(report, indent=2))
    return report


def pandas_gold(root: Path, silver_report: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    silver_dir = root / "silver" / DATASET
    gold = pd.read_parquet(silver_dir / "data.parquet", engine="pyarrow").drop(columns=LINEAGE)
    rates = silver_report["null_rates"]
    indicators = [c for c in gold.columns if c not in (TARGET, ID) and rates[c] >= AUTO_MISSING_MIN_RATE and rates[c] > 0]

    for c in indicators:
        gold[f"{c}_missing"] = gold[c].isna().astype("int8")
    labels = [f"<{AGE_CUTS[0]}", *[f"{lo}-{hi - 1}" for lo, hi in zip(AGE_CUTS, AGE_CUTS[1:])], f"{AGE_CUTS[-1]}+"]
    gold["age_bin"] = pd.cut(gold["age"], [-np.inf, *AGE_CUTS, np.inf], right=False, labels=labels)
    # Least-squares slope over the six months: bill_amt6 is t=0 (oldest), bill_amt1 is t=5.
    weights = np.array([(5 - i) - 2.5 for i in range(6)])
    bills = gold[BILLS].astype("float64")
    gold["bill_trend"] = bills.dot(weights) / float((weights ** 2).sum())  # NaN when any month is missing
    paid = gold[PAYS].astype("float64").sum(axis=1, skipna=False)
    billed = bills.sum(axis=1, skipna=False)
    gold["pay_ratio"] = (paid / billed).where(billed > 0)
    limit = gold["limit_bal"]
    gold["utilization"] = (gold["bill_amt1"].astype("float64") / limit).where(limit > 0)
    gold[TARGET] = (gold[TARGET] == 1).astype("int8")

    gold_dir = root / "gold" / DATASET
    gold_dir.mkdir(parents=True)
    gold.to_parquet(gold_dir / "features.parquet", engine="pyarrow", index=False)

    # Profile: null counts and distinct counts of every column, stats, quantiles and a decile
    # histogram of the numeric features, level counts of the categorical ones.
    numeric = NUMERIC + [f"{c}_missing" for c in indicators]
    nulls = gold.isna().sum()
    distinct = gold.nunique(dropna=False)
    values = gold[numeric].astype("float64")
    stats = values.agg(["min", "max", "mean", "std"])
    quantiles = values.quantile(QUANTILES)
    histograms = {}
    for c in numeric:
        edges = sorted(set(quantiles.loc[DECILES, c].dropna()))
        counts = pd.cut(values[c], [-np.inf, *edges, np.inf]).value_counts(sort=False)
        histograms[c] = {"edges": edges, "counts": counts.tolist()}
    levels = {c: gold[c].value_counts(dropna=False).head(MAX_CATEGORIES).to_dict() for c in CATEGORICAL}
    rows = len(gold)
    positives = int(gold[TARGET].sum())
    metadata = {
        "row_count": rows,
        "class_balance": {"positive": positives, "negative": rows - positives},
        "columns": [
            {"name": c, "null_count": int(nulls[c]), "null_rate": nulls[c] / rows, "n_unique": int(distinct[c]),
             **({k: stats.loc[k, c] for k in ("min", "max", "mean", "std")} if c in numeric else {}),
             **({"quantiles": quantiles[c].to_dict(), "histogram": histograms[c]} if c in numeric else {}),
             **({"levels": {str(k): int(v) for k, v in levels[c].items()}} if c in CATEGORICAL else {})}
            for c in gold.columns
        ],
    }
    (gold_dir / "features_metadata.json").write_text(json.dumps(metadata, indent=2, default=float))
    return metadata


def run_pandas(csv: Path, store_root: Path) -> dict[str, Any]:
    import numpy as np  # noqa: F401  (imported before the clock starts, like polars)
    import pandas as pd
    import pyarrow

    baseline = harness.rss_kib()
    t0 = time.perf_counter()
    bronze_path, rows_in = pandas_bronze(csv, store_root)
    t1 = time.perf_counter()
    silver = pandas_silver(bronze_path, store_root)
    t2 = time.perf_counter()
    gold = pandas_gold(store_root, silver)
    t3 = time.perf_counter()
    means = {c["name"]: c["mean"] for c in gold["columns"] if c.get("mean") is not None}
    return {
        "impl": "pandas",
        "versions": {"pandas": pd.__version__, "pyarrow": pyarrow.__version__},
        "stages": {"bronze": t1 - t0, "silver": t2 - t1, "gold": t3 - t2},
        "total": t3 - t0,
        "rows_in": rows_in,
        "silver_rows": silver["rows_out"],
        "quarantine_rows": silver["rows_quarantined"],
        "quarantined_by_rule": silver["quarantined_by_rule"],
        "gold_rows": gold["row_count"],
        "gold_means": {k: float(v) for k, v in means.items()},
        "baseline_rss_kib": baseline,
    }


def child_main(impl: str, csv: Path, store_root: Path, out: Path) -> None:
    result = (run_polars if impl == "polars" else run_pandas)(csv, store_root)
    result["peak_rss_kib"] = harness.peak_rss_kib()
    result["cpu_s"] = harness.process_cpu_s()  # whole process, imports included
    out.write_text(json.dumps(result, default=float))


# -- parent: run, compare, report ---------------------------------------------------------------

def run_child(impl: str, csv: Path, rows: int, timeout_s: float, mem_limit_gib: float, keep_store: bool, idle_wait_s: float) -> dict[str, Any]:
    """One measured run in a fresh interpreter on a fresh store folder; failures are recorded, not hidden."""
    store_root = Path(tempfile.mkdtemp(prefix=f"store-{impl}-{rows}-", dir=WORK))
    out = store_root.with_name(store_root.name + ".json")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", impl, "--csv", str(csv), "--store", str(store_root), "--child-out", str(out)]
    warm_page_cache(csv)
    idle = harness.wait_for_idle(idle_wait_s)
    code_before = code_state()
    if not idle["idle"]:
        print(f"  (machine still {idle['busy_before']:.0%} busy after waiting {idle['waited_s']:.0f} s; running anyway)", flush=True)
    with harness.OtherLoad() as load:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
        stderr_chunks: list[str] = []
        reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
        reader.start()
        failure = None
        watched_peak = 0
        while proc.poll() is None:
            rss = harness.tree_rss_kib(proc.pid)
            watched_peak = max(watched_peak, rss)
            if rss > mem_limit_gib * 2**20:
                failure = f"stopped: RSS passed the {mem_limit_gib:g} GiB limit after {time.perf_counter() - started:.0f} s"
            elif time.perf_counter() - started > timeout_s:
                failure = f"stopped: still running after the {timeout_s:.0f} s limit"
            if failure:
                proc.kill()
                proc.wait()
                break
            time.sleep(0.1)
        reader.join(timeout=5)
    wall = load.wall_s
    if not keep_store:
        shutil.rmtree(store_root, ignore_errors=True)
    if failure is None and proc.returncode != 0:
        tail = "".join(stderr_chunks).strip().splitlines()[-3:]
        failure = f"failed: exit code {proc.returncode}" + (f" ({' | '.join(tail)[:300]})" if tail else "")
    if failure is None:
        result = json.loads(out.read_text())
        out.unlink()
    else:
        out.unlink(missing_ok=True)
        result = {"impl": impl, "error": failure}
        print(f"  {impl}: {failure}", file=sys.stderr, flush=True)
    result["wall_s"] = wall
    result["watched_peak_rss_kib"] = watched_peak
    result["idle_wait"] = idle
    result["code"] = code_before
    if code_state()["source_hash"] != code_before["source_hash"]:
        result["code_changed_during_run"] = True
        print(f"  WARNING: the layer code changed while the {impl} run was going on", file=sys.stderr, flush=True)
    result["other_cpu_share"] = load.share  # CPU used by everything else, as a share of all cores
    return result


def best_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest successful run (the least disturbed by other jobs on a shared machine), with every total kept.

    Peak memory is the highest of all runs.
    """
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    chosen = dict(min(ok, key=lambda r: r["total"]))
    chosen["all_totals"] = [r["total"] for r in ok]
    chosen["peak_rss_kib"] = max(r["peak_rss_kib"] for r in ok)
    chosen["source_hashes"] = sorted({r["code"]["source_hash"] for r in ok if "code" in r})
    chosen["code_changed_during_run"] = any(r.get("code_changed_during_run") for r in ok)
    return chosen


def compare(polars_run: dict[str, Any], pandas_run: dict[str, Any]) -> list[str]:
    """Differences between the two implementations' outputs (empty when they agree)."""
    problems = []
    for key, label in (("rows_in", "bronze rows"), ("silver_rows", "silver rows"), ("quarantine_rows", "quarantined rows"), ("gold_rows", "gold rows")):
        if polars_run[key] != pandas_run[key]:
            problems.append(f"{label} differ: polars {polars_run[key]:,} vs pandas {pandas_run[key]:,}")
    if polars_run["quarantined_by_rule"] != pandas_run["quarantined_by_rule"]:
        problems.append(f"quarantine counts by rule differ: polars {polars_run['quarantined_by_rule']} vs pandas {pandas_run['quarantined_by_rule']}")
    for col, mean in polars_run["gold_means"].items():
        other = pandas_run["gold_means"].get(col)
        if other is None or not math.isclose(mean, other, rel_tol=1e-6, abs_tol=1e-9):
            problems.append(f"gold mean of {col} differs: polars {mean!r} vs pandas {other!r}")
    return problems


# The files and config sections the three layers run (training code and settings are left out).
LAYER_FILES = ["tasks/bronze.py", "tasks/silver.py", "tasks/gold.py", "tasks/caching.py", "tasks/code_version.py",
               "pipeline_core/cleaning/*.py", "pipeline_core/features.py", "pipeline_core/profiling.py", "pipeline_core/config.py",
               "pipeline_core/fingerprint.py", "pipeline_core/errors.py", "pipeline_core/demo_data.py",
               "pipeline_io/store.py", "pipeline_io/layout.py", "pipeline_io/sources.py", "pipeline_io/parquet.py",
               "pipeline_io/streaming.py", "pipeline_io/atomic.py"]
LAYER_SECTIONS = ["dataset", "store", "cleaning", "features", "preprocessing"]


def code_state() -> dict[str, Any]:
    """Which project code a run measured: git HEAD, uncommitted changes, and a hash of the layer code and config used."""
    import yaml

    h = hashlib.sha256()
    files = sorted(path for pattern in LAYER_FILES for path in REPO.glob(pattern))
    for path in files:
        h.update(str(path.relative_to(REPO)).encode())
        h.update(path.read_bytes())
    raw = yaml.safe_load(CONFIG.read_text()) or {}
    h.update(json.dumps({k: raw.get(k) for k in LAYER_SECTIONS}, sort_keys=True, default=str).encode())
    dirty = harness.git("status", "--porcelain", "--", *[str(f.relative_to(REPO)) for f in files], str(CONFIG.relative_to(REPO)))
    return {"git_head": harness.git("rev-parse", "--short", "HEAD"), "uncommitted": dirty.splitlines(), "source_hash": h.hexdigest()[:12]}


def machine_info() -> dict[str, Any]:
    import polars as pl

    return {**harness.machine_info("polars", "pandas", "pyarrow"), "polars_threads": pl.thread_pool_size()}


def fmt_s(x: float) -> str:
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def table_rows(size: dict[str, Any]) -> list[list[str]]:
    rows = []
    for impl in ("polars", "pandas"):
        run = size["runs"].get(impl)
        name = "polars (project core)" if impl == "polars" else "pandas (baseline)"
        if run is None or "error" in run:
            rows.append([f"{size['rows_in']:,}", name, "not run" if run is None else run["error"]])
        else:
            s = run["stages"]
            ratio = f"{size['speedup']:.1f}x" if impl == "polars" and size.get("speedup") else ""
            rows.append([f"{run['rows_in']:,}", name, fmt_s(s["bronze"]), fmt_s(s["silver"]), fmt_s(s["gold"]),
                         f"**{fmt_s(run['total'])}**", f"{run['rows_in'] / run['total']:,.0f}", f"{mib(run['peak_rss_kib']):,.0f}", ratio])
    return rows


TABLE_HEADER = ["input rows", "implementation", "bronze s", "silver s", "gold s", "total s", "rows/s", "peak RSS MiB", "speed vs pandas"]


def markdown_table(sizes: list[dict[str, Any]]) -> str:
    return harness.markdown_table(TABLE_HEADER, [row for size in sizes for row in table_rows(size)], align="rlrrrrrrr")


def verdicts(sizes: list[dict[str, Any]]) -> list[str]:
    out = []
    ok_sizes = [s for s in sizes if "error" not in s["runs"].get("polars", {"error": 1})]
    if not ok_sizes:
        return ["- No successful run of the project core to judge."]
    big = max(ok_sizes, key=lambda s: s["rows_in"])
    run = big["runs"]["polars"]
    rate = run["rows_in"] / run["total"]
    scale = "at" if big["rows_in"] >= 10_000_000 else "(largest size measured is below 10M rows) at"
    out.append(f"- Throughput {scale} {big['rows_in']:,} rows: {rate:,.0f} rows/s end to end; target >= {TARGET_ROWS_PER_S:,} rows/s: "
               f"**{'met' if rate >= TARGET_ROWS_PER_S else 'not met'}**.")
    if big.get("speedup"):
        out.append(f"- Speed-up over pandas at {big['rows_in']:,} rows: {big['speedup']:.1f}x; target >= {TARGET_SPEEDUP:g}x: "
                   f"**{'met' if big['speedup'] >= TARGET_SPEEDUP else 'not met'}**.")
    else:
        pandas_run = big["runs"].get("pandas")
        why = pandas_run["error"] if pandas_run and "error" in pandas_run else "pandas was not run at this size"
        out.append(f"- Speed-up over pandas at {big['rows_in']:,} rows: not measured ({why}).")
    others = [s for s in sizes if s.get("speedup") and s is not big]
    for s in others:
        out.append(f"- Speed-up over pandas at {s['rows_in']:,} rows: {s['speedup']:.1f}x.")
    if len(ok_sizes) >= 2:
        small = min(ok_sizes, key=lambda s: s["rows_in"])
        p_small, p_big = small["runs"]["polars"]["peak_rss_kib"], run["peak_rss_kib"]
        growth_rows = big["rows_in"] / small["rows_in"]
        growth_mem = p_big / p_small
        bounded = growth_mem < 2.0
        out.append(f"- Memory: project-core peak RSS {mib(p_small):,.0f} MiB at {small['rows_in']:,} rows and {mib(p_big):,.0f} MiB at "
                   f"{big['rows_in']:,} rows ({growth_mem:.1f}x the memory for {growth_rows:.0f}x the rows). Criterion used here for "
                   f"'bounded': less than 2x growth for 10x the rows: **{'met' if bounded else 'not met'}**.")
    return out


def render_results(data: dict[str, Any], notes: str) -> str:
    m = data["machine"]
    sizes = sorted(data["sizes"].values(), key=lambda s: s["rows_in"])
    lines = [
        "# Bronze -> silver -> gold benchmark",
        "",
        "Results of the other benchmarks live beside this file: training against RandomizedSearchCV in",
        "`TRAINING_RESULTS.md`, batch inference against the served model's `predict_proba` in `INFERENCE_RESULTS.md`;",
        "orchestration (CLI start-up, first vs cached run, tuning workers) is the last section of this file.",
        "",
        "Generated by `benchmarks/layers_benchmark.py`; numbers are single measurements on the machine below",
        "(the fastest by total time when a size was run several times: the machine is shared). Only the notes section is written by hand.",
        "",
        "## Machine",
        "",
        f"- {m['nproc']} CPU cores ({m['cpu']}), {m['ram_gib']} GiB RAM, {m['os']}",
        f"- Python {m['python']}, polars {m['polars']} ({m['polars_threads']} threads), pandas {m['pandas']}, pyarrow {m['pyarrow']}",
        "",
        "## What is measured",
        "",
        "- Data: `pipeline_core.demo_data.credit_default_frame` (credit-card default schema, all columns text, ~1% dirty rows:",
        "  missing/out-of-range ages, unparsable limits, missing bills, 0.2% re-sent ids), written as CSV under `benchmarks/work/`.",
        "  Sizes above 1M rows are generated in 1M-row chunks (seed + chunk index, ids offset by chunk) so the file is built in",
        "  bounded memory; every 1M-row chunk carries 2,000 duplicated rows, hence 1,002,000 input rows per nominal 1M.",
        "- Project core: `tasks.bronze.ingest_batch` -> `tasks.silver.refine_to_silver` -> `tasks.gold.build_gold` with `configs/credit_default.yaml`",
        "  on a fresh local store. Prefect is not involved: the flows add a fixed ~10 s of orchestration per run, not counted here.",
        "- pandas baseline (the `pandas_*` functions in the script): `pd.read_csv(dtype=str)` -> bronze parquet; read bronze,",
        "  strip + null tokens, `pd.to_numeric(errors='coerce')`, integer check, code maps, the same not-null / range / allowed-value",
        "  rules, reason strings, last-id-wins de-duplication, silver + quarantine parquet; read silver, age bins (`pd.cut`),",
        "  bill-trend slope (same weights), pay ratio, utilization, gold parquet, then the same profile as the project",
        "  (null and distinct counts of every column; min/max/mean/std, 15 quantiles and a decile histogram per numeric feature;",
        "  level counts per categorical). Vectorised throughout, pyarrow for parquet, each stage reads the previous layer's file.",
        "- Each implementation runs in its own fresh Python process after the CSV has been read once (warm page cache); imports",
        "  are not timed. Peak memory is the child's own `VmHWM` (includes the interpreter and imported libraries).",
        "- Both implementations must agree on bronze, silver, quarantine and gold row counts, quarantine counts per rule and the",
        "  mean of every numeric gold column; any difference is listed under the table.",
        "",
        "## Results",
        "",
        markdown_table(sizes),
        "",
        "rows/s = input CSV rows / total seconds. Speed vs pandas = pandas total / project-core total.",
        "",
    ]
    hashes = {s["runs"]["polars"]["code"]["source_hash"] for s in sizes if "code" in s["runs"].get("polars", {})}
    if len(hashes) > 1:
        lines += ["**WARNING**: the sizes below were measured on different versions of the project code (see each size's", "source hash); re-run them together to compare.", ""]
    for size in sizes:
        extra = []
        for impl in ("polars", "pandas"):
            run = size["runs"].get(impl)
            if run and "error" not in run and len(run.get("all_totals", [])) > 1:
                extra.append(f"{impl} totals over {len(run['all_totals'])} runs: " + ", ".join(fmt_s(t) for t in run["all_totals"]) + " s")
        info = f"- {size['rows_in']:,} rows: measured {size['date']}, CSV {size['csv_mib']:,.0f} MiB"
        info += "".join(f"; {e}" for e in extra)
        lines.append(info + ".")
        for impl in ("polars", "pandas"):
            run = size["runs"].get(impl)
            if run and "error" not in run and "cpu_s" in run:
                lines.append(f"  - {impl}: process used {run['cpu_s'] / run['wall_s']:.2f} cores on average over {run['wall_s']:.1f} s "
                             f"(including interpreter start and imports); other processes used {run['other_cpu_share']:.0%} of the "
                             f"machine's CPU meanwhile.")
        code = size["runs"]["polars"].get("code") if "error" not in size["runs"].get("polars", {"error": 1}) else None
        if code:
            dirty = f" plus uncommitted changes ({', '.join(code['uncommitted'])})" if code["uncommitted"] else ""
            lines.append(f"  - project code: git {code['git_head']}{dirty}; hash of the layer modules and config sections {code['source_hash']}.")
        if size.get("problems"):
            lines += [f"  - **WARNING**: {p}" for p in size["problems"]]
        elif size.get("speedup"):
            lines.append("  - Outputs agree: same row counts in every layer, same quarantine counts per rule, same gold column means.")
    lines += [
        "",
        "## Targets",
        "",
        *verdicts(sizes),
        "",
        "## Reproduce",
        "",
        "From the repository root (the CSVs are generated under `benchmarks/work/` on first use and then reused):",
        "",
        "```",
        *sorted({s.get("command", data["command"]) for s in sizes}, key=lambda c: (len(c), c)),
        "```",
        "",
        "## Notes",
        "",
        NOTES_START,
        notes.strip() if notes.strip() else "(none yet)",
        NOTES_END,
        "",
        f"{JSON_MARK} {json.dumps(data, default=float)} -->",
        "",
    ]
    return "\n".join(lines)


def other_sections() -> str:
    """Sections other benchmarks write after this one's data line (e.g. "Orchestration"), kept as they are."""
    text = harness.read_results(RESULTS_MD)
    if JSON_MARK not in text:
        return ""
    rest = text.split(JSON_MARK, 1)[1].split("-->", 1)[1].strip("\n")
    return f"\n{rest}\n" if rest else ""


def load_previous() -> tuple[dict[str, Any] | None, str]:
    text = harness.read_results(RESULTS_MD)
    if not text:
        return None, ""
    notes = ""
    if NOTES_START in text and NOTES_END in text:
        notes = text.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0]
        if notes.strip() == "(none yet)":
            notes = ""
    data = None
    if JSON_MARK in text:
        try:
            data = json.loads(text.split(JSON_MARK, 1)[1].split("-->", 1)[0])
        except json.JSONDecodeError:
            data = None
    return data, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000], help="nominal row counts (default: 1M and 10M)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-pandas-above", type=int, default=None, metavar="N", help="do not run pandas for sizes above N rows")
    parser.add_argument("--repeat", type=int, default=1, help="runs per implementation and size; the fastest is reported")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a run is stopped and reported as such")
    parser.add_argument("--mem-limit-gib", type=float, default=20, help="RSS at which a run is stopped and reported as such")
    parser.add_argument("--idle-wait", type=float, default=300, help="seconds to wait for other jobs to leave the CPUs before each run")
    parser.add_argument("--keep-stores", action="store_true", help="keep the store folders under benchmarks/work/")
    parser.add_argument("--no-write", action="store_true", help="print the table only; leave RESULTS.md alone")
    parser.add_argument("--child", choices=["polars", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        child_main(args.child, args.csv, args.store, args.child_out)
        return 0

    machine = machine_info()
    command = harness.command_line(__file__, argv)
    previous, notes = load_previous()
    data: dict[str, Any] = {"machine": machine, "command": command, "sizes": {}}
    if previous and previous.get("machine", {}).get("nproc") == machine["nproc"] and previous.get("machine", {}).get("ram_gib") == machine["ram_gib"]:
        data["sizes"] = previous.get("sizes", {})  # other sizes keep their earlier measurements

    measured = []
    for rows in args.rows:
        csv = ensure_csv(rows, args.seed)
        size: dict[str, Any] = {"nominal_rows": rows, "command": data["command"], "date": harness.utc_stamp(),
                                "csv_mib": csv.stat().st_size / 2**20, "runs": {}}
        impls = ["polars"] + ([] if args.skip_pandas_above is not None and rows > args.skip_pandas_above else ["pandas"])
        for impl in impls:
            runs = []
            for i in range(args.repeat):
                print(f"{rows:,} rows: {impl} run {i + 1}/{args.repeat} ...", flush=True)
                run = run_child(impl, csv, rows, args.timeout, args.mem_limit_gib, args.keep_stores, args.idle_wait)
                if "error" not in run:
                    print(f"  {impl}: {run['total']:.1f} s  (bronze {run['stages']['bronze']:.1f}, silver {run['stages']['silver']:.1f}, "
                          f"gold {run['stages']['gold']:.1f})  peak {mib(run['peak_rss_kib']):,.0f} MiB  "
                          f"cores used {run['cpu_s'] / run['wall_s']:.2f}  others {run['other_cpu_share']:.0%}", flush=True)
                runs.append(run)
                if "error" in run:
                    break  # a run that hit a limit would hit it again
            size["runs"][impl] = best_run(runs)
        p, q = size["runs"].get("polars", {}), size["runs"].get("pandas", {})
        size["rows_in"] = p.get("rows_in") or q.get("rows_in") or rows
        if p and q and "error" not in p and "error" not in q:
            size["speedup"] = q["total"] / p["total"]
            size["problems"] = compare(p, q)
            for problem in size["problems"]:
                print(f"WARNING ({rows:,} rows): {problem}", file=sys.stderr, flush=True)
        code_problems = []
        for impl, run in size["runs"].items():
            if len(run.get("source_hashes", [])) > 1:
                code_problems.append(f"{impl} runs measured different project code (source hashes {run['source_hashes']})")
            if run.get("code_changed_during_run"):
                code_problems.append(f"the layer code changed while a {impl} run was going on")
        size["problems"] = size.get("problems", []) + code_problems
        if "pandas" not in size["runs"]:
            size["runs"]["pandas"] = {"impl": "pandas", "error": f"not run (--skip-pandas-above {args.skip_pandas_above:,})"}
        data["sizes"][str(rows)] = size
        measured.append(size)

    print()
    harness.report(markdown_table(measured))
    print()
    print("\n".join(verdicts(measured)))
    if not args.no_write:
        path = harness.write_results(RESULTS_MD, render_results(data, notes) + other_sections())
        print(f"\nwrote {harness.display(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
