"""Run verl's real trainer on a machine without a GPU: smoke tests, demos, developing verl plugins.

Nothing here activates unless a run asks for it with ``VERL_PLATFORM=cpu``; then the plugin, in every
verl process, registers

- verl's ``cpu`` platform (:mod:`verl_fair.cpu.platform`): the host as verl's one accelerator;
- the ``transformers`` rollout backend (:mod:`verl_fair.cpu.rollout`), selected with
  ``actor_rollout_ref.rollout.name=transformers``;
- ``gloo`` as the process-group backend, and verl's FSDP engines for the host
  (``VERL_ENGINE_DEVICE=cuda``, ``VERL_ENGINE_VENDOR=nvidia``: the engine registry's own override).

A run also needs the Hydra settings in :data:`HYDRA_OVERRIDES` (``verl-fair cpu-overrides`` prints
them): one worker on one logical GPU, FSDP2, ``sdpa`` attention, one TransferQueue storage unit, one
reward worker, no Ray dashboard.

It touches verl internals that are not public API, so it is pinned to verl 0.9.x; a test asserts
that every one of them still exists (:data:`VERL_INTERNALS`). GPU runs never load this code.
"""

from __future__ import annotations

import functools
import os
import sys

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
    "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    # fewer processes: one reward worker instead of 8 and no Ray dashboard (3 GB less, 30 s sooner on 2 cores)
    "reward.num_workers=1",
    "++ray_kwargs.ray_init.include_dashboard=false",
)

# (module, attribute) of every verl internal this package relies on
VERL_INTERNALS = (
    ("verl.plugin.platform", "PlatformBase"),
    ("verl.plugin.platform", "PlatformRegistry"),
    ("verl.utils.distributed", "initialize_global_process_group_ray"),
    ("verl.workers.engine_workers", "initialize_global_process_group_ray"),
    ("verl.workers.engine.base", "EngineRegistry"),
    ("verl.workers.rollout.base", "_ROLLOUT_REGISTRY"),
    ("verl.workers.rollout.base", "BaseRollout"),
    ("verl.workers.rollout.replica", "RolloutReplica"),
    ("verl.workers.rollout.replica", "RolloutReplicaRegistry"),
    ("verl.workers.rollout.replica", "TokenOutput"),
    ("verl.workers.rollout.utils", "ensure_async_iterator"),
    ("verl.utils.config", "omega_conf_to_dataclass"),
)


def requested() -> bool:
    """True when this process runs verl on the host (``VERL_PLATFORM=cpu``)."""
    return os.environ.get(PLATFORM_ENV, "").strip().lower() == "cpu"


def activate() -> None:
    """Register the CPU platform and rollout backend; idempotent. Call before verl resolves its platform."""
    from verl.plugin.platform import PlatformRegistry

    from verl_fair.cpu.platform import PLATFORM_NAME, PlatformCPU

    if PlatformRegistry.get(PLATFORM_NAME) is not PlatformCPU:
        PlatformRegistry.register(platform=PLATFORM_NAME)(PlatformCPU)
    for name, value in ENGINE_ENV.items():
        os.environ.setdefault(name, value)
    _use_gloo()
    _register_rollout()


def _use_gloo() -> None:
    """verl builds ``cpu:gloo,<device>:<backend>``, which names the host twice; on the host it is plain gloo."""
    import verl.utils.distributed as distributed

    original = distributed.initialize_global_process_group_ray
    if getattr(original, "verl_fair_gloo", False):
        return

    @functools.wraps(original)
    def initialize(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or "gloo")

    initialize.verl_fair_gloo = True
    distributed.initialize_global_process_group_ray = initialize
    workers = sys.modules.get("verl.workers.engine_workers")  # bound its own name if already imported
    if workers is not None:
        workers.initialize_global_process_group_ray = initialize


def _register_rollout() -> None:
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    _ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = "verl_fair.cpu.rollout.TransformersServerAdapter"
    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_replica)


def _load_replica():
    from verl_fair.cpu.rollout import TransformersReplica

    return TransformersReplica
