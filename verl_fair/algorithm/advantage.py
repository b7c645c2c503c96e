# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Rows to prompts, per-prompt GRPO scores and the batch renormalisation (pure torch/numpy).

Rows are grouped by ``index`` (verl's uid), never by position: verl reorders rows for sequence
balancing. Uids of different types stay different prompts (``0`` is not ``"0"``); a missing uid is an
error. verl's synthetic padding rows (``_balance_batch``: uid ``pad`` + 32 hex digits) are left out of
every statistic and get advantage 0; a real uid that merely starts with ``pad`` is a prompt like any
other. Prompts appear in the order of their first row, as in the
authors' code, whose clustering history depends on that order.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

PADDING_UID = re.compile(r"pad[0-9a-f]{32}")  # verl's padding_utils: f"pad{uuid.uuid4().hex}"


class NonFiniteRewardError(ValueError):
    """Rewards that are NaN or infinite: the message says how many rows and which uids."""


@dataclass
class PromptBatch:
    """A batch regrouped by prompt.

    Attributes:
        rows: ``(R,)`` positions of the real (non-padding) rows in the batch.
        prompt: ``(R,)`` prompt number of each real row, in ``0..P-1``.
        uids: ``P`` uids, in order of first appearance.
        first_row: ``(P,)`` batch position of each prompt's first row.
        counts: ``(P,)`` rollouts per prompt.
        rewards: ``(R,)`` float32 outcome rewards of the real rows.
        padding_rows: number of padding rows left out.
    """

    rows: np.ndarray
    prompt: np.ndarray
    uids: list
    first_row: np.ndarray
    counts: np.ndarray
    rewards: torch.Tensor
    padding_rows: int

    @property
    def num_prompts(self) -> int:
        return len(self.uids)

    def reward_sums(self) -> np.ndarray:
        """``(P,)`` float64 sum of each prompt's rollout rewards."""
        return np.bincount(self.prompt, weights=self.rewards.double().numpy(), minlength=self.num_prompts)

    def vectors(self, prompts: np.ndarray | None = None) -> list[np.ndarray]:
        """float32 reward vectors of the given prompts (default all), rollouts in row order."""
        order = np.argsort(self.prompt, kind="stable")
        splits = np.split(self.rewards.numpy()[order], np.cumsum(self.counts)[:-1])
        return splits if prompts is None else [splits[p] for p in prompts]


def is_padding(uid: object) -> bool:
    """A row verl appended as padding: its uid has the form verl gives padding (``pad`` + a uuid4 in hex)."""
    return isinstance(uid, str) and PADDING_UID.fullmatch(uid) is not None


def _uid_key(uid: object, row: int) -> tuple:
    """A hashable key that keeps uids of different types apart (``0``, ``"0"`` and ``0.0`` are three prompts)."""
    if uid is None or (isinstance(uid, float) and math.isnan(uid)):
        raise ValueError(
            f"fair_grpo: row {row} has no uid ({uid!r}); every row needs its prompt's uid in non_tensor_batch['uid']."
        )
    if isinstance(uid, str):
        return (str, str(uid))
    if isinstance(uid, (int, np.integer)) and not isinstance(uid, bool):
        return (int, int(uid))
    try:
        hash(uid)
    except TypeError:
        raise ValueError(f"fair_grpo: row {row} has an unhashable uid {uid!r}; uids must be strings") from None
    return (type(uid), uid)


def group_prompts(scores: torch.Tensor, index: np.ndarray) -> PromptBatch:
    """Regroup the ``(B,)`` outcome rewards by uid; raise on missing uids and on NaN or infinite rewards."""
    if index is None:
        raise ValueError(
            "fair_grpo needs `index` (verl's uid array) to group rollouts by prompt; "
            "verl passes it whenever non_tensor_batch holds 'uid'."
        )
    index = np.asarray(index, dtype=object)
    if index.shape != (scores.shape[0],):
        raise ValueError(f"index has shape {index.shape} but token_level_rewards has {scores.shape[0]} rows")
    real = np.fromiter((not is_padding(u) for u in index), dtype=bool, count=len(index))
    rows = np.flatnonzero(real)
    rewards = scores.detach()[torch.from_numpy(rows)].to(torch.float32).cpu()
    bad = ~torch.isfinite(rewards)
    if bool(bad.any()):
        bad_uids = sorted({str(u) for u in index[rows[bad.numpy()]]})
        shown = ", ".join(bad_uids[:5]) + (f" and {len(bad_uids) - 5} more" if len(bad_uids) > 5 else "")
        raise NonFiniteRewardError(
            f"fair_grpo got {int(bad.sum())} NaN or infinite reward row(s) in {len(bad_uids)} prompt(s) "
            f"(uids {shown}); check the reward function's output for these samples."
        )
    number: dict[tuple, int] = {}
    prompt = np.fromiter(
        (number.setdefault(_uid_key(index[r], int(r)), len(number)) for r in rows), dtype=np.int64, count=len(rows)
    )
    first_row = np.full(len(number), len(index), dtype=np.int64)
    np.minimum.at(first_row, prompt, rows)  # the first row of each prompt
    return PromptBatch(
        rows=rows,
        prompt=prompt,
        uids=[index[r] for r in first_row],
        first_row=first_row,
        counts=np.bincount(prompt, minlength=len(number)),
        rewards=rewards,
        padding_rows=int(len(index) - len(rows)),
    )


def grpo_scores(batch: PromptBatch, norm_by_std: bool, epsilon: float) -> torch.Tensor:
    """``(R,)`` float32 GRPO scores: (r - mean) / (std + eps) per prompt, unbiased std.

    A single-rollout prompt gets mean 0 and std 1, as in verl's ``grpo``; ``norm_by_std=False``
    keeps the centred score (Dr.GRPO). Prompts are stacked by rollout count, so uneven counts work.
    """
    mean = torch.zeros(batch.num_prompts, dtype=torch.float32)
    std = torch.ones(batch.num_prompts, dtype=torch.float32)
    order = np.argsort(batch.prompt, kind="stable")
    sorted_rewards = batch.rewards[torch.from_numpy(order)]
    starts = np.concatenate([[0], np.cumsum(batch.counts)[:-1]])
    for m in np.unique(batch.counts):
        if m < 2:
            continue
        prompts = np.flatnonzero(batch.counts == m)
        block = sorted_rewards[torch.from_numpy(starts[prompts][:, None] + np.arange(m))]
        mean[prompts] = block.mean(dim=1)
        std[prompts] = block.std(dim=1)
    prompt = torch.from_numpy(batch.prompt)
    centred = batch.rewards - mean[prompt]
    return centred / (std[prompt] + epsilon) if norm_by_std else centred


def renormalise_by_batch_std(scores: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Divide by (unbiased std over the real rows + eps); fewer than two rows are left as they are."""
    if scores.numel() < 2:
        return scores
    return scores / (torch.std(scores) + epsilon)


def scatter_rows(values: torch.Tensor, batch: PromptBatch, batch_size: int) -> torch.Tensor:
    """``(B,)`` tensor holding ``values`` at the real rows and 0 at padding rows."""
    out = torch.zeros(batch_size, dtype=values.dtype)
    out[torch.from_numpy(batch.rows)] = values
    return out
