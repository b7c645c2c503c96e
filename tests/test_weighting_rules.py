# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Weighting rules against verl's own GRPO, invariances, and guards."""

import numpy as np
import pytest
import torch
from helpers import Prompt, make_batch, row_scalars
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

from verl_fair.config import FairGRPOConfigError
from verl_fair.integration import context
from verl_fair.integration.context import get_state, last_report
from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo


def _prompts(seed=0, n=6, groups=("M,A1", "F,A2", "F,A4"), domains=("A", "B")):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(12):
        rewards = (rng.random(n) < [0.8, 0.5, 0.2][i % 3]).astype(float)
        out.append(Prompt(list(rewards), domains[i % len(domains)], groups[i % len(groups)]))
    return out


def _verl_grpo(batch, norm=True):
    advantages, _ = compute_grpo_outcome_advantage(
        batch.token_level_rewards, batch.response_mask, batch.index, norm_adv_by_std_in_grpo=norm
    )
    return advantages


@pytest.mark.parametrize("norm", [True, False])
@pytest.mark.parametrize(
    "rule",
    [
        {"weighting": "none"},
        {"weighting": "alpha_fair", "alpha": 0.0},
        {"weighting": "group_dro", "dro_step_size": 0.0},
    ],
    ids=["none", "alpha_fair-alpha0", "group_dro-step0"],
)
def test_rules_reduce_to_verl_grpo(rule, norm):
    batch = make_batch(_prompts(), shuffle_seed=3)
    config = {"fair_grpo": rule, "norm_adv_by_std_in_grpo": norm}
    for _ in range(3):  # history must not matter for these settings
        got, _ = fair_grpo(**batch.kwargs(config))
    torch.testing.assert_close(got, _verl_grpo(batch, norm), rtol=1e-6, atol=1e-6)


def test_single_group_gives_grpo_up_to_the_batch_scale():
    prompts = [Prompt(p.rewards, "A", "M,A1") for p in _prompts()]
    batch = make_batch(prompts, shuffle_seed=1)
    got = row_scalars(fair_grpo(**batch.kwargs())[0], batch.response_mask)
    grpo = row_scalars(_verl_grpo(batch), batch.response_mask)
    nonzero = grpo.abs() > 1e-6
    ratio = got[nonzero] / grpo[nonzero]
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-5)
    assert got.std() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("weighting", ["fairgrpo", "alpha_fair", "group_dro"])
def test_relabelling_groups_and_domains_changes_nothing(variant, weighting):
    config = {"fair_grpo": {"variant": variant, "weighting": weighting}}
    rename = {"M,A1": "x", "F,A2": "y", "F,A4": "z", "A": "dom1", "B": "dom2"}
    results = []
    for mapping in ({}, rename):
        from verl_fair.integration import context

        context.reset_state()
        for seed in range(3):
            prompts = [
                Prompt(p.rewards, mapping.get(p.domain, p.domain), mapping.get(p.group, p.group), uid=f"{seed}-{i}")
                for i, p in enumerate(_prompts(seed))
            ]
            advantages, _ = fair_grpo(**make_batch(prompts, shuffle_seed=seed).kwargs(config))
        results.append(advantages)
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


def test_fairgrpo_upweights_small_and_hard_groups():
    prompts = [Prompt([1, 1, 1, 0], "A", "majority") for _ in range(8)] + [Prompt([1, 0, 0, 0], "A", "minority")]
    fair_grpo(**make_batch(prompts).kwargs({"fair_grpo": {"min_group_size": None}}))
    weights = last_report().prompt_weights
    assert weights[-1] > 5 * weights[0]


def test_alpha_fair_weights_follow_the_reward_deficit():
    prompts = [Prompt([1, 1, 1, 0], "A", "easy"), Prompt([1, 0, 0, 0], "A", "hard")]
    fair_grpo(
        **make_batch(prompts).kwargs({"fair_grpo": {"weighting": "alpha_fair", "alpha": 2.0, "min_group_size": None}})
    )
    weights = last_report().prompt_weights
    assert weights[1] / weights[0] == pytest.approx((0.75 / 0.25) ** 2)
    assert weights.mean() == pytest.approx(1.0)


def test_group_dro_moves_weight_to_the_worst_group_over_steps():
    prompts = [Prompt([1, 1, 1, 0], "A", "easy"), Prompt([1, 0, 0, 0], "A", "hard")]
    config = {"fair_grpo": {"weighting": "group_dro", "dro_step_size": 1.0, "min_group_size": None}}
    spreads = []
    for _ in range(3):
        fair_grpo(**make_batch(prompts).kwargs(config))
        w = last_report().prompt_weights
        assert np.dot(w, [4, 4]) / 8 == pytest.approx(1.0)
        spreads.append(w[1] / w[0])
    assert spreads[0] > 1 and spreads[2] > spreads[1] > spreads[0]


@pytest.mark.parametrize(
    "rule",
    [
        {"weighting": "group_dro", "dro_step_size": 0.1},
        {"weighting": "group_dro", "dro_step_size": 10.0},
        {"weighting": "alpha_fair", "alpha": 10.0, "max_weight_ratio": 2.0},
    ],
    ids=["group_dro-0.1", "group_dro-10", "alpha_fair-10"],
)
def test_capped_weights_keep_mean_one_over_many_steps(rule):
    """Groups at mean reward 0.25 and 0.75 for 400 steps: the cap bounds the spread, the mean weight stays 1
    and the advantages keep their size (capping alone pulled the mean to 2e-7 by step 400)."""
    prompts = [Prompt([1, 0, 0, 0], "A", "hard"), Prompt([1, 1, 1, 0], "A", "easy")]
    batch = make_batch(prompts)
    config = {"fair_grpo": {"min_group_size": None, **rule}}
    plain = row_scalars(fair_grpo(**batch.kwargs({"fair_grpo": {"weighting": "none"}}))[0], batch.response_mask)
    context.reset_state()
    for _ in range(400):
        advantages, _ = fair_grpo(**batch.kwargs(config))
        weights = last_report().prompt_weights
        assert weights.mean() == pytest.approx(1.0)
        assert weights.max() / weights.min() <= context.get_state().config.max_weight_ratio * (1 + 1e-9)
    assert row_scalars(advantages, batch.response_mask).abs().sum() == pytest.approx(plain.abs().sum(), rel=0.5)
    assert last_report().metrics()["fair/guard/weight_cap"] == 4  # the easy group's rows


def test_gap_dual_cap_keeps_a_zero_weight_and_mean_one():
    """A cell whose weight is floored at 0 does not drag the cap (ratio x smallest weight) down to 0."""
    prompts = [(Prompt([1, 1, 0.6, 0.6], "A", "g1"), "pos") for _ in range(3)]
    prompts.append((Prompt([0.4, 0.4, 0, 0.8], "A", "g2"), "pos"))
    config = {"fair_grpo": {"weighting": "gap_dual", "dual_step_size": 10.0, "dual_tolerance": 0.0,
                            "max_weight_ratio": 100.0, "min_group_size": None}}  # fmt: skip
    fair_grpo(**_labelled(prompts).kwargs(config))
    np.testing.assert_allclose(context.last_report().prompt_weights, [0, 0, 0, 4.0], atol=1e-6)


def test_reward_floor_fires_and_is_counted():
    prompts = [Prompt([0, 0, 0, 1], "A", "hard"), Prompt([1, 1, 0, 1], "A", "easy")]
    batch = make_batch(prompts)
    fair_grpo(**batch.kwargs({"fair_grpo": {"reward_floor": 0.3, "min_group_size": None, "max_weight_ratio": None}}))
    metrics = last_report().metrics()
    assert metrics["fair/guard/reward_floor"] == 4
    assert metrics["fair/guard/small_group"] == 0


def test_min_group_size_counts_a_small_group_as_min_size_visits():
    prompts = [Prompt([1, 0, 1, 1], "A", "big") for _ in range(3)] + [Prompt([0, 0, 1, 0], "A", "small")]
    fair_grpo(**make_batch(prompts).kwargs({"fair_grpo": {"min_group_size": 2, "reward_floor": None}}))
    report = context.last_report()
    assert report.metrics()["fair/guard/small_group"] == 4
    # domain A: N = 4 visits, mu = 10 / 16; the small group keeps its mean 0.25 and counts as 2 visits
    assert report.prompt_weights[3] == pytest.approx(1 / (np.sqrt(4) * 0.625 * np.sqrt(2) * 0.25))


def test_min_group_size_never_lets_a_smaller_group_weigh_less_for_the_same_mean():
    """Groups of 1 to 40 visits with the same mean reward: weights fall with size only above the threshold."""
    sizes = [1, 4, 15, 16, 17, 40]
    prompts = [Prompt([1, 0, 0, 1], "A", f"g{size}") for size in sizes for _ in range(size)]
    config = {"fair_grpo": {"min_group_size": 16, "reward_floor": None, "max_weight_ratio": None}}
    fair_grpo(**make_batch(prompts).kwargs(config))
    report = context.last_report()
    weight = {key[1]: w for key, w in zip(report.prompt_keys, report.prompt_weights, strict=True)}
    at_threshold = weight["g16"]
    assert weight["g1"] == weight["g4"] == weight["g15"] == pytest.approx(at_threshold)  # bounded, no jump
    assert weight["g17"] == pytest.approx(at_threshold * np.sqrt(16 / 17))
    assert weight["g40"] == pytest.approx(at_threshold * np.sqrt(16 / 40))
    ordered = [weight[f"g{size}"] for size in sizes]
    assert all(a >= b - 1e-12 for a, b in zip(ordered, ordered[1:], strict=False))


def test_max_weight_ratio_caps_the_spread_and_is_counted():
    prompts = [Prompt([1, 1, 1, 0], "A", "g1") for _ in range(8)] + [Prompt([0, 0, 1, 0], "B", "g2")]
    for variant in ("paper", "official"):
        from verl_fair.integration import context

        context.reset_state()
        fair_grpo(
            **make_batch(prompts).kwargs(
                {"fair_grpo": {"variant": variant, "max_weight_ratio": 3.0, "min_group_size": None}}
            )
        )
        assert context.last_report().metrics()["fair/weight_spread"] == pytest.approx(3.0)
        assert context.last_report().metrics()["fair/guard/weight_cap"] == 4


def test_official_nonfinite_fallback_is_counted():
    prompts = [Prompt([0, 0, 0, 0], "A", "never"), Prompt([1, 0, 1, 0], "B", "some")]
    batch = make_batch(prompts)
    advantages, _ = fair_grpo(**batch.kwargs({"fair_grpo": {"variant": "official"}}))
    assert torch.isfinite(advantages).all()
    assert last_report().metrics()["fair/guard/nonfinite_fallback"] == 4


def _labelled(prompts_with_labels):
    """A batch whose rows carry a gold label in reward_model, as verl's dataset rows do."""
    prompts = [Prompt(p.rewards, p.domain, p.group, uid=f"u{i}") for i, (p, _) in enumerate(prompts_with_labels)]
    gold = {f"u{i}": label for i, (_, label) in enumerate(prompts_with_labels)}
    batch = make_batch(prompts)
    batch.non_tensor_batch["reward_model"] = np.array([{"ground_truth": gold[u]} for u in batch.index], dtype=object)
    return batch


def test_gap_dual_hand_checked_step():
    """Group g1 errs 0.2 on 12 rows, g2 0.6 on 4 rows: label error 0.3, gaps -0.1 and +0.3; with eta 1 and no
    tolerance the duals are mu = -0.1 and +0.3, so w = 1 + mu / p - (sum of mu) / p_label = 2/3 and 2."""
    prompts = [(Prompt([1, 1, 0.6, 0.6], "A", "g1"), "pos") for _ in range(3)]
    prompts.append((Prompt([0.4, 0.4, 0, 0.8], "A", "g2"), "pos"))
    config = {"fair_grpo": {"weighting": "gap_dual", "dual_step_size": 1.0, "dual_tolerance": 0.0,
                            "max_weight_ratio": None, "min_group_size": None}}  # fmt: skip
    fair_grpo(**_labelled(prompts).kwargs(config))
    report = context.last_report()
    np.testing.assert_allclose(report.prompt_weights, [2 / 3, 2 / 3, 2 / 3, 2.0], rtol=1e-6)  # float32 rewards
    assert report.metrics()["fair/gap_dual/largest_gap"] == pytest.approx(0.3)
    state = get_state().rule.state_dict()
    np.testing.assert_allclose(state["duals"][state["cells"].index(["A", "g2", "pos"])], [0.3, 0.0], rtol=1e-6)


def test_gap_dual_equal_opportunity_constrains_only_the_positive_labels():
    prompts = [(Prompt([1, 1, 0.6, 0.6], "A", "g1"), "pos"), (Prompt([0.4, 0.4, 0, 0.8], "A", "g2"), "pos"),
               (Prompt([1, 1, 1, 0], "A", "g1"), "neg"), (Prompt([0, 0, 1, 0], "A", "g2"), "neg")]  # fmt: skip
    common = {"weighting": "gap_dual", "dual_step_size": 1.0, "dual_tolerance": 0.0, "max_weight_ratio": None}
    fair_grpo(**_labelled(prompts).kwargs({"fair_grpo": {**common, "dual_positive_labels": ["POS"]}}))
    only_positive = context.last_report().prompt_weights
    assert only_positive[2] == only_positive[3]  # the neg cells are unconstrained: equal weights
    assert only_positive[1] > only_positive[0]  # the worse group on pos is up-weighted
    context.reset_state()
    fair_grpo(**_labelled(prompts).kwargs({"fair_grpo": {**common, "dual_constraint": "equalized_odds"}}))
    odds = context.last_report().prompt_weights
    assert odds[3] > odds[2]  # now g2's error on neg is constrained too


def test_gap_dual_with_step_size_zero_is_plain_grpo():
    prompts = [(Prompt([1, 0, 1, 1], "A", "g1"), "pos"), (Prompt([0, 0, 1, 0], "A", "g2"), "neg")]
    batch = _labelled(prompts)
    dual, _ = fair_grpo(**batch.kwargs({"fair_grpo": {"weighting": "gap_dual", "dual_step_size": 0.0}}))
    context.reset_state()
    plain, _ = fair_grpo(**batch.kwargs({"fair_grpo": {"weighting": "none"}}))
    torch.testing.assert_close(dual, plain, rtol=0, atol=0)


def test_gap_dual_without_gold_labels_weighs_every_prompt_one():
    prompts = [Prompt([1, 0, 1, 1], "A", "g1"), Prompt([0, 0, 1, 0], "A", "g2")]
    fair_grpo(**make_batch(prompts).kwargs({"fair_grpo": {"weighting": "gap_dual"}}))
    assert (context.last_report().prompt_weights == 1).all()


def test_batch_std_can_be_switched_for_any_rule():
    """The matched arms of the efficacy study: GRPO scores / batch std, and FairGRPO's weights at mean 1."""
    prompts = [Prompt([1, 0, 1, 1], "A", "g1"), Prompt([0, 0, 1, 0], "A", "g2"), Prompt([1, 1, 0, 1], "B", "g1")]
    batch = make_batch(prompts)
    plain, _ = fair_grpo(**batch.kwargs({"fair_grpo": {"weighting": "none"}}))
    context.reset_state()
    scaled, _ = fair_grpo(**batch.kwargs({"fair_grpo": {"weighting": "none", "batch_std": True}}))
    rows = row_scalars(plain, batch.response_mask)
    torch.testing.assert_close(row_scalars(scaled, batch.response_mask), rows / (rows.std() + 1e-6))
    context.reset_state()
    fair_grpo(**batch.kwargs({"fair_grpo": {"batch_std": False}}))
    assert np.dot(context.last_report().prompt_weights, [4, 4, 4]) / 12 == pytest.approx(1.0)  # 1/F at mean 1
    with pytest.raises(FairGRPOConfigError, match="batch_std=False is not valid with variant=official"):
        fair_grpo(**batch.kwargs({"fair_grpo": {"variant": "official", "batch_std": False}}))
