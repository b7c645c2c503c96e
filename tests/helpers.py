# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Batch builders shared by the tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Prompt:
    rewards: list[float]
    domain: str = "A"
    group: str = "UNK"
    uid: str | None = None


@dataclass
class Batch:
    token_level_rewards: torch.Tensor
    response_mask: torch.Tensor
    index: np.ndarray
    non_tensor_batch: dict

    def kwargs(self, config: dict | None = None, with_metadata: bool = True) -> dict:
        out = {
            "token_level_rewards": self.token_level_rewards,
            "response_mask": self.response_mask,
            "index": self.index,
            "config": config or {},
        }
        if with_metadata:
            out["non_tensor_batch"] = self.non_tensor_batch
        return out


def make_batch(
    prompts: list[Prompt], response_length: int = 4, shuffle_seed: int | None = None, padding_rows: int = 0
) -> Batch:
    """One row per rollout; the reward sits on the last valid token as in verl; optional shuffling."""
    rows = []
    for p in prompts:
        uid = p.uid or str(uuid.uuid4())
        for r in p.rewards:
            rows.append((uid, float(r), p.domain, p.group))
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(rows))
        rows = [rows[i] for i in order]
    n = len(rows) + padding_rows
    rewards = torch.zeros(n, response_length)
    mask = torch.zeros(n, response_length, dtype=torch.int64)
    rng = np.random.default_rng(len(rows))
    for i, (_, r, _, _) in enumerate(rows):
        length = int(rng.integers(1, response_length + 1))
        mask[i, :length] = 1
        rewards[i, length - 1] = r
    pad_uid = "pad" + uuid.uuid4().hex
    index = np.array([u for u, *_ in rows] + [pad_uid] * padding_rows, dtype=object)
    first = rows[0] if rows else ("", 0.0, "A", "UNK")
    domains = [d for _, _, d, _ in rows] + [first[2]] * padding_rows  # verl copies the first row's metadata
    groups = [g for _, _, _, g in rows] + [first[3]] * padding_rows
    extra = [{"fair_group": g} if g != "UNK" else {} for g in groups]
    return Batch(
        rewards,
        mask,
        index,
        {"data_source": np.array(domains, dtype=object), "extra_info": np.array(extra, dtype=object), "uid": index},
    )


def row_scalars(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The per-row scalar advantage (every valid token carries the same value)."""
    return advantages.sum(-1) / mask.sum(-1).clamp(min=1)
