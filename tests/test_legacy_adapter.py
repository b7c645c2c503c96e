# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""FairGRPO on verl's RayPPOTrainer: labels, metrics and state through the plugin's wraps, with no switch."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import Prompt, make_batch
from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.ppo import ray_trainer

from verl_fair import patches
from verl_fair.algorithm.state import STATE_FILE, read_state
from verl_fair.integration import context, legacy

PROMPTS = [Prompt([1, 0, 1, 1], "A", "M,A3"), Prompt([0, 0, 1, 0], "A", "F,A4"), Prompt([1, 0, 0, 0], "B", "UNK")]
CONFIG = {"norm_adv_by_std_in_grpo": True, "adv_estimator": "fair_grpo", "fair_grpo": {}}
FIT = ray_trainer.RayPPOTrainer.fit.__globals__  # the names RayPPOTrainer.fit calls


@pytest.fixture(autouse=True)
def plugin_state():
    """Each test starts from the plugin's state (wraps installed, nothing published) and leaves it so."""
    legacy.enable()
    context.reset_state()
    legacy.take_metrics()
    yield
    legacy.enable()
    context.reset_state()


def _data(batch, metadata: bool = True):
    """The batch as RayPPOTrainer holds it at its advantage step (one-token prompts)."""
    non_tensors = batch.non_tensor_batch if metadata else {"uid": np.array(batch.non_tensor_batch["uid"])}
    rows, length = batch.response_mask.shape
    tensors = {
        "token_level_scores": batch.token_level_rewards,
        "token_level_rewards": batch.token_level_rewards,
        "response_mask": batch.response_mask,
        "prompts": torch.ones(rows, 1, dtype=torch.long),
        "responses": torch.ones(rows, length, dtype=torch.long),
        "attention_mask": torch.cat([torch.ones(rows, 1), batch.response_mask], dim=1).long(),
    }
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)


def _call(data, estimator):
    return FIT["compute_advantage"](
        data,
        adv_estimator=estimator,
        gamma=1.0,
        lam=1.0,
        num_repeat=4,
        norm_adv_by_std_in_grpo=True,
        config=OmegaConf.create(CONFIG),
    )


def test_fair_grpo_receives_the_batch_metadata():
    _call(_data(make_batch(PROMPTS)), "fair_grpo")
    assert context.last_report().prompt_groups == [("A", "M,A3"), ("A", "F,A4"), ("B", "UNK")]


def test_the_step_logs_v1s_metrics_once():
    batch = make_batch(PROMPTS)
    _call(_data(batch), "fair_grpo")
    metrics = FIT["compute_data_metrics"](batch=_call(_data(batch), "fair_grpo"), use_critic=False)
    assert metrics["fair/train/A/M,A3/prompts"] == 1.0 and metrics["fair/train/A/M,A3/reward_mean"] == 0.75
    assert metrics["fair/train/unk_share"] == pytest.approx(1 / 3)
    assert {"fair/estimator/A/M,A3/weight", "fair/estimator/A/F,A4/adv_share"} <= set(metrics)
    assert "critic/score/mean" in metrics  # verl's own data metrics are kept
    again = FIT["compute_data_metrics"](batch=_call(_data(batch, metadata=False), "grpo"), use_critic=False)
    assert not [name for name in again if name.startswith("fair/")]


def test_a_v1_batch_keeps_the_samplers_labels():
    """v1 hands compute_advantage uids only: the labels the sampler published reach the estimator."""
    if not patches.v1_trainer_available():
        pytest.skip("this verl has no v1 trainer (verl 0.8, verl's neo branch)")
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    batch = make_batch(PROMPTS[:2])
    uids = sorted(set(batch.non_tensor_batch["uid"]), key=list(batch.non_tensor_batch["uid"]).index)
    context.publish({uids[0]: ("S", "F,A1"), uids[1]: ("S", "M,A2")})
    compute_advantage_for_multi_trajectories(
        _data(batch, metadata=False), batch_keys=[], adv_estimator="fair_grpo", config=OmegaConf.create(CONFIG)
    )
    assert context.last_report().prompt_groups == [("S", "F,A1"), ("S", "M,A2")]
    assert legacy.take_metrics() == {}


def test_other_estimators_pass_through_unchanged():
    batch = make_batch(PROMPTS)
    wrapped = _call(_data(batch), "grpo").batch["advantages"]
    legacy.disable()
    torch.testing.assert_close(wrapped, _call(_data(batch), "grpo").batch["advantages"], rtol=0, atol=0)
    assert not context.has_published()


class _Workers:
    def save_checkpoint(self, local_path, *args, **kwargs):
        os.makedirs(local_path, exist_ok=True)


class _Loader:
    def state_dict(self):
        return {}


def _bare_trainer(tmp_path, estimator: str):
    """A RayPPOTrainer with stand-ins for its workers and data loader, enough for verl's _save_checkpoint."""
    trainer = object.__new__(ray_trainer.RayPPOTrainer)
    trainer.config = OmegaConf.create(
        {
            "algorithm": {**CONFIG, "adv_estimator": estimator},
            "trainer": {"default_local_dir": str(tmp_path), "default_hdfs_dir": None},
            "actor_rollout_ref": {"actor": {"checkpoint": {"async_save": False}}},
        }
    )
    trainer.global_steps, trainer.use_critic = 3, False
    trainer.actor_rollout_wg, trainer.train_dataloader = _Workers(), _Loader()
    return trainer


def test_each_checkpoint_of_a_fair_grpo_run_holds_the_state(tmp_path):
    _call(_data(make_batch(PROMPTS)), "fair_grpo")
    _bare_trainer(tmp_path, "fair_grpo")._save_checkpoint()
    assert read_state(tmp_path / "global_step_3" / STATE_FILE)["steps"] == 1
    assert (tmp_path / "latest_checkpointed_iteration.txt").read_text() == "3"


def test_a_checkpoint_of_another_estimator_holds_no_state(tmp_path):
    _call(_data(make_batch(PROMPTS)), "fair_grpo")
    _bare_trainer(tmp_path, "grpo")._save_checkpoint()
    assert not (tmp_path / "global_step_3" / STATE_FILE).exists()


def test_enable_is_idempotent_and_disable_restores_verl():
    original = ray_trainer.compute_advantage.__wrapped__
    legacy.enable()
    assert ray_trainer.compute_advantage.__wrapped__ is original
    legacy.disable()
    assert ray_trainer.compute_advantage is original
    assert not hasattr(ray_trainer.RayPPOTrainer._save_checkpoint, "__verl_fair_patch__")


INSTALLED = (
    "import sys, verl; print('before:', 'verl.trainer.ppo.ray_trainer' in sys.modules); "
    "from verl.trainer.ppo import ray_trainer as r, metric_utils as m; "
    "print('after:', all(hasattr(f, '__verl_fair_patch__') for f in (r.compute_advantage, r.compute_data_metrics, "
    "m.compute_data_metrics, r.RayPPOTrainer.__init__, r.RayPPOTrainer._save_checkpoint)))"
)


def test_installed_by_the_plugin_with_no_environment_switch():
    """Fresh process: importing verl loads the plugin, whose wraps wait for verl's trainer module."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_FAIR_")}
    result = subprocess.run([sys.executable, "-c", INSTALLED], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-4:] == ["before:", "False", "after:", "True"]


def test_validation_gaps_reach_ray_ppo_trainer():
    """With VERL_FAIR_VALIDATION_METRICS=1 (the shipped config), RayPPOTrainer's validation gets val-fair/*."""
    from verl_fair.integration import validation

    infos = {"acc": [1.0, 0.0, 1.0, 1.0], "reward": [1.0, 0.0, 1.0, 1.0], "group_sex": ["F", "F", "M", "M"]}
    trainer = object.__new__(ray_trainer.RayPPOTrainer)
    validation.enable()
    try:
        metrics = trainer._val_metrics_update(np.array(["cxr"] * 4), ["u0", "u1", "u2", "u3"], infos, [])
    finally:
        validation.disable()
    assert metrics["val-fair/cxr/sex/acc_gap"] == 0.5 and metrics["val-fair/all/sex/acc_worst_group"] == 0.5
    assert "val-core/cxr/acc/mean@1" in metrics
