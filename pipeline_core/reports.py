"""The reports a person reads: one HTML page per training run and one per scored batch.

Pure rendering: facts (plain dicts) and PNG figures (bytes) in, one HTML string out. Figures are
inlined as data URIs and the page has no script and no external link, so it opens offline, from an
MLflow artifact or a mail attachment alike. Jinja2 escapes every value.
"""

from __future__ import annotations

import base64
from typing import Any

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2933;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d9e2ec;padding-bottom:.3rem}
.meta{color:#52606d;font-size:.9rem}table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #d9e2ec;padding:.3rem .6rem;text-align:left}th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.2rem .6rem;border-radius:.3rem;font-weight:600}
.good{background:#e3f9e5;color:#05400a}.bad{background:#ffe3e3;color:#610316}.warn{background:#fffbea;color:#5c4813}
.figs{display:flex;flex-wrap:wrap;gap:1rem}.figs figure{margin:0}.figs img{max-width:520px;border:1px solid #d9e2ec}
figcaption{font-size:.85rem;color:#52606d}
"""

_BASE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><style>{{ style }}</style></head><body>
<h1>{{ title }}</h1><p class="meta">{{ subtitle }}</p>
{% block body %}{% endblock %}
</body></html>
"""

_TRAINING = """{% extends "base" %}{% block body %}
<h2>Promotion decision</h2>
<p><span class="badge {{ 'good' if decision.promoted else 'warn' }}">{{ 'promoted to champion' if decision.promoted else 'kept as challenger' }}</span>
 {{ decision.model }} v{{ decision.version }}: {{ decision.reason }}</p>
{% if decision.evidence %}<table><tr><th>metric</th><th>improvement</th><th>{{ '%.0f%%' % (decision.evidence.confidence * 100) }} interval</th><th>resamples</th></tr>
<tr><td>{{ decision.evidence.metric }}</td><td class="num">{{ '%+.4f' % decision.evidence.delta }}</td>
<td class="num">{{ '%+.4f' % decision.evidence.low }} to {{ '%+.4f' % decision.evidence.high }}</td><td class="num">{{ decision.evidence.resamples }}</td></tr></table>
<p class="meta">Paired bootstrap on the same holdout rows, scored by the candidate and by champion v{{ decision.evidence.champion }}.</p>{% endif %}

<h2>Data</h2>
<table><tr><th>gold rows</th><th>positives</th><th>negatives</th><th>positive rate</th><th>gold version</th><th>feature version</th></tr>
<tr><td class="num">{{ profile.rows }}</td><td class="num">{{ profile.positive }}</td><td class="num">{{ profile.negative }}</td>
<td class="num">{{ '%.2f%%' % (profile.positive_rate * 100) }}</td><td class="num">{{ profile.gold_version }}</td><td>{{ profile.feature_version }}</td></tr></table>
{% if profile.silver %}<p>Silver: {{ profile.silver.rows_in }} rows read in its last run, {{ profile.silver.rows_out }} kept,
{{ profile.silver.quarantined }} quarantined{% if profile.silver.repeated_rows %}, {{ profile.silver.repeated_rows }} repeated rows kept as observations{% endif %}.</p>
{% if profile.silver.reasons %}<table><tr><th>quarantine reason</th><th>rows</th></tr>
{% for reason, n in profile.silver.reasons %}<tr><td>{{ reason }}</td><td class="num">{{ n }}</td></tr>{% endfor %}</table>
{% else %}<p>No row was quarantined.</p>{% endif %}{% endif %}
{% if profile.nulls %}<table><tr><th>column with missing values</th><th>null rate</th></tr>
{% for name, rate in profile.nulls %}<tr><td>{{ name }}</td><td class="num">{{ '%.2f%%' % (rate * 100) }}</td></tr>{% endfor %}</table>
{% else %}<p>No gold column has missing values.</p>{% endif %}

<h2>Leaderboard</h2>
<p class="meta">Ranked by {{ 'the cross-validated mean of ' ~ primary ~ ', then the holdout' if ranked_by == 'cv' else 'the holdout ' ~ primary }}; the tie-breakers follow.</p>
<table><tr><th>rank</th><th>model</th><th>holdout {{ primary }}</th><th>CV {{ primary }} (mean ± std)</th><th>threshold</th><th>tuned</th><th>seconds</th></tr>
{% for r in leaderboard %}<tr><td class="num">{{ r.rank }}</td><td>{{ r.name }}</td><td class="num">{{ '%.4f' % r.holdout }}</td>
<td class="num">{{ '%.4f ± %.4f' % (r.cv_mean, r.cv_std) }}</td><td class="num">{{ '%.3f' % r.threshold }}</td><td>{{ r.tuned }}</td><td class="num">{{ r.seconds }}</td></tr>{% endfor %}</table>

<h2>Holdout metrics of {{ decision.model }}</h2>
<table><tr>{% for k in metrics %}<th>{{ k }}</th>{% endfor %}</tr><tr>{% for v in metrics.values() %}<td class="num">{{ '%.4f' % v }}</td>{% endfor %}</tr></table>
<div class="figs">{% for caption, uri in figures %}<figure><img alt="{{ caption }}" src="{{ uri }}"><figcaption>{{ caption }}</figcaption></figure>{% endfor %}</div>

<h2>Feature importance</h2>
<p class="meta">Permutation importance on the holdout: the drop in {{ primary }} when one gold column is shuffled ({{ importance_repeats }} repeats), in the columns the model reads before encoding.</p>
<table><tr><th>column</th><th>importance (mean ± std)</th></tr>
{% for f in importance %}<tr><td>{{ f.name }}</td><td class="num">{{ '%.4f ± %.4f' % (f.mean, f.std) }}</td></tr>{% endfor %}</table>
{% endblock %}
"""

_SCORING = """{% extends "base" %}{% block body %}
<h2>Batch</h2>
<p><span class="badge {{ 'bad' if batch.drift_status == 'drift' else ('warn' if batch.drift_status != 'ok' else 'good') }}">drift: {{ batch.drift_status }}</span></p>
<table><tr><th>rows in</th><th>scored</th><th>quarantined</th><th>positive rate</th><th>threshold</th><th>model</th>{% if batch.shadow %}<th>shadow</th>{% endif %}</tr>
<tr><td class="num">{{ batch.rows_in }}</td><td class="num">{{ batch.rows_scored }}</td><td class="num">{{ batch.rows_quarantined }}</td>
<td class="num">{{ '%.2f%%' % (batch.positive_rate * 100) if batch.positive_rate is not none else '—' }}</td><td class="num">{{ '%.3f' % batch.threshold }}</td>
<td>{{ batch.model }}</td>{% if batch.shadow %}<td>{{ batch.shadow }}</td>{% endif %}</tr></table>
{% if alerts %}<p>Alerts:</p><ul>{% for a in alerts %}<li>{{ a }}</li>{% endfor %}</ul>{% endif %}

<h2>Realized performance</h2>
{% if realized %}<table><tr><th>role</th><th>model version</th><th>labelled rows</th>{% for k in realized_metrics %}<th>{{ k }}</th>{% endfor %}</tr>
{% for r in realized %}<tr><td>{{ r.role }}</td><td>{{ r.model_version }}</td><td class="num">{{ r.labelled_rows }}</td>
{% for k in realized_metrics %}<td class="num">{{ '%.4f' % r.metrics[k] if r.metrics.get(k) is not none else '—' }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p>No outcomes yet: send labels with <code>pipeline-cli feedback</code> and this page is written again with them.</p>{% endif %}

<h2>Prediction drift</h2>
<table><tr><th></th><th>batch</th><th>training</th></tr>
<tr><td>positive rate</td><td class="num">{{ num(prediction.get('positive_rate')) }}</td><td class="num">{{ num(prediction.get('reference_positive_rate')) }}</td></tr>
<tr><td>mean probability</td><td class="num">{{ num(prediction.get('mean_probability')) }}</td><td class="num">{{ num(prediction.get('reference_mean_probability')) }}</td></tr>
<tr><td>PSI</td><td class="num">{{ num(prediction.get('psi')) }}</td><td></td></tr></table>

<h2>Feature drift</h2>
{% if features %}<table><tr><th>feature</th><th>kind</th><th>status</th><th>PSI</th><th>KS</th><th>null rate (training → batch)</th><th>unseen</th><th>why</th></tr>
{% for f in features %}<tr><td>{{ f.name }}</td><td>{{ f.kind }}</td><td><span class="badge {{ 'bad' if f.status == 'drift' else ('warn' if f.status == 'warn' else 'good') }}">{{ f.status }}</span></td>
<td class="num">{{ '%.4f' % f.psi }}</td><td class="num">{{ num(f.get('ks')) }}</td><td class="num">{{ '%.3f → %.3f' % (f.reference_null_rate, f.null_rate) }}</td>
<td class="num">{{ num(f.get('unseen_rate')) }}</td><td>{{ f.reasons | join('; ') }}</td></tr>{% endfor %}</table>
{% else %}<p>{{ note or 'No feature reference: drift not judged.' }}</p>{% endif %}
{% endblock %}
"""


def figure_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}"


def _render(template: str, **facts: Any) -> str:
    from jinja2 import DictLoader, Environment, StrictUndefined

    env = Environment(loader=DictLoader({"base": _BASE, "page": template}), autoescape=True, undefined=StrictUndefined)
    return env.get_template("page").render(style=_STYLE, num=_num, **facts)


def training_report_html(title: str, subtitle: str, decision: dict[str, Any], profile: dict[str, Any], leaderboard: list[dict[str, Any]],
                         primary: str, metrics: dict[str, float], figures: dict[str, bytes], importance: list[dict[str, Any]],
                         importance_repeats: int, ranked_by: str = "holdout") -> str:
    """The training run's page: decision with its interval, data profile, leaderboard, holdout figures, importance."""
    return _render(_TRAINING, title=title, subtitle=subtitle, decision=decision, profile=profile, leaderboard=leaderboard,
                   primary=primary, metrics=metrics, figures=[(k, figure_uri(v)) for k, v in figures.items()], importance=importance,
                   importance_repeats=importance_repeats, ranked_by=ranked_by)


def scoring_report_html(title: str, subtitle: str, batch: dict[str, Any], drift: dict[str, Any], realized: list[dict[str, Any]],
                        realized_metrics: list[str]) -> str:
    """A scored batch's page: counts, alerts, realized metrics when outcomes exist, prediction and feature drift."""
    return _render(_SCORING, title=title, subtitle=subtitle, batch=batch, alerts=drift.get("alerts", []), realized=realized,
                   realized_metrics=realized_metrics, prediction=drift.get("prediction", {}), features=drift.get("features", []),
                   note=drift.get("note"))


def leaderboard_rows(ranked: list[dict[str, Any]], primary: str) -> list[dict[str, Any]]:
    """The leaderboard's rows as the page shows them, from the training stage's ranked summaries."""
    return [{"rank": r.get("rank", i + 1), "name": r["name"], "holdout": r["metrics"][primary], "cv_mean": r["cv_mean"],
             "cv_std": r["cv_std"], "threshold": r["threshold"], "tuned": "yes" if r.get("tuned") else f"no ({r.get('note') or '-'})",
             "seconds": r.get("seconds")} for i, r in enumerate(ranked)]


def data_profile(gold: dict[str, Any], silver: dict[str, Any] | None, top_nulls: int = 15) -> dict[str, Any]:
    """Rows, class balance and null rates of gold, and the silver run's quarantine by reason."""
    balance = gold["class_balance"]
    nulls = sorted(gold.get("missing_values", {}).items(), key=lambda kv: -kv[1])[:top_nulls]
    profile = {"rows": balance["positive"] + balance["negative"], **balance, "gold_version": gold.get("version"),
               "feature_version": gold.get("feature_version"), "nulls": nulls, "silver": None}
    if silver:
        reasons = sorted((silver.get("quarantined_by_rule") or {}).items(), key=lambda kv: -kv[1])
        profile["silver"] = {"rows_in": silver.get("rows_in"), "rows_out": silver.get("rows_out"),
                             "quarantined": silver.get("rows_quarantined", 0), "repeated_rows": silver.get("repeated_rows", 0),
                             "reasons": reasons}
    return profile
