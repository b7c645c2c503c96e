# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Fairness metrics: fairlearn's numbers, hand-computed toys, the paper's conventions, edge cases."""

import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equal_opportunity_difference,
    equalized_odds_difference,
)
from sklearn.metrics import precision_score

from verl_fair.metrics.fairness import Predictions, paper_equity_scaled, paper_metrics, standard_metrics


@pytest.mark.parametrize("seed", range(5))
def test_binary_one_attribute_equals_fairlearn(seed):
    rng = np.random.default_rng(seed)
    n = 400
    groups = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    y_true = rng.integers(0, 2, size=n)
    y_pred = np.where(rng.random(n) < 0.7, y_true, 1 - y_true)
    gaps = standard_metrics(Predictions.from_binary(y_true, y_pred, groups))["group"]["gaps"]
    kwargs = {"sensitive_features": groups}
    assert gaps["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, **kwargs)
    )
    assert gaps["equal_opportunity_difference"] == pytest.approx(equal_opportunity_difference(y_true, y_pred, **kwargs))
    assert gaps["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y_true, y_pred, **kwargs))
    assert gaps["equalized_odds_difference_mean"] == pytest.approx(
        equalized_odds_difference(y_true, y_pred, agg="mean", **kwargs)
    )
    ppv = MetricFrame(
        metrics=lambda t, p: precision_score(t, p, zero_division=0),
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
    )
    assert gaps["predictive_parity_difference"] == pytest.approx(ppv.difference())


def test_hand_computed_toy_catches_swapped_arguments():
    #             group a: truth 1 1 0 0, prediction 1 0 0 0     group b: truth 1 0 0 0, prediction 1 1 1 0
    y_true = [1, 1, 0, 0, 1, 0, 0, 0]
    y_pred = [1, 0, 0, 0, 1, 1, 1, 0]
    result = standard_metrics(Predictions.from_binary(y_true, y_pred, list("aaaabbbb")))["group"]
    gaps, by_group = result["gaps"], result["by_group"]
    assert gaps["demographic_parity_difference"] == pytest.approx(0.75 - 0.25)  # predictions, not base rates (0.25)
    assert gaps["equal_opportunity_difference"] == pytest.approx(1.0 - 0.5)
    assert gaps["equalized_odds_difference"] == pytest.approx(2 / 3)  # FPR: a 0, b 2/3
    assert gaps["predictive_parity_difference"] == pytest.approx(1.0 - 1 / 3)
    assert by_group["a"]["accuracy"] == 0.75 and by_group["b"]["accuracy"] == 0.5
    assert gaps["worst_group_accuracy"] == 0.5
    overall = 5 / 8
    assert gaps["es_accuracy"] == pytest.approx(overall / (1 + abs(overall - 0.75) + abs(overall - 0.5)))


def test_paper_equity_scaling_matches_the_published_numbers():
    assert paper_equity_scaled(0.8040, 0.0411) == pytest.approx(0.7723, abs=5e-5)
    assert paper_equity_scaled(0.3275, 0.0379) == pytest.approx(0.3155, abs=5e-5)
    assert paper_equity_scaled(0.3218, 0.0383) == pytest.approx(0.3100, abs=1.5e-4)  # inputs rounded in the paper


def _multilabel(rows):
    frame = pd.DataFrame(rows, columns=["data_source", "y_true", "y_pred", "sex"])
    frame["y_true"] = frame["y_true"].map(frozenset)
    frame["y_pred"] = frame["y_pred"].map(frozenset)
    return Predictions(frame, ["sex"])


def test_paper_metrics_by_hand():
    predictions = _multilabel(
        [
            ("cxr", {"edema"}, {"edema"}, "F"),
            ("cxr", {"edema"}, {"mass"}, "F"),
            ("cxr", {"edema"}, {"edema"}, "M"),
            ("cxr", set(), {"edema"}, "M"),
        ]
    )
    # F: only "edema" has a gold positive (the false "mass" is ignored): tp 1 fn 1 -> TPR .5, FPR 0, FDR 0,
    #    acc .5, F1 2/3.  M: tp 1 fp 1 -> TPR 1, FPR 1, FDR .5, acc .5, F1 2/3.
    paper = paper_metrics(predictions)
    assert paper["EOD"] == pytest.approx(50.0) and paper["FPR_Diff"] == pytest.approx(100.0)
    assert paper["PP"] == pytest.approx(50.0) and paper["Delta_Acc"] == pytest.approx(0.0)
    assert paper["F1"] == pytest.approx(2 / 3) and paper["sigma_F1"] == pytest.approx(0.0)
    assert paper["F1_ES"] == pytest.approx(2 / 3) and paper["Acc"] == pytest.approx(50.0)


def test_paper_metrics_average_attributes_then_data_sources():
    rows = []
    for source, gap in (("a", 1.0), ("b", 0.0)):
        rows += [(source, {"x"}, {"x"}, "F"), (source, {"x"}, {"x"} if gap == 0 else set(), "M")]
    assert paper_metrics(_multilabel(rows))["EOD"] == pytest.approx(50.0)


def test_single_group_missing_predictions_and_unknown_labels():
    single = _multilabel([("cxr", {"edema"}, {"edema"}, "F"), ("cxr", {"edema"}, set(), "F")])
    assert np.isnan(paper_metrics(single)["PP"])
    assert all(np.isnan(v) for v in standard_metrics(single)["sex"]["gaps"].values())
    unknown = _multilabel([("cxr", {"edema"}, {"dragon"}, "F"), ("cxr", {"edema"}, {"edema"}, "M")])
    result = standard_metrics(unknown)["sex"]
    assert result["by_group"]["F"]["tpr"] == 0.0 and result["by_group"]["M"]["tpr"] == 1.0
    no_gold = _multilabel([("cxr", set(), {"edema"}, "F"), ("cxr", set(), set(), "M")])
    assert np.isnan(paper_metrics(no_gold)["EOD"])


def test_small_groups_give_nan_and_a_warning():
    rng = np.random.default_rng(0)
    groups = ["a"] * 50 + ["b"] * 50 + ["c"] * 3
    y = rng.integers(0, 2, size=103)
    with pytest.warns(UserWarning, match="group group=c has 3 samples"):
        result = standard_metrics(Predictions.from_binary(y, y, groups), min_group_size=10)["group"]
    assert "c" not in result["by_group"] and result["gaps"]["accuracy_difference"] == 0.0


def test_bootstrap_intervals_bracket_the_estimate_and_are_seeded():
    rng = np.random.default_rng(1)
    groups = rng.choice(["a", "b"], size=300)
    y_true = rng.integers(0, 2, size=300)
    y_pred = np.where(rng.random(300) < 0.8, y_true, 1 - y_true)
    data = Predictions.from_binary(y_true, y_pred, groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = standard_metrics(data, n_boot=40, seed=3)["group"]
        again = standard_metrics(data, n_boot=40, seed=3)["group"]
    low, high = first["gaps"]["equal_opportunity_difference_ci"]
    assert low <= first["gaps"]["equal_opportunity_difference"] <= high and low < high
    assert first == again
    low, high = first["by_group"]["a"]["accuracy_ci"]
    assert low <= first["by_group"]["a"]["accuracy"] <= high


def test_a_rate_without_a_denominator_is_nan_and_left_out_of_the_gaps():
    #            group a: TPR 1/2      group b: TPR 1      group c: no positive (TPR undefined), FPR 1/2
    y_true = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    y_pred = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0]
    result = standard_metrics(Predictions.from_binary(y_true, y_pred, list("aaaabbbbcc")))["group"]
    assert np.isnan(result["by_group"]["c"]["tpr"]) and result["by_group"]["c"]["fpr"] == 0.5
    assert result["gaps"]["equal_opportunity_difference"] == pytest.approx(0.5)
    assert result["gaps"]["equalized_odds_difference"] == pytest.approx(0.5)
