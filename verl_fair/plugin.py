"""verl plugin: registers ``fair_grpo`` in verl's advantage-estimator registry, and the CPU backend on request.

verl loads this module through the ``verl.plugins`` entry point in every process that imports verl,
and hides plugin exceptions at DEBUG level; so this module imports nothing heavy, registers
idempotently, and logs its own failures at WARNING before re-raising. It can also be loaded with
``VERL_USE_EXTERNAL_MODULES=verl_fair.plugin``, which lets errors propagate, or called directly:
``verl_fair.plugin.register()``.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

ESTIMATOR_NAME = "fair_grpo"


def register() -> None:
    """Register ``fair_grpo``; a no-op when this estimator is already registered."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est

    from verl_fair.algorithm.estimator import compute_fair_grpo_outcome_advantage as estimator

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


def enable_requested_adapters() -> None:
    """Install the legacy-trainer adapter when the run asks for it (``VERL_FAIR_LEGACY_ADAPTER=1``)."""
    from verl_fair.integration import legacy

    if legacy.requested():
        legacy.enable()


def enable_requested_cpu_backend() -> None:
    """Register verl's CPU platform and rollout backend when the run asks for them (``VERL_PLATFORM=cpu``)."""
    from verl_fair import cpu

    if cpu.requested():
        cpu.activate()


try:
    enable_requested_cpu_backend()  # before anything resolves verl's platform
    register()
    enable_requested_adapters()
except Exception:  # verl would swallow this at DEBUG level
    logger.warning(
        "verl-fair failed to register %r (and the CPU backend if VERL_PLATFORM=cpu) with verl; "
        "algorithm.adv_estimator=%s will be unknown.",
        ESTIMATOR_NAME,
        ESTIMATOR_NAME,
        exc_info=True,
    )
    raise
