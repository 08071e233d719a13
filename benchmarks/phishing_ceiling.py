"""The best ROC-AUC any model can reach on the AutoML benchmark's phishing test files.

The phishing demo data is synthetic: every column is drawn from one hidden signal per page
(`pipeline_core.demo_data.phishing_frame`). Integrating that signal out gives the exact
likelihood ratio of each row, hence the Bayes-optimal ranking; its ROC-AUC on a test file is the
ceiling against which the project's, FLAML's and AutoGluon's scores are read. The generator's
parameters are restated here: change them together. (The 0.2% of rows whose industry the
generator blanks or whose page it repeats carry no signal and are scored like the others.)

    .venv/bin/python benchmarks/phishing_ceiling.py   # after automl_benchmark.py wrote the split files
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm, poisson
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent / "work" / "automl" / "phishing"
SIGNAL = np.linspace(-6, 6, 1201)[None, :]  # grid over the hidden signal
CHEAP_HOSTS = ["Hostinger", "Namecheap", "Bluehost"]
COUNTS = [("NoOfURLRedirect", -1.5, 0.4), ("NoOfSelfRedirect", -2.0, 0.2), ("NoOfPopup", -1.0, 0.5), ("NoOfiFrame", 0.0, 0.3),
          ("NoOfImage", 2.5, -0.4), ("NoOfSelfRef", 3.0, -0.5), ("NoOfExternalRef", 2.5, -0.2)]
FLAGS = [("Robots", 0.5, -0.6), ("IsResponsive", 0.8, -0.5)]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def rounded_lognormal(k: np.ndarray, mu: np.ndarray, sd: float, top: float | None = None) -> np.ndarray:
    """P(round(exp(N(mu, sd))) == k), with everything above ``top`` clipped to it."""
    k = k[:, None]
    low = np.where(k <= 0, -np.inf, np.log(np.maximum(k - 0.5, 1e-12)))
    p = norm.cdf((np.log(k + 0.5) - mu) / sd) - norm.cdf((low - mu) / sd)
    if top is not None:
        p = np.where(k >= top, 1 - norm.cdf((np.log(top - 0.5) - mu) / sd), p)
    return np.maximum(p, 1e-300)


def log_likelihood_ratio(df: pd.DataFrame) -> np.ndarray:
    """log P(row | phishing) - log P(row | legitimate), the hidden signal integrated out."""
    s = SIGNAL
    ll = np.zeros((len(df), s.shape[1]))
    lines = df["LineOfCode"].to_numpy(dtype=float)
    missing = sigmoid(-2.6 + 1.2 * s)
    ll += np.where(np.isnan(lines)[:, None], np.log(missing),
                   np.log(1 - missing) + np.log(rounded_lognormal(np.nan_to_num(lines, nan=1.0), 7.0 - 0.5 * s, 1.0)))
    ll += np.log(rounded_lognormal(df["LargestLineLength"].to_numpy(dtype=float), 6.5 + 0.3 * s, 1.2))
    for column, a, b in COUNTS:
        ll += poisson.logpmf(df[column].to_numpy()[:, None], np.exp(a + b * s))
    for column, a, b in FLAGS:
        p = sigmoid(a + b * s)
        ll += np.where(df[column].to_numpy()[:, None] == 1, np.log(p), np.log(1 - p))
    cheap = df["HostingProvider"].isin(CHEAP_HOSTS).to_numpy()[:, None]
    age = df["DomainAgeMonths"].to_numpy(dtype=float)
    ll += np.where((age >= 0)[:, None], np.log(rounded_lognormal(np.maximum(age, 0), 3.5 - 0.5 * s - 0.3 * cheap, 1.0, top=400)), 0.0)
    likelihood = np.exp(ll - ll.max(1, keepdims=True))
    return np.log((likelihood * norm.pdf(s, 0.75, 1)).sum(1)) - np.log((likelihood * norm.pdf(s, -0.75, 1)).sum(1))


def main() -> None:
    scores = []
    for seed_dir in sorted(ROOT.glob("seed*")):
        test = pd.read_csv(seed_dir / "test.csv")
        scores.append(roc_auc_score(test["target"], log_likelihood_ratio(test)))
        print(f"phishing {seed_dir.name}: Bayes-optimal test ROC-AUC {scores[-1]:.4f}")
    if scores:
        print(f"mean over {len(scores)} seeds: {np.mean(scores):.4f}")


if __name__ == "__main__":
    main()
