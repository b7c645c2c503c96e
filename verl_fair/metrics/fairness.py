# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Per-group diagnosis metrics and fairness gaps, in the paper's conventions and the standard ones.

Input: a :class:`Predictions` table, one row per sample: its data source, gold and predicted label
sets (multi-label diagnosis; a binary task is the one-label case) and one column per sensitive
attribute (sex, age bin, ...; "UNK" rows are left out of that attribute).

Two families (docs/method.md §10):

- :func:`paper_metrics`, the FairGRPO paper's table: per data source and attribute, every group's
  one-vs-rest confusion counts over the classes with a gold positive in that group, macro-averaged;
  gap = max - min and sigma = sample std over groups; averaged over attributes, then over data
  sources. PP = 100 x FDR gap, EOD = 100 x TPR gap, FPR_Diff = 100 x FPR gap, Acc_ES = Acc / (1 +
  sigma_Acc), F1_ES = F1 / (1 + sigma_F1).
- :func:`standard_metrics`: per data source, attribute and class (one-vs-rest over the classes with a
  gold positive), fairlearn's definitions of the demographic-parity, equalized-odds (worst case and
  mean) and equal-opportunity differences (max - min between groups), the predictive-parity (PPV)
  difference, FairCLIP-style equity-scaled accuracy and F1 (overall / (1 + sum of |overall - group|)),
  worst-group and worst-k accuracy; macro-averaged over classes, then averaged over data sources.
  They are computed from each group's confusion counts in one vectorised pass: fairlearn's
  ``MetricFrame`` takes about 2 s per frame on 100,000 rows, too slow for bootstrap intervals. The
  tests pin every number to fairlearn's own functions (binary label, one attribute, random data).

Groups with fewer than ``min_group_size`` samples are left out, with a warning, rather than giving a
misleading 0 or 1. A rate without a denominator in a group (TPR without gold positives, FPR without gold
negatives, PPV without positive predictions) is NaN there and left out of that rate's gaps; a gap needs
two groups where its rate is defined. In a binary task (``Predictions.answers``) an answer that is not
exactly one of the task's labels (``maybe``, an empty or a hedged answer) is wrong, as the reward scores it.
Bootstrap confidence intervals resample the rows of each data source ``n_boot`` times.
"""

from __future__ import annotations

import logging
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

UNK = "UNK"
GAP_KEYS = (
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "equalized_odds_difference_mean",
    "predictive_parity_difference",
    "accuracy_difference",
    "es_accuracy",
    "es_f1",
    "worst_group_accuracy",
    "worst_k_accuracy",
)
PAPER_KEYS = ("PP", "EOD", "FPR_Diff", "sigma_F1", "Delta_F1", "sigma_Acc", "Delta_Acc", "Acc", "F1", "Acc_ES", "F1_ES")
GROUP_KEYS = ("count", "accuracy", "f1", "tpr", "fpr", "ppv", "selection_rate")


@dataclass
class Predictions:
    """One row per sample: ``data_source``, ``y_true`` and ``y_pred`` (frozensets of labels), attributes.

    ``positive`` names the positive class of a binary task: the standard metrics are then that class's
    (fairlearn's binary numbers); without it they are one-vs-rest per class, macro-averaged. ``answers``
    are a binary task's labels: an answer that is not exactly one of them counts as wrong for every class.
    """

    frame: pd.DataFrame
    attributes: Sequence[str]
    positive: str | None = None
    answers: frozenset[str] | None = None

    def __post_init__(self) -> None:
        self.frame = self.frame.reset_index(drop=True)
        self._members: dict[tuple[str, str], np.ndarray] = {}

    @classmethod
    def from_binary(
        cls,
        y_true: Sequence[int],
        y_pred: Sequence[int],
        groups: Sequence[str],
        attribute: str = "group",
        data_source: str = "all",
    ) -> Predictions:
        """A binary task: label 1 is the class ``positive``, 0 the empty label set."""

        def as_set(value: int) -> frozenset:
            return frozenset({"positive"}) if value else frozenset()

        frame = pd.DataFrame(
            {
                "data_source": data_source,
                "y_true": [as_set(v) for v in y_true],
                "y_pred": [as_set(v) for v in y_pred],
                attribute: [str(g) for g in groups],
            }
        )
        return cls(frame, [attribute])

    def classes(self, rows: pd.DataFrame | None = None) -> list[str]:
        """The positive class, or the classes with at least one gold positive in ``rows`` (default: all)."""
        if self.positive is not None:
            return [self.positive]
        return gold_classes(self.frame if rows is None else rows)

    def member(self, column: str, label: str, rows: pd.DataFrame) -> np.ndarray:
        """Whether ``label`` is in ``column`` (y_true or y_pred) for each of ``rows`` (a subset of the frame),
        computed once per distinct label set."""
        key = (column, label)
        if key not in self._members:
            codes, sets = pd.factorize(self.frame[column])
            self._members[key] = np.array([label in s for s in sets], dtype=bool)[codes]
        return self._members[key][rows.index.to_numpy()]

    def invalid(self) -> np.ndarray:
        """Whether each row's answer is not exactly one of ``answers`` (all False without ``answers``)."""
        if self.answers is None:
            return np.zeros(len(self.frame), dtype=bool)
        codes, sets = pd.factorize(self.frame["y_pred"])
        return np.array([len(s) != 1 or not s <= self.answers for s in sets], dtype=bool)[codes]

    def outcome(self, label: str, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(gold has ``label``, answer has ``label``) for ``rows``; an invalid answer is the wrong one."""
        truth, predicted = (self.member(c, label, rows) for c in ("y_true", "y_pred"))
        if self.answers is None:
            return truth, predicted
        if "invalid" not in self._members:
            self._members["invalid"] = self.invalid()
        return truth, np.where(self._members["invalid"][rows.index.to_numpy()], ~truth, predicted)


def gold_classes(rows: pd.DataFrame) -> list[str]:
    """The labels with at least one gold positive in ``rows``, sorted."""
    return sorted(set().union(*pd.unique(rows["y_true"])))


def _rate(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _confusion(predictions: Predictions, rows: pd.DataFrame, label: str) -> tuple[int, int, int, int]:
    truth, predicted = predictions.outcome(label, rows)
    return (
        int(np.sum(truth & predicted)),
        int(np.sum(~truth & predicted)),
        int(np.sum(truth & ~predicted)),
        int(np.sum(~truth & ~predicted)),
    )


def paper_group_metrics(predictions: Predictions, rows: pd.DataFrame) -> dict[str, float] | None:
    """The paper's per-group numbers: macro means over classes with a gold positive in the group (both
    labels of a binary task, whatever its positive class)."""
    classes = gold_classes(rows)
    if not classes:
        return None
    per_class = []
    for label in classes:
        tp, fp, fn, tn = _confusion(predictions, rows, label)
        precision, recall = _rate(tp, tp + fp), _rate(tp, tp + fn)
        per_class.append(
            {
                "tpr": recall,
                "fpr": _rate(fp, fp + tn),
                "fdr": _rate(fp, tp + fp),
                "acc": _rate(tp + tn, tp + tn + fp + fn),
                "f1": _rate(2 * precision * recall, precision + recall),
            }
        )
    return {key: float(np.mean([c[key] for c in per_class])) for key in per_class[0]}


def paper_metrics(predictions: Predictions, min_group_size: int = 1) -> dict[str, float]:
    """The paper's PP, EOD, FPR_Diff, sigma/Delta of F1 and Acc, Acc, F1, Acc_ES, F1_ES (docs/method.md §10)."""
    per_source = []
    for _, rows in predictions.frame.groupby("data_source", sort=True):
        per_attribute = []
        for attribute in predictions.attributes:
            groups = {}
            for value, members in rows[rows[attribute] != UNK].groupby(attribute, sort=True):
                if len(members) < min_group_size:
                    _warn_small(attribute, value, len(members), min_group_size)
                    continue
                found = paper_group_metrics(predictions, members)
                if found is not None:
                    groups[value] = found
            if len(groups) < 2:
                continue
            summary = {}
            for key in ("tpr", "fpr", "fdr", "acc", "f1"):
                values = [g[key] for g in groups.values()]
                summary[f"gap_{key}"] = max(values) - min(values)
                summary[f"std_{key}"] = statistics.stdev(values)
                summary[f"mean_{key}"] = statistics.fmean(values)
            per_attribute.append(summary)
        if per_attribute:
            per_source.append({k: statistics.fmean(a[k] for a in per_attribute) for k in per_attribute[0]})
    if not per_source:
        return dict.fromkeys(PAPER_KEYS, float("nan"))
    overall = {k: statistics.fmean(s[k] for s in per_source) for k in per_source[0]}
    return {
        "PP": 100 * overall["gap_fdr"],
        "EOD": 100 * overall["gap_tpr"],
        "FPR_Diff": 100 * overall["gap_fpr"],
        "sigma_F1": overall["std_f1"],
        "Delta_F1": overall["gap_f1"],
        "sigma_Acc": 100 * overall["std_acc"],
        "Delta_Acc": 100 * overall["gap_acc"],
        "Acc": 100 * overall["mean_acc"],
        "F1": overall["mean_f1"],
        "Acc_ES": 100 * paper_equity_scaled(overall["mean_acc"], overall["std_acc"]),
        "F1_ES": paper_equity_scaled(overall["mean_f1"], overall["std_f1"]),
    }


def paper_equity_scaled(mean: float, sigma: float) -> float:
    """The paper's equity scaling: mean / (1 + sample std across groups), both as fractions."""
    return mean / (1 + sigma)


def _warn_small(attribute: str, value: Any, size: int, minimum: int) -> None:
    warnings.warn(
        f"group {attribute}={value} has {size} samples (< min_group_size={minimum}); it is left out "
        "of the per-group metrics and the gaps",
        stacklevel=3,
    )


@dataclass
class _Task:
    """One data source, attribute and one-vs-rest class: per-row confusion cell and group code."""

    cells: np.ndarray  # (4, n) indicators of tp, fp, fn, tn
    group: np.ndarray  # (n,) group code
    names: list[str]  # group names, by code

    def counts(self, weights: np.ndarray | None = None) -> np.ndarray:
        """(groups, 4) weighted tp, fp, fn, tn per group."""
        return np.stack(
            [
                np.bincount(self.group, weights=c if weights is None else c * weights, minlength=len(self.names))
                for c in self.cells
            ],
            axis=1,
        )


def _tasks(predictions: Predictions, attribute: str, min_group_size: int) -> list[_Task]:
    tasks = []
    for _, rows in predictions.frame.groupby("data_source", sort=True):
        rows = rows[rows[attribute] != UNK]
        sizes = rows[attribute].value_counts()
        for value, size in sizes[sizes < min_group_size].items():
            _warn_small(attribute, value, int(size), min_group_size)
        rows = rows[rows[attribute].isin(sizes[sizes >= min_group_size].index)]
        if rows[attribute].nunique() < 2:
            continue
        codes, names = pd.factorize(rows[attribute].astype(str), sort=True)
        for label in predictions.classes(rows):
            truth, predicted = predictions.outcome(label, rows)
            cells = np.stack([truth & predicted, ~truth & predicted, truth & ~predicted, ~truth & ~predicted])
            tasks.append(_Task(cells.astype(np.float64), codes, list(names)))
    return tasks


def rates(counts: np.ndarray) -> pd.DataFrame:
    """Per-row rates from (rows, 4) tp, fp, fn, tn counts. Without a denominator TPR, FPR and PPV are NaN
    (undefined); accuracy, F1 and the selection rate are 0 (as fairlearn's)."""
    tp, fp, fn, tn = counts.T
    with np.errstate(divide="ignore", invalid="ignore"):

        def safe(a, b, empty=0.0):
            return np.where(b > 0, a / np.where(b > 0, b, 1), empty)

        return pd.DataFrame(
            {
                "count": tp + fp + fn + tn,
                "accuracy": safe(tp + tn, tp + fp + fn + tn),
                "f1": safe(2 * tp, 2 * tp + fp + fn),
                "tpr": safe(tp, tp + fn, np.nan),
                "fpr": safe(fp, fp + tn, np.nan),
                "ppv": safe(tp, tp + fp, np.nan),
                "selection_rate": safe(tp + fp, tp + fp + fn + tn),
            }
        )


def _spread(values: pd.Series) -> float:
    """max - min over the groups where the rate is defined; NaN with fewer than two."""
    defined = values.dropna()
    return float(defined.max() - defined.min()) if len(defined) > 1 else float("nan")


def gaps_from_groups(by_group: pd.DataFrame, overall: pd.Series, worst_k: int) -> dict[str, float]:
    """The standard gaps from per-group rates (rows: groups; columns: the base metrics)."""
    tpr_gap, fpr_gap = _spread(by_group["tpr"]), _spread(by_group["fpr"])
    accuracy = by_group["accuracy"].sort_values()
    return {
        "demographic_parity_difference": _spread(by_group["selection_rate"]),
        "equal_opportunity_difference": tpr_gap,
        "equalized_odds_difference": float(np.maximum(tpr_gap, fpr_gap)),
        "equalized_odds_difference_mean": (tpr_gap + fpr_gap) / 2,
        "predictive_parity_difference": _spread(by_group["ppv"]),
        "accuracy_difference": accuracy.iloc[-1] - accuracy.iloc[0],
        "es_accuracy": overall["accuracy"] / (1 + (overall["accuracy"] - by_group["accuracy"]).abs().sum()),
        "es_f1": overall["f1"] / (1 + (overall["f1"] - by_group["f1"]).abs().sum()),
        "worst_group_accuracy": accuracy.iloc[0],
        "worst_k_accuracy": accuracy.iloc[:worst_k].mean(),
    }


def _evaluate(tasks: list[_Task], worst_k: int, weights: list[np.ndarray] | None = None):
    """Per-group means over tasks (macro over classes and data sources) and the mean gaps."""
    by_group, gaps = [], []
    for i, task in enumerate(tasks):
        counts = task.counts(None if weights is None else weights[i])
        groups = rates(counts).set_axis(task.names)
        by_group.append(groups)
        gaps.append(gaps_from_groups(groups, rates(counts.sum(axis=0, keepdims=True)).iloc[0], worst_k))
    return pd.concat(by_group).groupby(level=0).mean(), {key: _nanmean([g[key] for g in gaps]) for key in GAP_KEYS}


def _nanmean(values: Sequence[float]) -> float:
    """The mean of the defined values; NaN when none is."""
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _interval(samples: np.ndarray) -> np.ndarray:
    """[2.5 %, 97.5 %] quantiles along the first axis, ignoring NaN (NaN where every draw is)."""
    flat = samples.reshape(len(samples), -1)
    out = np.quantile(flat, [0.025, 0.975], axis=0)
    holed = np.isnan(flat).any(axis=0)
    if holed.any():  # nanquantile goes column by column: only where needed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: an undefined rate
            out[:, holed] = np.nanquantile(flat[:, holed], [0.025, 0.975], axis=0)
    return out.reshape(2, *samples.shape[1:])


def standard_metrics(
    predictions: Predictions, *, min_group_size: int = 1, n_boot: int | None = None, worst_k: int = 2, seed: int = 0
) -> dict[str, Any]:
    """``by_group`` and ``gaps`` per attribute (standard definitions), with bootstrap intervals if ``n_boot``.

    Returns ``{attribute: {"by_group": {group: {metric: value}}, "gaps": {gap: value}}}``, intervals
    under ``<name>_ci`` as [2.5 %, 97.5 %] quantiles of ``n_boot`` resamples of the rows (within each
    data source). Per data source and class the numbers come from the groups' confusion counts, then
    they are averaged over classes (macro) and data sources.
    """
    out: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    for attribute in predictions.attributes:
        tasks = _tasks(predictions, attribute, min_group_size)
        if not tasks:
            out[attribute] = {"by_group": {}, "gaps": {key: float("nan") for key in GAP_KEYS}}
            continue
        by_group, gaps = _evaluate(tasks, worst_k)
        result = {
            "by_group": {str(g): {k: float(v) for k, v in row.items()} for g, row in by_group.iterrows()},
            "gaps": dict(gaps),
        }
        if n_boot:
            samples = [_evaluate(tasks, worst_k, _resample(tasks, rng)) for _ in range(n_boot)]
            for key in GAP_KEYS:
                result["gaps"][f"{key}_ci"] = _interval(np.array([g[key] for _, g in samples])).tolist()
            keys = list(GROUP_KEYS[1:])
            draws = np.stack([b.reindex(index=by_group.index, columns=keys).to_numpy() for b, _ in samples])
            low, high = _interval(draws)  # (groups, metrics) each
            for i, row in enumerate(result["by_group"].values()):
                row.update({f"{key}_ci": [float(low[i, j]), float(high[i, j])] for j, key in enumerate(keys)})
        out[attribute] = result
    return out


def _resample(tasks: list[_Task], rng: np.random.Generator) -> list[np.ndarray]:
    """Bootstrap weights (how often each row is drawn), one draw per data source shared by its tasks."""
    weights, drawn = [], {}
    for task in tasks:
        key = (id(task.group), len(task.group))
        if key not in drawn:
            n = len(task.group)
            drawn[key] = np.bincount(rng.integers(n, size=n), minlength=n).astype(np.float64)
        weights.append(drawn[key])
    return weights


def group_deltas(
    before: Predictions,
    after: Predictions,
    attribute: str,
    *,
    n_boot: int = 200,
    min_group_size: int = 1,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per-group change (after - before) of every rate, with bootstrap intervals from independent
    resamples of the two prediction sets: ``{group: {metric: delta, metric_ci: [lo, hi]}}``."""
    rng = np.random.default_rng(seed)
    tasks = [_tasks(p, attribute, min_group_size) for p in (before, after)]
    if not all(tasks):
        return {}
    first, second = (_evaluate(t, worst_k=1)[0] for t in tasks)
    point = second - first
    draws = [
        (_evaluate(tasks[1], 1, _resample(tasks[1], rng))[0] - _evaluate(tasks[0], 1, _resample(tasks[0], rng))[0])
        for _ in range(n_boot)
    ]
    out = {}
    for group in point.index:
        sides = [side for side, found in (("before", first), ("after", second)) if group in found.index]
        if len(sides) == 1:  # a group seen on one side only: nothing to subtract
            out[str(group)] = {"only_in": sides[0], **{m: None for m in GROUP_KEYS[1:]}}
            out[str(group)].update({f"{m}_ci": None for m in GROUP_KEYS[1:]})
            continue
        row = {}
        for metric in GROUP_KEYS[1:]:
            row[metric] = float(point.loc[group, metric])
            values = [d.loc[group, metric] for d in draws if group in d.index]
            row[f"{metric}_ci"] = _interval(np.array(values)).tolist()
        out[str(group)] = row
    return out
