# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The shipped YAML declares every knob with the defaults the code uses."""

from importlib import resources

import pytest
import yaml

from verl_fair.config import FairGRPOConfig, FairGRPOConfigError, all_knobs, render_yaml


def _shipped():
    return yaml.safe_load(resources.files("verl_fair").joinpath("configs/fair_grpo.yaml").read_text())


def test_yaml_defaults_equal_the_code_defaults():
    assert FairGRPOConfig.from_mapping(_shipped()) == FairGRPOConfig.from_mapping({}) == FairGRPOConfig()


def test_yaml_declares_every_knob_once_as_the_code_renders_it():
    declared = _shipped()
    flat = {f"cluster.{k}" for k in declared.pop("cluster")} | set(declared)
    assert flat == {knob.key for knob in all_knobs()}
    assert resources.files("verl_fair").joinpath("configs/fair_grpo.yaml").read_text() == render_yaml(), (
        "configs/fair_grpo.yaml is out of date: python -m verl_fair.config > verl_fair/configs/fair_grpo.yaml"
    )


def test_every_problem_is_reported_at_once():
    with pytest.raises(FairGRPOConfigError) as caught:
        FairGRPOConfig.from_mapping({"variant": "fast", "epsilon": 0, "cluster": {"seed": -5}, "alpha": "x"})
    message = str(caught.value)
    assert message.startswith("4 problems in algorithm.fair_grpo")
    for key in ("variant='fast'", "epsilon=0", "cluster.seed=-5", "alpha='x'"):
        assert key in message


def test_official_variant_defaults():
    cfg = FairGRPOConfig.from_mapping({"variant": "official"})
    assert (cfg.reward_floor, cfg.max_weight_ratio, cfg.min_group_size) == (None, None, None)
    assert (cfg.cluster.features, cfg.cluster.memory, cfg.history.mode) == ("raw", None, "all")
    with pytest.raises(FairGRPOConfigError, match="cluster.features='sorted'"):
        FairGRPOConfig.from_mapping({"variant": "official", "cluster": {"features": "sorted"}})


def test_explicit_null_switches_a_guard_off():
    cfg = FairGRPOConfig.from_mapping({"reward_floor": None, "max_weight_ratio": None})
    assert cfg.reward_floor is None and cfg.max_weight_ratio is None and cfg.min_group_size == 16


def test_norm_adv_by_std_must_be_a_boolean():
    with pytest.raises(FairGRPOConfigError, match="norm_adv_by_std_in_grpo='yes'"):
        FairGRPOConfig.from_algorithm({"norm_adv_by_std_in_grpo": "yes"})


def test_yaml_defaults_follow_the_variant():
    official = FairGRPOConfig.from_mapping({**_shipped(), "variant": "official"})
    assert official == FairGRPOConfig.from_mapping({"variant": "official"})
    assert official.reward_floor is None and official.cluster.memory is None


@pytest.mark.parametrize(
    "settings",
    [{"reward_floor": 1e9}, {"reward_floor": 1.0}, {"weighting": "alpha_fair", "reward_max": 0.5, "reward_floor": 0.5}],
)
def test_a_reward_floor_at_or_above_reward_max_is_refused(settings):
    """Every mean would be lifted to the floor: all groups weigh the same and the advantages vanish."""
    with pytest.raises(FairGRPOConfigError) as caught:
        FairGRPOConfig.from_mapping(settings)
    message = str(caught.value)
    assert f"algorithm.fair_grpo.reward_floor={settings['reward_floor']!r} is not valid" in message
    assert f"below reward_max={settings.get('reward_max', 1.0)!r}" in message and "null" in message


def test_a_reward_floor_below_reward_max_is_accepted():
    assert FairGRPOConfig.from_mapping({"reward_floor": 5.0, "reward_max": 10}).reward_floor == 5.0
    assert FairGRPOConfig.from_mapping({"reward_floor": None, "reward_max": 0}).reward_floor is None
