"""Paired comparisons over seeds: bootstrap intervals, sign-flip p-values and Holm's correction."""

from __future__ import annotations

import itertools

import numpy as np

EXACT_UP_TO = 20  # seeds: up to 2**20 sign patterns are enumerated, beyond that 200,000 are drawn


def bootstrap_interval(values: np.ndarray, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile 95 % interval of the mean of ``values`` (resampling seeds with replacement)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(len(values), size=(n_boot, len(values)))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def sign_flip_p(differences: np.ndarray, seed: int = 0) -> float:
    """Two-sided p-value of a zero mean paired difference: the share of sign patterns whose mean is at
    least as far from 0 as the observed one (exact for up to :data:`EXACT_UP_TO` seeds; 1 when all are 0).
    With n seeds the smallest attainable p is 2 / 2**n."""
    d = np.asarray(differences, dtype=float)
    observed = abs(d.mean())
    if observed == 0:
        return 1.0
    if len(d) <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(200_000, len(d)))
    return float(np.mean(np.abs(signs @ d) / len(d) >= observed - 1e-12))


def holm(pvalues: dict) -> dict:
    """Holm-Bonferroni adjusted p-values (same keys), monotone and capped at 1."""
    order = sorted(pvalues, key=pvalues.get)
    adjusted, running = {}, 0.0
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[key]))
        adjusted[key] = running
    return adjusted


def paired(arm: np.ndarray, baseline: np.ndarray) -> dict[str, float]:
    """Mean paired difference ``arm - baseline`` over seeds, its 95 % bootstrap interval, the sign-flip p
    and the change relative to the baseline's mean."""
    d = np.asarray(arm, dtype=float) - np.asarray(baseline, dtype=float)
    low, high = bootstrap_interval(d)
    base = float(np.mean(baseline))
    return {
        "diff": float(d.mean()),
        "low": low,
        "high": high,
        "p": sign_flip_p(d),
        "relative": float(d.mean() / base) if base else float("nan"),
    }
