# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""verl's v1 trainer advantage step on local Ray + TransferQueue, fed through the metadata sampler."""

import numpy as np
import pytest
import torch
import tq_harness
from helpers import Prompt
from omegaconf import OmegaConf

import verl_fair.plugin  # noqa: F401
from verl_fair.integration import context
from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo
from verl_fair.integration.sampler import FairReplayBuffer, FairReplayBufferAsync

FAIR = {"variant": "paper", "min_group_size": 1}
PROMPTS = [
    Prompt([1, 0, 1, 1], "chexpert", "M,A3"),
    Prompt([1, 1, 1, 0], "chexpert", "F,A3"),
    Prompt([0, 0, 1, 0], "chexpert", "F,A4"),
    Prompt([1, 0, 0, 0], "isic", "UNK"),
    Prompt([1, 1, 0, 0], "isic", "M,A2"),
    Prompt([0, 0, 0, 0], "isic", "M,A2"),
]


@pytest.fixture(scope="module", autouse=True)
def ray_and_transfer_queue():
    tq_harness.start()
    yield
    tq_harness.stop()


@pytest.fixture(autouse=True)
def empty_partitions():
    yield
    tq_harness.clear("train")
    tq_harness.clear("val")


def _sampler(cls=FairReplayBuffer, trainer_mode="sync"):
    return cls(
        trainer_mode=trainer_mode,
        trainer_config=OmegaConf.create({}),
        max_off_policy_threshold=8,
        max_off_policy_strategy="drop",
        sampler_kwargs=OmegaConf.create({"fair_grpo": FAIR}),
        refill_fn=lambda count: None,
    )


def _bare_trainer():
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    trainer = object.__new__(PPOTrainerSync)
    trainer.config = OmegaConf.create(
        {
            "algorithm": {
                "adv_estimator": "fair_grpo",
                "gamma": 1.0,
                "lam": 1.0,
                "use_kl_in_reward": False,
                "norm_adv_by_std_in_grpo": True,
                "fair_grpo": FAIR,
            },
            "actor_rollout_ref": {"rollout": {"n": 4}},
        }
    )
    return trainer


def test_v1_advantage_step_uses_the_published_groups_padding_and_reordering():
    from verl.trainer.ppo.padding_utils import upsample_batch_to_divisible_size

    tq_harness.put_prompts(PROMPTS)
    batch, metrics = _sampler().sample(global_steps=1, partition_id="train", batch_size=len(PROMPTS))
    assert metrics["fair/train/chexpert/F,A4/prompts"] == 1.0
    assert metrics["fair/train/isic/M,A2/reward_mean"] == pytest.approx(0.25)
    assert metrics["fair/train/isic/M,A2/zero_variance_rate"] == pytest.approx(0.5)
    assert metrics["fair/train/unk_share"] == pytest.approx(1 / 6)
    assert metrics["fair/train/unk_reason/sex/absent"] == pytest.approx(1 / 6)

    batch = upsample_batch_to_divisible_size(batch, batch_multiple=7, eos_token_id=0)  # as _balance_batch does
    pad_rows = [i for i, key in enumerate(batch.keys) if key.startswith("pad")]
    assert pad_rows
    batch.reorder(list(np.random.default_rng(0).permutation(len(batch))))
    _bare_trainer()._compute_advantage(batch, metrics={})
    got = tq_harness.row_advantages(batch.keys)

    # the same rows, in the same order, through the estimator with the metadata handed over directly
    assert sorted(set(context.last_report().prompt_groups)) == sorted({(p.domain, p.group) for p in PROMPTS})
    assert not context.has_published()
    context.reset_state()
    expected = _direct_advantages(batch.keys)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    pad = torch.tensor([k.startswith("pad") for k in batch.keys])
    assert torch.equal(got[pad], torch.zeros(int(pad.sum())))
    assert got[~pad].abs().sum() > 0


def _direct_advantages(keys):
    import transfer_queue as tq

    data = tq.kv_batch_get(
        keys=keys,
        partition_id="train",
        select_fields=["uid", "rm_scores", "response_mask", "data_source", "extra_info"],
    )
    padded = data.select("rm_scores", "response_mask").to_padded_tensor()
    advantages, _ = fair_grpo(
        padded["rm_scores"],
        padded["response_mask"],
        index=np.array(list(data["uid"]), dtype=object),
        config={"fair_grpo": FAIR},
        non_tensor_batch={
            "data_source": np.array(list(data["data_source"]), dtype=object),
            "extra_info": np.array(list(data["extra_info"]), dtype=object),
        },
    )
    lengths = padded["response_mask"].sum(-1)
    return torch.stack([row[max(int(n), 1) - 1] for row, n in zip(advantages, lengths, strict=True)])


def test_validation_batches_pass_through_untouched():
    tq_harness.put_prompts(PROMPTS[:2], partition="val")
    batch, metrics = _sampler().sample(global_steps=1, partition_id="val", batch_size=2)
    assert len(batch) == 8
    assert not any(key.startswith("fair/") for key in metrics)
    assert not context.has_published()


def test_estimator_metrics_follow_one_step_later():
    tq_harness.put_prompts(PROMPTS)
    sampler = _sampler()
    batch, first = sampler.sample(global_steps=1, partition_id="train", batch_size=len(PROMPTS))
    assert not any(key.startswith("fair/estimator/") for key in first)
    _bare_trainer()._compute_advantage(batch, metrics={})
    tq_harness.clear("train")
    tq_harness.put_prompts(PROMPTS)
    _, second = sampler.sample(global_steps=2, partition_id="train", batch_size=len(PROMPTS))
    shares = [v for k, v in second.items() if k.endswith("/adv_share")]
    assert sum(shares) == pytest.approx(1.0)
    assert second["fair/estimator/chexpert/F,A4/weight"] > second["fair/estimator/chexpert/M,A3/weight"]
    assert "fair/estimator/guard/weight_cap" in second
    assert not any(word in key.lower() for key in second for word in ("max", "min", "sum", "total"))


def test_async_variant_publishes_too():
    tq_harness.put_prompts(PROMPTS[:3])
    sampler = _sampler(FairReplayBufferAsync, trainer_mode="separate_async")
    batch, metrics = sampler.sample(global_steps=1, partition_id="train", batch_size=3)
    assert metrics["fair/train/chexpert/M,A3/prompts"] == 1.0
    assert context.has_published()
