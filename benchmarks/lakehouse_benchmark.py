"""Delta Lake layers: their cost against the Parquet layers they replaced, and what incremental runs save.

Usage (from the repository root)::

    .venv/bin/python benchmarks/lakehouse_benchmark.py [--rows 1000000 10000000] [--repeats 2] [--days 30] [--day-rows 100000]

The bronze -> silver -> gold layers moved from plain Parquet files to Delta Lake tables (one
commit per table per run, versions pinned in reports, silver MERGEd by id, gold following
silver's change data feed). That buys atomic commits, history and incremental runs, and this
script measures what it costs and what it saves:

1. **Delta vs Parquet at N rows.** One full bronze + silver + gold run on a fresh store, with
   the current code and with the Parquet code of commit ``a77045b`` (checked out once as a
   detached git worktree under ``benchmarks/work/parquet-baseline`` and imported from there by
   the child process), on the same CSV, alternating new, old, new, old. Reported: the median
   in-process seconds of each, the ratio Delta / Parquet (target <= 1.2), peak RSS, and how the
   Delta version's peak RSS grows from 1M to 10M rows (target <= 1.5x for 10x the rows).
2. **Incremental daily run.** A store with ``--days`` daily batches of ``--day-rows`` records
   (ids continue from day to day; ~5% of each day's records re-send ids of the previous day, i.e.
   updates) is built once, untimed: all days ingested, silver and gold built, then the next
   day ingested. On fresh copies of that store the script times the daily feature run
   (``refine_to_silver`` + ``build_gold``, both incremental) and a full rebuild
   (``full_refresh=True``) of the same store. Reported: the median seconds of each and the
   ratio incremental / full (target <= 0.1).

Every measured run is a fresh Python process (imports are not timed, interpreter start is not
counted) whose peak RSS is its own ``VmHWM`` (interpreter and libraries included). CSVs
and stores live under ``benchmarks/work/`` (git-ignored). The script prints a summary and
replaces the section "Delta Lake layers (lakehouse benchmark)" of ``benchmarks/RESULTS.md``
(or of ``$BENCH_RESULTS_DIR/RESULTS.md``), leaving the other sections as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import harness  # noqa: E402
from benchmarks.harness import mib  # noqa: E402

SCRIPT = Path(__file__).resolve()
WORK = harness.WORK
RESULTS_MD = harness.BENCH / "RESULTS.md"
CONFIG = Path("configs") / "credit_default.yaml"  # relative to the code root (current tree or the baseline worktree)
DATASET = "bench"
BASELINE_COMMIT = "a77045b"  # the last commit with the Parquet layers
BASELINE_DIR = WORK / "parquet-baseline"
PACKAGES = ("polars", "deltalake", "pyarrow")
UPDATE_EVERY = 20  # one record in 20 (5%) of each day re-sends an id of the previous day

TARGET_DELTA_VS_PARQUET = 1.2
TARGET_MEMORY_GROWTH = 1.5  # peak RSS at 10x the rows, as a multiple
TARGET_INCREMENTAL_SHARE = 0.1  # incremental seconds / full rebuild seconds

HEADING = "## Delta Lake layers (lakehouse benchmark)"
SECTION_START = "<!-- lakehouse:start -->"
SECTION_END = "<!-- lakehouse:end -->"
NOTES_START = "<!-- lakehouse-notes:start -->"
NOTES_END = "<!-- lakehouse-notes:end -->"
IMPLS = {"delta": "Delta Lake (current code)", "parquet": f"Parquet ({BASELINE_COMMIT})"}


# -- data ---------------------------------------------------------------------------------------

def layers_csv(rows: int, seed: int) -> Path:
    """The CSV of layers_benchmark.py for ``rows`` (shared with it; generated on first use)."""
    from benchmarks.layers_benchmark import ensure_csv

    return ensure_csv(rows, seed)


def warm_page_cache(path: Path) -> None:
    from benchmarks.layers_benchmark import warm_page_cache as warm

    warm(path)


def day_frame(day: int, day_rows: int, seed: int) -> Any:
    """Day ``day`` (0-based) of credit data: new ids continue from the day before; 5% of the records update the day before's ids.

    Record k (1..day_rows) of day d gets id ``d * day_rows + k``, except when ``k % 20 == d % 20`` on
    days after the first: then it re-sends id ``(d - 1) * day_rows + k``, which day d - 1 sent as a
    new id (there ``k % 20 != (d - 1) % 20``). The demo generator's own re-sent copies (0.2%) stay.
    """
    import polars as pl

    from pipeline_core.demo_data import credit_default_frame

    local = pl.col("ID").cast(pl.Int64)
    is_update = pl.lit(day > 0) & (local % UPDATE_EVERY == day % UPDATE_EVERY)
    ids = pl.when(is_update).then(local + (day - 1) * day_rows).otherwise(local + day * day_rows)
    return credit_default_frame(day_rows, seed + day).with_columns(ids.cast(pl.String).alias("ID"))


def day_csvs(days: int, day_rows: int, seed: int) -> list[Path]:
    """CSV files of days 1..``days`` (generated on first use, then reused)."""
    from pipeline_io.demo_files import write_csv

    folder = WORK / f"lakehouse-days-{day_rows}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in range(days):
        path = folder / f"day{day + 1:03d}.csv"
        if not path.exists():
            write_csv(day_frame(day, day_rows, seed), path)
        paths.append(path)
    return paths


# -- the Parquet code of the baseline commit ---------------------------------------------------------

def baseline_worktree(commit: str) -> Path:
    """A detached git worktree of ``commit`` under benchmarks/work/ (made once, then reused)."""
    wanted = harness.run_checked(["git", "rev-parse", "--verify", f"{commit}^{{commit}}"]).strip()
    if (BASELINE_DIR / ".git").exists():
        head = harness.run_checked(["git", "-C", str(BASELINE_DIR), "rev-parse", "HEAD"]).strip()
        if head != wanted:
            raise RuntimeError(f"{harness.display(BASELINE_DIR)} is at {head[:12]}, not {commit}; remove it with "
                               f"`git worktree remove --force {harness.display(BASELINE_DIR)}` and run again")
        return BASELINE_DIR
    harness.run_checked(["git", "worktree", "prune"])  # forget a worktree whose folder was deleted by hand
    harness.run_checked(["git", "worktree", "add", "--detach", str(BASELINE_DIR), wanted])
    print(f"created the baseline worktree {harness.display(BASELINE_DIR)} at {commit}", flush=True)
    return BASELINE_DIR


# -- children: one measured run each, in a fresh interpreter -------------------------------------------

def load_layer_config(code_root: Path, csv: Path, store_root: Path) -> Any:
    from pipeline_core.config import load_config

    return load_config(code_root / CONFIG, overrides=[f"dataset.source={csv}", f"store.root={store_root}", f"dataset.name={DATASET}"])


def open_bench_store(cfg: Any) -> Any:
    from pipeline_io.store import Store

    return Store(cfg.store.root, cfg.store.s3)


def child_layers(code_root: Path, csvs: list[Path], store_root: Path) -> dict[str, Any]:
    """Bronze + silver + gold of one CSV on a fresh store, with whichever code ``code_root`` holds (first on sys.path)."""
    from benchmarks.layers_benchmark import run_polars  # imports the project inside the call, after child_main set the path

    run = run_polars(csvs[0], store_root)
    return {"stages": run["stages"], "total": run["total"], "rows_in": run["rows_in"], "silver_rows": run["silver_rows"],
            "quarantined": run["quarantine_rows"], "gold_rows": run["gold_rows"], "baseline_rss_kib": run["baseline_rss_kib"]}


def child_setup(code_root: Path, csvs: list[Path], store_root: Path) -> dict[str, Any]:
    """Untimed set-up of the incremental store: all days but the last ingested, silver and gold built, then the last day ingested."""
    from tasks.bronze import ingest_batch
    from tasks.gold import build_gold
    from tasks.silver import refine_to_silver

    *history, today = csvs
    started = time.perf_counter()
    bronze_rows = 0
    for csv in history:
        day_cfg = load_layer_config(code_root, csv, store_root)
        bronze_rows += ingest_batch(day_cfg, open_bench_store(day_cfg), csv)["rows"]
    cfg = load_layer_config(code_root, today, store_root)  # the config the measured runs use
    store = open_bench_store(cfg)
    silver = refine_to_silver(cfg, store)
    gold = build_gold(cfg, store)
    built = time.perf_counter()
    last = ingest_batch(cfg, store, today)
    return {"history_s": built - started, "ingest_today_s": time.perf_counter() - built, "history_bronze_rows": bronze_rows,
            "history_silver_rows": silver["table_rows"], "history_gold_rows": gold["row_count"], "today_rows": last["rows"],
            "batches": len(csvs)}


def child_features(code_root: Path, csvs: list[Path], store_root: Path, full_refresh: bool) -> dict[str, Any]:
    """The daily feature run (silver + gold) on a prepared store: incremental, or a full rebuild."""
    from tasks.gold import build_gold
    from tasks.silver import refine_to_silver

    cfg = load_layer_config(code_root, csvs[-1], store_root)
    store = open_bench_store(cfg)
    baseline = harness.rss_kib()
    t0 = time.perf_counter()
    silver = refine_to_silver(cfg, store, full_refresh=full_refresh)
    t1 = time.perf_counter()
    gold = build_gold(cfg, store, full_refresh=full_refresh)
    t2 = time.perf_counter()
    expected = "full" if full_refresh else "incremental"
    if (silver["mode"], gold["mode"]) != (expected, expected):
        raise RuntimeError(f"expected {expected} runs, got silver {silver['mode']} ({silver.get('why')}), gold {gold['mode']} ({gold.get('why')})")
    return {"stages": {"silver": t1 - t0, "gold": t2 - t1}, "total": t2 - t0, "silver_rows_in": silver["rows_in"],
            "silver_table_rows": silver["table_rows"], "gold_changed_rows": gold["changed_rows"], "gold_rows": gold["row_count"],
            "baseline_rss_kib": baseline}


CHILDREN = {
    "layers": child_layers,
    "setup": child_setup,
    "incremental": lambda root, csvs, store: child_features(root, csvs, store, full_refresh=False),
    "full": lambda root, csvs, store: child_features(root, csvs, store, full_refresh=True),
}


def child_main(task: str, code_root: Path, csvs: list[Path], store_root: Path, out: Path) -> None:
    """Import the project from ``code_root`` (ahead of the editable install and this repository), run ``task``, write JSON."""
    code_root = code_root.resolve()
    sys.path.insert(0, str(code_root))
    import polars as pl

    import tasks

    if not Path(tasks.__file__).resolve().is_relative_to(code_root):
        raise RuntimeError(f"imported {tasks.__file__}, not the code under {code_root}")
    result = CHILDREN[task](code_root, csvs, store_root)
    import pipeline_io.store

    if not Path(pipeline_io.store.__file__).resolve().is_relative_to(code_root):  # the layers ran on one version of the code
        raise RuntimeError(f"imported {pipeline_io.store.__file__}, not the code under {code_root}")
    result.update(peak_rss_kib=harness.peak_rss_kib(), cpu_s=harness.process_cpu_s(), polars_threads=pl.thread_pool_size(),
                  code_file=str(Path(tasks.__file__).resolve()))
    out.write_text(json.dumps(result, default=float))


# -- parent: run children ------------------------------------------------------------------------------

def run_child(task: str, code_root: Path, csvs: list[Path], store_root: Path, timeout_s: float, idle_wait_s: float) -> dict[str, Any]:
    """One child process; its JSON result plus wall time and other processes' CPU share, or ``{"error": ...}``."""
    out = store_root.with_name(store_root.name + ".json")
    cmd = [sys.executable, str(SCRIPT), "--child", task, "--code-root", str(code_root), "--store", str(store_root),
           "--child-out", str(out), "--csv", *map(str, csvs)]
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    idle = harness.wait_for_idle(idle_wait_s) if idle_wait_s > 0 else None
    if idle and not idle["idle"]:
        print(f"  (machine still {idle['busy_before']:.0%} busy after waiting {idle['waited_s']:.0f} s; running anyway)", flush=True)
    error = None
    with harness.OtherLoad() as load:
        try:
            done = subprocess.run(cmd, cwd=code_root, env=env, capture_output=True, text=True, timeout=timeout_s)
            if done.returncode != 0:
                tail = " | ".join(done.stderr.strip().splitlines()[-3:])
                error = f"failed: exit code {done.returncode} ({tail[:400]})"
        except subprocess.TimeoutExpired:
            error = f"stopped: still running after the {timeout_s:.0f} s limit"
    if error is None:
        result = json.loads(out.read_text())
    else:
        result = {"error": error}
        print(f"  {task}: {error}", file=sys.stderr, flush=True)
    out.unlink(missing_ok=True)
    return {**result, "wall_s": load.wall_s, "other_cpu_share": load.share, "idle_wait": idle}


def fresh_store(label: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"lakehouse-{label}-", dir=WORK))


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median seconds (total and per stage), highest peak RSS and the errors of a list of runs."""
    ok = [r for r in runs if "error" not in r]
    out: dict[str, Any] = {"runs": runs, "errors": [r["error"] for r in runs if "error" in r]}
    if ok:
        out.update(median_s=statistics.median(r["total"] for r in ok), all_s=[r["total"] for r in ok],
                   stages={s: statistics.median(r["stages"][s] for r in ok) for s in ok[0]["stages"]},
                   peak_rss_kib=max(r["peak_rss_kib"] for r in ok), other_cpu_share=max(r["other_cpu_share"] for r in ok))
    return out


def measure_layers(rows: int, args: argparse.Namespace, roots: dict[str, Path]) -> dict[str, Any]:
    """Full runs of both implementations on the ``rows`` CSV, interleaved: new, old, new, old, ..."""
    csv = layers_csv(rows, args.seed)
    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in IMPLS}
    for i in range(args.repeats):
        for impl in IMPLS:
            store = fresh_store(f"{impl}-{rows}")
            warm_page_cache(csv)
            run = run_child("layers", roots[impl], [csv], store, args.timeout, args.idle_wait)
            if not args.keep_stores:
                shutil.rmtree(store, ignore_errors=True)
            runs[impl].append(run)
            if "error" not in run:
                s = run["stages"]
                print(f"  {rows:,} rows, {impl} run {i + 1}/{args.repeats}: {run['total']:.2f} s (bronze {s['bronze']:.2f}, silver "
                      f"{s['silver']:.2f}, gold {s['gold']:.2f}), peak {mib(run['peak_rss_kib']):,.0f} MiB, "
                      f"others {run['other_cpu_share']:.0%}", flush=True)
    size = {"nominal_rows": rows, "csv_mib": csv.stat().st_size / 2**20, **{impl: summarize(r) for impl, r in runs.items()}}
    ok = {impl: [r for r in runs[impl] if "error" not in r] for impl in IMPLS}
    if ok["delta"] and ok["parquet"]:
        size["rows_in"] = ok["delta"][0]["rows_in"]
        size["ratio"] = size["delta"]["median_s"] / size["parquet"]["median_s"]
        size["problems"] = compare_outputs(ok["delta"][0], ok["parquet"][0])
    else:
        size["rows_in"] = next((r["rows_in"] for rs in ok.values() for r in rs), rows)
    return size


def compare_outputs(delta: dict[str, Any], parquet: dict[str, Any]) -> list[str]:
    """Row counts that differ between the two implementations (none expected)."""
    return [f"{key}: Delta {delta[key]:,} vs Parquet {parquet[key]:,}" for key in ("rows_in", "silver_rows", "quarantined", "gold_rows")
            if delta[key] != parquet[key]]


def measure_incremental(args: argparse.Namespace) -> dict[str, Any]:
    """Build the ``--days`` store plus one new day once, then time incremental and full feature runs on fresh copies of it."""
    csvs = day_csvs(args.days + 1, args.day_rows, args.seed)
    base = WORK / f"lakehouse-store-{args.days}x{args.day_rows}-seed{args.seed}"
    shutil.rmtree(base, ignore_errors=True)  # always rebuilt: the code may have changed since the last run
    base.mkdir(parents=True)
    print(f"building the {args.days}-day store ({args.day_rows:,} records a day) and ingesting day {args.days + 1} (untimed) ...", flush=True)
    setup = run_child("setup", REPO, csvs, base, args.timeout, 0)
    result: dict[str, Any] = {"days": args.days, "day_rows": args.day_rows, "setup": setup}
    if "error" in setup:
        return result
    print(f"  set-up: {setup['history_s']:.1f} s for {args.days} days ({setup['history_bronze_rows']:,} bronze rows), "
          f"day {args.days + 1} ingested in {setup['ingest_today_s']:.2f} s", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"incremental": [], "full": []}
    for i in range(args.repeats):
        copies = {kind: fresh_store(kind) for kind in runs}
        for kind, store in copies.items():
            shutil.rmtree(store)
            shutil.copytree(base, store)
        order = list(runs) if i % 2 == 0 else list(reversed(runs))
        for kind in order:
            run = run_child(kind, REPO, csvs, copies[kind], args.timeout, args.idle_wait)
            runs[kind].append(run)
            if "error" not in run:
                print(f"  {kind} run {i + 1}/{args.repeats}: {run['total']:.2f} s (silver {run['stages']['silver']:.2f}, gold "
                      f"{run['stages']['gold']:.2f}; silver read {run['silver_rows_in']:,} rows, gold engineered {run['gold_changed_rows']:,}), "
                      f"peak {mib(run['peak_rss_kib']):,.0f} MiB, others {run['other_cpu_share']:.0%}", flush=True)
        if not args.keep_stores:
            for store in copies.values():
                shutil.rmtree(store, ignore_errors=True)
    if not args.keep_stores:
        shutil.rmtree(base, ignore_errors=True)
    result.update({kind: summarize(r) for kind, r in runs.items()})
    if "median_s" in result["incremental"] and "median_s" in result["full"]:
        result["ratio"] = result["incremental"]["median_s"] / result["full"]["median_s"]
    return result


# -- report ---------------------------------------------------------------------------------------------

def fmt_s(x: float) -> str:
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def layer_rows(size: dict[str, Any]) -> list[list[str]]:
    rows = []
    for impl, name in IMPLS.items():
        s = size[impl]
        if "median_s" not in s:
            rows.append([f"{size['rows_in']:,}", name, "; ".join(s["errors"]) or "not run"])
            continue
        stages = " / ".join(fmt_s(s["stages"][k]) for k in ("bronze", "silver", "gold"))
        rows.append([f"{size['rows_in']:,}", name, ", ".join(fmt_s(t) for t in s["all_s"]), f"**{fmt_s(s['median_s'])}**", stages,
                     f"{mib(s['peak_rss_kib']):,.0f}", f"{s['other_cpu_share']:.0%}"])
    return rows


def incremental_rows(inc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for kind, name in (("incremental", "incremental daily run"), ("full", "full rebuild (`full_refresh=True`)")):
        s = inc.get(kind)
        if not s or "median_s" not in s:
            rows.append([name, "; ".join(s["errors"]) if s else "not run"])
            continue
        first = next(r for r in s["runs"] if "error" not in r)
        rows.append([name, ", ".join(fmt_s(t) for t in s["all_s"]), f"**{fmt_s(s['median_s'])}**", fmt_s(s["stages"]["silver"]),
                     fmt_s(s["stages"]["gold"]), f"{first['silver_rows_in']:,}", f"{first['gold_changed_rows']:,}",
                     f"{mib(s['peak_rss_kib']):,.0f}", f"{s['other_cpu_share']:.0%}"])
    return rows


def verdicts(data: dict[str, Any]) -> list[str]:
    """One line per target, saying plainly whether it is met."""
    lines = []
    sizes = data["sizes"]
    for size in sizes:
        if "ratio" in size:
            lines.append(f"- Delta / Parquet at {size['rows_in']:,} rows: {fmt_s(size['delta']['median_s'])} s / "
                         f"{fmt_s(size['parquet']['median_s'])} s = {size['ratio']:.2f}x; target <= {TARGET_DELTA_VS_PARQUET:g}x: "
                         f"{verdict(size['ratio'] <= TARGET_DELTA_VS_PARQUET)}.")
        else:
            lines.append(f"- Delta / Parquet at {size['rows_in']:,} rows: not measured (a run failed; see above): **not met**.")
    ok = [s for s in sizes if "median_s" in s["delta"]]
    if len(ok) >= 2:
        small, big = min(ok, key=lambda s: s["rows_in"]), max(ok, key=lambda s: s["rows_in"])
        growth = big["delta"]["peak_rss_kib"] / small["delta"]["peak_rss_kib"]
        row_factor = big["rows_in"] / small["rows_in"]
        line = (f"- Delta peak RSS {mib(small['delta']['peak_rss_kib']):,.0f} MiB at {small['rows_in']:,} rows and "
                f"{mib(big['delta']['peak_rss_kib']):,.0f} MiB at {big['rows_in']:,} rows: {growth:.2f}x the memory for {row_factor:.1f}x "
                f"the rows; target <= {TARGET_MEMORY_GROWTH:g}x for 10x the rows: ")
        if row_factor >= 9.5:
            lines.append(line + f"{verdict(growth <= TARGET_MEMORY_GROWTH)}.")
        else:
            lines.append(line + "not judged (the sizes measured are not 10x apart).")
    else:
        lines.append(f"- Delta memory growth for 10x the rows (target <= {TARGET_MEMORY_GROWTH:g}x): not measured (needs two sizes 10x apart).")
    inc = data["incremental"]
    if "ratio" in inc:
        lines.append(f"- Incremental / full rebuild: {fmt_s(inc['incremental']['median_s'])} s / {fmt_s(inc['full']['median_s'])} s = "
                     f"{inc['ratio']:.3f}; target <= {TARGET_INCREMENTAL_SHARE:g}: {verdict(inc['ratio'] <= TARGET_INCREMENTAL_SHARE)}.")
    else:
        lines.append("- Incremental / full rebuild: not measured (a run failed; see above): **not met**.")
    return lines


def render(data: dict[str, Any], notes: str) -> str:
    inc = data["incremental"]
    setup = inc["setup"]
    lines = [
        SECTION_START,
        HEADING,
        "",
        f"Generated by `benchmarks/lakehouse_benchmark.py` on {data['date']}: {harness.machine_line(data['machine'], PACKAGES)}, "
        f"polars thread pool {data['polars_threads']}. Load average (1/5/15 min) {data['loadavg_before']} before, "
        f"{data['loadavg_after']} after. Delta code: git {data['code']}; Parquet code: commit {data['baseline_commit']} "
        f"(detached worktree `{harness.display(BASELINE_DIR)}`, same virtual environment).",
        "",
        f"Command: `{data['command']}`",
        "",
        "Each run is a fresh Python process on a fresh store; seconds are measured inside it around the layer calls (interpreter",
        "start and imports not counted), peak RSS is the process's own `VmHWM` (interpreter and libraries included). \"Other",
        "load\" is the highest share of the machine's CPU used by other processes during the runs (the machine is shared).",
        "",
        f"### Delta vs Parquet layers: full bronze + silver + gold run ({data['repeats']} run(s) each, interleaved Delta, Parquet, ...)",
        "",
        harness.markdown_table(["input rows", "layers", "runs s", "median s", "bronze / silver / gold s (median)", "peak RSS MiB", "other load"],
                               [row for size in data["sizes"] for row in layer_rows(size)], align="rlrrrrr"),
        "",
        "Input: the CSV of `layers_benchmark.py` for each size (demo credit data, 0.2% re-sent ids); the CSV is read once before",
        "each run (warm page cache).",
    ]
    for size in data["sizes"]:
        for problem in size.get("problems", []):
            lines.append(f"- **WARNING** ({size['rows_in']:,} rows): outputs differ: {problem}")
    lines += [
        "",
        f"### Incremental daily run vs full rebuild ({inc['days']} days of {inc['day_rows']:,} records, then day {inc['days'] + 1})",
        "",
    ]
    if "error" in setup:
        lines.append(f"Building the store failed: {setup['error']}")
    else:
        lines += [
            f"Store: {setup['batches']} bronze batches (ids continue from day to day; 1 record in {UPDATE_EVERY} of each day after the",
            f"first re-sends an id of the day before, an update), {setup['history_bronze_rows'] + setup['today_rows']:,} bronze rows in all.",
            f"Built untimed: days 1-{inc['days']} ingested and silver + gold built in {setup['history_s']:.1f} s, then day "
            f"{inc['days'] + 1} ({setup['today_rows']:,} rows) ingested in {setup['ingest_today_s']:.2f} s. Each measured run works",
            "on its own copy of that store (`shutil.copytree`, made before the runs); incremental and full runs alternate in order.",
            "",
            harness.markdown_table(["feature run (silver + gold)", "runs s", "median s", "silver s", "gold s", "silver rows read",
                                    "gold rows engineered", "peak RSS MiB", "other load"], incremental_rows(inc), align="lrrrrrrrr"),
        ]
    lines += [
        "",
        "### Targets",
        "",
        *verdicts(data),
        "",
        "### Notes",
        "",
        NOTES_START,
        notes.strip() or "(none yet)",
        NOTES_END,
        "",
        SECTION_END,
        "",
    ]
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000], help="nominal CSV sizes of part 1 (default: 1M 10M)")
    parser.add_argument("--repeats", type=int, default=2, help="measured runs per implementation / run kind; medians are reported")
    parser.add_argument("--days", type=int, default=30, help="daily batches in the store before the measured day (default: 30)")
    parser.add_argument("--day-rows", type=int, default=100_000, help="records per daily batch (default: 100000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT, help=f"commit with the Parquet layers (default: {BASELINE_COMMIT})")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before a run is stopped and reported as failed")
    parser.add_argument("--idle-wait", type=float, default=120, help="seconds to wait at most for idle CPUs before each run (0: don't)")
    parser.add_argument("--keep-stores", action="store_true", help="keep the stores under benchmarks/work/")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--code-root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args.child, args.code_root, args.csv, args.store, args.child_out)
        return 0

    import polars as pl

    WORK.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"machine": harness.machine_info(*PACKAGES), "polars_threads": pl.thread_pool_size(), "code": harness.git_head(),
                            "baseline_commit": args.baseline_commit, "command": harness.command_line(__file__, argv),
                            "date": harness.utc_stamp(), "loadavg_before": harness.loadavg(), "repeats": args.repeats}
    roots = {"delta": REPO, "parquet": baseline_worktree(args.baseline_commit)}
    data["sizes"] = []
    for rows in args.rows:
        print(f"Delta vs Parquet layers, {rows:,} rows", flush=True)
        data["sizes"].append(measure_layers(rows, args, roots))
    print("incremental daily run vs full rebuild", flush=True)
    data["incremental"] = measure_incremental(args)
    data["loadavg_after"] = harness.loadavg()
    raw = harness.results_path(WORK / "lakehouse-results.json")  # every run's numbers, for a closer look
    raw.write_text(json.dumps(data, indent=2, default=float))

    section = render(data, harness.kept_notes(RESULTS_MD, NOTES_START, NOTES_END))
    print()
    harness.report(section)
    if not args.no_write:
        path = harness.replace_section(RESULTS_MD, SECTION_START, SECTION_END, section)
        print(f"wrote {harness.display(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
