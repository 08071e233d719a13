"""Terminal rendering of command results with rich."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

_STATUS_STYLE = {"ran": "green", "ingested": "green", "cached": "cyan", "skipped": "cyan", "unchanged": "cyan"}


LEADERBOARD_METRICS = ["roc_auc", "pr_auc", "f1", "mcc"]  # all 13 are in --json, the CSV artifact and MLflow


def layers(console: Console, summaries: list[dict[str, Any]], elapsed: float, log_path: Path | None) -> None:
    data_layers = [s for s in summaries if s["layer"] not in ("training", "inference")]
    if data_layers:
        _layer_table(console, data_layers)
    for s in summaries:
        if s["layer"] == "training":
            training(console, s)
        if s["layer"] == "inference":
            inference_summary(console, s)
    console.print(f"done in {elapsed:.1f}s" + (f"; log: {log_path}" if log_path else ""))


def training(console: Console, s: dict[str, Any]) -> None:
    primary = s["primary_metric"]
    # on a narrow terminal (80 columns, or output to a file) two metrics, so the model names and tuning stay whole
    metrics = [primary, *[m for m in LEADERBOARD_METRICS if m != primary]][:4 if console.width >= 110 else 2]
    order = f"sorted by CV {primary}, then holdout" if s.get("ranked_by") == "cv" else f"holdout, sorted by {primary}"
    table = Table(title=f"Leaderboard ({order}; CV = cross-validated {primary}; tuning: trials completed/pruned/failed)", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Model", no_wrap=True)
    for m in metrics:
        table.add_column(m, justify="right", min_width=5, no_wrap=True)
    table.add_column("thr", justify="right", min_width=4, no_wrap=True)
    table.add_column("CV", justify="right", min_width=5, no_wrap=True)
    table.add_column("s", justify="right", no_wrap=True)
    table.add_column("trials", justify="right", no_wrap=True)
    for r in s["models"]:
        table.add_row(r["name"], *[f"{r['metrics'][m]:.3f}" for m in metrics], f"{r['threshold']:.2f}",
                      f"{r['cv_mean']:.3f}", f"{r['seconds']:.0f}", _tuning_cell(r))
    console.print(table)
    untuned: dict[str, list[str]] = {}  # one line per reason: with tuning off that is every model
    for r in s["models"]:
        if r.get("params_from") == "ensemble":
            members = ", ".join(f"{name} {weight:.2f}" for name, weight in r["params"].items())
            console.print(f"{r['name']}: weights chosen greedily on out-of-fold predictions: {members}", highlight=False)
        elif not r.get("tuned", True):
            untuned.setdefault(r.get("note") or "tuning off", []).append(r["name"])
        elif r.get("params_from") == "defaults":
            console.print(f"{r['name']}*: tuned, but {r.get('note') or 'no trial beat the defaults'}: trained with its defaults",
                          highlight=False)
    for why, names in untuned.items():
        console.print(f"[yellow]{', '.join(names)}: untuned[/], trained with {'its' if len(names) == 1 else 'their'} defaults: {why}",
                      highlight=False)
    if s.get("time_budget_seconds"):
        ended = {r["name"]: r.get("tuning_ended") for r in s["models"]}
        why = {"stalled": "stopped when its score stalled", "time budget": "until the budget ended", "trial cap": "up to the trial cap"}
        tuned = ", ".join(f"{name} ({why.get(ended[name], ended[name])})" if ended.get(name) else name for name in s.get("tuned_models") or [])
        console.print(f"time budget {s['time_budget_seconds']:.0f}s for all models; tuned: {tuned or 'none'}", highlight=False)
    verdict = "[green]promoted to champion[/]" if s["promoted"] else "[yellow]registered as challenger, not promoted[/]"
    if s.get("status") == "cached":
        console.print(f"training: [cyan]cached[/] in {s['seconds']:.1f}s: gold data, config and code unchanged, nothing retrained "
                      f"(leaderboard of MLflow run {s['parent_run_id']}; --refresh trains again)", highlight=False)
        verdict = "(earlier run) " + verdict
    refit = next((m for m in s["models"] if m.get("refit_full")), None)
    refitted = f" (refitted on all {refit['rows_fitted']:,} rows: training + holdout)" if refit and refit.get("rows_fitted") else ""
    console.print(f"best: [bold]{s['best_model']}[/]{refitted} -> {s['registered_model']} v{s['version']} {verdict}: {s['reason']}",
                  highlight=False)
    console.print(f"champion: v{s['champion_version']}; tracking: {s['tracking_uri']}", highlight=False)
    if s.get("model_versions"):
        console.print("every model registered: " + ", ".join(s["model_versions"].values()), highlight=False)
    if c := s.get("concurrency"):
        storages = sorted({r["optuna_storage"] for r in s["models"] if r.get("optuna_storage")})
        console.print(f"ran {c['concurrent_models']} model(s) at a time on the {c['task_runner']} runner, {c['n_jobs']} thread(s) "
                      f"per fit, {c['tuning_workers']} Optuna worker(s)" + (f"; study storage: {', '.join(storages)}" if storages else ""),
                      highlight=False)
    if s.get("export_dir"):
        console.print(f"exported to {s['export_dir']}", highlight=False)
    if s.get("report"):
        console.print(f"report: {s['report']}", highlight=False)


def _tuning_cell(r: dict[str, Any]) -> str:
    """Trials completed / pruned / failed, and where the final params came from."""
    t = r.get("trials") or {}
    if r.get("params_from") == "ensemble":
        return "ensemble"
    if not r.get("tuned", True) and not any(t.values()):
        return "[yellow]untuned[/]"
    return f"{t.get('COMPLETE', 0)}/{t.get('PRUNED', 0)}/{t.get('FAIL', 0)}" + ("*" if r.get("params_from") == "defaults" else "")


def _layer_table(console: Console, summaries: list[dict[str, Any]]) -> None:
    table = Table(title="Pipeline layers", title_justify="left")
    for col, just in [("Layer", "left"), ("Status", "left"), ("Rows in", "right"), ("Rows out", "right"),
                      ("Quarantined", "right"), ("Seconds", "right")]:
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for s in summaries:
        style = _STATUS_STYLE.get(s["status"], "white")
        table.add_row(s["layer"], f"[{style}]{s['status']}[/]", f"{s['rows_in']:,}", f"{s['rows_out']:,}",
                      f"{s.get('quarantined', 0):,}", f"{s['seconds']:.2f}")
    console.print(table)
    for s in summaries:
        console.print(f"[bold]{s['layer']}[/]: {_details(s)}", highlight=False)


def _details(s: dict[str, Any]) -> str:
    if s["layer"] == "bronze":
        change = s.get("schema_change") or {}
        text = f"batch {s['batch_id']}"
        if s["status"] == "skipped":
            text += " (identical content already stored)"
        else:
            text += f" committed as bronze version {s['version']}"
        if any(change.values()):
            text += f"; schema change {json.dumps(change)}"
        return text
    if s["layer"] == "silver":
        versions = s.get("versions") or {}
        where = f"data v{versions.get('data')} ({s.get('table_rows', 0):,} rows), quarantine v{versions.get('quarantine')}"
        if s["status"] == "unchanged":
            return f"no new bronze batch; up to date at {where}"
        if s["status"] == "cached":
            return f"cache hit at {where}"
        rules = s.get("quarantined_by_rule") or {}
        text = f"{s.get('mode', 'full')} run -> {where}; quarantined: " + (", ".join(f"{k}={v}" for k, v in rules.items()) or "none")
        if s.get("superseded_rows"):
            text += f"; {s['superseded_rows']:,} row(s) updated by a later batch's record of their id"
        if s.get("repeated_rows") and not s.get("repeats_quarantined"):
            text += (f"; {s['repeated_rows']:,} repeated rows kept as observations (no id column; "
                     "cleaning.deduplicate: true quarantines them)")
        return text
    if s["layer"] == "gold":
        missing = s.get("missing_values") or {}
        text = f"v{s.get('version')} from silver v{s.get('silver_version')}"
        text += " (up to date)" if s["status"] == "unchanged" else (f" ({s['mode']} run)" if s.get("mode") else "")
        text += f"; feature version {s['feature_version']}; {s['numeric']} numeric, {s['categorical']} categorical"
        if s.get("set_aside"):
            text += "; not features: " + ", ".join(f"{c} ({r})" for c, r in s["set_aside"].items())
        if missing:
            text += "; missing: " + ", ".join(f"{k} {v:.1%}" for k, v in list(missing.items())[:5])
        return text
    return ""


def lineage(console: Console, data: dict[str, Any], elapsed: float, log_path: Path | None) -> None:
    if p := data.get("predictions"):
        console.print(f"[bold]predictions[/] {p['path']}", highlight=False)
    m, r, g, s, b = data["model"], data["run"], data["gold"], data["silver"], data["bronze"]
    aliases = f" ({', '.join(m['aliases'])})" if m["aliases"] else ""
    console.print(f"  <- [bold]model[/] models:/{m['name']}/{m['version']}{aliases}", highlight=False)
    console.print(f"  <- [bold]MLflow run[/] {r['run_id']} ({r['model']}; training run {r['parent_run_id']})", highlight=False)
    console.print(f"  <- [bold]gold[/] {g['table']} version {g['version']} ({g['rows']:,} rows, feature version {g['feature_version']})",
                  highlight=False)
    console.print(f"  <- [bold]silver[/] {s['table']} version {s['version']} ({s['rows']:,} rows; quarantine version "
                  f"{s['quarantine_version']})", highlight=False)
    console.print(f"  <- [bold]bronze[/] {b['table']} version {b['version']}, {len(b['batches'])} batch(es):", highlight=False)
    for batch in b["batches"]:
        console.print(f"       {batch['batch_id']}  {batch['rows']:,} rows from {batch['source']} at {batch['ingested_at'][:19]}",
                      highlight=False)


def store_history(console: Console, rows: list[dict[str, Any]], elapsed: float, log_path: Path | None) -> None:
    if not rows:
        console.print("no tables yet; `pipeline-cli run` writes them")
        return
    table = Table(title="Table history (newest first)", title_justify="left")
    for col in ("Table", "Version", "When", "Operation", "Rows", "Layer run"):
        table.add_column(col)
    for r in rows:
        facts = ", ".join(f"{k}={r[k]}" for k in ("mode", "batch_id", "dropped_batch", "silver_version", "bronze_version", "restored_to")
                          if k in r)
        when = r["time"][5:19].replace("T", " ")  # MM-DD HH:MM:SS, local time
        table.add_row(r["name"], str(r["version"]), when, str(r["operation"]), "" if r["rows"] is None else f"{r['rows']:,}", facts)
    console.print(table)


def store_batches(console: Console, rows: list[dict[str, Any]], elapsed: float, log_path: Path | None) -> None:
    if not rows:
        console.print("no bronze batches yet; `pipeline-cli bronze` or `run` ingests the source")
        return
    table = Table(title="Bronze batches (oldest first)", title_justify="left")
    for col in ("Batch id", "Ingested", "Rows", "Source"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["batch_id"], r["ingested_at"][:19].replace("T", " "), f"{r['rows']:,}", r["source"])
    console.print(table)


def dropped_batch(console: Console, data: dict[str, Any], elapsed: float, log_path: Path | None) -> None:
    what = f"bronze batch {data['batch_id']} ({data['rows']:,} rows from {data['source']}, ingested {data['ingested_at'][:19]})"
    if data["dry_run"]:
        console.print(f"would drop {what}; nothing changed", highlight=False)
        return
    console.print(f"dropped {what}: bronze version {data['bronze_version']} (version {data['bronze_version_before']} and older still "
                  "hold it until `store vacuum`); the next `features` or `run` rebuilds silver and gold without it", highlight=False)


def config(console: Console, data: dict[str, Any], elapsed: float, log_path: Path | None) -> None:
    console.print("[green]config is valid[/]")
    console.print_json(json.dumps(data))


def mapping(console: Console, data: dict[str, Any], elapsed: float, log_path: Path | None) -> None:
    for k, v in data.items():
        console.print(f"{k}: {v}")


def models(console: Console, data: list[dict[str, Any]], elapsed: float, log_path: Path | None) -> None:
    table = Table(title="Registered models", title_justify="left")
    for col in ("Name", "Versions", "Latest", "Aliases"):
        table.add_column(col)
    for m in data:
        table.add_row(m["name"], str(m["versions"]), str(m["latest_version"]), ", ".join(f"{a}=v{v}" for a, v in m["aliases"].items()))
    console.print(table)


def model_versions(console: Console, data: dict[str, Any], elapsed: float, log_path: Path | None) -> None:
    table = Table(title=f"{data['name']}", title_justify="left")
    for col in ("Version", "Aliases", "Threshold", "roc_auc", "accuracy", "f1", "Run"):
        table.add_column(col)
    for v in data["versions"]:
        m = v["metrics"]
        table.add_row(v["version"], ", ".join(v["aliases"]), _threshold(v["threshold"]), *[f"{m[k]:.4f}" if k in m else "-" for k in ("roc_auc", "accuracy", "f1")], str(v["run_id"]))
    console.print(table)


def alias_history(console: Console, data: list[dict[str, Any]], elapsed: float, log_path: Path | None) -> None:
    table = Table(title="Alias history (oldest first)", title_justify="left")
    for col in ("When (UTC)", "Alias", "Version", "roc_auc", "Reason"):
        table.add_column(col)
    for h in data:
        auc = h["metrics"].get("roc_auc")
        table.add_row(h["at"][:19], h["alias"], h["version"], f"{auc:.4f}" if auc is not None else "-", h["reason"])
    console.print(table)


_DRIFT_STYLE = {"ok": "green", "warn": "yellow", "drift": "red", "insufficient": "cyan", "no_reference": "cyan"}


def inference(console: Console, s: dict[str, Any], elapsed: float, log_path: Path | None) -> None:
    inference_summary(console, s)
    console.print(f"done in {elapsed:.1f}s" + (f"; log: {log_path}" if log_path else ""))


def inference_summary(console: Console, s: dict[str, Any]) -> None:
    model = s["model"]
    console.print(f"scored [bold]{s['rows_scored']:,}[/] of {s['rows_in']:,} rows with {model['name'] or model['uri']} "
                  f"v{model['version'] or '-'} (threshold {s['threshold']:.3f}) in {s['seconds']:.1f}s; "
                  f"positives {s['positives']:,} ({(s['positive_rate'] or 0):.1%})", highlight=False)
    console.print(f"predictions: {s['output']}", highlight=False)
    if s.get("shadow"):
        console.print(f"shadow: {s['shadow']['name']} v{s['shadow']['version']} scored the same rows (shadow_probability); "
                      "`pipeline-cli feedback` compares both once outcomes arrive", highlight=False)
    if s.get("shadow_skipped"):
        console.print(f"[yellow]{s['shadow_skipped']}[/]", highlight=False)
    if s["rows_quarantined"]:
        console.print(f"[yellow]quarantined {s['rows_quarantined']:,} row(s)[/] with reasons: {s['quarantine']}", highlight=False)
    if s.get("unseen_category_values"):
        console.print(f"{s['unseen_category_values']:,} value(s) in categories unseen in training (scored; ignored by the encoder)")
    status = s["drift_status"]
    console.print(f"drift: [{_DRIFT_STYLE.get(status, 'white')}]{status}[/] (report: {s.get('report') or s.get('drift_md', '-')})",
                  highlight=False)
    for alert in s["drift"].get("alerts", [])[:8]:
        console.print(f"  - {alert}", highlight=False)


def monitor(console: Console, rows: list[dict[str, Any]], elapsed: float, log_path: Path | None) -> None:
    if not rows:
        console.print("no scored batches yet; `pipeline-cli predict` records one per run")
        return
    table = Table(title="Recent batches (newest first)", title_justify="left")
    metric = rows[0].get("realized_metric", "roc_auc")
    shadows = any(r.get("shadow") for r in rows)
    for col in ("When (UTC)", "Model", "Rows", "Quarantined", "Positive rate", "Max PSI (feature)", "Pred. PSI", "Drift",
                f"Realized {metric} (labelled)", *(["Shadow: realized"] if shadows else [])):
        table.add_column(col)
    for r in rows:
        style = _DRIFT_STYLE.get(r["status"], "white")
        psi = f"{r['max_psi']:.3f} ({r['max_psi_feature']})" if r["max_psi"] is not None else "-"
        pred = f"{r['prediction_psi']:.3f}" if r["prediction_psi"] is not None else "-"
        rate = f"{r['positive_rate']:.1%}" if r["positive_rate"] is not None else "-"
        realized = f"{r['realized']:.4f} ({r['labelled']:,})" if r.get("realized") is not None else "-"
        shadow = [f"{r['shadow']}: {r['shadow_realized']:.4f}" if r.get("shadow_realized") is not None else (r.get("shadow") or "-")]
        table.add_row(r["at"][:19], r["model"], f"{r['rows']:,}", f"{r['quarantined']:,}", rate, psi, pred, f"[{style}]{r['status']}[/]",
                      realized, *(shadow if shadows else []))
    console.print(table)
    latest = rows[0]
    for alert in latest["alerts"][:8]:
        console.print(f"  latest: {alert}", highlight=False)


def feedback(console: Console, data: dict[str, Any], elapsed: float, log_path: Path | None) -> None:
    console.print(f"outcomes for {data['matched_ids']:,} of {data['labelled_ids']:,} labelled ids "
                  f"({data['unmatched_ids']:,} match no scored row) in {elapsed:.1f}s", highlight=False)
    if data["batches"]:
        table = Table(title="Realized performance per batch", title_justify="left")
        for col in ("Batch (predictions)", "Model", "Labelled", "ROC-AUC", "F1", "Brier"):
            table.add_column(col)
        for b in data["batches"]:
            m = b["metrics"]
            shadow = " (shadow)" if b.get("role") == "shadow" else ""
            table.add_row(Path(b["output"]).name, f"{b['model_name']} v{b['model_version']}{shadow}", f"{b['labelled_rows']:,}",
                          f"{m['roc_auc']:.4f}", f"{m['f1']:.4f}", f"{m['brier']:.4f}")
        console.print(table)
    for name in data.get("missing_outputs", []):
        console.print(f"[yellow]predictions file gone, not joined:[/] {name}", highlight=False)
    for why in data.get("skipped_outputs", []):
        console.print(f"[yellow]skipped:[/] {why}", highlight=False)
    if data.get("champion"):
        c = data["champion"]
        console.print(f"champion v{c['version']}: realized {c['realized']:.4f} on {c['labelled_rows']:,} rows, holdout {c['holdout']:.4f}",
                      highlight=False)
    if e := data.get("shadow_evidence"):
        verdict = "[green]promoted to champion[/]" if e["promoted"] else "kept as challenger"
        console.print(f"challenger v{e['challenger']} {verdict}: {e['reason']}", highlight=False)
    for event in data.get("events", []):
        console.print(f"[yellow]event:[/] {event}", highlight=False)
    if reports_written := [r for r in data.get("reports", []) if r]:
        console.print(f"reports: {len(reports_written)} batch page(s) written again with their outcomes, newest {reports_written[0]}",
                      highlight=False)
    if data.get("rollback"):
        console.print(f"[red]champion rolled back[/] to v{data['rollback']['version']}: {data['rollback']['reason']}", highlight=False)
    if log_path:
        console.print(f"log: {log_path}", style="dim")


def path(console: Console, data: dict[str, Any], elapsed: float, log_path: Path | None) -> None:
    console.print(data["path"], highlight=False, soft_wrap=True)


def reports(console: Console, rows: list[dict[str, Any]], elapsed: float, log_path: Path | None) -> None:
    if not rows:
        console.print("no reports yet; `pipeline-cli train` and `pipeline-cli predict` write one per run")
        return
    for r in rows:
        console.print(f"{r['kind']:<9} {r['path']}", highlight=False, soft_wrap=True)


def _threshold(value: object) -> str:
    """A version's threshold tag (text, or absent) as the other tables show it: three decimals."""
    try:
        return f"{float(value):.3f}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-" if value is None else str(value)
