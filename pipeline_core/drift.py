"""Drift of a scored batch against the gold reference: plain functions over counts.

Every judgement is an effect size (PSI, the KS statistic, a change of rate), never a p-value:
on a million rows a p-value flags differences nobody cares about. Counts are accumulated chunk
by chunk, so a batch of any size is judged in memory bounded by the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from pipeline_core.config import MonitoringConfig

EPSILON = 1e-4  # floor of a bin's share: an empty bin must not make PSI infinite
OK, WARN, DRIFT, INSUFFICIENT = "ok", "warn", "drift", "insufficient"


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    if ref.sum() == 0 or cur.sum() == 0:
        return 0.0
    p = np.clip(ref / ref.sum(), EPSILON, None)
    q = np.clip(cur / cur.sum(), EPSILON, None)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest gap between the two cumulative distributions, read at the bin edges."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    if ref.sum() == 0 or cur.sum() == 0:
        return 0.0
    return float(np.max(np.abs(np.cumsum(ref) / ref.sum() - np.cumsum(cur) / cur.sum())))


def bin_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts over the bins (-inf, e0], (e0, e1], ..., (e_last, inf) of the non-missing values.

    The same convention as the gold profile's histograms, so the two line up bin for bin.
    Counted as "how many values are <= each edge", then differenced: with the ten or so edges
    of a profile, one vectorised comparison per edge beats a binary search per value
    (``np.searchsorted``), and it gives the same counts.
    """
    x = np.asarray(values, dtype=float)
    present = x.size - np.count_nonzero(np.isnan(x))
    # NaN compares false with every edge, so it needs no filtering out (a copy of the column)
    at_or_below = [np.count_nonzero(x <= edge) for edge in np.asarray(edges, dtype=float)]
    return np.diff(np.array([0, *at_or_below, present], dtype=np.int64))


def histogram_reference(values: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Quantile edges and counts of a sample, e.g. of the holdout probabilities."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    edges = sorted(set(np.quantile(x, np.arange(1, bins) / bins).tolist())) if x.size else []
    return {"edges": edges, "counts": bin_counts(x, edges).tolist(), "mean": float(x.mean()) if x.size else None, "rows": int(x.size)}


@dataclass
class ColumnCounts:
    rows: int = 0
    nulls: int = 0
    bins: np.ndarray | None = None
    levels: dict[str, int] = field(default_factory=dict)


@dataclass
class DriftAccumulator:
    """Per-column counts of a batch, filled chunk by chunk; `report` judges them."""

    reference: dict[str, dict[str, Any]]  # column -> gold metadata entry (role, histogram, levels, null_rate)
    prediction_reference: dict[str, Any] | None = None
    columns: dict[str, ColumnCounts] = field(default_factory=dict)
    probability_bins: np.ndarray | None = None
    probability_sum: float = 0.0
    positives: int = 0
    rows: int = 0

    def update(self, features: pl.DataFrame, probabilities: np.ndarray, predictions: np.ndarray) -> None:
        self.rows += features.height
        numeric = [name for name, ref in self.reference.items() if ref["role"] == "numeric"]
        # every numeric column in one float array, NaN where a value is missing (null or NaN, both
        # missing to scikit-learn's imputers): one conversion per chunk rather than five per column
        values = features.select(
            pl.col(name).cast(pl.Float64) if name in features.columns else pl.lit(None, dtype=pl.Float64).alias(name)
            for name in numeric
        ).to_numpy() if numeric else np.empty((features.height, 0))
        missing = np.count_nonzero(np.isnan(values), axis=0)
        for i, name in enumerate(numeric):
            counts = self.columns.setdefault(name, ColumnCounts())
            counts.rows += features.height
            counts.nulls += int(missing[i])
            add = bin_counts(values[:, i], self.reference[name]["histogram"]["edges"])
            counts.bins = add if counts.bins is None else counts.bins + add
        for name, ref in self.reference.items():
            if ref["role"] == "numeric":
                continue
            counts = self.columns.setdefault(name, ColumnCounts())
            col = features.get_column(name) if name in features.columns else pl.repeat(None, features.height, eager=True).alias(name)
            if col.dtype.is_float():
                col = col.fill_nan(None)  # NaN is missing here, as it is to scikit-learn's imputers
            counts.rows += features.height
            counts.nulls += col.null_count()
            # count first, then name the few levels as text: casting every value first cost 3x more
            vc = col.drop_nulls().value_counts()
            vc = vc.with_columns(vc.get_column(vc.columns[0]).cast(pl.String))
            for level, n in zip(vc[vc.columns[0]].to_list(), vc[vc.columns[1]].to_list()):
                counts.levels[level] = counts.levels.get(level, 0) + int(n)
        if self.prediction_reference:
            add = bin_counts(np.asarray(probabilities, dtype=float), self.prediction_reference["edges"])
            self.probability_bins = add if self.probability_bins is None else self.probability_bins + add
        self.probability_sum += float(np.sum(probabilities))
        self.positives += int(np.sum(predictions))

    def report(self, thresholds: MonitoringConfig) -> dict[str, Any]:
        return drift_report(self, thresholds)


def _numeric_entry(name: str, ref: dict[str, Any], counts: ColumnCounts) -> dict[str, Any]:
    ref_bins = np.asarray(ref["histogram"]["counts"], dtype=float)
    cur_bins = counts.bins if counts.bins is not None else np.zeros_like(ref_bins)
    return {"name": name, "kind": "numeric", "psi": round(psi(ref_bins, cur_bins), 6), "ks": round(ks_statistic(ref_bins, cur_bins), 6)}


def _categorical_entry(name: str, ref: dict[str, Any], counts: ColumnCounts) -> dict[str, Any]:
    known = ref.get("levels", {})
    levels = sorted(set(known) | set(counts.levels))
    ref_counts = np.array([known.get(level, 0) for level in levels], dtype=float)
    cur_counts = np.array([counts.levels.get(level, 0) for level in levels], dtype=float)
    unseen = sum(n for level, n in counts.levels.items() if level not in known)
    non_null = max(counts.rows - counts.nulls, 1)
    return {"name": name, "kind": "categorical", "psi": round(psi(ref_counts, cur_counts), 6),
            "unseen_rate": round(unseen / non_null, 6), "unseen_count": unseen, "unseen_levels": sorted(set(counts.levels) - set(known))[:20]}


def _judge(entry: dict[str, Any], t: MonitoringConfig) -> None:
    reasons = []
    if entry["psi"] >= t.psi_alert:
        reasons.append(f"psi {entry['psi']:.3f} >= {t.psi_alert}")
    if entry.get("ks") is not None and entry["ks"] >= t.ks_alert:
        reasons.append(f"ks {entry['ks']:.3f} >= {t.ks_alert}")
    if abs(entry["null_rate_change"]) >= t.null_rate_change:
        reasons.append(f"null rate {entry['reference_null_rate']:.3f} -> {entry['null_rate']:.3f}")
    if entry.get("unseen_rate", 0) >= t.unseen_rate:
        reasons.append(f"unseen categories {entry['unseen_rate']:.1%} >= {t.unseen_rate:.0%}")
    entry["reasons"] = reasons
    entry["status"] = DRIFT if reasons else (WARN if entry["psi"] >= t.psi_warn else OK)


def drift_report(acc: DriftAccumulator, t: MonitoringConfig) -> dict[str, Any]:
    """Per-feature and prediction drift with a status for each and one for the batch."""
    features = []
    for name, ref in acc.reference.items():
        counts = acc.columns.get(name, ColumnCounts())
        entry = (_numeric_entry if ref["role"] == "numeric" else _categorical_entry)(name, ref, counts)
        null_rate = counts.nulls / counts.rows if counts.rows else 0.0
        entry.update(null_rate=round(null_rate, 6), reference_null_rate=round(ref.get("null_rate", 0.0), 6),
                     null_rate_change=round(null_rate - ref.get("null_rate", 0.0), 6))
        _judge(entry, t)
        features.append(entry)
    prediction: dict[str, Any] = {"positive_rate": round(acc.positives / acc.rows, 6) if acc.rows else None,
                                  "mean_probability": round(acc.probability_sum / acc.rows, 6) if acc.rows else None}
    pref = acc.prediction_reference
    if pref and acc.probability_bins is not None:
        p = psi(np.asarray(pref["counts"]), acc.probability_bins)
        prediction.update(psi=round(p, 6), ks=round(ks_statistic(np.asarray(pref["counts"]), acc.probability_bins), 6),
                          reference_mean_probability=pref.get("mean"), reference_positive_rate=pref.get("positive_rate"))
        prediction["status"] = DRIFT if p >= t.prediction_psi_alert else (WARN if p >= t.psi_warn else OK)
    else:
        prediction["status"] = OK
        prediction["note"] = "the model carries no training reference of its probabilities"
    alerts = [f"{f['name']}: {'; '.join(f['reasons'])}" for f in features if f["status"] == DRIFT]
    if prediction["status"] == DRIFT:
        alerts.append(f"probability: psi {prediction['psi']:.3f} >= {t.prediction_psi_alert}")
    statuses = [f["status"] for f in features] + [prediction["status"]]
    status = DRIFT if DRIFT in statuses else (WARN if WARN in statuses else OK)
    if acc.rows < t.min_rows:
        status, alerts = INSUFFICIENT, [f"only {acc.rows} rows scored (monitoring.min_rows={t.min_rows}); not judged"]
    features.sort(key=lambda f: (f["status"] != DRIFT, -f["psi"]))
    return {"status": status, "rows": acc.rows, "alerts": alerts, "features": features, "prediction": prediction,
            "thresholds": t.model_dump(mode="json")}


def reference_columns(metadata: dict[str, Any], columns: list[str]) -> dict[str, dict[str, Any]]:
    """The gold metadata entries of the model's feature columns: the drift reference."""
    by_name = {c["name"]: c for c in metadata["columns"]}
    return {c: by_name[c] for c in columns if c in by_name and by_name[c]["role"] in ("numeric", "categorical")
            and (by_name[c]["role"] == "categorical" or by_name[c].get("histogram"))}


def report_markdown(report: dict[str, Any], title: str) -> str:
    """A short human-readable drift report."""
    lines = [f"# {title}", "", f"**Status: {report['status']}** — {report['rows']} rows scored", ""]
    if report["alerts"]:
        lines += ["Alerts:", *[f"- {a}" for a in report["alerts"]], ""]
    p = report["prediction"]
    lines += ["| prediction | batch | training |", "|---|---|---|",
              f"| positive rate | {_num(p.get('positive_rate'))} | {_num(p.get('reference_positive_rate'))} |",
              f"| mean probability | {_num(p.get('mean_probability'))} | {_num(p.get('reference_mean_probability'))} |",
              f"| PSI | {_num(p.get('psi'))} | |", "",
              "| feature | kind | status | PSI | KS | null rate (ref → batch) | unseen |", "|---|---|---|---|---|---|---|"]
    for f in report["features"]:
        lines.append(f"| {f['name']} | {f['kind']} | {f['status']} | {f['psi']:.4f} | {_num(f.get('ks'))} | "
                     f"{f['reference_null_rate']:.3f} → {f['null_rate']:.3f} | {_num(f.get('unseen_rate'))} |")
    return "\n".join(lines) + "\n"


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}"
