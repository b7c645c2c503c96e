"""Opt-in adapter for verl's legacy trainer (``trainer.use_v1=False``).

The legacy ``RayPPOTrainer`` holds every non-tensor field (``data_source``, ``extra_info``, ...) in its
batch, but ``ray_trainer.compute_advantage`` hands a registered estimator only rewards, mask and
uids. :func:`enable` wraps that function so that ``fair_grpo`` also receives ``non_tensor_batch``;
every other estimator goes through unchanged. It is installed by configuration only: set
``VERL_FAIR_LEGACY_ADAPTER=1`` in the environment of the run (for a pre-started Ray cluster, through
``+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FAIR_LEGACY_ADAPTER='1'``); verl's entry-point loading
then calls :func:`enable` in the trainer process.

The legacy trainer has no checkpoint callback, so FairGRPO statistics restart on resume there.
"""

from __future__ import annotations

import functools
import logging
import os

logger = logging.getLogger(__name__)

ENV = "VERL_FAIR_LEGACY_ADAPTER"
_MARK = "_verl_fair_legacy_adapter"


def requested() -> bool:
    return os.environ.get(ENV, "").lower() in ("1", "true", "yes")


def enable() -> None:
    """Wrap ``verl.trainer.ppo.ray_trainer.compute_advantage`` (idempotent)."""
    from verl.trainer.ppo import ray_trainer

    original = ray_trainer.compute_advantage
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def compute_advantage(data, adv_estimator, *args, config=None, **kwargs):
        if str(getattr(adv_estimator, "value", adv_estimator)) != "fair_grpo":
            return original(data, adv_estimator, *args, config=config, **kwargs)
        from verl_fair.algorithm.estimator import compute_fair_grpo_outcome_advantage

        if "response_mask" not in data.batch.keys():
            data.batch["response_mask"] = ray_trainer.compute_response_mask(data)
        advantages, returns = compute_fair_grpo_outcome_advantage(
            token_level_rewards=data.batch["token_level_rewards"],
            response_mask=data.batch["response_mask"],
            index=data.non_tensor_batch["uid"],
            config=config,
            non_tensor_batch=data.non_tensor_batch,
        )
        data.batch["advantages"] = advantages
        data.batch["returns"] = returns
        return data

    setattr(compute_advantage, _MARK, True)
    compute_advantage.__wrapped_original__ = original
    ray_trainer.compute_advantage = compute_advantage


def disable() -> None:
    """Restore verl's own ``compute_advantage``."""
    from verl.trainer.ppo import ray_trainer

    current = ray_trainer.compute_advantage
    if getattr(current, _MARK, False):
        ray_trainer.compute_advantage = current.__wrapped_original__
