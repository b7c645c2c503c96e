# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Rows verl really sends: padding, one rollout, uneven rollouts, zero rewards, NaN, bad settings."""

import numpy as np
import pytest
import torch
from helpers import Prompt, make_batch, row_scalars

from verl_fair.algorithm.advantage import NonFiniteRewardError
from verl_fair.config import FairGRPOConfigError
from verl_fair.integration import context
from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo

PROMPTS = [Prompt([1, 0, 1, 1], "A", "M,A1"), Prompt([0, 0, 1, 0], "A", "F,A2"), Prompt([1, 1, 0, 1], "B", "F,A2")]


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_padding_rows_get_zero_and_change_no_statistic(variant):
    config = {"fair_grpo": {"variant": variant}}
    plain = make_batch(PROMPTS)
    padded = make_batch(PROMPTS, padding_rows=3)
    padded.token_level_rewards[-3:, 0] = 1.0  # whatever padding carries must not leak in
    padded.response_mask[-3:, 0] = 1
    expected, _ = fair_grpo(**plain.kwargs(config))
    state_plain = context.get_state().state_dict()
    context.reset_state()
    got, _ = fair_grpo(**padded.kwargs(config))
    assert torch.equal(got[-3:], torch.zeros_like(got[-3:]))
    torch.testing.assert_close(got[:-3], expected, rtol=0, atol=0)
    assert context.last_report().metrics()["fair/padding_rows"] == 3
    np.testing.assert_array_equal(
        context.get_state().state_dict()["group_stats"]["sums"], state_plain["group_stats"]["sums"]
    )


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_single_rollout_prompts_are_finite_like_verl_grpo(variant):
    batch = make_batch([Prompt([1.0], "A", "M,A1"), Prompt([0.0], "A", "F,A2"), Prompt([1.0], "B", "F,A2")])
    advantages, _ = fair_grpo(**batch.kwargs({"fair_grpo": {"variant": variant}}))
    assert torch.isfinite(advantages).all()
    assert row_scalars(advantages, batch.response_mask).abs().sum() > 0


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_uneven_rollout_counts_use_each_prompts_own_count(variant):
    prompts = [
        Prompt([1, 0, 1, 1, 0], "A", "M,A1"),
        Prompt([0, 1], "A", "M,A1"),
        Prompt([1, 0, 0], "A", "UNK"),
        Prompt([1, 1, 0, 0, 1, 0], "A", "UNK"),
    ]
    batch = make_batch(prompts, shuffle_seed=0)
    advantages, _ = fair_grpo(**batch.kwargs({"fair_grpo": {"variant": variant}}))
    scalars = row_scalars(advantages, batch.response_mask)
    assert torch.isfinite(scalars).all()
    for uid in set(batch.index):  # every prompt keeps zero mean: the weight is constant per prompt
        assert scalars[torch.from_numpy(batch.index == uid)].sum().abs() < 1e-5
    sums = context.get_state().state_dict()["group_stats"]["sums"]
    assert sums[:, 2].sum() == 16 and sums[:, 0].sum() == 4


@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("weighting", ["fairgrpo", "alpha_fair", "group_dro"])
def test_groups_that_never_scored_stay_finite(variant, weighting):
    prompts = [Prompt([0, 0, 0, 0], "A", "M,A1"), Prompt([0, 0, 0, 0], "B", "F,A2"), Prompt([0, 0, 0, 0], "B", "UNK")]
    config = {"fair_grpo": {"variant": variant, "weighting": weighting, "reward_floor": None}}
    for _ in range(2):
        advantages, _ = fair_grpo(**make_batch(prompts).kwargs(config))
        assert torch.equal(advantages, torch.zeros_like(advantages))


def test_nan_rewards_raise_naming_rows_and_uids():
    batch = make_batch([Prompt([1, 0], uid="u-good"), Prompt([1, 0], uid="u-bad")])
    batch.token_level_rewards[3, 0] = float("nan")
    batch.token_level_rewards[2, 0] = float("inf")
    with pytest.raises(NonFiniteRewardError, match=r"2 NaN or infinite reward row\(s\) in 1 prompt\(s\).*u-bad"):
        fair_grpo(**batch.kwargs())


def test_missing_index_is_a_clear_error():
    batch = make_batch(PROMPTS)
    with pytest.raises(ValueError, match="needs `index`"):
        fair_grpo(batch.token_level_rewards, batch.response_mask, index=None, config={})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"variant": "fast"}, r"variant='fast'.*'paper', 'official'"),
        ({"weighting": "dro"}, r"weighting='dro'.*'group_dro'"),
        ({"wieghting": "none"}, r"unknown key 'wieghting'; did you mean 'weighting'\?"),
        ({"history": {"window": 0}}, r"history=\{'window': 0\}"),
        ({"history": "forever"}, r"history='forever'"),
        (
            {"variant": "official", "history": {"ema": 0.9}},
            r"history=\{'ema': 0.9\} is not valid with variant=official",
        ),
        ({"max_weight_ratio": 0.5}, r"max_weight_ratio=0.5.*>= 1"),
        ({"cluster": {"k_max": 0}}, r"cluster.k_max=0"),
        ({"cluster": {"kmax": 3}}, r"unknown key 'cluster.kmax'; did you mean 'cluster.k_max'"),
        ({"age_bins": [50, 25]}, r"age_bins=\[50, 25\].*increasing"),
        ({"epsilon": -1}, r"epsilon=-1.*> 0"),
    ],
)
def test_bad_settings_name_the_key_the_value_and_the_choices(section, message):
    batch = make_batch(PROMPTS)
    with pytest.raises(FairGRPOConfigError, match=message):
        fair_grpo(**batch.kwargs({"fair_grpo": section}))


def test_settings_from_a_hydra_dictconfig():
    from omegaconf import OmegaConf

    config = OmegaConf.create(
        {
            "norm_adv_by_std_in_grpo": False,
            "fair_grpo": {"variant": "paper", "history": {"window": 4}, "cluster": {"k_max": 2}},
        }
    )
    batch = make_batch(PROMPTS)
    fair_grpo(**batch.kwargs(config))
    cfg = context.get_state().config
    assert cfg.history.window == 4 and cfg.cluster.k_max == 2 and cfg.norm_adv_by_std_in_grpo is False


def _kwargs(batch, **changes):
    kwargs = batch.kwargs({"fair_grpo": {"variant": "official"}})
    kwargs.update(changes)
    return kwargs


def test_a_missing_uid_is_an_error_not_one_merged_prompt():
    batch = make_batch(PROMPTS)
    index = batch.index.copy()
    index[[0, 5]] = None
    with pytest.raises(ValueError, match=r"row 0 has no uid \(None\)"):
        fair_grpo(**_kwargs(batch, index=index))


def test_uids_of_different_types_are_different_prompts():
    """int 0 and str "0" are two prompts, as their rows' rewards show."""
    batch = make_batch([Prompt([1, 0], "A", "M,A1"), Prompt([1, 1, 1, 0], "A", "M,A1")])
    index = np.array([0, 0, "0", "0", "0", "0"], dtype=object)
    fair_grpo(**_kwargs(batch, index=index, non_tensor_batch={**batch.non_tensor_batch, "uid": index}))
    assert context.last_report().prompts == 2


def test_a_real_uid_that_starts_with_pad_is_a_prompt():
    batch = make_batch([Prompt([1, 0, 1, 1], "A", "M,A1", uid="padded-scan-17"), Prompt([0, 1, 0, 0], "A", "F,A2")])
    advantages, _ = fair_grpo(**_kwargs(batch))
    assert context.last_report().prompts == 2 and context.last_report().padding_rows == 0
    assert advantages[:4].abs().sum() > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("rewards_1d", r"token_level_rewards must be a \(batch, response_length\) tensor, got shape \(\d+,\)"),
        ("mask_shape", r"response_mask has shape \(\d+, 2\) but token_level_rewards has \(\d+, 4\)"),
        ("short_index", r"index has \d+ uids for \d+ rows"),
        ("short_extra_info", r"non_tensor_batch\['extra_info'\] has 2 entries for \d+ rows"),
    ],
)
def test_inputs_of_the_wrong_shape_are_named(change, message):
    batch = make_batch(PROMPTS)
    kwargs = _kwargs(batch)
    if change == "rewards_1d":
        kwargs["token_level_rewards"] = batch.token_level_rewards.sum(-1)
    elif change == "mask_shape":
        kwargs["response_mask"] = batch.response_mask[:, :2]
    elif change == "short_index":
        kwargs["index"] = batch.index[:-1]
    else:
        kwargs["non_tensor_batch"] = {**batch.non_tensor_batch, "extra_info": batch.non_tensor_batch["extra_info"][:2]}
    with pytest.raises(ValueError, match=message):
        fair_grpo(**kwargs)


def test_extra_info_as_a_json_string_is_read():
    import json

    batch = make_batch(PROMPTS)
    infos = [json.dumps({"demographics": {"sex": "female", "age": 30}}) for _ in batch.index]
    batch.non_tensor_batch["extra_info"] = np.array(infos, dtype=object)
    fair_grpo(**batch.kwargs({}))
    assert {group for _, group in context.last_report().prompt_groups} == {"F,A2"}


def test_official_variant_warns_once_about_negative_rewards(caplog):
    from verl_fair.integration import estimator

    estimator._warned.discard("negative_rewards")
    batch = make_batch([Prompt([-1, 0, 0, -1], "A", "M,A1"), Prompt([0, -1, -1, -1], "A", "F,A2")])
    with caplog.at_level("WARNING"):
        fair_grpo(**_kwargs(batch))
        fair_grpo(**_kwargs(batch))
    assert caplog.text.count("assumes non-negative rewards") == 1


def test_rewards_above_reward_max_are_counted_and_warned_about_once(caplog):
    """alpha_fair with reward_max=0.5 on rewards in [0, 1]: the run goes on, the metric and one warning say why."""
    config = {"fair_grpo": {"weighting": "alpha_fair", "reward_max": 0.5}}
    with caplog.at_level("WARNING"):
        for _ in range(2):
            fair_grpo(**make_batch(PROMPTS).kwargs(config))
            assert context.last_report().metrics()["fair/guard/reward_above_ceiling"] == 7
    assert caplog.text.count("exceed algorithm.fair_grpo.reward_max=0.5") == 1
    assert "7 of 12 rewards (largest 1)" in caplog.text
    assert "Set reward_max to the best attainable reward" in caplog.text
    context.reset_state()
    fair_grpo(**make_batch(PROMPTS).kwargs({"fair_grpo": {"weighting": "alpha_fair"}}))
    assert context.last_report().metrics()["fair/guard/reward_above_ceiling"] == 0
