# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The FairGRPO recipe folder: every run script composes against verl 0.9.1's configuration with no unknown or
ignored key, its config keeps the shipped trainer's settings, and it has verl-recipe's shape and verl's names."""

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from packaging.requirements import Requirement

from verl_fair.configs import folder as configs_folder

ROOT = Path(__file__).parents[1]
RECIPES = ROOT / "recipes" / "fair_grpo"
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
# keys verl 0.9.1 accepts and then ignores: main_ppo never migrates the legacy reward block (PR #7331)
IGNORED_PREFIXES = ("custom_reward_function.", "+custom_reward_function.")
SMOKE = "run_qwen2_5_0_5b_fsdp.sh"  # the one-GPU smoke test
CASES = [
    ("run_qwen2_5_vl_7b_fsdp.sh", m, 1e-6, 5)
    for m in ("fair_grpo", "fair_grpo_label_free", "group_dro", "grpo", "grpo_resampling", "rloo", "reinforce_pp")
]
CASES += [
    ("run_medgemma_4b_fsdp.sh", "fair_grpo", 5e-7, 10),
    ("run_medgemma_4b_fsdp.sh", "grpo", 5e-7, 10),
    (SMOKE, "fair_grpo", 1e-6, 4),
]
# verl's rule for run scripts (tests/special_sanity/check_example_naming.py in verl): run_<model>_<train-backend>.sh,
# the train backend last; inference backend, platform, machine and quantisation are chosen by environment variables
TRAIN_BACKENDS = ("fsdp", "fsdp2", "fsdp_turbo", "megatron", "megatron_lite", "mindspeed", "automodel", "veomni")
RUN_TIME_CHOICES = ("vllm", "sglang", "trtllm", "npu", "amd", "gb200", "b200", "blackwell", "fp8")
SOURCED = ("common.sh",)  # the run scripts' shared code, never run itself
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
    assert job["actor_rollout_ref"]["actor"]["strategy"] == train_backend(script)
    if script != SMOKE:
        assert (
            job["data"]["train_batch_size"] == 512 and job["actor_rollout_ref"]["actor"]["ppo_mini_batch_size"] == 128
        )
    if method == "grpo_resampling":
        assert all(f.endswith("train_balanced.parquet") for f in job["data"]["train_files"])
    if method == "fair_grpo_label_free":
        assert job["algorithm"]["fair_grpo"]["labels"] == "none"


def test_an_unknown_method_is_named():
    result = _run("run_qwen2_5_vl_7b_fsdp.sh", "fairgrpo", "print")
    assert result.returncode != 0 and "unknown method 'fairgrpo'" in result.stderr


@pytest.mark.parametrize("gpus", [{"N_GPUS_PER_NODE": "8"}, {"GPUS_PER_NODE": "8"}])
def test_the_cluster_comes_from_the_environment(gpus):
    cluster = {"RAY_ADDRESS": "10.1.2.3:6379", "NNODES": "2", "INFER_BACKEND": "sglang", **gpus}
    composed = _run("run_qwen2_5_vl_7b_fsdp.sh", "fair_grpo", "1", **cluster)
    assert composed.returncode == 0, composed.stderr[-3000:]
    job = yaml.safe_load(composed.stdout)
    assert (job["trainer"]["nnodes"], job["trainer"]["n_gpus_per_node"]) == (2, 8)
    assert job["actor_rollout_ref"]["rollout"]["name"] == "sglang"
    assert "running on the Ray cluster at 10.1.2.3:6379: 2 node(s) x 8 GPU(s)" in composed.stderr
    alone = _run("run_qwen2_5_vl_7b_fsdp.sh", "fair_grpo", "print", RAY_ADDRESS="")
    assert "running on a one-node Ray started for this run: 1 node(s) x 4 GPU(s)" in alone.stderr


def test_a_python_without_verl_fair_is_named_before_anything_runs(tmp_path):
    (tmp_path / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')  # -S: no site-packages
    (tmp_path / "python3").chmod(0o755)
    result = _run("run_qwen2_5_vl_7b_fsdp.sh", "fair_grpo", "print", PATH=f"{tmp_path}{os.pathsep}{ENV['PATH']}")
    assert result.returncode == 2 and not result.stdout
    assert f"verl-fair is not installed for {tmp_path / 'python3'}: install it beside verl" in result.stderr


def _leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        out.update(_leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def test_the_recipe_config_keeps_every_setting_of_the_shipped_trainer_config():
    def composed(folder: Path, name: str) -> dict:
        with initialize_config_dir(config_dir=str(folder), version_base=None):
            return OmegaConf.to_container(compose(config_name=name), resolve=False)

    shipped = composed(configs_folder(), "fair_grpo_trainer")
    recipe = _leaves(composed(RECIPES / "config", "fair_grpo_clinical"))
    own = yaml.safe_load((configs_folder() / "fair_grpo_trainer.yaml").read_text())
    keys = _leaves({k: v for k, v in own.items() if k not in ("hydra", "defaults")})
    keys |= {f"algorithm.fair_grpo.{k}": v for k, v in _leaves(shipped["algorithm"]["fair_grpo"]).items()}
    assert {k: recipe.get(k, "<missing>") for k in keys} == {k: _leaves(shipped)[k] for k in keys}


def naming_errors(name: str) -> list[str]:
    """What verl's run-script naming rule says of a script name (empty: it follows the rule)."""
    if not (name.startswith("run_") and name.endswith(".sh")):
        return [f"{name}: not run_<model>_<train-backend>.sh"]
    stem = name.removesuffix(".sh")
    errors = [f"{name}: '{t}' is chosen at run time" for t in stem.split("_")[1:] if t in RUN_TIME_CHOICES]
    if not any(stem.endswith(f"_{backend}") for backend in TRAIN_BACKENDS):
        errors.append(f"{name}: does not end with a train backend, one of {', '.join(TRAIN_BACKENDS)}")
    return errors


def train_backend(name: str) -> str:
    stem = name.removesuffix(".sh")
    return max((b for b in TRAIN_BACKENDS if stem.endswith(f"_{b}")), key=len)


@pytest.mark.parametrize(
    ("name", "follows"),
    [
        ("run_qwen3_8b_fsdp.sh", True),
        ("run_qwen3_5_27b_fsdp_turbo.sh", True),
        ("run_deepseek_v4_megatron_lite.sh", True),
        ("run_qwen2_5_vl_7b.sh", False),  # no train backend
        ("run_smoke_1gpu.sh", False),
        ("run_qwen3_8b_vllm_fsdp.sh", False),  # the inference backend is an environment variable
        ("run_qwen3_8b_fsdp_fp8.sh", False),  # something after the train backend
        ("train_qwen3_8b_fsdp.sh", False),
    ],
)
def test_the_naming_rule_is_verls(name, follows):
    assert (naming_errors(name) == []) is follows


def test_every_run_script_follows_verls_naming_rule():
    scripts = sorted(p.name for p in RECIPES.rglob("*.sh") if p.name not in SOURCED)
    assert scripts and [e for name in scripts for e in naming_errors(name)] == []
    assert {script for script, *_ in CASES} == set(scripts)  # every script is composed above


def _required_verl() -> dict:
    lines = (RECIPES / "REQUIRED_VERL.txt").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_required_verl_is_complete_and_pins_the_verl_that_is_tested():
    required = _required_verl()
    assert {"UPSTREAM", "MODE", "PIP_INSTALL", "NOTES"} <= required.keys() and {"TAG", "COMMIT"} & required.keys()
    assert required["UPSTREAM"] == "https://github.com/verl-project/verl.git"
    assert required["MODE"] in ("pinned_tag", "pinned_commit")
    (pin,) = re.findall(r"verl(?:\[[\w,-]+\])?==([\w.]+)", required["PIP_INSTALL"])
    assert pin == importlib.metadata.version("verl")
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (verl,) = [Requirement(d) for d in dependencies if Requirement(d).name == "verl"]
    assert pin in verl.specifier
    assert "verl-fair" not in required["PIP_INSTALL"]  # not on PyPI: installed from a clone or its wheel


def test_the_recipe_has_verl_recipes_shape():
    readme = (RECIPES / "README.md").read_text()
    section = readme.split("## Required `verl` version", 1)[1].split("\n## ", 1)[0]
    assert "(REQUIRED_VERL.txt)" in section
    assert (RECIPES / "config" / "fair_grpo_clinical.yaml").is_file()
    for script in RECIPES.glob("run_*.sh"):
        assert f"recipes/fair_grpo/{script.name}" in readme, f"README.md does not show {script.name}"


ALGO_PAGES = sorted((ROOT / "docs" / "algo").glob("*.md"))


@pytest.mark.parametrize("page", ALGO_PAGES, ids=[p.name for p in ALGO_PAGES])
def test_the_algorithm_page_has_verls_form_and_names_real_keys_and_files(page):
    text = page.read_text()
    assert re.search(r"^Last updated: \d\d/\d\d/\d{4}\.$", text, re.M)  # what verl's docs check looks for
    knobs = yaml.safe_load((configs_folder() / "fair_grpo.yaml").read_text())
    assert [k for k in re.findall(r"algorithm\.fair_grpo\.(\w+)", text) if k not in knobs] == []
    links = [link for link in re.findall(r"\]\(([^)#]+)\)", text) if "://" not in link]
    assert links and [link for link in links if not (page.parent / link).exists()] == []
    assert [p for p in re.findall(r"recipes/fair_grpo/[\w./]+\.\w+", text) if not (ROOT / p).exists()] == []
