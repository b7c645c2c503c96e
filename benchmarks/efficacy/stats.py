# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Paired comparisons over seeds: BCa intervals, sign-flip p-values and Holm's correction."""

from __future__ import annotations

import itertools

import numpy as np

EXACT_UP_TO = 20  # seeds: up to 2**20 sign patterns are enumerated, beyond that 200,000 are drawn


def bca_interval(values: np.ndarray, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Bias-corrected and accelerated 95 % interval of the mean of ``values`` (scipy, resampling seeds)."""
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=float)
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    found = bootstrap((values,), np.mean, n_resamples=n_boot, method="BCa", random_state=seed)
    return float(found.confidence_interval.low), float(found.confidence_interval.high)


def sign_flip_p(differences: np.ndarray, seed: int = 0, draws: int = 100_000) -> float:
    """Two-sided p-value of a zero mean paired difference: the share of sign patterns whose mean is at
    least as far from 0 as the observed one (1 when all are 0). Exact for up to :data:`EXACT_UP_TO` seeds
    (smallest p 2 / 2**n); beyond, ``draws`` random patterns and (1 + hits) / (1 + draws), a randomisation
    test whose level is exact."""
    d = np.asarray(differences, dtype=float)
    observed = abs(d.mean())
    if observed == 0:
        return 1.0
    if len(d) <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        return float(np.mean(np.abs(signs @ d) / len(d) >= observed - 1e-12))
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(draws, len(d)))
    return float((1 + np.sum(np.abs(signs @ d) / len(d) >= observed - 1e-12)) / (1 + draws))


def holm(pvalues: dict) -> dict:
    """Holm-Bonferroni adjusted p-values (same keys), monotone and capped at 1."""
    order = sorted(pvalues, key=pvalues.get)
    adjusted, running = {}, 0.0
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[key]))
        adjusted[key] = running
    return adjusted


def paired(arm: np.ndarray, baseline: np.ndarray) -> dict[str, float]:
    """Mean paired difference ``arm - baseline`` over seeds, its 95 % BCa interval, the sign-flip p and
    the change relative to the baseline's mean."""
    d = np.asarray(arm, dtype=float) - np.asarray(baseline, dtype=float)
    low, high = bca_interval(d)
    base = float(np.mean(baseline))
    return {
        "diff": float(d.mean()),
        "low": low,
        "high": high,
        "p": sign_flip_p(d),
        "relative": float(d.mean() / base) if base else float("nan"),
    }
