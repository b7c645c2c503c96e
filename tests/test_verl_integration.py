# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""FairGRPO through verl's own advantage code, with the types a real run passes."""

import uuid

import torch
from helpers import Prompt, make_batch
from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.ray_trainer import compute_advantage
from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

import verl_fair.plugin  # noqa: F401  (registration, as the entry point does)
from verl_fair.integration import context
from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo

PROMPTS = [
    Prompt([1, 0, 1, 1], "A", "M,A3", uid=str(uuid.uuid4())),
    Prompt([1, 1, 1, 0], "A", "M,A3", uid=str(uuid.uuid4())),
    Prompt([0, 0, 1, 0], "A", "F,A4", uid=str(uuid.uuid4())),
    Prompt([1, 0, 0, 0], "B", "UNK", uid=str(uuid.uuid4())),
]


def _algorithm(**fair):
    """verl's algorithm section as the trainer passes it: a DictConfig."""
    return OmegaConf.create(
        {"adv_estimator": "fair_grpo", "gamma": 1.0, "lam": 1.0, "norm_adv_by_std_in_grpo": True, "fair_grpo": fair}
    )


def _data_proto(batch, with_metadata):
    non_tensors = {"uid": batch.index}
    if with_metadata:
        non_tensors.update(
            data_source=batch.non_tensor_batch["data_source"], extra_info=batch.non_tensor_batch["extra_info"]
        )
    return DataProto.from_dict(
        tensors={"token_level_rewards": batch.token_level_rewards, "response_mask": batch.response_mask},
        non_tensors=non_tensors,
    )


def test_registered_under_fair_grpo():
    assert core_algos.get_adv_estimator_fn("fair_grpo") is fair_grpo


def test_ray_trainer_compute_advantage_uses_published_metadata():
    batch = make_batch(PROMPTS, shuffle_seed=0, padding_rows=2)
    assert batch.response_mask.dtype == torch.int64 and batch.index.dtype == object
    expected, _ = fair_grpo(**batch.kwargs(_algorithm(variant="official")))

    context.reset_state()
    context.publish({p.uid: (p.domain, p.group) for p in PROMPTS})  # what the metadata sampler does
    data = compute_advantage(
        _data_proto(batch, with_metadata=False), adv_estimator="fair_grpo", config=_algorithm(variant="official")
    )
    torch.testing.assert_close(data.batch["advantages"], expected, rtol=0, atol=0)
    torch.testing.assert_close(data.batch["returns"], expected, rtol=0, atol=0)
    assert torch.equal(data.batch["advantages"][-2:], torch.zeros_like(data.batch["advantages"][-2:]))


def test_v1_multi_trajectory_path_reaches_the_estimator():
    batch = make_batch(PROMPTS, shuffle_seed=1)
    data = _data_proto(batch, with_metadata=False)
    keys = [f"{uid}_{i}_0" for i, uid in enumerate(batch.index)]
    out = compute_advantage_for_multi_trajectories(
        data, batch_keys=keys, adv_estimator="fair_grpo", num_repeat=4, config=_algorithm()
    )
    advantages = out.batch["advantages"]
    assert advantages.shape == batch.token_level_rewards.shape
    assert torch.isfinite(advantages).all() and advantages.abs().sum() > 0
    assert context.last_report().metrics()["fair/unk_prompts"] == 4  # label-free: no metadata on this path


def test_weighting_none_matches_verl_grpo_through_compute_advantage():
    batch = make_batch(PROMPTS, shuffle_seed=2)
    ours = compute_advantage(
        _data_proto(batch, True), adv_estimator="fair_grpo", config=_algorithm(weighting="none")
    ).batch["advantages"]
    grpo = compute_advantage(_data_proto(batch, True), adv_estimator="grpo", config=_algorithm()).batch["advantages"]
    torch.testing.assert_close(ours, grpo, rtol=1e-6, atol=1e-6)


def test_non_tensor_batch_is_used_when_a_trainer_passes_it():
    """The shape upstream PR #7473 proposes: estimators that accept non_tensor_batch receive it."""
    batch = make_batch(PROMPTS)
    data = _data_proto(batch, with_metadata=True)
    fair_grpo(
        token_level_rewards=data.batch["token_level_rewards"],
        response_mask=data.batch["response_mask"],
        index=data.non_tensor_batch["uid"],
        config=_algorithm(),
        non_tensor_batch=data.non_tensor_batch,
    )
    assert context.last_report().prompt_groups[:3] == [("A", "M,A3"), ("A", "M,A3"), ("A", "F,A4")]


def test_verl_symbols_this_project_relies_on_still_exist():
    """A verl upgrade that moves any of these fails here, not in a user's run."""
    import inspect

    from verl.trainer.ppo.v1 import utils as v1_utils

    assert callable(core_algos.register_adv_est) and isinstance(core_algos.ADV_ESTIMATOR_REGISTRY, dict)
    params = inspect.signature(compute_advantage).parameters
    assert {"data", "adv_estimator", "norm_adv_by_std_in_grpo", "config"} <= set(params)
    assert "batch_keys" in inspect.signature(v1_utils.compute_advantage_for_multi_trajectories).parameters
    assert inspect.unwrap(v1_utils.compute_advantage) is inspect.unwrap(compute_advantage)  # under the plugin's wraps

    # integration/sampler.py: the replay buffers, their sample() contract and TransferQueue's reader
    import transfer_queue
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    assert list(inspect.signature(ReplayBuffer.sample).parameters) == [
        "self",
        "global_steps",
        "partition_id",
        "batch_size",
    ]
    assert issubclass(ReplayBufferAsync, ReplayBuffer)
    assert {"trainer_mode", "sampler_kwargs", "refill_fn"} <= set(inspect.signature(ReplayBuffer.__init__).parameters)
    assert callable(transfer_queue.kv_batch_get) and callable(PPOTrainer._compute_advantage)
    # verl's padding rows, which the estimator must recognise by their uid
    from verl.trainer.ppo import padding_utils

    assert 'pad_uid = f"pad' in inspect.getsource(padding_utils.upsample_batch_to_divisible_size)
    # integration/checkpoint.py: the callback hook and verl's resume rule
    from verl.trainer.ppo.checkpoint_callback import CheckpointCallback
    from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

    assert {"trainer", "global_step", "checkpoint_dir"} <= set(inspect.signature(CheckpointCallback.on_save).parameters)
    assert callable(find_latest_ckpt_path)
    # integration/legacy.py: the module global that RayPPOTrainer.fit calls
    import verl.trainer.ppo.ray_trainer as ray_trainer

    assert "compute_advantage(" in inspect.getsource(ray_trainer.RayPPOTrainer.fit)
    assert callable(ray_trainer.compute_response_mask)
