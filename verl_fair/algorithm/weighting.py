"""Per-prompt weighting rules (method.md sections 2, 3.3, 13.4 and 13.7).

Every rule sees the same :class:`GroupView`: per prompt, its domain's and its group's question
visits N and mean reward mu over the statistics window. Guards count the rows they touch in a
``counters`` dict, under the names that the training metrics log.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from verl_fair.config import FairGRPOConfig


@dataclass
class GroupView:
    """Per prompt (arrays of length P): domain and group statistics, and the group's key."""

    domain_count: np.ndarray
    domain_mean: np.ndarray
    group_count: np.ndarray
    group_mean: np.ndarray
    group_keys: list[Hashable]


def pool_small_groups(view: GroupView, min_size: int | None, rollouts: np.ndarray, counters: dict) -> None:
    """``min_group_size``: a group with fewer visits takes its domain's N and mu (in place)."""
    if not min_size:
        return
    small = view.group_count < min_size
    view.group_count = np.where(small, view.domain_count, view.group_count)
    view.group_mean = np.where(small, view.domain_mean, view.group_mean)
    counters["small_group_pool"] += int(rollouts[small].sum())


def fairgrpo_factors(view: GroupView, cfg: FairGRPOConfig, rollouts: np.ndarray, counters: dict) -> np.ndarray:
    """Per-prompt factor F = T_d * T_g with T = sqrt(N) * mu; the batch divides its scores by F.

    ``official``: T_d is clamped at eps, the product is not (method.md 3.3). ``paper``: the product
    is clamped, max(T_d * T_g, eps). ``reward_floor`` raises every mean to the floor first, and
    ``max_weight_ratio`` bounds max(1/F) / min(1/F).
    """
    domain_mean, group_mean = view.domain_mean, view.group_mean
    if cfg.reward_floor is not None:
        floored = (domain_mean < cfg.reward_floor) | (group_mean < cfg.reward_floor)
        counters["reward_floor"] += int(rollouts[floored].sum())
        domain_mean = np.maximum(domain_mean, cfg.reward_floor)
        group_mean = np.maximum(group_mean, cfg.reward_floor)
    if cfg.variant == "official":
        domain_factor = np.maximum(np.sqrt(view.domain_count) * domain_mean, cfg.epsilon)
        factor = domain_factor * np.sqrt(view.group_count) * group_mean
    else:
        factor = np.maximum(
            np.sqrt(view.domain_count) * domain_mean * np.sqrt(view.group_count) * group_mean, cfg.epsilon
        )
    if cfg.max_weight_ratio is not None:
        usable = np.isfinite(factor) & (factor > 0)
        if usable.any():
            lowest = factor[usable].max() / cfg.max_weight_ratio
            capped = usable & (factor < lowest)
            counters["weight_cap"] += int(rollouts[capped].sum())
            factor = np.where(capped, lowest, factor)
    return factor


def cap_weights(weights: np.ndarray, ratio: float | None, rollouts: np.ndarray, counters: dict) -> np.ndarray:
    """``max_weight_ratio``: w <- min(w, ratio * min(w))."""
    if ratio is None or len(weights) == 0:
        return weights
    ceiling = ratio * weights.min()
    capped = weights > ceiling
    counters["weight_cap"] += int(rollouts[capped].sum())
    return np.where(capped, ceiling, weights)


def normalise_mean(weights: np.ndarray, rollouts: np.ndarray) -> np.ndarray:
    """Scale so that the mean weight over the real rows is 1."""
    return weights * (rollouts.sum() / np.dot(weights, rollouts))


def alpha_fair_weights(view: GroupView, cfg: FairGRPOConfig, rollouts: np.ndarray, counters: dict) -> np.ndarray:
    """w_g proportional to max(r_max - mu_g, eps)^alpha, mean 1 over the rows, then capped."""
    deficit = np.maximum(cfg.reward_max - view.group_mean, cfg.epsilon)
    weights = normalise_mean(deficit**cfg.alpha, rollouts)
    return cap_weights(weights, cfg.max_weight_ratio, rollouts, counters)


class GroupDRO:
    """Exponentiated-gradient group weights with the C / sqrt(N_g) adjustment (Sagawa et al. 2020).

    L_g accumulates r_max - (batch mean reward of g) + C / sqrt(N_g) at every step the group appears;
    w_g = exp(eta * L_g) / sum_h p_h exp(eta * L_h), p_h the group's share of the batch's rows, so the
    mean weight is 1 and eta = 0 gives plain GRPO.
    """

    def __init__(self) -> None:
        self.losses_: dict[Hashable, float] = {}

    def weights(
        self, view: GroupView, prompt_means: np.ndarray, rollouts: np.ndarray, cfg: FairGRPOConfig, counters: dict
    ) -> np.ndarray:
        keys = list(dict.fromkeys(view.group_keys))
        position = {k: i for i, k in enumerate(keys)}
        group_of = np.array([position[k] for k in view.group_keys], dtype=np.int64)
        rows = np.bincount(group_of, weights=rollouts, minlength=len(keys))
        reward = np.bincount(group_of, weights=prompt_means * rollouts, minlength=len(keys)) / rows
        size = np.array([view.group_count[np.argmax(group_of == g)] for g in range(len(keys))])
        for g, key in enumerate(keys):
            adjustment = cfg.dro_size_adjustment / np.sqrt(max(size[g], 1.0))
            self.losses_[key] = self.losses_.get(key, 0.0) + (cfg.reward_max - reward[g]) + adjustment
        logits = cfg.dro_step_size * np.array([self.losses_[k] for k in keys])
        share = rows / rows.sum()
        exp = np.exp(logits - logits.max())
        group_weight = exp / np.dot(share, exp)
        return cap_weights(group_weight[group_of], cfg.max_weight_ratio, rollouts, counters)

    def state_dict(self) -> dict:
        return {"losses": dict(self.losses_)}

    def load_state_dict(self, state: dict) -> None:
        self.losses_ = dict(state["losses"])
