"""The FairGRPO estimator state and one training step (pure torch/numpy; method.md sections 2-4).

:class:`FairGRPO` holds everything that lives across steps (running statistics, latent-group
memory, Group-DRO losses) behind ``state_dict()`` / ``load_state_dict()``, and turns one batch of
outcome rewards with per-prompt domains and groups into per-row advantages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from verl_fair.algorithm.advantage import (
    PromptBatch,
    grpo_scores,
    renormalise_by_batch_std,
    scatter_rows,
)
from verl_fair.algorithm.stats import RunningStats
from verl_fair.algorithm.weighting import (
    GroupDRO,
    GroupView,
    alpha_fair_weights,
    fairgrpo_factors,
    pool_small_groups,
)
from verl_fair.config import FairGRPOConfig
from verl_fair.groups.labels import UNK, GroupLabeler
from verl_fair.groups.latent import LatentGroups, OfficialLatentGroups

STATE_VERSION = 1
GUARDS = ("reward_floor", "small_group_pool", "weight_cap", "nonfinite_fallback")


class FairGRPO:
    """Cross-step FairGRPO state plus the per-step advantage computation."""

    def __init__(self, config: FairGRPOConfig) -> None:
        self.config = config
        self.group_stats = RunningStats(config.history)  # keys (domain, group); UNK prompts pool in (domain, UNK)
        self.domain_stats = RunningStats(config.history)
        if config.variant == "official":
            self.latent = OfficialLatentGroups(config.cluster)
        else:
            self.latent = LatentGroups(config.cluster, window_steps=config.history.window)
        self.dro = GroupDRO()
        self.labeler = GroupLabeler(config.group_attributes, config.age_bins)
        self.steps_ = 0
        self.guard_totals_: Counter = Counter()
        self.last_metrics: dict[str, float] = {}
        self.last_prompt_groups: list[tuple[str, str]] = []  # (domain, label or UNK) per prompt
        self.last_prompt_keys: list[tuple[str, str]] = []  # the group each prompt was weighted in
        self.last_prompt_weights: np.ndarray = np.empty(0)
        self.last_prompt_mass: np.ndarray = np.empty(0)  # sum of |advantage| over each prompt's rows

    def step(
        self,
        batch: PromptBatch,
        domains: Sequence[str],
        groups: Sequence[str],
        reference_groups: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Advantages ``(B,)`` (one scalar per row, 0 on padding rows) for one training step.

        Args:
            batch: the rows regrouped by prompt (:func:`~verl_fair.algorithm.advantage.group_prompts`).
            domains: data source of each prompt (length P).
            groups: group key of each prompt, ``"UNK"`` when unlabelled (length P).
            reference_groups: known labels of prompts whose groups are masked (``labels: none``); the
                latent groups' agreement with them is logged as ``fair/latent/ari`` and ``fair/latent/nmi``.
        """
        cfg = self.config
        batch_size = batch.padding_rows + len(batch.rows)
        if batch.num_prompts == 0:
            self.last_metrics = {"fair/prompts": 0.0, "fair/padding_rows": float(batch.padding_rows)}
            return torch.zeros(batch_size)
        self.steps_ += 1
        scores = grpo_scores(batch, cfg.norm_adv_by_std_in_grpo, cfg.epsilon)
        rollouts = batch.counts.astype(np.float64)
        counters: Counter = Counter({g: 0 for g in GUARDS})

        keys = list(zip((str(d) for d in domains), (str(g) for g in groups)))
        if cfg.weighting == "none":
            weights = np.ones(batch.num_prompts)
            advantages = scores
        else:
            view = self._group_view(batch, domains, groups)
            keys = view.group_keys
            pool_small_groups(view, cfg.min_group_size, rollouts, counters)
            if cfg.weighting == "fairgrpo":
                factor = fairgrpo_factors(view, cfg, rollouts, counters)
                with np.errstate(divide="ignore"):
                    weights = 1.0 / factor
                advantages = self._apply_factor(scores, factor, batch, counters)
                advantages = renormalise_by_batch_std(advantages, cfg.epsilon)
            else:
                if cfg.weighting == "alpha_fair":
                    weights = alpha_fair_weights(view, cfg, rollouts, counters)
                else:
                    prompt_means = batch.reward_sums() / rollouts
                    weights = self.dro.weights(view, prompt_means, rollouts, cfg, counters)
                advantages = scores * torch.from_numpy(weights.astype(np.float32))[torch.from_numpy(batch.prompt)]
        self._record(batch, domains, groups, keys, weights, advantages, counters)
        if reference_groups is not None:
            self.last_metrics.update(alignment_metrics(keys, domains, reference_groups))
        return scatter_rows(advantages, batch, batch_size)

    def _group_view(self, batch: PromptBatch, domains: Sequence[str], groups: Sequence[str]) -> GroupView:
        """Update the window statistics with this step, then read N and mu for every prompt."""
        domains = [str(d) for d in domains]
        groups = [str(g) for g in groups]
        reward_sums = batch.reward_sums()
        rollouts = batch.counts.astype(np.float64)
        group_ids = self.group_stats.ids(list(zip(domains, groups)))
        domain_ids = self.domain_stats.ids(domains)
        self.group_stats.update(group_ids, reward_sums, rollouts)
        self.domain_stats.update(domain_ids, reward_sums, rollouts)
        view = GroupView(
            domain_count=self.domain_stats.count(domain_ids),
            domain_mean=self.domain_stats.mean(domain_ids),
            group_count=self.group_stats.count(group_ids),
            group_mean=self.group_stats.mean(group_ids),
            group_keys=list(zip(domains, groups)),
        )
        unk = np.array([g == UNK for g in groups], dtype=bool)
        if unk.any():
            vectors = batch.vectors()
            for domain in dict.fromkeys(d for d, u in zip(domains, unk) if u):
                prompts = np.flatnonzero(unk & (np.array(domains, dtype=object) == domain))
                pool = group_ids[prompts[0]]
                found = self.latent.assign(
                    domain,
                    [vectors[p] for p in prompts],
                    [batch.uids[p] for p in prompts],
                    unk_visits=float(self.group_stats.count(np.array([pool]))[0]),
                    step=self.steps_,
                )
                view.group_count[prompts] = found.sizes
                view.group_mean[prompts] = found.means
                for p, cluster in zip(prompts, found.cluster_ids):
                    view.group_keys[p] = (domain, f"latent{int(cluster)}")
        return view

    def _apply_factor(
        self, scores: torch.Tensor, factor: np.ndarray, batch: PromptBatch, counters: Counter
    ) -> torch.Tensor:
        """a = s / F per row in float32; the official variant keeps s where that is NaN or infinite."""
        prompt = torch.from_numpy(batch.prompt)
        scaled = scores / torch.from_numpy(factor.astype(np.float32))[prompt]
        if self.config.variant == "official":
            bad = ~torch.isfinite(scaled)
            counters["nonfinite_fallback"] += int(bad.sum())
            scaled = torch.where(bad, scores, scaled)
        return scaled

    def _record(
        self,
        batch: PromptBatch,
        domains: Sequence[str],
        groups: Sequence[str],
        keys: list[tuple[str, str]],
        weights: np.ndarray,
        advantages: torch.Tensor,
        counters: Counter,
    ) -> None:
        self.guard_totals_.update(counters)
        self.last_prompt_groups = list(zip((str(d) for d in domains), (str(g) for g in groups)))
        self.last_prompt_keys = list(keys)
        self.last_prompt_weights = np.asarray(weights, dtype=np.float64)
        self.last_prompt_mass = np.bincount(
            batch.prompt, weights=advantages.abs().double().numpy(), minlength=batch.num_prompts
        )
        finite = weights[np.isfinite(weights) & (weights > 0)]
        self.last_metrics = {
            "fair/prompts": float(batch.num_prompts),
            "fair/unk_prompts": float(sum(g == UNK for g in groups)),
            "fair/padding_rows": float(batch.padding_rows),
            "fair/weight_spread": float(finite.max() / finite.min()) if len(finite) else float("nan"),
            **{f"fair/guard/{name}": float(counters[name]) for name in GUARDS},
        }

    def state_dict(self) -> dict:
        """Plain containers of numbers and arrays; load into a FairGRPO with the same configuration."""
        return {
            "version": STATE_VERSION,
            "config": self.config.fingerprint(),
            "steps": self.steps_,
            "group_stats": self.group_stats.state_dict(),
            "domain_stats": self.domain_stats.state_dict(),
            "latent": self.latent.state_dict(),
            "dro": self.dro.state_dict(),
            "guard_totals": dict(self.guard_totals_),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a state written by :meth:`state_dict`; refuse one from another version or configuration."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"FairGRPO state has version {state.get('version')!r}; this verl-fair reads "
                f"version {STATE_VERSION}. Start the statistics afresh or use a matching verl-fair."
            )
        if state.get("config") != self.config.fingerprint():
            raise ValueError(
                "FairGRPO state was written with a different algorithm.fair_grpo configuration:\n"
                f"  saved:   {state.get('config')}\n  current: {self.config.fingerprint()}\n"
                "Resume with the saved configuration, or start the statistics afresh."
            )
        self.steps_ = int(state["steps"])
        self.group_stats.load_state_dict(state["group_stats"])
        self.domain_stats.load_state_dict(state["domain_stats"])
        self.latent.load_state_dict(state["latent"])
        self.dro.load_state_dict(state["dro"])
        self.guard_totals_ = Counter(state["guard_totals"])


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
