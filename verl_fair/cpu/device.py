# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The ``torch.<device>``-style module the CPU platform hands verl (``get_torch_device()``).

verl calls accelerator functions on it (memory statistics, caches, streams, RNG state). On the host
they are no-ops or answer from host RAM; anything not defined here falls through to ``torch.cpu``.
"""

from __future__ import annotations

from typing import Any

import psutil
import torch


def __getattr__(name: str) -> Any:
    return getattr(torch.cpu, name)


def is_available() -> bool:
    return True


def device_count() -> int:
    return 1


def current_device() -> str:
    """verl passes this to ``.to(...)`` and ``torch.device(...)``: an integer would mean accelerator 0."""
    return "cpu"


def set_device(device: Any = None) -> None:
    return None


def get_device_name(device: Any = None) -> str:
    return "cpu"


def synchronize(device: Any = None) -> None:
    return None


def empty_cache() -> None:
    return None


def ipc_collect() -> None:
    return None


def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
    return None


def reset_peak_memory_stats(device: Any = None) -> None:
    return None


def reset_max_memory_allocated(device: Any = None) -> None:
    return None


def memory_allocated(device: Any = None) -> int:
    return 0


def memory_reserved(device: Any = None) -> int:
    return 0


def max_memory_allocated(device: Any = None) -> int:
    return 0


def max_memory_reserved(device: Any = None) -> int:
    return 0


def memory_stats(device: Any = None) -> dict:
    return {}


def mem_get_info(device: Any = None) -> tuple[int, int]:
    """(free, total) bytes of host RAM."""
    memory = psutil.virtual_memory()
    return memory.available, memory.total


def manual_seed(seed: int) -> None:
    torch.manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    torch.manual_seed(seed)


def get_rng_state(device: Any = None) -> torch.Tensor:
    return torch.get_rng_state()


def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
    torch.set_rng_state(state)
