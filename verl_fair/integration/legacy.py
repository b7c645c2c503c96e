"""Opt-in adapter for verl's legacy trainer (``trainer.use_v1=False``).

The legacy ``RayPPOTrainer`` holds every non-tensor field (``data_source``, ``extra_info``, ...) in its
batch, but ``ray_trainer.compute_advantage`` hands a registered estimator only rewards, mask and
uids. :func:`enable` wraps that function so that ``fair_grpo`` also receives ``non_tensor_batch``;
every other estimator goes through unchanged. The plugin installs it when the run's environment has
``VERL_FAIR_LEGACY_ADAPTER=1`` (for a pre-started Ray cluster, pass it through
``+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FAIR_LEGACY_ADAPTER='1'``).

verl 0.9.1 marks the legacy trainer deprecated: this adapter is kept as it is, and the legacy trainer
has no checkpoint callback, so FairGRPO statistics restart on resume there.
"""

from __future__ import annotations

import os

from verl_fair import patches

ENV = "VERL_FAIR_LEGACY_ADAPTER"
_MODULE, _NAME = "verl.trainer.ppo.ray_trainer", "compute_advantage"


def requested() -> bool:
    return os.environ.get(ENV, "").lower() in ("1", "true", "yes")


def _adapter(original):
    def compute_advantage(data, adv_estimator, *args, config=None, **kwargs):
        if str(getattr(adv_estimator, "value", adv_estimator)) != "fair_grpo":
            return original(data, adv_estimator, *args, config=config, **kwargs)
        from verl.trainer.ppo.ray_trainer import compute_response_mask

        from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage

        if "response_mask" not in data.batch.keys():
            data.batch["response_mask"] = compute_response_mask(data)
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

    return compute_advantage


def enable() -> patches.Patch:
    """Wrap ``verl.trainer.ppo.ray_trainer.compute_advantage`` (idempotent)."""
    return patches.wrap(_MODULE, _NAME, _adapter)


def disable() -> None:
    """Restore verl's own ``compute_advantage``."""
    patches.unwrap(_MODULE, _NAME, _adapter)
