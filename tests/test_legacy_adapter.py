"""The opt-in adapter for verl's legacy trainer."""

import os
import subprocess
import sys

import pytest
import torch
from helpers import Prompt, make_batch
from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.ppo import ray_trainer

from verl_fair.integration import context, legacy

PROMPTS = [Prompt([1, 0, 1, 1], "A", "M,A3"), Prompt([0, 0, 1, 0], "A", "F,A4"), Prompt([1, 0, 0, 0], "B", "UNK")]


@pytest.fixture
def adapter():
    legacy.enable()
    yield
    legacy.disable()


def _data(batch):
    return DataProto.from_dict(
        tensors={"token_level_rewards": batch.token_level_rewards, "response_mask": batch.response_mask},
        non_tensors=batch.non_tensor_batch,
    )


def _call(batch, estimator):
    config = OmegaConf.create({"norm_adv_by_std_in_grpo": True, "fair_grpo": {}})
    # as RayPPOTrainer.fit calls it, through the module global
    return ray_trainer.compute_advantage(
        _data(batch),
        adv_estimator=estimator,
        gamma=1.0,
        lam=1.0,
        num_repeat=4,
        norm_adv_by_std_in_grpo=True,
        config=config,
    )


def test_fair_grpo_receives_the_legacy_batch_metadata(adapter):
    _call(make_batch(PROMPTS), "fair_grpo")
    assert context.last_report().prompt_groups == [("A", "M,A3"), ("A", "F,A4"), ("B", "UNK")]


def test_other_estimators_pass_through_unchanged(adapter):
    batch = make_batch(PROMPTS)
    wrapped = _call(batch, "grpo").batch["advantages"]
    legacy.disable()
    torch.testing.assert_close(wrapped, _call(batch, "grpo").batch["advantages"], rtol=0, atol=0)


def test_enable_is_idempotent_and_disable_restores_verl(adapter):
    original = ray_trainer.compute_advantage.__wrapped__
    legacy.enable()
    assert ray_trainer.compute_advantage.__wrapped__ is original
    legacy.disable()
    assert ray_trainer.compute_advantage is original


@pytest.mark.parametrize(("env", "expected"), [("1", "True"), ("", "False")])
def test_installed_by_configuration_never_by_import_alone(env, expected):
    code = (
        "import verl, verl_fair.integration.legacy; from verl.trainer.ppo import ray_trainer; "
        "print(hasattr(ray_trainer.compute_advantage, '__verl_fair_patch__'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, legacy.ENV: env}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected
