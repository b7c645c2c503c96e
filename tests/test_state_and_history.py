# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Statistics windows, the state_dict contract, resume equivalence and in-process reset."""

import copy

import numpy as np
import pytest
import torch
from helpers import Prompt, make_batch

from verl_fair.algorithm.core import FairGRPO
from verl_fair.config import FairGRPOConfig
from verl_fair.integration import context
from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo


def _steps(count, seed=0, unk_share=0.4):
    rng = np.random.default_rng(seed)
    for step in range(count):
        prompts = []
        for i in range(10):
            rewards = list((rng.random(5) < rng.random()).astype(float))
            group = "UNK" if rng.random() < unk_share else ["M,A1", "F,A3"][i % 2]
            prompts.append(Prompt(rewards, ["A", "B"][i % 2], group, uid=f"s{step}p{i}"))
        batch = make_batch(prompts, shuffle_seed=step)
        gold = [{"ground_truth": ["pos", "neg", "pos, neg"][int(u.split("p")[1]) % 3]} for u in batch.index]
        batch.non_tensor_batch["reward_model"] = np.array(gold, dtype=object)  # a gold label per prompt
        yield batch


def _sums(key):
    state = context.get_state().state_dict()["group_stats"]
    return state["sums"][state["keys"].index(list(key))]


def test_window_keeps_only_the_last_k_steps():
    config = {"fair_grpo": {"history": {"window": 2}}}
    for rewards in ([1, 1], [0, 0], [1, 0], [0, 1]):
        fair_grpo(**make_batch([Prompt(rewards, "A", "g")]).kwargs(config))
    count, reward_sum, rollouts = _sums(("A", "g"))
    assert (count, reward_sum, rollouts) == (2, 2, 4)


def test_ema_decays_every_key():
    config = {"fair_grpo": {"history": {"ema": 0.5}}}
    fair_grpo(**make_batch([Prompt([1, 1], "A", "g"), Prompt([1, 0], "A", "h")]).kwargs(config))
    fair_grpo(**make_batch([Prompt([0, 0], "A", "g")]).kwargs(config))
    assert tuple(_sums(("A", "g"))) == (1.5, 1.0, 3.0)
    assert tuple(_sums(("A", "h"))) == (0.5, 0.5, 1.0)


def test_all_history_accumulates_from_step_zero():
    for _ in range(3):
        fair_grpo(**make_batch([Prompt([1, 0], "A", "g")]).kwargs())
    assert tuple(_sums(("A", "g"))) == (3, 3, 6)


@pytest.mark.parametrize(
    "section",
    [
        {"variant": "official"},
        {"variant": "paper"},
        {"variant": "paper", "history": {"window": 3}, "cluster": {"memory": 8, "memory_mode": "sliding"}},
        {"variant": "paper", "history": {"ema": 0.9}, "cluster": {"memory": 8}},
        {"weighting": "group_dro", "dro_step_size": 0.5},
        {"weighting": "gap_dual", "dual_step_size": 0.5},
    ],
    ids=["official", "paper", "window-sliding", "ema-reservoir", "group_dro", "gap_dual"],
)
def test_resumed_state_gives_the_same_advantages_as_an_uninterrupted_run(section):
    config = {"fair_grpo": section}
    batches = list(_steps(6))
    uninterrupted = [fair_grpo(**b.kwargs(config))[0] for b in batches]

    context.reset_state()
    for b in batches[:3]:
        fair_grpo(**b.kwargs(config))
    saved = copy.deepcopy(context.get_state().state_dict())
    context.reset_state()
    fresh = context.get_state(FairGRPOConfig.from_algorithm(config))
    fresh.load_state_dict(saved)
    resumed = [fair_grpo(**b.kwargs(config))[0] for b in batches[3:]]
    for expected, got in zip(uninterrupted[3:], resumed, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_a_state_from_other_settings_is_refused_clearly():
    fair_grpo(**next(_steps(1)).kwargs({"fair_grpo": {"variant": "official"}}))
    saved = context.get_state().state_dict()
    other = FairGRPO(FairGRPOConfig.from_mapping({"variant": "paper"}))
    with pytest.raises(ValueError, match="different algorithm.fair_grpo configuration"):
        other.load_state_dict(saved)
    with pytest.raises(ValueError, match="version"):
        other.load_state_dict({**saved, "version": 99})


def test_reset_state_forgets_everything():
    fair_grpo(**next(_steps(1)).kwargs())
    assert context.get_state().steps_ == 1
    context.reset_state()
    assert context.get_state() is None


def test_changed_settings_restart_the_statistics_with_a_warning(caplog):
    fair_grpo(**next(_steps(1)).kwargs())
    with caplog.at_level("WARNING"):
        fair_grpo(**next(_steps(1)).kwargs({"fair_grpo": {"weighting": "none"}}))
    assert "settings changed" in caplog.text
    assert context.get_state().steps_ == 1
