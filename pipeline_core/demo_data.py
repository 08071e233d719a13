"""Deterministic synthetic datasets with the schemas of the two worked examples.

Realistic ranges and class balance, a learnable but noisy signal, missing values, categorical
levels and a few dirty values (bad codes, duplicate ids, out-of-range and unparsable values),
so every cleaning rule has something to do. Vectorised numpy: a million rows take seconds.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline_core.errors import ConfigError


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def credit_default_frame(rows: int, seed: int = 42) -> pl.DataFrame:
    """UCI 'default of credit card clients' schema; about 22% positives."""
    if rows < 10:
        raise ConfigError(f"--rows must be at least 10 (got {rows})")
    rng = np.random.default_rng(seed)
    n = rows
    risk = rng.normal(0, 1, n)  # latent financial stress
    limit = np.clip(np.round(np.exp(rng.normal(11.6 - 0.25 * risk, 0.7)) / 10_000) * 10_000, 10_000, 1_000_000)
    sex = rng.choice([1, 2], n, p=[0.4, 0.6])
    education = rng.choice([1, 2, 3, 4, 0, 5, 6], n, p=[0.35, 0.46, 0.16, 0.01, 0.005, 0.01, 0.005])
    marriage = rng.choice([1, 2, 3, 0], n, p=[0.45, 0.53, 0.01, 0.01])
    age = np.clip(np.round(rng.gamma(9, 3.9, n)), 21, 79).astype(np.int64)

    # Repayment status per month (-2..8): higher risk -> more months of delay; pay_0 is the latest.
    pay = {}
    carry = np.zeros(n)
    for name in ["PAY_6", "PAY_5", "PAY_4", "PAY_3", "PAY_2", "PAY_0"]:
        carry = 0.6 * carry + 0.8 * risk + rng.normal(0, 1.0, n)
        pay[name] = np.clip(np.round(carry - 0.8), -2, 8).astype(np.int64)

    util0 = np.clip(_sigmoid(0.9 * risk + rng.normal(-0.4, 0.9, n)), 0, 1.2)
    bills = {}
    for m in range(6, 0, -1):  # 6 = oldest
        drift = 1 + (6 - m) * 0.03 * risk  # stressed clients' bills grow
        bills[f"BILL_AMT{m}"] = np.round(limit * np.clip(util0 * drift + rng.normal(0, 0.05, n), -0.05, 1.5))
    pays = {}
    pay_share = np.clip(_sigmoid(-1.1 * risk + rng.normal(-1.5, 1.0, n)), 0, 1)
    for m in range(1, 7):
        pays[f"PAY_AMT{m}"] = np.round(np.maximum(bills[f"BILL_AMT{m}"], 0) * np.clip(pay_share + rng.normal(0, 0.05, n), 0, 2))

    logit = -1.6 + 1.0 * risk + 0.35 * pay["PAY_0"] - 0.15 * (education == 1) + 0.1 * (sex == 1) + rng.normal(0, 1.25, n)
    target = (rng.random(n) < _sigmoid(logit * 1.05 - 0.15)).astype(np.int64)

    frame = pl.DataFrame({
        "ID": np.arange(1, n + 1), "LIMIT_BAL": limit, "SEX": sex, "EDUCATION": education, "MARRIAGE": marriage, "AGE": age,
        **pay, **bills, **pays, "default payment next month": target,
    }).with_columns(pl.col(c).cast(pl.Int64) for c in ["LIMIT_BAL", *bills, *pays])
    frame = frame.select(["ID", "LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE", "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6",
                          *[f"BILL_AMT{i}" for i in range(1, 7)], *[f"PAY_AMT{i}" for i in range(1, 7)], "default payment next month"])
    return _dirty_credit(frame.with_columns(pl.all().cast(pl.String)), rng)


def _dirty_credit(frame: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    n = frame.height
    idx = rng.permutation(n)
    k = max(1, n // 500)  # 0.2% each
    missing_age, bad_age, bad_limit, missing_bill = idx[:k], idx[k:2 * k], idx[2 * k:3 * k], idx[3 * k:5 * k]
    row = pl.int_range(pl.len())
    frame = frame.with_columns(
        pl.when(row.is_in(missing_age)).then(None).when(row.is_in(bad_age)).then(pl.lit("150")).otherwise(pl.col("AGE")).alias("AGE"),
        pl.when(row.is_in(bad_limit)).then(pl.lit("n/a?")).otherwise(pl.col("LIMIT_BAL")).alias("LIMIT_BAL"),
        pl.when(row.is_in(missing_bill)).then(None).otherwise(pl.col("BILL_AMT3")).alias("BILL_AMT3"),
    )
    dupes = frame[np.sort(rng.choice(n, size=k, replace=False)).tolist()]  # re-sent records: same ID
    return pl.concat([frame, dupes])


PHISHING_INDUSTRIES = ["Finance", "Retail", "Technology", "Healthcare", "Education", "Media", "Government", "Travel"]
PHISHING_HOSTS = ["AWS", "Cloudflare", "GoDaddy", "Hostinger", "OVH", "DigitalOcean", "Namecheap", "Bluehost", "Azure", "GCP"]


def phishing_frame(rows: int, seed: int = 42) -> pl.DataFrame:
    """Phishing-websites schema: 15 raw features, informative missing LineOfCode, ~50% positives."""
    if rows < 10:
        raise ConfigError(f"--rows must be at least 10 (got {rows})")
    rng = np.random.default_rng(seed)
    n = rows
    y = (rng.random(n) < 0.5).astype(np.int64)
    s = np.where(y == 1, 1.0, -1.0) * 0.75 + rng.normal(0, 1, n)  # noisy latent signal
    lines = np.round(np.exp(rng.normal(7.0 - 0.5 * s, 1.0))).astype(np.float64)
    lines[rng.random(n) < _sigmoid(-2.6 + 1.2 * s)] = np.nan  # missing more often on phishing pages
    ind_p = np.array([0.25, 0.2, 0.15, 0.1, 0.1, 0.08, 0.07, 0.05])
    host_p = np.linspace(1.5, 0.5, len(PHISHING_HOSTS))
    host_p /= host_p.sum()
    industry = rng.choice(PHISHING_INDUSTRIES, n, p=ind_p)
    host = rng.choice(PHISHING_HOSTS, n, p=host_p)
    cheap_host = np.isin(host, ["Hostinger", "Namecheap", "Bluehost"])
    frame = pl.DataFrame({
        "Unnamed: 0": np.arange(n),
        "LineOfCode": lines,
        "LargestLineLength": np.round(np.exp(rng.normal(6.5 + 0.3 * s, 1.2))),
        "NoOfURLRedirect": rng.poisson(np.exp(-1.5 + 0.4 * s)),
        "NoOfSelfRedirect": rng.poisson(np.exp(-2.0 + 0.2 * s)),
        "NoOfPopup": rng.poisson(np.exp(-1.0 + 0.5 * s)),
        "NoOfiFrame": rng.poisson(np.exp(0.0 + 0.3 * s)),
        "NoOfImage": rng.poisson(np.exp(2.5 - 0.4 * s)),
        "NoOfSelfRef": rng.poisson(np.exp(3.0 - 0.5 * s)),
        "NoOfExternalRef": rng.poisson(np.exp(2.5 - 0.2 * s)),
        "Robots": (rng.random(n) < _sigmoid(0.5 - 0.6 * s)).astype(np.int64),
        "IsResponsive": (rng.random(n) < _sigmoid(0.8 - 0.5 * s)).astype(np.int64),
        "DomainAgeMonths": np.clip(np.round(np.exp(rng.normal(3.5 - 0.5 * s - 0.3 * cheap_host, 1.0))), 0, 400),
        "Industry": industry,
        "HostingProvider": host,
        "isPhishing": y,
    })
    k = max(1, n // 500)
    idx = rng.permutation(n)
    row = pl.int_range(pl.len())
    frame = frame.with_columns(
        pl.when(row.is_in(idx[:k])).then(-1.0).otherwise(pl.col("DomainAgeMonths")).alias("DomainAgeMonths"),  # out of range
        pl.when(row.is_in(idx[k:2 * k])).then(pl.lit("unknown")).otherwise(pl.col("Industry")).alias("Industry"),  # bad level
    )
    dupes = frame[np.sort(idx[2 * k:3 * k]).tolist()]  # the same page scraped twice
    return pl.concat([frame, dupes])
