# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""variant=official reproduces the authors' fair_grpo: the worked example and a loop-based reference."""

import numpy as np
import pytest
import torch
from helpers import Prompt, make_batch, row_scalars
from official_reference import OfficialReference

from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo

OFFICIAL = {"fair_grpo": {"variant": "official"}}
PAPER_NO_GUARDS = {"fair_grpo": {"reward_floor": None, "max_weight_ratio": None, "min_group_size": None}}

WORKED = [
    Prompt([1, 0, 1, 1, 0], "A", "M,A3"),
    Prompt([1, 1, 1, 0, 1], "A", "M,A3"),
    Prompt([0, 0, 1, 0, 0], "A", "F,A4"),
    Prompt([1, 0, 0, 0, 0], "B", "F,A2"),
]
WORKED_ADVANTAGES = [
    [0.06792, -0.10188, 0.06792, 0.06792, -0.10188],
    [0.04159, 0.04159, 0.04159, -0.16637, 0.04159],
    [-0.20587, -0.20587, 0.82348, -0.20587, -0.20587],
    [3.80349, -0.95087, -0.95087, -0.95087, -0.95087],
]


@pytest.mark.parametrize("config", [OFFICIAL, PAPER_NO_GUARDS], ids=["official", "paper-guards-off"])
def test_worked_example_of_method_section_7(config):
    batch = make_batch(WORKED)
    advantages, returns = fair_grpo(**batch.kwargs(config))
    assert advantages.shape == batch.response_mask.shape and advantages.dtype == batch.token_level_rewards.dtype
    assert torch.equal(returns, advantages)  # outcome estimators return the advantages as returns
    got = row_scalars(advantages, batch.response_mask).reshape(4, 5)
    assert torch.allclose(got, torch.tensor(WORKED_ADVANTAGES), atol=1e-5)
    assert torch.equal(advantages, advantages * batch.response_mask)


def test_worked_example_weights_and_advantage_mass():
    from verl_fair.integration.context import last_report

    batch = make_batch(WORKED)
    advantages, _ = fair_grpo(**batch.kwargs(OFFICIAL))
    weights = last_report().prompt_weights
    assert np.allclose(weights, [1.0935, 1.0935, 5.4127, 25.0], atol=1e-4)
    assert last_report().metrics()["fair/weight_spread"] == pytest.approx(22.86, abs=0.01)
    mass = row_scalars(advantages, batch.response_mask).abs().reshape(4, 5).sum(1)
    assert (mass / mass.sum()).numpy() == pytest.approx([0.041, 0.033, 0.165, 0.761], abs=0.002)


def test_worked_example_fed_twice_gives_the_same_advantages():
    first, _ = fair_grpo(**make_batch(WORKED).kwargs(OFFICIAL))
    second, _ = fair_grpo(**make_batch(WORKED).kwargs(OFFICIAL))
    assert torch.allclose(first, second, atol=5e-7)


def _random_step(rng, step, n, graded, unk_share):
    prompts = []
    for _ in range(int(rng.integers(4, 9))):
        if graded:
            rewards = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=n, p=[0.3, 0.1, 0.2, 0.1, 0.3])
        else:
            rewards = (rng.random(n) < rng.random()).astype(float)
        group = "UNK" if rng.random() < unk_share else str(rng.choice(["M,A1", "F,A2", "M,A3"]))
        prompts.append(Prompt(list(rewards), str(rng.choice(["A", "B"])), group))
    return make_batch(prompts, shuffle_seed=step)


@pytest.mark.parametrize("graded", [False, True], ids=["binary", "graded"])
@pytest.mark.parametrize("unk_share", [0.0, 1.0, 0.4], ids=["labelled", "unk", "mixed"])
def test_official_matches_loop_reference_bit_for_bit(graded, unk_share):
    rng = np.random.default_rng(7 + int(graded) + int(10 * unk_share))
    reference = OfficialReference()
    for step in range(5):
        batch = _random_step(rng, step, n=5, graded=graded, unk_share=unk_share)
        expected = reference.step(
            batch.token_level_rewards,
            batch.index,
            batch.non_tensor_batch["data_source"],
            [e.get("fair_group", "UNK") for e in batch.non_tensor_batch["extra_info"]],
        )
        advantages, _ = fair_grpo(**batch.kwargs(OFFICIAL))
        torch.testing.assert_close(advantages, expected.unsqueeze(-1) * batch.response_mask, rtol=0, atol=0)
