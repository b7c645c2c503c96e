# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Local Ray + TransferQueue, and trajectories shaped as verl's agent loop writes them."""

from __future__ import annotations

import uuid

import numpy as np
import torch

TRAJECTORY_TAG = {"status": "success", "global_steps": 1, "min_global_steps": 1, "max_global_steps": 1}


def start():
    import ray
    import transfer_queue as tq
    import verl
    from omegaconf import OmegaConf

    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    conf = OmegaConf.load(f"{verl.__path__[0]}/trainer/config/transfer_queue/transfer_queue.yaml")
    conf.enable = True
    conf.backend.SimpleStorage.num_data_storage_units = 1
    tq.init(conf)


def stop():
    import ray
    import transfer_queue as tq

    tq.close()
    ray.shutdown()


def put_prompts(prompts, partition="train", seed=0):
    """Write each prompt (a status marker) and its trajectories; return {uid: prompt}."""
    import transfer_queue as tq
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    rng = np.random.default_rng(seed)
    rows, keys, by_uid = [], [], {}
    for prompt in prompts:
        uid = prompt.uid or str(uuid.uuid4())
        by_uid[uid] = prompt
        for session, reward in enumerate(prompt.rewards):
            length = int(rng.integers(2, 6))
            scores = torch.zeros(length)
            scores[-1] = reward
            extra = extra_info(prompt.group)
            rows.append(
                {
                    "uid": uid,
                    "response_mask": torch.ones(length, dtype=torch.int64),
                    "rm_scores": scores,
                    "old_log_probs": torch.zeros(length),
                    "data_source": prompt.domain,
                    "extra_info": extra,
                }
            )
            keys.append(f"{uid}_{session}_0")
    tq.kv_batch_put(
        keys=keys,
        partition_id=partition,
        fields=list_of_dict_to_tensordict(rows),
        tags=[dict(TRAJECTORY_TAG, seq_len=int(r["response_mask"].numel())) for r in rows],
    )
    tq.kv_batch_put(
        keys=list(by_uid),
        partition_id=partition,
        tags=[{"is_prompt": True, "status": "finished", "global_steps": 1} for _ in by_uid],
    )
    return by_uid


AGES = {"A1": 20, "A2": 40, "A3": 60, "A4": 80}


def extra_info(group: str) -> dict:
    """extra_info as a dataset would carry it: nested demographics for "sex,age-bin" keys."""
    if group == "UNK":
        return {}
    sex, _, age_bin = group.partition(",")
    if age_bin in AGES:
        return {"demographics": {"sex": {"M": "male", "F": "female"}[sex], "age": AGES[age_bin]}}
    return {"fair_group": group}


def clear(partition="train"):
    import transfer_queue as tq

    listed = tq.kv_list() or {}
    keys = list(listed.get(partition, {}))
    if keys:
        tq.kv_clear(keys=keys, partition_id=partition)


def row_advantages(keys, partition="train"):
    """The scalar advantage of each trajectory, read back from TransferQueue."""
    import transfer_queue as tq

    data = tq.kv_batch_get(keys=keys, partition_id=partition, select_fields=["advantages"])
    return torch.stack([a[-1] for a in data["advantages"].unbind(0)])
