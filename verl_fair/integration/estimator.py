# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The ``fair_grpo`` advantage estimator as verl registers it (``verl.trainer.ppo.core_algos``).

It has the shape of verl's own estimators: tensors in, ``(advantages, returns)`` out. Each prompt's data
source and group come from ``non_tensor_batch`` (passed by trainers that hand it to estimators, as
upstream PR #7473 proposes), from the uid table a metadata hook published (the v1 sampler, or on
``RayPPOTrainer`` :mod:`verl_fair.integration.legacy`; :mod:`verl_fair.integration.context`), or from
nowhere: then every prompt is UNK in one domain and groups are found by clustering (label-free mode). The
math is :class:`verl_fair.algorithm.core.FairGRPO`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from verl_fair.algorithm.advantage import PromptBatch, group_prompts
from verl_fair.config import FairGRPOConfig
from verl_fair.groups.labels import LABEL_FREE_DOMAIN, UNK, GroupLabeler, PromptMetadata, label_prompts
from verl_fair.integration import context

logger = logging.getLogger(__name__)

ENABLE_LABELS_HINT = (
    "To train with demographic groups, enable the metadata sampler "
    "(trainer.v1.sampler.custom_sampler.path=pkg://verl_fair.integration.sampler) or use the shipped config "
    "(--config-path=$(verl-fair config-dir) --config-name=fair_grpo_trainer); rows need extra_info with "
    "sex/age or fair_group."
)
_warned: set[str] = set()


class MissingLabelsError(RuntimeError):
    """``labels: required`` but no metadata reached the estimator."""


def compute_fair_grpo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    config: Mapping[str, Any] | None = None,
    non_tensor_batch: Mapping[str, np.ndarray] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FairGRPO outcome advantages (Dai et al., arXiv 2510.19893).

    GRPO scores per prompt, divided by a per-group factor sqrt(N_d) mu_d sqrt(N_g) mu_g built from the
    running statistics of the prompt's data source d and demographic group g, then renormalised by the
    batch std (or another rule from ``algorithm.fair_grpo.weighting``).

    Args:
        token_level_rewards: ``(bs, response_length)``; a row's sum is its outcome reward.
        response_mask: ``(bs, response_length)``.
        index: ``(bs,)`` uid of each row's prompt; verl's padding rows (uid ``pad<hex>``, empty response) get 0.
        config: verl's ``algorithm`` section; FairGRPO's settings are under ``fair_grpo``.
        non_tensor_batch: optional per-row metadata with ``data_source`` (or the configured key) and
            ``extra_info`` arrays.

    Returns:
        ``(advantages, returns)``, both ``(bs, response_length)`` and equal, zero where the mask is.

    Raises:
        FairGRPOConfigError: a bad ``algorithm.fair_grpo`` setting.
        ValueError: inputs of the wrong shape or a missing uid (the message names the argument).
        NonFiniteRewardError: NaN or infinite rewards (the message names the uids).
    """
    cfg = FairGRPOConfig.from_algorithm(config)
    check_inputs(token_level_rewards, response_mask, index, non_tensor_batch)
    state = context.get_state(cfg)
    with torch.no_grad():
        batch = group_prompts(token_level_rewards.sum(dim=-1), index)
        if cfg.variant == "official" and bool((batch.rewards < 0).any()):
            _warn_once(
                "negative_rewards",
                "fair_grpo variant=official assumes non-negative rewards (its factors are mean rewards): with "
                f"negative rewards, here {int((batch.rewards < 0).sum())} rows, groups with a negative mean get "
                "advantages of the opposite sign to GRPO's. Use rewards in [0, 1] or variant=paper.",
            )
        metadata = prompt_metadata(batch, non_tensor_batch, cfg)
        domains, groups, labels = ([m[i] for m in metadata] for i in range(3))
        if cfg.labels == "none":  # latent groups only; the labels serve to measure their alignment
            report = state.step(batch, domains, [UNK] * len(groups), reference_groups=groups, labels=labels)
        else:
            report = state.step(batch, domains, groups, labels=labels)
        context.record(report)
        scalars = report.advantages.to(device=token_level_rewards.device, dtype=token_level_rewards.dtype)
        advantages = scalars.unsqueeze(-1) * response_mask
    return advantages, advantages


def check_inputs(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None,
    non_tensor_batch: Mapping[str, np.ndarray] | None,
) -> None:
    """Raise a ValueError naming the argument when the inputs do not have verl's shapes."""
    if not isinstance(token_level_rewards, torch.Tensor) or token_level_rewards.dim() != 2:
        shape = tuple(getattr(token_level_rewards, "shape", ()))
        raise ValueError(f"fair_grpo: token_level_rewards must be a (batch, response_length) tensor, got shape {shape}")
    if not isinstance(response_mask, torch.Tensor) or tuple(response_mask.shape) != tuple(token_level_rewards.shape):
        raise ValueError(
            f"fair_grpo: response_mask has shape {tuple(getattr(response_mask, 'shape', ()))} but token_level_rewards "
            f"has {tuple(token_level_rewards.shape)}; they must match"
        )
    rows = token_level_rewards.shape[0]
    if index is not None and len(index) != rows:
        raise ValueError(f"fair_grpo: index has {len(index)} uids for {rows} rows of token_level_rewards")
    for name, column in (non_tensor_batch or {}).items():
        if hasattr(column, "__len__") and not isinstance(column, (str, bytes)) and len(column) != rows:
            raise ValueError(f"fair_grpo: non_tensor_batch[{name!r}] has {len(column)} entries for {rows} rows")


def prompt_metadata(
    batch: PromptBatch, non_tensor_batch: Mapping[str, np.ndarray] | None, cfg: FairGRPOConfig
) -> list[PromptMetadata]:
    """Domain, group key and gold label of each prompt, from the batch, the published uid table, or neither."""
    columns = (cfg.data_source_key, "extra_info", "reward_model")
    if non_tensor_batch is not None and any(c in non_tensor_batch for c in columns):
        sources, infos, models = (non_tensor_batch.get(c) for c in columns)
        return label_prompts(
            *(None if column is None else [column[r] for r in batch.first_row] for column in (sources, infos)),
            _labeler(cfg.group_attributes, cfg.age_bins),
            None if models is None else [models[r] for r in batch.first_row],
        )
    published = context.take(batch.uids)
    found = [entry for entry in published if entry is not None]
    if found:
        if len(found) < len(published):
            logger.warning(
                "fair_grpo: %d of %d prompts had no published metadata; they count as UNK in domain %r.",
                len(published) - len(found),
                len(published),
                LABEL_FREE_DOMAIN,
            )
        return [entry or PromptMetadata(LABEL_FREE_DOMAIN, UNK) for entry in published]
    if cfg.labels == "required":
        raise MissingLabelsError(
            "algorithm.fair_grpo.labels=required, but no data source or demographics reached fair_grpo. "
            + ENABLE_LABELS_HINT
        )
    _warn_once(
        "label_free",
        "fair_grpo found no per-sample metadata (data source, demographics) and runs label-free: every prompt "
        "is UNK in one domain and groups are latent clusters of reward vectors. " + ENABLE_LABELS_HINT,
    )
    return [PromptMetadata(LABEL_FREE_DOMAIN, UNK)] * batch.num_prompts


@functools.cache
def _labeler(attributes: tuple[str, ...], age_bins: tuple[float, ...]) -> GroupLabeler:
    """One labeler per setting for the process, so that each misspelt attribute is reported once."""
    return GroupLabeler(attributes, age_bins)


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)
