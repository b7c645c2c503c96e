# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""v1 replay-buffer samplers that hand FairGRPO each prompt's data source and group.

verl 0.9.1's v1 trainer passes a registered estimator only rewards, the mask and uids. The data
source and ``extra_info`` of every trajectory sit in TransferQueue; a custom sampler
(``trainer.v1.sampler.custom_sampler``) runs in the same process right before the advantage step,
so it reads them there, publishes uid -> (domain, group, gold label) for the estimator, and returns per-group
training metrics, which verl logs every step. Validation batches pass through untouched.

Enable with the shipped config, or::

    trainer.v1.sampler.custom_sampler.path=pkg://verl_fair.integration.sampler
    trainer.v1.sampler.custom_sampler.name=FairReplayBuffer      # every trainer mode
    +trainer.v1.sampler.sampler_kwargs.fair_grpo='${algorithm.fair_grpo}'
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import transfer_queue as tq
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync

from verl_fair.config import FairGRPOConfig
from verl_fair.groups.labels import GroupLabeler
from verl_fair.integration import context
from verl_fair.integration.group_metrics import batch_metrics, prompt_records

logger = logging.getLogger(__name__)

TRAIN_PARTITION = "train"


class FairMetadataMixin:
    """Reads each sampled train batch's metadata from TransferQueue and publishes it."""

    sampler_kwargs: Mapping[str, Any]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        section = (self.sampler_kwargs or {}).get("fair_grpo", None)
        self.fair_config = FairGRPOConfig.from_algorithm({"fair_grpo": section} if section is not None else {})
        self.labeler = GroupLabeler(self.fair_config.group_attributes, self.fair_config.age_bins)

    def sample(self, global_steps: int, partition_id: str, batch_size: int):
        batch, metrics = super().sample(global_steps, partition_id, batch_size)
        if partition_id == TRAIN_PARTITION and len(batch.keys) > 0:
            metrics = {**metrics, **self.publish_metadata(batch)}
        return batch, metrics

    def publish_metadata(self, batch) -> dict[str, float]:
        """Publish uid -> (domain, group) for this batch's prompts; return the per-group metrics."""
        cfg = self.fair_config
        fields = ["uid", "rm_scores", cfg.data_source_key, "extra_info", "reward_model"]
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        records = prompt_records(data, cfg, self.labeler)
        context.publish({r.uid: (r.domain, r.group, r.label) for r in records})
        return batch_metrics(records, self.labeler, context.last_report())


class FairReplayBuffer(FairMetadataMixin, ReplayBuffer):
    """verl's replay buffer plus FairGRPO metadata, for every trainer mode.

    Like verl's default choice, ``trainer_mode=sync`` gets the sync buffer and the async modes get
    :class:`FairReplayBufferAsync`, so one configured name serves all modes.
    """

    def __new__(cls, *args, trainer_mode: str = "sync", **kwargs):
        if cls is FairReplayBuffer and trainer_mode != "sync":
            cls = FairReplayBufferAsync
        return super().__new__(cls)


class FairReplayBufferAsync(FairReplayBuffer, ReplayBufferAsync):
    """verl's async replay buffer plus FairGRPO metadata (the async trainer modes)."""
