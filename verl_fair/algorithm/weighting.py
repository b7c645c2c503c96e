# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
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
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from verl_fair.algorithm.state import StateError, expect, expect_array
from verl_fair.normalise.diagnosis import label_key
from verl_fair.settings import Invalid, Knob, choice, number

OFFICIAL_ND_FACTOR_CEILING = 1e6  # the authors' fair_grpo_nd bounds its factor to [eps, 1e6]


class RuleSettings(Protocol):
    """The settings a rule reads: :class:`verl_fair.config.FairGRPOConfig`, which builds its knobs from the
    rules registered here (so this module never imports it)."""

    variant: str
    weighting: str
    epsilon: float
    reward_floor: float | None
    max_weight_ratio: float | None
    batch_std: str | bool
    reward_max: float

    def rule(self, key: str) -> Any: ...


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
    """What a rule weighs: ``scores`` and outcome ``rewards`` ``(R,)`` per real row, ``prompt`` ``(R,)`` the prompt
    of each row, ``rollouts`` and ``prompt_means`` ``(P,)``, the :class:`GroupView` (None for rules that use no
    groups), the guard ``counters`` and each prompt's gold ``labels`` (None where unknown)."""

    scores: torch.Tensor
    rewards: torch.Tensor
    prompt: torch.Tensor
    rollouts: np.ndarray
    prompt_means: np.ndarray
    view: GroupView | None
    counters: Counter
    labels: list[str | None]


class WeightingRule:
    """One rule. Subclasses set ``summary`` (and ``knobs``, ``uses_groups``) and implement :meth:`weights`,
    or :meth:`apply` when the advantages are not ``weight * score``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    knobs: ClassVar[tuple[Knob, ...]] = ()
    uses_groups: ClassVar[bool] = True
    batch_std: ClassVar[bool] = False  # whether ``batch_std: auto`` divides this rule's advantages by their std

    def __init__(self, config: RuleSettings) -> None:
        self.config = config

    def weights(self, inputs: RuleInput) -> np.ndarray:
        """``(P,)`` weight of each prompt."""
        raise NotImplementedError

    def apply(self, inputs: RuleInput) -> tuple[torch.Tensor, np.ndarray]:
        """``(R,)`` advantages of the real rows and the ``(P,)`` prompt weights."""
        weights = self.weights(inputs)
        return inputs.scores * torch.from_numpy(weights.astype(np.float32))[inputs.prompt], weights

    def metrics(self) -> dict[str, float]:
        """The rule's own metrics of its last step (``fair/<rule>/<name>``; no max/min/sum/total in names)."""
        return {}

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


def fairgrpo_factors(view: GroupView, cfg: RuleSettings, rollouts: np.ndarray, counters: Counter) -> np.ndarray:
    """Per-prompt factor F = T_d * T_g with T = sqrt(N) * mu; the batch divides its scores by F.

    ``official``: T_d is clamped at eps, the product is not (the authors' ``fair_grpo``). ``official_nd``: T_d
    and mu_g are clamped at eps and F to [eps, 1e6] (the authors' ``fair_grpo_nd``; its mu_d comes from the
    clusters). ``paper``: the product is clamped, max(T_d * T_g, eps). ``reward_floor`` raises every mean to
    the floor first, and ``max_weight_ratio`` bounds max(1/F) / min(1/F).
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
    elif cfg.variant == "official_nd":
        domain_factor = np.maximum(np.sqrt(view.domain_count) * domain_mean, cfg.epsilon)
        factor = domain_factor * np.sqrt(view.group_count) * np.maximum(group_mean, cfg.epsilon)
        factor = np.clip(factor, cfg.epsilon, OFFICIAL_ND_FACTOR_CEILING)
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


def capped_mean_one(
    log_weights: np.ndarray, ratio: float | None, rollouts: np.ndarray, counters: Counter
) -> np.ndarray:
    """Weights from their logs (-inf: weight 0): ``max_weight_ratio`` caps w <- min(w, ratio * smallest positive w),
    then the weights are scaled to mean 1 over the real rows, since the cap alone would pull the mean below 1 and
    shrink every advantage. Working in logs keeps a tiny weight from underflowing to 0."""
    finite = log_weights[np.isfinite(log_weights)]
    if ratio is not None and finite.size:
        ceiling = finite.min() + np.log(ratio)
        capped = log_weights > ceiling
        counters["weight_cap"] += int(rollouts[capped].sum())
        log_weights = np.minimum(log_weights, ceiling)
    return normalise_mean(np.exp(log_weights - log_weights.max()), rollouts)


def normalise_mean(weights: np.ndarray, rollouts: np.ndarray) -> np.ndarray:
    """Scale so that the mean weight over the real rows is 1."""
    return weights * (rollouts.sum() / np.dot(weights, rollouts))


def uses_batch_std(cfg: RuleSettings) -> bool:
    """``batch_std`` resolved for the configured rule (``auto``: the rule's own choice)."""
    return WEIGHTING_RULES[cfg.weighting].batch_std if cfg.batch_std == "auto" else cfg.batch_std


@register_weighting("fairgrpo")
class FairGRPOWeighting(WeightingRule):
    summary = "the paper: scores / (sqrt(N_d) mu_d sqrt(N_g) mu_g), then / batch std"
    batch_std = True

    def apply(self, inputs: RuleInput) -> tuple[torch.Tensor, np.ndarray]:
        """a = s / F per row in float32 (where that is NaN or infinite, ``official`` keeps s and ``official_nd`` the
        row's raw reward, as the authors' code does); with ``batch_std: false`` the weights 1/F are scaled to mean 1
        instead (the batch std then divides nothing)."""
        cfg = self.config
        factor = fairgrpo_factors(inputs.view, cfg, inputs.rollouts, inputs.counters)
        with np.errstate(divide="ignore"):
            weights = 1.0 / factor
        if not uses_batch_std(cfg):
            weights = normalise_mean(weights, inputs.rollouts)
            return inputs.scores * torch.from_numpy(weights.astype(np.float32))[inputs.prompt], weights
        scaled = inputs.scores / torch.from_numpy(factor.astype(np.float32))[inputs.prompt]
        if cfg.variant in ("official", "official_nd"):
            bad = ~torch.isfinite(scaled)
            inputs.counters["nonfinite_fallback"] += int(bad.sum())
            scaled = torch.where(bad, inputs.scores if cfg.variant == "official" else inputs.rewards, scaled)
        return scaled, weights


@register_weighting("alpha_fair")
class AlphaFairWeighting(WeightingRule):
    summary = "w_g proportional to (reward_max - mu_g)^alpha, mean 1 (alpha 0: GRPO)"
    knobs = (Knob("alpha", 1.0, "alpha_fair: exponent of the reward deficit (0 gives plain GRPO)", number(0, 10)),)

    def weights(self, inputs: RuleInput) -> np.ndarray:
        cfg = self.config
        deficit = np.maximum(cfg.reward_max - inputs.view.group_mean, cfg.epsilon)
        log_weights = cfg.rule("alpha") * np.log(deficit)
        return capped_mean_one(log_weights, cfg.max_weight_ratio, inputs.rollouts, inputs.counters)


@register_weighting("group_dro")
class GroupDROWeighting(WeightingRule):
    """Exponentiated-gradient group weights with the C / sqrt(N_g) adjustment (Sagawa et al. 2020).

    L_g accumulates reward_max - (batch mean reward of g) + C / sqrt(N_g) at every step the group appears;
    w_g = exp(eta * L_g) / sum_h p_h exp(eta * L_h), p_h the group's share of the batch's rows, so the
    mean weight is 1 and eta = 0 gives plain GRPO; after ``max_weight_ratio`` caps the largest weights the
    weights are scaled back to mean 1.
    """

    summary = "exponentiated gradient on group losses, mean 1 (step size 0: GRPO)"
    knobs = (
        Knob("dro_step_size", 0.01, "group_dro: step size eta of the exponentiated gradient (0 gives plain GRPO)",
             number(0, 10)),
        Knob("dro_size_adjustment", 0.0, "group_dro: C in the C / sqrt(N_g) generalisation adjustment",
             number(0, 100)),
    )  # fmt: skip

    def __init__(self, config: RuleSettings) -> None:
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
        return capped_mean_one(logits[group_of], cfg.max_weight_ratio, inputs.rollouts, inputs.counters)

    def state_dict(self) -> dict[str, Any]:
        return {"keys": [list(k) for k in self.losses_], "losses": np.array(list(self.losses_.values()), dtype=float)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = expect(state, "keys", list, "rule")
        losses = expect_array(state, "losses", "rule", ndim=1, length=len(keys))
        if not all(isinstance(k, list) and len(k) == 2 and all(isinstance(p, str) for p in k) for k in keys):
            raise StateError("rule.keys must be [data source, group] pairs")
        self.losses_ = {(d, g): float(v) for (d, g), v in zip(keys, losses, strict=True)}


def _labels_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise Invalid("a list of gold labels, e.g. [melanoma], or [] for every gold label")
    keys = [label_key(v) for v in value]
    if not all(keys):
        raise Invalid("a list of non-empty gold labels, e.g. [melanoma], or [] for every gold label")
    return tuple(keys)


@register_weighting("gap_dual")
class GapDualWeighting(WeightingRule):
    """Weights per (data source, group, gold label) cell from dual ascent on error-rate gap constraints.

    In the spirit of Maheshwari & Perrot's FairGrad (arXiv 2206.10923), not Ban & Ji's: for each
    constrained cell the gap c = e_cell - e_label (the cell's error, reward_max minus its mean reward in
    this batch, minus the error of all groups on that gold label in the data source) must stay within
    +-dual_tolerance. Two non-negative duals per cell rise with the violation, lambda_up += eta (c - tol)
    and lambda_down += eta (-c - tol), clipped at 0. With mu = lambda_up - lambda_down, a row of the cell
    weighs 1 + mu / p_cell - (sum of mu over the label's cells) / p_label (p: shares of the batch's rows),
    which is the gradient of the Lagrangian of the mean error; weights are floored at 0, capped by
    max_weight_ratio and scaled to mean 1. ``equal_opportunity`` constrains the cells of ``positive_labels`` (all
    gold labels when empty: the paper's macro EOD); ``equalized_odds`` constrains every gold label.
    Prompts without a gold label weigh 1. dual_step_size 0 is plain GRPO.
    """

    summary = "dual ascent on per-(group, gold label) error gaps (equal opportunity / odds), mean 1"
    knobs = (
        Knob("dual_constraint", "equal_opportunity", "gap_dual: equal_opportunity (the dual_positive_labels' error "
             "rates equal across groups) | equalized_odds (every gold label's)",
             choice("equal_opportunity", "equalized_odds")),
        Knob("dual_positive_labels", [], "gap_dual: gold labels whose cells equal_opportunity constrains ([] = every "
             "gold label, the paper's macro EOD)", _labels_list),
        Knob("dual_step_size", 0.05, "gap_dual: step size eta of the dual ascent (0 gives plain GRPO)", number(0, 10)),
        Knob("dual_tolerance", 0.02, "gap_dual: gap allowed before a dual variable grows", number(0, 1)),
    )  # fmt: skip

    def __init__(self, config: RuleSettings) -> None:
        super().__init__(config)
        self.duals_: dict[tuple[str, str, str], tuple[float, float]] = {}
        self._last: dict[str, float] = {}

    def weights(self, inputs: RuleInput) -> np.ndarray:
        cfg, view = self.config, inputs.view
        constrained = cfg.rule("dual_positive_labels") if cfg.rule("dual_constraint") == "equal_opportunity" else ()
        cells = [
            (d, g, y) if y is not None and (not constrained or y in constrained) else None
            for (d, g), y in zip(view.group_keys, inputs.labels, strict=True)
        ]
        rows, errors = Counter(), Counter()
        for cell, rollouts, mean in zip(cells, inputs.rollouts, inputs.prompt_means, strict=True):
            if cell is not None:
                for key in (cell, (cell[0], cell[2])):
                    rows[key] += rollouts
                    errors[key] += rollouts * (cfg.reward_max - mean)
        eta, tolerance = cfg.rule("dual_step_size"), cfg.rule("dual_tolerance")
        gaps = {}
        for cell in {c for c in cells if c is not None}:
            gap = errors[cell] / rows[cell] - errors[(cell[0], cell[2])] / rows[(cell[0], cell[2])]
            up, down = self.duals_.get(cell, (0.0, 0.0))
            self.duals_[cell] = (max(0.0, up + eta * (gap - tolerance)), max(0.0, down + eta * (-gap - tolerance)))
            gaps[cell] = gap
        total = inputs.rollouts.sum()
        label_mu = Counter()
        for cell in gaps:
            up, down = self.duals_[cell]
            label_mu[(cell[0], cell[2])] += up - down
        weights = np.ones(len(cells))
        for p, cell in enumerate(cells):
            if cell is not None:
                up, down = self.duals_[cell]
                label = (cell[0], cell[2])
                weights[p] = 1 + (up - down) / (rows[cell] / total) - label_mu[label] / (rows[label] / total)
        with np.errstate(divide="ignore"):
            log_weights = np.log(np.maximum(weights, 0.0)) if weights.max() > 0 else np.zeros(len(cells))
        self._last = {
            "fair/gap_dual/largest_gap": max((abs(g) for g in gaps.values()), default=0.0),
            "fair/gap_dual/active_cells": float(sum(up + down > 0 for up, down in self.duals_.values())),
        }
        return capped_mean_one(log_weights, cfg.max_weight_ratio, inputs.rollouts, inputs.counters)

    def metrics(self) -> dict[str, float]:
        return dict(self._last)

    def state_dict(self) -> dict[str, Any]:
        return {
            "cells": [list(cell) for cell in self.duals_],
            "duals": np.array(list(self.duals_.values()), dtype=float).reshape(-1, 2),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        cells = expect(state, "cells", list, "rule")
        duals = expect_array(state, "duals", "rule", ndim=2, length=len(cells), width=2, non_negative=True)
        if not all(isinstance(c, list) and len(c) == 3 and all(isinstance(p, str) for p in c) for c in cells):
            raise StateError("rule.cells must be [data source, group, gold label] triples")
        self.duals_ = {(d, g, y): (float(u), float(w)) for (d, g, y), (u, w) in zip(cells, duals, strict=True)}


@register_weighting("none")
class NoWeighting(WeightingRule):
    summary = "plain GRPO through the same code path (matched baselines)"
    uses_groups = False

    def apply(self, inputs: RuleInput) -> tuple[torch.Tensor, np.ndarray]:
        return inputs.scores, np.ones(len(inputs.rollouts))
