# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The fairness plugin for verl: registers ``fair_grpo`` and installs the adapters the run asks for.

verl loads this module through the ``verl.plugins`` entry point ``verl_fair`` in every process that
imports verl, and hides plugin exceptions at DEBUG level; so this module imports nothing heavy,
registers idempotently, and logs its own failures at WARNING before re-raising. It can also be loaded
with ``VERL_USE_EXTERNAL_MODULES=verl_fair.plugin``, which lets errors propagate, or called directly:
``verl_fair.plugin.register()``.

On ``RayPPOTrainer`` (``trainer.use_v1=False``) FairGRPO needs its labels, metrics and checkpointed state
handed over by wraps (:mod:`verl_fair.integration.legacy`); they are always installed, applied only once
verl imports the modules they wrap, and act only for runs whose ``algorithm.adv_estimator`` is
``fair_grpo``. Fairness gaps in validation metrics (:mod:`verl_fair.integration.validation`) are asked for
by the run's environment, which Ray hands to every worker (``ray_kwargs.ray_init.runtime_env.env_vars``):
``VERL_FAIR_VALIDATION_METRICS=1``, set by the shipped config.

Every wrap goes through :mod:`verl_fair.patches`. The CPU backend is a plugin of its own
(:mod:`verl_fair.cpu.plugin`).
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

ESTIMATOR_NAME = "fair_grpo"


def register() -> None:
    """Register ``fair_grpo``; a no-op when this estimator is already registered."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est

    from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as estimator

    existing = ADV_ESTIMATOR_REGISTRY.get(ESTIMATOR_NAME)
    if existing is estimator:
        return
    if existing is not None and getattr(existing, "__module__", "") != estimator.__module__:
        logger.warning(
            "verl-fair: an advantage estimator named %r is already registered by %s; leaving it "
            "in place. Unset it or uninstall the other package to use verl-fair's.",
            ESTIMATOR_NAME,
            getattr(existing, "__module__", existing),
        )
        return
    if existing is not None:  # the same function from a reloaded module: replace the stale object
        del ADV_ESTIMATOR_REGISTRY[ESTIMATOR_NAME]
    register_adv_est(ESTIMATOR_NAME)(estimator)


def install_requested() -> list[str]:
    """Install the RayPPOTrainer support and the adapters the environment asks for; returns their names."""
    from verl_fair.integration import legacy, validation

    legacy.enable()
    installed = ["RayPPOTrainer support"]
    if validation.requested():
        validation.enable()
        installed.append("validation metrics")
    return installed


try:
    register()
    install_requested()
except Exception:  # verl would swallow this at DEBUG level
    logger.warning(
        "verl-fair failed to register %r with verl; algorithm.adv_estimator=%s will be unknown.",
        ESTIMATOR_NAME,
        ESTIMATOR_NAME,
        exc_info=True,
    )
    raise
