# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""What a verl run with FairGRPO will do, and the configuration mistakes that would spoil it.

Used by ``verl-fair doctor`` before a run and by the checkpoint callback when the trainer starts.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field

from verl_fair.algorithm.state import STATE_FILE
from verl_fair.config import FairGRPOConfig, FairGRPOConfigError, plain
from verl_fair.patches import checkpoint_callbacks_available, v1_trainer_available
from verl_fair.reward_fns.clinical_diagnosis import DEFAULT_AGE_BINS, parse_settings

SAMPLER_PATH = "pkg://verl_fair.integration.sampler"
SAMPLER_NAMES = ("FairReplayBuffer", "FairReplayBufferAsync")
CALLBACK = "verl_fair.integration.checkpoint.FairStateCallback"


@dataclass
class RunPlan:
    """Human-readable facts about the run, and problems that must be fixed before it starts."""

    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def plan_run(config) -> RunPlan:
    """Inspect a composed verl configuration (the whole trainer config)."""
    plan = RunPlan()
    algorithm = config.algorithm
    if algorithm.adv_estimator != "fair_grpo":
        known = _registered_estimators()
        if known and str(algorithm.adv_estimator) not in known:
            close = difflib.get_close_matches(str(algorithm.adv_estimator), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            plan.problems.append(
                f"algorithm.adv_estimator={algorithm.adv_estimator!r} is no advantage estimator verl knows.{hint} "
                f"Registered: {sorted(known)}."
            )
        else:
            plan.facts.append(f"algorithm.adv_estimator={algorithm.adv_estimator}: verl-fair stays idle.")
        return plan
    try:
        fair = FairGRPOConfig.from_algorithm(algorithm)
    except FairGRPOConfigError as error:
        plan.problems.append(str(error))
        return plan
    plan.facts.append(
        f"fair_grpo: variant={fair.variant}, weighting={fair.weighting}, history={fair.history.mode}, "
        f"groups from {list(fair.group_attributes)} within {fair.data_source_key!r}."
    )
    if fair.variant == "official":
        plan.facts.append(
            "variant=official assumes non-negative rewards (the authors' code divides by mean rewards); with "
            "negative rewards its advantages can disagree in sign with GRPO's, and the estimator warns once."
        )
    _check_reward(config, fair, plan)
    use_v1 = config.trainer.get("use_v1", v1_trainer_available())  # verl 0.8 has no such key: RayPPOTrainer
    if use_v1 and not v1_trainer_available():
        plan.problems.append(
            "trainer.use_v1=True, but this verl has no v1 trainer (verl 0.8 and verl's neo branch run RayPPOTrainer "
            "only): set trainer.use_v1=False, which keeps FairGRPO's labels, metrics and checkpointed state."
        )
    elif use_v1:
        _plan_v1(config, fair, plan)
    else:
        folder = os.path.join(str(config.trainer.default_local_dir), "global_step_<N>", STATE_FILE)
        switch = "trainer.use_v1=False" if "use_v1" in config.trainer else "this verl has no trainer.use_v1"
        plan.facts.append(
            f"RayPPOTrainer ({switch}): labelled from the batch's data_source and extra_info; logs "
            f"fair/train/* and fair/estimator/* every step; FairGRPO state is saved with every checkpoint to {folder} "
            "and restored on resume."
        )
    return plan


def _plan_v1(config, fair: FairGRPOConfig, plan: RunPlan) -> None:
    sampler = config.trainer.v1.sampler
    custom = sampler.get("custom_sampler", None) or {}
    if custom.get("path") == SAMPLER_PATH and custom.get("name") in SAMPLER_NAMES:
        kwargs = sampler.get("sampler_kwargs", None) or {}
        sampler_fair = FairGRPOConfig.from_algorithm({"fair_grpo": kwargs.get("fair_grpo", None) or {}})
        if (sampler_fair.group_attributes, sampler_fair.age_bins, sampler_fair.data_source_key) != (
            fair.group_attributes,
            fair.age_bins,
            fair.data_source_key,
        ):
            plan.problems.append(
                "the metadata sampler builds groups with other settings than algorithm.fair_grpo: set "
                "trainer.v1.sampler.sampler_kwargs.fair_grpo='${algorithm.fair_grpo}' (the shipped config does)."
            )
        plan.facts.append(
            "v1 trainer: labelled; the metadata sampler reads data_source and extra_info from "
            "TransferQueue and logs fair/train/* and fair/estimator/* every step."
        )
    elif fair.labels == "required":
        plan.problems.append(
            "algorithm.fair_grpo.labels=required but no metadata sampler is configured: set "
            f"trainer.v1.sampler.custom_sampler.path={SAMPLER_PATH} and .name=FairReplayBuffer, "
            "or use the shipped fair_grpo_trainer config."
        )
    else:
        plan.facts.append(
            "v1 trainer: LABEL-FREE (no metadata sampler): every prompt is UNK in one domain and "
            "groups are latent clusters. For labels, set trainer.v1.sampler.custom_sampler.path="
            f"{SAMPLER_PATH} and .name=FairReplayBuffer, or use the shipped fair_grpo_trainer config."
        )
    _plan_mode(config, plan)
    saves_state = config.trainer.get("checkpoint_callback_class", None) == CALLBACK
    if saves_state and not checkpoint_callbacks_available():
        plan.problems.append(
            f"trainer.checkpoint_callback_class={CALLBACK}, but this verl's v1 trainer calls no checkpoint "
            "callback (verl.trainer.ppo.checkpoint_callback is missing), so FairGRPO's state would not be saved: "
            "set trainer.use_v1=False (RayPPOTrainer saves it), or remove the key to run with statistics that "
            "restart on resume."
        )
    elif saves_state:
        folder = os.path.join(str(config.trainer.default_local_dir), "global_step_<N>", STATE_FILE)
        plan.facts.append(f"FairGRPO state is saved with every checkpoint to {folder} and restored on resume.")
    else:
        plan.facts.append(
            "FairGRPO state is NOT checkpointed: a resumed run restarts its group statistics. "
            f"Set trainer.checkpoint_callback_class={CALLBACK}."
        )


def _plan_mode(config, plan: RunPlan) -> None:
    """What the v1 trainer mode means for FairGRPO: ``sync`` and ``colocate_async`` are tested on CPU;
    ``separate_async`` cannot run there (its weight sync needs an nccl, nixl or mooncake checkpoint engine)."""
    v1 = config.trainer.get("v1", None) or {}
    mode = str(v1.get("trainer_mode", "sync"))
    if mode == "colocate_async":
        plan.facts.append("trainer_mode=colocate_async: the metadata sampler serves it with verl's async buffer.")
    elif mode == "separate_async":
        steps = (v1.get("separate_async", None) or {}).get("parameter_sync_step", 1)
        plan.facts.append(
            f"trainer_mode=separate_async is UNTESTED with FairGRPO (it cannot run on CPU: its weight sync needs "
            f"an nccl, nixl or mooncake checkpoint engine). Each advantage step sees 1/{steps} of a batch "
            f"(parameter_sync_step={steps}), so group statistics and weights update {steps} times per batch; "
            "compare its fair/estimator/* metrics with a sync run before a long run."
        )


def _registered_estimators() -> list[str]:
    """verl's registered advantage estimator names (with fair_grpo once the plugin is loaded)."""
    try:
        from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
    except ImportError:
        return []
    return list(ADV_ESTIMATOR_REGISTRY)


def _check_reward(config, fair: FairGRPOConfig, plan: RunPlan) -> None:
    """verl reads ``reward.custom_reward_function``, not the top-level one; the clinical reward's settings must be
    valid and its groups the estimator's: same age bins, attributes it groups by."""
    ignored = {k: v for k, v in (plain(config.get("custom_reward_function", None)) or {}).items() if v is not None}
    if ignored:
        plan.problems.append(
            " and ".join(f"custom_reward_function.{k}={v!r}" for k, v in ignored.items())
            + (" is" if len(ignored) == 1 else " are")
            + " ignored: verl 0.9.1 reads reward.custom_reward_function. Set "
            + " and ".join(f"reward.custom_reward_function.{k}={v}" for k, v in ignored.items())
            + " instead"
        )
    reward = (config.get("reward", None) or {}).get("custom_reward_function", None) or {}
    if "clinical_diagnosis" not in str(reward.get("path", "") or ""):
        return
    kwargs = plain(reward.get("reward_kwargs", None)) or {}
    try:
        settings = parse_settings(kwargs)  # as the reward parses them at its first call
    except ValueError as error:
        plan.problems.append(f"reward.custom_reward_function.{error}")
        return
    bins = kwargs.get("age_bins", None) or DEFAULT_AGE_BINS
    if tuple(float(b) for b in bins) != tuple(float(b) for b in fair.age_bins):
        plan.problems.append(
            f"reward.custom_reward_function.reward_kwargs.age_bins={list(bins)} differs from "
            f"algorithm.fair_grpo.age_bins={list(fair.age_bins)}: the per-group validation metrics would name "
            "other groups than training uses. Set both to the same bins."
        )
    extra = sorted(set(settings["group_attributes"]) - set(fair.group_attributes))
    if extra and "group_attributes" in kwargs:  # the reward's default [sex, age] only adds metrics
        plan.problems.append(
            f"reward.custom_reward_function.reward_kwargs.group_attributes has {extra}, which are not in "
            f"algorithm.fair_grpo.group_attributes={list(fair.group_attributes)}: add them there or remove them "
            "(the shipped config sets group_attributes: ${algorithm.fair_grpo.group_attributes})."
        )
