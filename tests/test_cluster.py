# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""FairGRPO on a Ray cluster started beforehand: two Ray nodes on this host (:mod:`ray_cluster`), each with
one logical GPU, ``main_ppo`` connecting to it with ``trainer.nnodes=2`` (FSDP world size 2 across the
nodes), a checkpoint and a resume on the same cluster; FSDP world size 2 on one node; and ``verl-fair
doctor --cluster`` naming a node that lacks the plugin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from e2e import Run, main_ppo
from ray_cluster import CLUSTER_ENV, cluster

from verl_fair import cpu
from verl_fair.demo import run as demo
from verl_fair.integration.checkpoint import STATE_FILE

STEPS, BATCH, N = 3, 8, 4
LABELLED = ("algorithm.fair_grpo.min_group_size=2", "algorithm.fair_grpo.labels=required")

# a node without the plugin: its interpreters cannot import verl_fair, as on a node where nobody installed it
NO_PLUGIN = """import sys
class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name == "verl_fair" or name.startswith("verl_fair."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Missing())
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cluster_inputs")
    demo.build_inputs(folder, warm_epochs=4)
    return folder


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("ray")) as running:
        yield running


def on_cluster(inputs: Path, output: Path, address: str, *extra: str, steps: int = STEPS) -> list[str]:
    forwarded = {key: demo.trainer_env(output)[key] for key in ("VERL_FILE_LOGGER_PATH", "TOKENIZERS_PARALLELISM")}
    overrides = demo.run_overrides(inputs, output, steps=steps, batch_size=BATCH, n=N, save_freq=1)
    return demo.shipped_config_command([*overrides, *cpu.cluster_overrides(address, 2, env=forwarded), *extra])


def run_on(two_nodes, inputs: Path, output: Path, *extra: str) -> Run:
    command = on_cluster(inputs, output, two_nodes.address, *LABELLED, *extra)
    return main_ppo(inputs, output, command, env=CLUSTER_ENV, also=[p.pid for p in two_nodes.processes]).check()


def actors_per_node(two_nodes, name: str) -> list[int]:
    """How many Ray workers of each node ran an actor of class ``name`` (from the nodes' own log folders)."""
    return [
        sum(f":actor_name:{name}" in path.read_text(errors="replace") for path in two_nodes.worker_logs(node))
        for node in range(two_nodes.nodes)
    ]


@pytest.fixture(scope="module")
def uninterrupted(two_nodes, inputs, tmp_path_factory) -> Run:
    return run_on(two_nodes, inputs, tmp_path_factory.mktemp("two_nodes"))


def test_fair_grpo_trains_across_two_nodes(uninterrupted, two_nodes):
    assert all(count >= 1 for count in actors_per_node(two_nodes, "WorkerDict")), "an FSDP rank on each node"
    train = uninterrupted.series("fair/train/chest_pain/")
    assert sorted(train) == [1, 2, 3]
    weights = uninterrupted.series("fair/estimator/chest_pain/")[STEPS]
    assert len([name for name in weights if name.endswith("/weight")]) >= 2
    assert 0 < uninterrupted.series("val-fair/")[STEPS]["val-fair/all/sex/acc_worst_group"] <= 1
    assert uninterrupted.state(STEPS)["steps"] == STEPS
    print(f"two nodes: {uninterrupted.seconds:.0f} s, peak {uninterrupted.peak_gb:.1f} GB")


def test_resume_on_the_cluster_reaches_the_uninterrupted_visit_counts(uninterrupted, two_nodes, inputs, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    shutil.copytree(uninterrupted.output / "checkpoints" / "global_step_2", checkpoints / "global_step_2")
    (checkpoints / "latest_checkpointed_iteration.txt").write_text("2")
    resumed = run_on(two_nodes, inputs, tmp_path)
    assert f"FairGRPO state restored from {checkpoints / 'global_step_2' / STATE_FILE} (2 steps" in resumed.log
    assert sorted(resumed.series("fair/train/")) == [3]
    assert resumed.visit_counts(3) == uninterrupted.visit_counts(3)
    print(f"resume on two nodes: {resumed.seconds:.0f} s, peak {resumed.peak_gb:.1f} GB")


def test_doctor_passes_every_node_of_a_healthy_cluster(two_nodes):
    result = doctor(two_nodes.address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("[ok] node ") == 2


def test_doctor_names_the_node_that_lacks_the_plugin(tmp_path):
    (tmp_path / "no_plugin").mkdir()
    (tmp_path / "no_plugin" / "sitecustomize.py").write_text(NO_PLUGIN)
    with cluster(tmp_path / "ray", env={1: {"PYTHONPATH": str(tmp_path / "no_plugin")}}) as running:
        result = doctor(running.address)
    assert result.returncode == 1
    assert result.stdout.count("[ok] node ") == 1 and "No module named 'verl_fair'" in result.stdout
    assert "[FAIL] 1 of 2 node(s) cannot run FairGRPO" in result.stdout


def doctor(address: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "verl_fair.cli", "doctor", "--cluster", address]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **CLUSTER_ENV})


def test_fsdp_world_size_two_on_one_node_in_the_colocated_async_mode(inputs, tmp_path):
    """Two FSDP ranks on one node, in verl's ``colocate_async`` v1 mode (the async replay buffer)."""
    overrides = demo.run_overrides(inputs, tmp_path, steps=2, batch_size=BATCH, n=N)
    two_ranks = ("trainer.n_gpus_per_node=2", "++ray_kwargs.ray_init.num_gpus=2")
    mode = "trainer.v1.trainer_mode=colocate_async"
    run = main_ppo(inputs, tmp_path, demo.shipped_config_command([*overrides, *LABELLED, *two_ranks, mode])).check()
    assert "[rank1]" in run.log and "'trainer_mode': 'colocate_async'" in run.log
    assert sorted(run.series("fair/train/chest_pain/")) == [1, 2]
    assert len([name for name in run.series("fair/estimator/chest_pain/")[2] if name.endswith("/weight")]) >= 2
    assert run.state(2)["steps"] == 2
    print(f"world size 2 on one node, colocate_async: {run.seconds:.0f} s, peak {run.peak_gb:.1f} GB")


def test_doctor_says_when_no_cluster_answers():
    result = doctor("127.0.0.1:1")
    assert result.returncode == 1 and "no Ray cluster reachable at '127.0.0.1:1'" in result.stdout
