# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The CPU backend's verl plugin: the host as verl's accelerator, when a run asks for it.

verl loads this module through the ``verl.plugins`` entry point ``verl_fair_cpu`` in every process that
imports verl. With ``VERL_PLATFORM=cpu`` in the process's environment it registers

- verl's ``cpu`` platform (:mod:`verl_fair.cpu.platform`), before anything resolves verl's platform;
- the ``transformers`` rollout backend (:mod:`verl_fair.cpu.rollout`), selected with
  ``actor_rollout_ref.rollout.name=transformers``;
- ``gloo`` as the process-group backend (a wrap of verl's initialiser, :mod:`verl_fair.patches`), and
  verl's FSDP engines for the host (``VERL_ENGINE_DEVICE=cuda``, ``VERL_ENGINE_VENDOR=nvidia``: the
  engine registry's own override, set only when unset).

Without it, nothing happens: GPU runs never load the backend. It imports nothing of the fairness code.
"""

from __future__ import annotations

import logging
import os

from verl_fair.cpu import ENGINE_ENV, ROLLOUT_NAME, requested

logger = logging.getLogger(__name__)

_INITIALISER = "initialize_global_process_group_ray"


def activate() -> None:
    """Register the CPU platform and rollout backend; idempotent. Call before verl resolves its platform."""
    from verl.plugin.platform import PlatformRegistry
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    from verl_fair import patches
    from verl_fair.cpu.platform import PLATFORM_NAME, PlatformCPU

    if PlatformRegistry.get(PLATFORM_NAME) is not PlatformCPU:
        PlatformRegistry.register(platform=PLATFORM_NAME)(PlatformCPU)
    for name, value in ENGINE_ENV.items():
        os.environ.setdefault(name, value)
    # verl builds "cpu:gloo,<device>:<backend>", which names the host twice; on the host it is plain gloo.
    # the wrap also reaches engine_workers, which binds the initialiser by name (patches.VERL_INTERNALS)
    patches.wrap("verl.utils.distributed", _INITIALISER, _gloo)
    _ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = "verl_fair.cpu.rollout.TransformersServerAdapter"
    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_replica)


def _gloo(original):
    def initialize(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or "gloo")

    return initialize


def _load_replica():
    from verl_fair.cpu.rollout import TransformersReplica

    return TransformersReplica


if requested():
    try:
        activate()
    except Exception:  # verl would swallow this at DEBUG level
        logger.warning("verl-fair: the CPU backend failed to register with verl (VERL_PLATFORM=cpu)", exc_info=True)
        raise
