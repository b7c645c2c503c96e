# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Every verl internal verl-fair relies on, and the one way it changes verl's behaviour: reversible wraps.

verl 0.9.1 offers plugins no hook for four things verl-fair needs: FairGRPO's labels, metrics and
checkpointed state on ``RayPPOTrainer``, fairness gaps in validation metrics, and running on a host
without an accelerator. For those, :func:`wrap` replaces one attribute of a verl module with a wrapper; the
returned :class:`Patch` undoes it. A wrap of a module that is not imported yet is applied the moment
verl imports it, so a plugin never imports heavy trainer modules into processes that do not use them.

:data:`VERL_INTERNALS` lists every verl name the package imports or patches, with where verl-fair uses
it; ``tests/test_verl_internals.py`` checks that each still exists, so a verl upgrade fails there first.
A wrapped name is listed under the module that defines it, with the verl functions that call it
(``callers``): :func:`wrap` also replaces the name in every caller's module that imported it by name, and
:meth:`VerlInternal.problems` says when verl moved the definition or a caller stopped calling it, so a
moved name fails a test instead of silently bypassing the wrap.
The changes upstream verl would need to retire the patches are in ``docs/upstream.md``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.util
import inspect
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VerlInternal:
    """A verl name verl-fair relies on: ``module``, the dotted ``name`` inside it, and who uses it for what."""

    module: str
    name: str
    used_by: str
    # "module:qualname" of each verl function that calls a wrapped name; "a|b": whichever this verl has, a first
    callers: tuple[str, ...] = ()

    def resolve(self) -> Any:
        """Import the module and return the attribute (raises ImportError or AttributeError when gone)."""
        return _resolve(self.module, self.name)

    def binding_modules(self) -> tuple[str, ...]:
        """The modules whose ``name`` a wrap replaces: the defining one, then each caller's."""
        modules = [self.module]
        if "." not in self.name:  # a method is reached through its class; a function through each caller's globals
            for caller in self.callers:
                modules += [m for m in (a.partition(":")[0] for a in caller.split("|")) if m not in modules]
        return tuple(modules)

    @property
    def v1_only(self) -> bool:
        """Whether only verl's v1 trainer uses this name (verl 0.8 and verl's neo branch have no v1 trainer)."""
        return _in_v1(self.module)

    def problems(self) -> list[str]:
        """Why a wrap of this name would miss a caller: the name is defined elsewhere, or a caller no longer
        calls it, or calls another object of that name (verl moved it). Empty when every caller is reached.
        Callers in the v1 trainer count only in a verl that has one (:func:`v1_trainer_available`)."""
        target = inspect.unwrap(self.resolve())
        found = []
        defined = (getattr(target, "__module__", None), getattr(target, "__qualname__", self.name))
        if defined != (self.module, self.name):
            found.append(
                f"{self.module}.{self.name} is defined in {defined[0]} as {defined[1]}: list and wrap it there"
            )
        owner = self.name.split(".")[0]
        constructor = self.name.endswith(".__init__")  # called as the class
        called = owner if constructor else self.name.rpartition(".")[2]
        expected = _resolve(self.module, owner) if constructor else target
        for caller in map(_present, self.callers):
            module, _, qualname = caller.partition(":")
            if _in_v1(module) and not v1_trainer_available():
                continue
            function = inspect.unwrap(_resolve(module, qualname))
            if called not in function.__code__.co_names:
                found.append(f"{caller} no longer calls {called}")
            elif ("." not in self.name or constructor) and inspect.unwrap(
                function.__globals__.get(called)
            ) is not expected:
                found.append(f"{caller} calls another {called} than {self.module}'s")
        return found


VERL_INTERNALS: tuple[VerlInternal, ...] = (
    # the fairness plugin and its verl glue (verl_fair.plugin, verl_fair.integration)
    VerlInternal("verl.trainer.ppo.core_algos", "register_adv_est", "plugin: registers fair_grpo"),
    VerlInternal("verl.trainer.ppo.core_algos", "ADV_ESTIMATOR_REGISTRY", "plugin, doctor: registration checks"),
    VerlInternal(
        "verl.trainer.ppo.ray_trainer",
        "compute_advantage",
        "integration.legacy: wrapped (labels and metrics on RayPPOTrainer)",
        (
            "verl.trainer.ppo.ray_trainer:RayPPOTrainer.fit",
            "verl.trainer.ppo.v1.utils:compute_advantage_for_multi_trajectories",
        ),
    ),
    VerlInternal(
        "verl.trainer.ppo.metric_utils",
        "compute_data_metrics",
        "integration.legacy: wrapped (adds fair/* metrics on RayPPOTrainer)",
        (
            "verl.trainer.ppo.ray_trainer:RayPPOTrainer.fit",
            "verl.trainer.ppo.v1.trainer_base:PPOTrainer._compute_metrics",
        ),
    ),
    VerlInternal(
        "verl.trainer.ppo.ray_trainer",
        "RayPPOTrainer.__init__",
        "integration.legacy: wrapped (start-up checks, state restored)",
        ("verl.trainer.main_ppo_v0:TaskRunner.run|verl.trainer.main_ppo:TaskRunner.run",),  # verl 0.9+ | 0.8
    ),
    VerlInternal(
        "verl.trainer.ppo.ray_trainer",
        "RayPPOTrainer._save_checkpoint",
        "integration.legacy: wrapped (state saved)",
        ("verl.trainer.ppo.ray_trainer:RayPPOTrainer.fit",),
    ),
    VerlInternal(
        "verl.trainer.ppo.ray_trainer",
        "RayPPOTrainer._val_metrics_update",
        "integration.validation: wrapped (RayPPOTrainer)",
        (
            "verl.trainer.ppo.ray_trainer:RayPPOTrainer._validate",
            "verl.trainer.ppo.ray_trainer:RayPPOTrainer._merge_validation_results",
        ),
    ),
    VerlInternal(
        "verl.trainer.ppo.v1.trainer_base",
        "PPOTrainer._val_metrics_update",
        "integration.validation: wrapped (v1)",
        ("verl.trainer.ppo.v1.trainer_base:PPOTrainer._validate",),
    ),
    VerlInternal("verl.trainer.ppo.v1.trainer_base", "PPOTrainer._compute_advantage", "integration: v1 advantage step"),
    VerlInternal("verl.trainer.ppo.v1.replay_buffer", "ReplayBuffer", "integration.sampler: subclassed (sync)"),
    VerlInternal("verl.trainer.ppo.v1.replay_buffer", "ReplayBufferAsync", "integration.sampler: subclassed (async)"),
    VerlInternal("verl.trainer.ppo.checkpoint_callback", "CheckpointCallback", "integration.checkpoint: subclassed"),
    VerlInternal(
        "verl.utils.checkpoint.checkpoint_manager", "find_latest_ckpt_path", "integration.checkpoint: resume folder"
    ),
    VerlInternal("transfer_queue", "kv_batch_get", "integration.sampler: reads data_source and extra_info"),
    # the CPU backend (verl_fair.cpu)
    VerlInternal("verl.plugin.platform", "PlatformBase", "cpu.platform: subclassed"),
    VerlInternal("verl.plugin.platform", "PlatformRegistry", "cpu.plugin: registers the cpu platform"),
    VerlInternal(
        "verl.utils.distributed",
        "initialize_global_process_group_ray",
        "cpu.plugin: wrapped (gloo)",
        ("verl.workers.engine_workers:TrainingWorker.__init__",),
    ),
    VerlInternal("verl.workers.engine.base", "EngineRegistry", "cpu: VERL_ENGINE_DEVICE/VENDOR override"),
    VerlInternal("verl.workers.rollout.base", "_ROLLOUT_REGISTRY", "cpu.plugin: registers the rollout adapter"),
    VerlInternal("verl.workers.rollout.base", "BaseRollout", "cpu.rollout: subclassed"),
    VerlInternal("verl.workers.rollout.replica", "RolloutReplica", "cpu.rollout: subclassed"),
    VerlInternal("verl.workers.rollout.replica", "RolloutReplicaRegistry", "cpu.plugin: registers the replica"),
    VerlInternal("verl.workers.rollout.replica", "TokenOutput", "cpu.rollout: generation result"),
    VerlInternal("verl.workers.rollout.utils", "ensure_async_iterator", "cpu.rollout: weight stream"),
    VerlInternal("verl.workers.config", "HFModelConfig", "cpu.rollout: model settings"),
    VerlInternal("verl.workers.config", "RolloutConfig", "cpu.rollout: rollout settings"),
    VerlInternal("verl.utils.config", "omega_conf_to_dataclass", "cpu.rollout: settings to dataclasses"),
    VerlInternal("verl.utils.tokenizer", "get_processor_token_id", "cpu.rollout: the placeholder ids never sampled"),
    VerlInternal("verl.utils.dataset.rl_dataset", "RLHFDataset", "cpu.vision: subclassed (Pillow-only images)"),
    VerlInternal("verl.utils.dataset.rl_dataset", "RLHFDataset._process_multi_modal_info", "cpu.vision: overridden"),
    VerlInternal("verl.utils.dataset.rl_dataset", "RLHFDataset.process_vision_info", "cpu.vision: overridden"),
    VerlInternal("verl.utils.dataset.rl_dataset", "RLHFDataset._extract_audio_info", "cpu.vision: audio kept"),
    VerlInternal("verl.plugin.platform", "PlatformBase.rollout_env_vars", "cpu.platform: vLLM's KV-cache size"),
    VerlInternal("verl.workers.config", "RolloutConfig.enable_sleep_mode", "cpu.vllm_rollout: off (no sleep on CPU)"),
)
# the names verl's vLLM rollout on the host relies on, which import only beside vLLM (make setup-vllm)
VLLM_INTERNALS: tuple[VerlInternal, ...] = (
    VerlInternal("verl.workers.rollout.vllm_rollout.utils", "vLLMColocateWorkerExtension", "cpu.vllm_worker: base"),
    VerlInternal(
        "verl.workers.rollout.vllm_rollout.utils",
        "vLLMColocateWorkerExtension._update_weights",
        "tests/vllm_receive_only.py: overridden (the weight-sync check's negative control)",
    ),
    VerlInternal(
        "verl.workers.rollout.vllm_rollout.vllm_async_server",
        "vLLMHttpServer._get_worker_extension_cls",
        "cpu.vllm_rollout: replaced through engine_kwargs.vllm.worker_extension_cls",
    ),
    VerlInternal("vllm._custom_ops", "_supports_onednn", "cpu.vllm_worker: off, so weights stay reloadable"),
    VerlInternal("vllm.envs", "VLLM_CPU_KVCACHE_SPACE", "cpu.vllm_rollout: the KV-cache size"),
)
VERL_INTERNALS += VLLM_INTERNALS
_TABLE = {(entry.module, entry.name): entry for entry in VERL_INTERNALS}


# the modules only verl's v1 trainer (``trainer.use_v1=True``) imports
V1_MODULES = ("verl.trainer.ppo.v1", "verl.trainer.ppo.checkpoint_callback", "transfer_queue")


def _in_v1(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in V1_MODULES)


@functools.cache
def v1_trainer_available() -> bool:
    """Whether this verl's ``main_ppo`` can run the v1 trainer: verl 0.9 can; verl 0.8 and verl's neo branch
    (which refuses ``trainer.use_v1=True``) run ``RayPPOTrainer`` only."""
    return hasattr(importlib.import_module("verl.trainer.main_ppo"), "TaskRunnerV1")


@functools.cache
def checkpoint_callbacks_available() -> bool:
    """Whether this verl's v1 trainer calls ``trainer.checkpoint_callback_class`` (verl 0.9.1 does; verl main
    before its PR #7513 has the v1 trainer without it)."""
    return importlib.util.find_spec("verl.trainer.ppo.checkpoint_callback") is not None


def _resolve(module: str, dotted: str) -> Any:
    value: Any = importlib.import_module(module)
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _present(caller: str) -> str:
    """The first of a caller's ``|``-separated alternatives this verl has (the last one when none is)."""
    *choices, last = caller.split("|")
    for choice in choices:
        module, _, qualname = choice.partition(":")
        try:
            _resolve(module, qualname)
        except (ImportError, AttributeError):
            continue
        return choice
    return last


def wrap_problems(internals: tuple[VerlInternal, ...] = VERL_INTERNALS) -> list[str]:
    """Every wrapped name's :meth:`VerlInternal.problems` (``verl-fair doctor`` reports them); the v1 trainer's
    names only in a verl that has one."""
    found = []
    v1 = v1_trainer_available()
    for internal in (i for i in internals if i.callers and (v1 or not i.v1_only)):
        try:
            found += internal.problems()
        except (ImportError, AttributeError) as gone:  # a module or a name verl no longer has
            found.append(f"{internal.module}.{internal.name} or a caller is gone: {gone}")
    return found


class Patch:
    """One wrapped verl attribute; :meth:`undo` puts verl's own object back."""

    def __init__(self, module: str, name: str, make_wrapper: Callable[[Any], Any], listed: bool = True) -> None:
        if listed and (module, name) not in _TABLE:
            raise ValueError(f"{module}.{name} is not in verl_fair.patches.VERL_INTERNALS; list it there first")
        self.module, self.name, self.make_wrapper = module, name, make_wrapper
        self.original: Any = None
        self.applied = False
        self.bindings: list[Patch] = []  # the same wrap in each caller's module that imported the name

    def apply(self, module: Any) -> None:
        """Wrap the attribute of the imported ``module`` (a no-op when this patch's wrapper is already there).

        When the attribute holds the wrapper of another patch with the same ``make_wrapper`` (a name that
        verl imported from the module patched first), the original underneath is wrapped instead.
        """
        owner, attribute = _owner(module, self.name)
        current = getattr(owner, attribute)
        other = getattr(current, "__verl_fair_patch__", None)
        if other is self:
            return
        if other is not None and other.make_wrapper is self.make_wrapper:
            current = other.original
        wrapper = functools.wraps(current)(self.make_wrapper(current))
        wrapper.__verl_fair_patch__ = self
        self.original = current
        setattr(owner, attribute, wrapper)
        self.applied = True

    def undo(self) -> None:
        """Restore verl's attribute (also stops a wrap still waiting for its module's import)."""
        for binding in self.bindings:
            binding.undo()
        _pending.discard(self)
        if not self.applied:
            return
        owner, attribute = _owner(sys.modules[self.module], self.name)
        if getattr(getattr(owner, attribute), "__verl_fair_patch__", None) is self:
            setattr(owner, attribute, self.original)
        self.applied = False


def wrap(module: str, name: str, make_wrapper: Callable[[Any], Any]) -> Patch:
    """Replace ``module.name`` (``name`` may be ``Class.method``) by ``make_wrapper(original)``.

    ``module`` is the module that defines the name; the same wrap goes into each module of the name's
    ``callers`` in :data:`VERL_INTERNALS`, which imported it by name. Each module is wrapped at once when
    imported, else as soon as it is. Idempotent: wrapping with the same ``make_wrapper`` again returns the
    patch already in place. The wrapper keeps the original's name and docstring (``functools.wraps``).
    """
    with _lock:
        key = (module, name, make_wrapper)
        existing = _active.get(key)
        if existing is not None and (existing.applied or existing in _pending):
            return existing

        patch = _active[key] = Patch(module, name, make_wrapper)
        callers = _TABLE[(module, name)].binding_modules()[1:]
        patch.bindings = [Patch(caller, name, make_wrapper, listed=False) for caller in callers]
        for each in (patch, *patch.bindings):
            if each.module in sys.modules:
                each.apply(sys.modules[each.module])
            else:
                _pending.add(each)
                _install_finder()
        return patch


def unwrap(module: str, name: str, make_wrapper: Callable[[Any], Any]) -> None:
    """Undo the patch :func:`wrap` made with these arguments, if any."""
    with _lock:
        patch = _active.pop((module, name, make_wrapper), None)
    if patch is not None:
        patch.undo()


def _owner(module: Any, dotted: str) -> tuple[Any, str]:
    *path, attribute = dotted.split(".")
    owner = module
    for part in path:
        owner = getattr(owner, part)
    return owner, attribute


_lock = threading.RLock()
_pending: set[Patch] = set()
_active: dict[tuple[str, str, Callable], Patch] = {}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Applies pending patches right after their module's code has run."""

    def find_spec(self, fullname, path=None, target=None):
        if not any(p.module == fullname for p in _pending):
            return None
        sys.meta_path.remove(self)  # find the real spec without recursing into this finder
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            with _lock:
                for patch in [p for p in _pending if p.module == fullname]:
                    _pending.discard(patch)
                    patch.apply(module)

        spec.loader.exec_module = exec_module
        return spec


_finder = _PatchOnImport()


def _install_finder() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
