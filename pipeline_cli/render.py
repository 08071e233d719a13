"""Terminal rendering of command results with rich."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

_STATUS_STYLE = {"ran": "green", "ingested": "green", "cached": "cyan", "skipped": "cyan"}


def layers(console: Console, summaries: list[dict[str, Any]], elapsed: float, log_path: Path | None) -> None:
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
    console.print(f"done in {elapsed:.1f}s" + (f"; log: {log_path}" if log_path else ""))


def _details(s: dict[str, Any]) -> str:
    if s["layer"] == "bronze":
        change = s.get("schema_change") or {}
        text = f"batch {s['batch_id']}"
        if s["status"] == "skipped":
            text += " (identical content already stored)"
        if any(change.values()):
            text += f"; schema change {json.dumps(change)}"
        return text
    if s["layer"] == "silver":
        rules = s.get("quarantined_by_rule") or {}
        return "quarantined: " + (", ".join(f"{k}={v}" for k, v in rules.items()) or "none")
    if s["layer"] == "gold":
        missing = s.get("missing_values") or {}
        text = f"feature version {s['feature_version']}; {s['numeric']} numeric, {s['categorical']} categorical"
        if s.get("set_aside"):
            text += "; not features: " + ", ".join(f"{c} ({r})" for c, r in s["set_aside"].items())
        if missing:
            text += "; missing: " + ", ".join(f"{k} {v:.1%}" for k, v in list(missing.items())[:5])
        return text
    return ""


def config(console: Console, data: dict[str, Any], elapsed: float, log_path: Path | None) -> None:
    console.print("[green]config is valid[/]")
    console.print_json(json.dumps(data))


def mapping(console: Console, data: dict[str, Any], elapsed: float, log_path: Path | None) -> None:
    for k, v in data.items():
        console.print(f"{k}: {v}")
