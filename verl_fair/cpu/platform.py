# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""verl's ``cpu`` platform: the host as verl's one "accelerator", selected with ``VERL_PLATFORM=cpu``.

It never wins verl's auto-detection, so machines that did not ask for it are unaffected. It names
``GPU`` as its Ray resource so that a run started with ``+ray_kwargs.ray_init.num_gpus=1`` gets its
one worker slot, and ``gloo`` as its collective backend.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from verl.plugin.platform import PlatformBase

from verl_fair.cpu import device

PLATFORM_NAME = "cpu"


class PlatformCPU(PlatformBase):
    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return device

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME

    def current_device(self) -> str:  # type: ignore[override]  # verl uses it as a torch device
        return device.current_device()

    def device_count(self) -> int:
        return device.device_count()

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        device.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        device.manual_seed_all(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def rollout_env_vars(self) -> dict[str, str]:
        """Added to verl's vLLM server: its KV-cache size (vLLM on CPU has no GPU memory to take a share of)."""
        from verl_fair.cpu.vllm_rollout import rollout_env

        return rollout_env()

    def cudart(self) -> Any:
        return None
