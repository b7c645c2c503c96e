"""Weighting rules: how per-group statistics turn GRPO scores into advantages (docs/method.md §7).

A rule is a :class:`WeightingRule` subclass registered under a name with :func:`register_weighting`,
as verl registers advantage estimators; ``algorithm.fair_grpo.weighting`` picks it. A rule declares the
settings it reads (:attr:`WeightingRule.knobs`), which the configuration validates and the shipped YAML
lists, and keeps any cross-step state behind ``state_dict()`` / ``load_state_dict()``.

Every rule sees the same :class:`RuleInput`: the batch's GRPO scores and, per prompt, its domain's and
its group's question visits N and mean reward mu over the statistics window. Guards count the rows they
touch in ``counters``, under the names that the training metrics log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from verl_fair.algorithm.advantage import renormalise_by_batch_std
from verl_fair.algorithm.state import StateError, expect, expect_array
from verl_fair.settings import Knob, number

if TYPE_CHECKING:
    from verl_fair.config import FairGRPOConfig


@dataclass
class GroupView:
    """Per prompt (arrays of length P): domain and group statistics, and the group's key."""

    domain_count: np.ndarray
    domain_mean: np.ndarray
    group_count: np.ndarray
    group_mean: np.ndarray
    group_keys: list[tuple[str, str]]


@dataclass
class RuleInput:
    """What a rule weighs: ``scores`` ``(R,)`` per real row, ``prompt`` ``(R,)`` the prompt of each row,
    ``rollouts`` and ``prompt_means`` ``(P,)``, the :class:`GroupView` (None for rules that use no groups)
    and the guard ``counters``."""

    scores: torch.Tensor
    prompt: torch.Tensor
    rollouts: np.ndarray
    prompt_means: np.ndarray
    view: GroupView | None
    counters: Counter


class WeightingRule:
    """One rule. Subclasses set ``summary`` (and ``knobs``, ``uses_groups``) and implement :meth:`weights`,
    or :meth:`apply` when the advantages are not ``weight * score``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    knobs: ClassVar[tuple[Knob, ...]] = ()
    uses_groups: ClassVar[bool] = True

    def __init__(self, config: FairGRPOConfig) -> None:
        self.config = config

    def weights(self, inputs: RuleInput) -> np.ndarray:
        """``(P,)`` weight of each prompt."""
        raise NotImplementedError

    def apply(self, inputs: RuleInput) -> tuple[torch.Tensor, np.ndarray]:
        """``(R,)`` advantages of the real rows and the ``(P,)`` prompt weights."""
        weights = self.weights(inputs)
        return inputs.scores * torch.from_numpy(weights.astype(np.float32))[inputs.prompt], weights

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise StateError(f"rule: weighting {self.name!r} keeps no state, the file has {sorted(state)}")


WEIGHTING_RULES: dict[str, type[WeightingRule]] = {}


def register_weighting(name: str) -> Callable[[type[WeightingRule]], type[WeightingRule]]:
    """Class decorator registering a rule under ``name`` (a different class under a taken name raises)."""

    def decorator(cls: type[WeightingRule]) -> type[WeightingRule]:
        existing = WEIGHTING_RULES.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"weighting rule {name!r} is already registered by {existing.__qualname__}")
        cls.name = name
        WEIGHTING_RULES[name] = cls
        return cls

    return decorator


def raise_small_groups(view: GroupView, min_size: int | None, rollouts: np.ndarray, counters: Counter) -> None:
    """``min_group_size``: a group with fewer question visits counts as ``min_size`` visits (in place).

    Its mean reward is kept, so for a given mean the weight never falls as the group shrinks, and the
    group-size part of the up-weighting is bounded by sqrt(min_size).
    """
    if not min_size:
        return
    small = view.group_count < min_size
    view.group_count = np.where(small, float(min_size), view.group_count)
    counters["small_group"] += int(rollouts[small].sum())


def fairgrpo_factors(view: GroupView, cfg: FairGRPOConfig, rollouts: np.ndarray, counters: Counter) -> np.ndarray:
    """Per-prompt factor F = T_d * T_g with T = sqrt(N) * mu; the batch divides its scores by F.

    ``official``: T_d is clamped at eps, the product is not (the authors' code). ``paper``: the product
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


def cap_weights(weights: np.ndarray, ratio: float | None, rollouts: np.ndarray, counters: Counter) -> np.ndarray:
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


@register_weighting("fairgrpo")
class FairGRPOWeighting(WeightingRule):
    summary = "the paper: scores / (sqrt(N_d) mu_d sqrt(N_g) mu_g), then / batch std"

    def apply(self, inputs: RuleInput) -> tuple[torch.Tensor, np.ndarray]:
        """a = s / F per row in float32 (the official variant keeps s where that is NaN or infinite),
        then the batch-std renormalisation."""
        cfg = self.config
        factor = fairgrpo_factors(inputs.view, cfg, inputs.rollouts, inputs.counters)
        with np.errstate(divide="ignore"):
            weights = 1.0 / factor
        scaled = inputs.scores / torch.from_numpy(factor.astype(np.float32))[inputs.prompt]
        if cfg.variant == "official":
            bad = ~torch.isfinite(scaled)
            inputs.counters["nonfinite_fallback"] += int(bad.sum())
            scaled = torch.where(bad, inputs.scores, scaled)
        return renormalise_by_batch_std(scaled, cfg.epsilon), weights


@register_weighting("alpha_fair")
class AlphaFairWeighting(WeightingRule):
    summary = "w_g proportional to (reward_max - mu_g)^alpha, mean 1 (alpha 0: GRPO)"
    knobs = (Knob("alpha", 1.0, "alpha_fair: exponent of the reward deficit (0 gives plain GRPO)", number(0, 10)),)

    def weights(self, inputs: RuleInput) -> np.ndarray:
        cfg = self.config
        deficit = np.maximum(cfg.reward_max - inputs.view.group_mean, cfg.epsilon)
        weights = normalise_mean(deficit ** cfg.rule("alpha"), inputs.rollouts)
        return cap_weights(weights, cfg.max_weight_ratio, inputs.rollouts, inputs.counters)


@register_weighting("group_dro")
class GroupDROWeighting(WeightingRule):
    """Exponentiated-gradient group weights with the C / sqrt(N_g) adjustment (Sagawa et al. 2020).

    L_g accumulates reward_max - (batch mean reward of g) + C / sqrt(N_g) at every step the group appears;
    w_g = exp(eta * L_g) / sum_h p_h exp(eta * L_h), p_h the group's share of the batch's rows, so the
    mean weight is 1 and eta = 0 gives plain GRPO.
    """

    summary = "exponentiated gradient on group losses, mean 1 (step size 0: GRPO)"
    knobs = (
        Knob("dro_step_size", 0.01, "group_dro: step size eta of the exponentiated gradient (0 gives plain GRPO)",
             number(0, 10)),
        Knob("dro_size_adjustment", 0.0, "group_dro: C in the C / sqrt(N_g) generalisation adjustment",
             number(0, 100)),
    )  # fmt: skip

    def __init__(self, config: FairGRPOConfig) -> None:
        super().__init__(config)
        self.losses_: dict[tuple[str, str], float] = {}

    def weights(self, inputs: RuleInput) -> np.ndarray:
        cfg, view = self.config, inputs.view
        keys = list(dict.fromkeys(view.group_keys))
        position = {k: i for i, k in enumerate(keys)}
        group_of = np.array([position[k] for k in view.group_keys], dtype=np.int64)
        rows = np.bincount(group_of, weights=inputs.rollouts, minlength=len(keys))
        reward = np.bincount(group_of, weights=inputs.prompt_means * inputs.rollouts, minlength=len(keys)) / rows
        first = np.array([np.argmax(group_of == g) for g in range(len(keys))])
        size = view.group_count[first]
        for g, key in enumerate(keys):
            adjustment = cfg.rule("dro_size_adjustment") / np.sqrt(max(size[g], 1.0))
            self.losses_[key] = self.losses_.get(key, 0.0) + (cfg.reward_max - reward[g]) + adjustment
        logits = cfg.rule("dro_step_size") * np.array([self.losses_[k] for k in keys])
        share = rows / rows.sum()
        exp = np.exp(logits - logits.max())
        group_weight = exp / np.dot(share, exp)
        return cap_weights(group_weight[group_of], cfg.max_weight_ratio, inputs.rollouts, inputs.counters)

    def state_dict(self) -> dict[str, Any]:
        return {"keys": [list(k) for k in self.losses_], "losses": np.array(list(self.losses_.values()), dtype=float)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = expect(state, "keys", list, "rule")
        losses = expect_array(state, "losses", "rule", ndim=1, length=len(keys))
        if not all(isinstance(k, list) and len(k) == 2 and all(isinstance(p, str) for p in k) for k in keys):
            raise StateError("rule.keys must be [data source, group] pairs")
        self.losses_ = {(d, g): float(v) for (d, g), v in zip(keys, losses, strict=True)}


@register_weighting("none")
class NoWeighting(WeightingRule):
    summary = "plain GRPO through the same code path (matched baselines)"
    uses_groups = False

    def apply(self, inputs: RuleInput) -> tuple[torch.Tensor, np.ndarray]:
        return inputs.scores, np.ones(len(inputs.rollouts))
