# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The FairGRPO estimator state and one training step (pure torch/numpy; Dai et al., arXiv 2510.19893).

:class:`FairGRPO` holds everything that lives across steps (running statistics, latent-group memory,
the weighting rule's own state) behind ``state_dict()`` / ``load_state_dict()``, and turns one batch
of outcome rewards with per-prompt domains and groups into per-row advantages and a
:class:`StepReport`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from verl_fair.algorithm.advantage import PromptBatch, grpo_scores, renormalise_by_batch_std, scatter_rows
from verl_fair.algorithm.state import StateError, expect, expect_count
from verl_fair.algorithm.stats import RunningStats
from verl_fair.algorithm.weighting import WEIGHTING_RULES, GroupView, RuleInput, raise_small_groups, uses_batch_std
from verl_fair.config import OFFICIAL_VARIANTS, FairGRPOConfig
from verl_fair.groups.labels import UNK
from verl_fair.groups.latent import LatentGroups, OfficialLatentGroups

logger = logging.getLogger(__name__)

STATE_VERSION = 2
GUARDS = ("reward_floor", "small_group", "weight_cap", "nonfinite_fallback", "reward_above_ceiling")


@dataclass(frozen=True)
class StepReport:
    """What one step did, per prompt (length P) and in total; the training metrics are read from it.

    ``prompt_groups`` is each prompt's (domain, group) as given (UNK when unlabelled); ``prompt_keys`` the
    (domain, group) it was weighted in: its label, or ``latent<id>``
    for an UNK prompt; ``prompt_weights`` the rule's weight of each prompt; ``prompt_mass`` the sum of
    its rows' absolute advantages; ``guards`` the rows each guard touched; ``domain_alignment`` the
    ``official_nd`` clusters' agreement with the true groups per (domain, ``ari`` | ``nmi``).
    """

    advantages: torch.Tensor  # (B,) one scalar per row, 0 on padding rows
    prompt_groups: list[tuple[str, str]] = field(default_factory=list)
    prompt_keys: list[tuple[str, str]] = field(default_factory=list)
    prompt_weights: np.ndarray = field(default_factory=lambda: np.empty(0))
    prompt_mass: np.ndarray = field(default_factory=lambda: np.empty(0))
    unk_prompts: int = 0
    padding_rows: int = 0
    guards: dict[str, int] = field(default_factory=dict)
    latent_alignment: dict[str, float] = field(default_factory=dict)
    domain_alignment: dict[tuple[str, str], float] = field(default_factory=dict)
    rule_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def prompts(self) -> int:
        return len(self.prompt_keys)

    def group_summary(self) -> dict[tuple[str, str], tuple[float, float]]:
        """Per (domain, group): mean prompt weight and share of the step's advantage mass."""
        total = self.prompt_mass.sum()
        summary = {}
        for key in sorted(set(self.prompt_keys)):
            members = np.array([k == key for k in self.prompt_keys])
            share = float(self.prompt_mass[members].sum() / total) if total > 0 else 0.0
            summary[key] = (float(np.mean(self.prompt_weights[members])), share)
        return summary

    def metrics(self) -> dict[str, float]:
        """``fair/prompts``, ``fair/unk_prompts``, ``fair/padding_rows``, ``fair/weight_spread`` (largest over
        smallest positive weight), ``fair/guard/<name>``, with ``labels: none`` or ``official_nd``
        ``fair/latent/{ari,nmi}``, and the rule's own (``fair/<rule>/...``)."""
        finite = self.prompt_weights[np.isfinite(self.prompt_weights) & (self.prompt_weights > 0)]
        return {
            "fair/prompts": float(self.prompts),
            "fair/unk_prompts": float(self.unk_prompts),
            "fair/padding_rows": float(self.padding_rows),
            "fair/weight_spread": float(finite.max() / finite.min()) if len(finite) else float("nan"),
            **{f"fair/guard/{name}": float(self.guards.get(name, 0)) for name in GUARDS},
            **self.latent_alignment,
            **self.rule_metrics,
        }


class FairGRPO:
    """Cross-step FairGRPO state plus the per-step advantage computation."""

    def __init__(self, config: FairGRPOConfig) -> None:
        self.config = config
        self.group_stats = RunningStats(config.history)  # keys (domain, group); UNK prompts pool in (domain, UNK)
        self.domain_stats = RunningStats(config.history)  # keys (domain,)
        if config.variant in OFFICIAL_VARIANTS:
            self.latent = OfficialLatentGroups(config.cluster)
        else:
            self.latent = LatentGroups(config.cluster, window_steps=config.history.window)
        self.rule = WEIGHTING_RULES[config.weighting](config)
        self.steps_ = 0
        self.guard_totals_: Counter = Counter()

    def step(
        self,
        batch: PromptBatch,
        domains: Sequence[str],
        groups: Sequence[str],
        reference_groups: Sequence[str] | None = None,
        labels: Sequence[str | None] | None = None,
    ) -> StepReport:
        """Advantages and report for one training step.

        Args:
            batch: the rows regrouped by prompt (:func:`~verl_fair.algorithm.advantage.group_prompts`).
            domains: data source of each prompt (length P).
            groups: group key of each prompt, ``"UNK"`` when unlabelled (length P).
            reference_groups: known labels of prompts whose groups are masked (``labels: none``); the
                latent groups' agreement with them is reported as ``fair/latent/ari`` and ``fair/latent/nmi``.
                ``official_nd`` masks ``groups`` itself and measures its clusters against them.
            labels: gold label of each prompt (None when unknown), for rules that weigh (group, label) cells.
        """
        cfg = self.config
        if len(domains) != batch.num_prompts or len(groups) != batch.num_prompts:
            raise ValueError(
                f"{batch.num_prompts} prompts but {len(domains)} domains and {len(groups)} groups were given"
            )
        batch_size = batch.padding_rows + len(batch.rows)
        if batch.num_prompts == 0:
            return StepReport(torch.zeros(batch_size), padding_rows=batch.padding_rows)
        self.steps_ += 1
        domains, groups = [str(d) for d in domains], [str(g) for g in groups]
        if cfg.variant == "official_nd":  # the authors' fair_grpo_nd: true groups only measure the clusters
            reference_groups = groups if reference_groups is None else reference_groups
            groups = [UNK] * batch.num_prompts
        rollouts = batch.counts.astype(np.float64)
        counters: Counter = Counter({g: 0 for g in GUARDS})
        counters["reward_above_ceiling"] = self._count_above_reward_max(batch.rewards)
        view = self._group_view(batch, domains, groups, reference_groups) if self.rule.uses_groups else None
        if view is not None:
            raise_small_groups(view, cfg.min_group_size, rollouts, counters)
        inputs = RuleInput(
            scores=grpo_scores(batch, cfg.norm_adv_by_std_in_grpo, cfg.epsilon),
            rewards=batch.rewards,
            prompt=torch.from_numpy(batch.prompt),
            rollouts=rollouts,
            prompt_means=batch.reward_sums() / rollouts,
            view=view,
            counters=counters,
            labels=list(labels) if labels is not None else [None] * batch.num_prompts,
        )
        advantages, weights = self.rule.apply(inputs)
        if uses_batch_std(cfg):
            advantages = renormalise_by_batch_std(advantages, cfg.epsilon)
        self.guard_totals_.update(counters)
        keys = view.group_keys if view is not None else list(zip(domains, groups, strict=True))
        alignment, domain_alignment = {}, {}
        if cfg.variant == "official_nd":
            for (domain, measure), value in self.latent.alignment(domains).items():
                if domain:
                    domain_alignment[(domain, measure)] = value
                else:
                    alignment[f"fair/latent/{measure}"] = value
        elif reference_groups is not None:
            alignment = alignment_metrics(keys, domains, reference_groups)
        return StepReport(
            advantages=scatter_rows(advantages, batch, batch_size),
            prompt_groups=list(zip(domains, groups, strict=True)),
            prompt_keys=list(keys),
            prompt_weights=np.asarray(weights, dtype=np.float64),
            prompt_mass=np.bincount(
                batch.prompt, weights=advantages.abs().double().numpy(), minlength=batch.num_prompts
            ),
            unk_prompts=sum(g == UNK for g in groups),
            padding_rows=batch.padding_rows,
            guards=dict(counters),
            latent_alignment=alignment,
            domain_alignment=domain_alignment,
            rule_metrics=self.rule.metrics(),
        )

    def _count_above_reward_max(self, rewards: torch.Tensor) -> int:
        """Rows whose reward exceeds ``reward_max``, the best attainable reward; the first time, a warning."""
        best = self.config.reward_max
        above = int((rewards > best).sum())
        if above and not self.guard_totals_["reward_above_ceiling"]:
            logger.warning(
                "fair_grpo: %d of %d rewards (largest %g) exceed algorithm.fair_grpo.reward_max=%g this step: "
                "deficits and losses are measured from reward_max, so groups above it count as flawless and the "
                "advantages can shrink to 0. Set reward_max to the best attainable reward. Counted in "
                "fair/guard/reward_above_ceiling (warned once).",
                above,
                len(rewards),
                float(rewards.max()),
                best,
            )
        return above

    def _group_view(
        self, batch: PromptBatch, domains: list[str], groups: list[str], truth: Sequence[str] | None
    ) -> GroupView:
        """Update the window statistics with this step, then read N and mu for every prompt (``official_nd``:
        mu_d from the domain's clusters). ``truth``: the prompts' true groups, which ``official_nd`` keeps."""
        reward_sums = batch.reward_sums()
        rollouts = batch.counts.astype(np.float64)
        group_ids = self.group_stats.ids(list(zip(domains, groups, strict=True)))
        domain_ids = self.domain_stats.ids([(d,) for d in domains])
        self.group_stats.update(group_ids, reward_sums, rollouts)
        self.domain_stats.update(domain_ids, reward_sums, rollouts)
        view = GroupView(
            domain_count=self.domain_stats.count(domain_ids),
            domain_mean=self.domain_stats.mean(domain_ids),
            group_count=self.group_stats.count(group_ids),
            group_mean=self.group_stats.mean(group_ids),
            group_keys=list(zip(domains, groups, strict=True)),
        )
        unk = np.array([g == UNK for g in groups], dtype=bool)
        nd = self.config.variant == "official_nd"
        if unk.any():
            vectors = batch.vectors()
            # the authors' code clusters domains in order of appearance; the paper variant in a fixed order
            order = dict.fromkeys(d for d, u in zip(domains, unk, strict=True) if u)
            for domain in order if self.config.variant in OFFICIAL_VARIANTS else sorted(order):
                prompts = np.flatnonzero(unk & (np.array(domains, dtype=object) == domain))
                pool = group_ids[prompts[0]]
                if nd:
                    self.latent.remember_truth(domain, [UNK if truth is None else truth[p] for p in prompts])
                found = self.latent.assign(
                    domain,
                    [vectors[p] for p in prompts],
                    [batch.uids[p] for p in prompts],
                    unk_visits=float(self.group_stats.count(np.array([pool]))[0]),
                    step=self.steps_,
                )
                view.group_count[prompts] = found.sizes
                view.group_mean[prompts] = found.means
                if nd:
                    view.domain_mean[prompts] = found.domain_mean
                for p, cluster in zip(prompts, found.cluster_ids, strict=True):
                    view.group_keys[p] = (domain, f"latent{int(cluster)}")
        return view

    def state_dict(self) -> dict:
        """Plain containers of numbers and arrays (see :mod:`verl_fair.algorithm.state`); load into a
        FairGRPO with the same configuration."""
        return {
            "version": STATE_VERSION,
            "config": self.config.fingerprint(),
            "steps": self.steps_,
            "group_stats": self.group_stats.state_dict(),
            "domain_stats": self.domain_stats.state_dict(),
            "latent": self.latent.state_dict(),
            "rule": self.rule.state_dict(),
            "guard_totals": {name: int(count) for name, count in self.guard_totals_.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a state written by :meth:`state_dict`; every field is checked before anything changes.

        Raises:
            StateError: a missing, mistyped, misshapen, non-finite or negative field (the message names it),
                or a state from another version or configuration.
        """
        version = expect(state, "version", int, "state")
        if version != STATE_VERSION:
            raise StateError(
                f"FairGRPO state has version {version!r}; this verl-fair reads version {STATE_VERSION}. "
                "Start the statistics afresh or use a matching verl-fair."
            )
        saved = expect(state, "config", str, "state")
        if saved != self.config.fingerprint():
            raise StateError(
                "FairGRPO state was written with a different algorithm.fair_grpo configuration:\n"
                f"  saved:   {saved}\n  current: {self.config.fingerprint()}\n"
                "Resume with the saved configuration, or start the statistics afresh."
            )
        steps = expect_count(state, "steps", "state")
        totals = expect(state, "guard_totals", dict, "state")
        for name in totals:
            expect_count(totals, name, "state.guard_totals")
        fresh = FairGRPO(self.config)  # load into a fresh object: a bad field leaves this one untouched
        fresh.group_stats.load_state_dict(expect(state, "group_stats", dict, "state"), "state.group_stats")
        fresh.domain_stats.load_state_dict(expect(state, "domain_stats", dict, "state"), "state.domain_stats")
        fresh.latent.load_state_dict(expect(state, "latent", dict, "state"))
        fresh.rule.load_state_dict(expect(state, "rule", dict, "state"))
        self.group_stats, self.domain_stats, self.latent, self.rule = (
            fresh.group_stats,
            fresh.domain_stats,
            fresh.latent,
            fresh.rule,
        )
        self.steps_, self.guard_totals_ = steps, Counter(totals)


def alignment_metrics(
    keys: Sequence[tuple[str, str]], domains: Sequence[str], reference_groups: Sequence[str]
) -> dict[str, float]:
    """Adjusted Rand index and normalised mutual information of latent groups against known labels.

    Both compare (domain, latent group) with (domain, label) over the prompts whose label is known;
    1 is perfect agreement, about 0 is chance. NaN with fewer than two labelled prompts.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    known = [i for i, g in enumerate(reference_groups) if g != UNK]
    if len(known) < 2:
        return {"fair/latent/ari": float("nan"), "fair/latent/nmi": float("nan")}
    found = [str(keys[i]) for i in known]
    truth = [f"{domains[i]}|{reference_groups[i]}" for i in known]
    return {
        "fair/latent/ari": float(adjusted_rand_score(truth, found)),
        "fair/latent/nmi": float(normalized_mutual_info_score(truth, found)),
    }
