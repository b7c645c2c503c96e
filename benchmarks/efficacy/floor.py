# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Reference classifiers and the noise floor of the gaps, per task (scikit-learn logistic regression).

- ``logistic``: logistic regression on every prompt token (one-hot), trained on the fit split with the
  training prompts' label weighting (balanced for ``flchain``): what a simple tabular model reaches.
- ``blind``: the same without the group tokens (sex, age band, cohort): a group-blind model.
- the **noise floor**: the blind model's gaps on the test split after the group labels are shuffled
  across the test rows of each data source (``shuffles`` times). Shuffled groups have no relation to
  anything, so these gaps
  are what finite test groups produce by chance; a task whose real gaps do not stand above them
  (the 95th percentile) cannot show a method closing a gap.

All numbers come from the same :func:`benchmarks.efficacy.train.evaluate_predictions` as the policies'.
"""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression

from benchmarks.efficacy.tasks import Case, Task

GAPS = ("PP", "EOD", "EOpp_pos", "PPV_gap_pos")


def _model(task: Task, blind: bool) -> tuple[DictVectorizer, LogisticRegression]:
    def rows(cases: list[Case]) -> list[dict]:
        return [dict.fromkeys(c.blind if blind else c.tokens, 1) for c in cases]

    vectoriser = DictVectorizer()
    features = vectoriser.fit_transform(rows(task.fit))
    weights = task.weights(task.fit) * len(task.fit)
    model = LogisticRegression(max_iter=2000).fit(features, [c.label == task.positive for c in task.fit], weights)
    return vectoriser, model, rows


def predict(task: Task, cases: list[Case], blind: bool) -> np.ndarray:
    """Codes (1 positive, 0 negative) of the logistic regression fitted on the fit split."""
    vectoriser, model, rows = _model(task, blind)
    return model.predict(vectoriser.transform(rows(cases))).astype(int)


def references(task: Task, shuffles: int = 200, seed: int = 0) -> dict:
    """The two reference models' test metrics and the noise floor (median and 95th percentile per gap)."""
    from benchmarks.efficacy.train import evaluate_predictions

    out = {}
    for name, blind in (("logistic", False), ("blind", True)):
        out[name] = evaluate_predictions(task, task.test, predict(task, task.test, blind))
    codes = predict(task, task.test, blind=True)
    rng = np.random.default_rng(seed)
    draws = []
    sources = np.array([c.source for c in task.test])
    for _ in range(shuffles):
        order = np.arange(len(task.test))
        for source in task.sources:  # within each data source: the paper's gaps are per source
            rows = np.flatnonzero(sources == source)
            order[rows] = rng.permutation(rows)
        shuffled = [
            Case(c.tokens, c.label, task.test[j].groups, task.test[j].key, c.blind, c.source)
            for c, j in zip(task.test, order, strict=True)
        ]
        draws.append(evaluate_predictions(task, shuffled, codes))
    out["floor_median"] = {g: float(np.median([d[g] for d in draws])) for g in GAPS}
    out["floor_95"] = {g: float(np.quantile([d[g] for d in draws], 0.95)) for g in GAPS}
    out["above_floor"] = {g: bool(out["blind"][g] > out["floor_95"][g]) for g in GAPS}
    return out
