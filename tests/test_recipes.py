"""Every recipe composes against verl 0.9.1's configuration, with no unknown or ignored key."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

RECIPES = Path(__file__).parents[1] / "recipes" / "fair_grpo"
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
# keys verl 0.9.1 accepts and then ignores: main_ppo never migrates the legacy reward block (PR #7331)
IGNORED_PREFIXES = ("custom_reward_function.", "+custom_reward_function.")
CASES = [
    ("run_qwen2_5_vl_7b.sh", m, 1e-6, 5)
    for m in ("fair_grpo", "fair_grpo_label_free", "group_dro", "grpo", "grpo_resampling", "rloo", "reinforce_pp")
]
CASES += [
    ("run_medgemma_4b.sh", "fair_grpo", 5e-7, 10),
    ("run_medgemma_4b.sh", "grpo", 5e-7, 10),
    ("run_smoke_1gpu.sh", "fair_grpo", 1e-6, 4),
]
ESTIMATOR = {"grpo": "grpo", "grpo_resampling": "grpo", "rloo": "rloo", "reinforce_pp": "reinforce_plus_plus"}


def _run(script, method, dry_run, **env):
    return subprocess.run(
        ["bash", str(RECIPES / script), method],
        capture_output=True,
        text=True,
        timeout=300,
        env={**ENV, "DRY_RUN": dry_run, **env},
    )


@pytest.mark.parametrize(("script", "method", "lr", "rollouts"), CASES)
def test_recipe_composes_with_matched_hyperparameters(script, method, lr, rollouts):
    command = _run(script, method, "print")
    assert command.returncode == 0, command.stderr
    arguments = command.stdout.splitlines()
    assert not [a for a in arguments if a.startswith(IGNORED_PREFIXES)], "a key verl ignores"
    assert not [a for a in arguments if a.startswith("+")], "a '+' override would let a misspelt key through"
    composed = _run(script, method, "1")
    assert composed.returncode == 0, composed.stderr[-3000:]
    job = yaml.safe_load(composed.stdout)
    assert job["algorithm"]["adv_estimator"] == ESTIMATOR.get(method, "fair_grpo")
    assert float(job["actor_rollout_ref"]["actor"]["optim"]["lr"]) == lr
    assert job["actor_rollout_ref"]["rollout"]["n"] == rollouts
    assert job["reward"]["custom_reward_function"]["path"] == "pkg://verl_fair.reward_fns.clinical_diagnosis"
    assert job["trainer"]["v1"]["sampler"]["custom_sampler"]["name"] == "FairReplayBuffer"
    assert job["actor_rollout_ref"]["actor"]["use_kl_loss"] is False
    assert job["custom_reward_function"]["path"] is None  # the ignored legacy block stays unset
    if script != "run_smoke_1gpu.sh":
        assert (
            job["data"]["train_batch_size"] == 512 and job["actor_rollout_ref"]["actor"]["ppo_mini_batch_size"] == 128
        )
    if method == "grpo_resampling":
        assert all(f.endswith("train_balanced.parquet") for f in job["data"]["train_files"])
    if method == "fair_grpo_label_free":
        assert job["algorithm"]["fair_grpo"]["labels"] == "none"


def test_an_unknown_method_is_named():
    result = _run("run_qwen2_5_vl_7b.sh", "fairgrpo", "print")
    assert result.returncode != 0 and "unknown method 'fairgrpo'" in result.stderr


@pytest.mark.parametrize("gpus", [{"N_GPUS_PER_NODE": "8"}, {"GPUS_PER_NODE": "8"}])
def test_the_cluster_comes_from_the_environment(gpus):
    cluster = {"RAY_ADDRESS": "10.1.2.3:6379", "NNODES": "2", **gpus}
    composed = _run("run_qwen2_5_vl_7b.sh", "fair_grpo", "1", **cluster)
    assert composed.returncode == 0, composed.stderr[-3000:]
    job = yaml.safe_load(composed.stdout)
    assert (job["trainer"]["nnodes"], job["trainer"]["n_gpus_per_node"]) == (2, 8)
    assert "running on the Ray cluster at 10.1.2.3:6379: 2 node(s) x 8 GPU(s)" in composed.stderr
    alone = _run("run_qwen2_5_vl_7b.sh", "fair_grpo", "print", RAY_ADDRESS="")
    assert "running on a one-node Ray started for this run: 1 node(s) x 4 GPU(s)" in alone.stderr
