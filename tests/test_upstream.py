"""docs/upstream.md item 1 applied as verl PR #7473 would: the estimator then reads ``non_tensor_batch`` itself
and gives the advantages the sampler path gives on the same batch."""

from __future__ import annotations

import inspect
import uuid

import numpy as np
import pytest
import torch
from helpers import Prompt, make_batch
from omegaconf import OmegaConf
from tq_harness import extra_info
from verl import DataProto
from verl.trainer.ppo import ray_trainer
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

import verl_fair.plugin  # noqa: F401  (registration, as the entry point does)
from verl_fair.config import FairGRPOConfig
from verl_fair.groups.labels import GroupLabeler
from verl_fair.integration import context
from verl_fair.integration.sampler import prompt_records

GDPO_ONLY = 'if adv_estimator in (AdvantageEstimator.GDPO, "gdpo"):'
BY_SIGNATURE = 'if {"non_tensor_batch", "batch"} & set(inspect.signature(adv_estimator_fn).parameters):'


def compute_advantage_with_pr_7473():
    """verl's own ``compute_advantage`` with the GDPO name check replaced by signature inspection."""
    source = inspect.getsource(ray_trainer.compute_advantage)
    assert source.count(GDPO_ONLY) == 1, "verl's compute_advantage changed: update docs/upstream.md item 1"
    namespace = {**vars(ray_trainer), "inspect": inspect}
    exec(compile(source.replace(GDPO_ONLY, BY_SIGNATURE), ray_trainer.__file__, "exec"), namespace)
    return namespace["compute_advantage"]


PROMPTS = [
    Prompt([1, 0, 1, 1], "cxr", "M,A3", uid=str(uuid.uuid4())),
    Prompt([1, 1, 0, 1], "cxr", "F,A2", uid=str(uuid.uuid4())),
    Prompt([0, 0, 1, 0], "cxr", "F,A2", uid=str(uuid.uuid4())),
    Prompt([1, 0, 0, 0], "derm", "M,A1", uid=str(uuid.uuid4())),
    Prompt([0, 1, 1, 1], "derm", "UNK", uid=str(uuid.uuid4())),
]
ALGORITHM = OmegaConf.create({"adv_estimator": "fair_grpo", "norm_adv_by_std_in_grpo": True, "fair_grpo": {}})


def _data(batch, with_metadata: bool) -> DataProto:
    infos = np.array([extra_info(group) for group in batch.non_tensor_batch["extra_info_group"]], dtype=object)
    non_tensors = {"uid": batch.index}
    if with_metadata:
        non_tensors.update(data_source=batch.non_tensor_batch["data_source"], extra_info=infos)
    return DataProto.from_dict(
        tensors={"token_level_rewards": batch.token_level_rewards, "response_mask": batch.response_mask},
        non_tensors=non_tensors,
    )


@pytest.fixture
def batch():
    made = make_batch(PROMPTS, shuffle_seed=4, padding_rows=2)
    groups = {p.uid: p.group for p in PROMPTS}
    made.non_tensor_batch["extra_info_group"] = [groups.get(u, "UNK") for u in made.index]
    return made


def test_pr_7473_hands_non_tensor_batch_and_matches_the_sampler_path(batch):
    patched = compute_advantage_with_pr_7473()
    direct = patched(_data(batch, with_metadata=True), adv_estimator="fair_grpo", config=ALGORITHM)
    direct_groups = context.last_report().prompt_groups
    assert context.last_report().unk_prompts == 1  # the labels arrived through non_tensor_batch

    context.reset_state()  # the sampler path: records from the trajectories, published, looked up by uid
    rows = [
        {"uid": str(u), "rm_scores": r, "data_source": str(d), "extra_info": extra_info(g)}
        for u, r, d, g in zip(
            batch.index,
            batch.token_level_rewards,
            batch.non_tensor_batch["data_source"],
            batch.non_tensor_batch["extra_info_group"],
            strict=True,
        )
        if not str(u).startswith("pad")
    ]
    cfg = FairGRPOConfig.from_algorithm(ALGORITHM)
    records = prompt_records(list_of_dict_to_tensordict(rows), cfg, GroupLabeler(cfg.group_attributes, cfg.age_bins))
    context.publish({r.uid: (r.domain, r.group) for r in records})
    through_sampler = ray_trainer.compute_advantage(
        _data(batch, with_metadata=False), adv_estimator="fair_grpo", config=ALGORITHM
    )

    assert sorted(direct_groups) == sorted(context.last_report().prompt_groups)
    torch.testing.assert_close(direct.batch["advantages"], through_sampler.batch["advantages"], rtol=0, atol=0)
    assert direct.batch["advantages"].abs().sum() > 0


def test_without_the_change_verl_hands_no_metadata(batch):
    ray_trainer.compute_advantage(_data(batch, with_metadata=True), adv_estimator="fair_grpo", config=ALGORITHM)
    assert context.last_report().unk_prompts == len(PROMPTS)  # label-free: verl 0.9.1 drops the fields
