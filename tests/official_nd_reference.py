# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""An independent, loop-based reading of the authors' ``fair_grpo_nd`` (docs/method.md §5 and §6).

Every prompt is clustered within its data source over the data source's whole history; clusters are
the groups. The domain mean is the inverse-cluster-size weighted mean of the centroid means, the group
mean and the factor are clamped, and a non-finite scaled score falls back to the raw reward. The true
groups only measure how well the clusters recover them (ARI/NMI over the history). Everything is
recomputed from the history at every step, row by row; it is slow on purpose and shares no code with
verl_fair.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch
from official_reference import EPS, elbow_k, prompts_of
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

FACTOR_CEILING = 1e6


class OfficialNDReference:
    def __init__(self) -> None:
        self.vectors = defaultdict(list)  # domain -> reward vector of every question visit
        self.uids = defaultdict(list)  # domain -> uid of every visit, same order
        self.truth = defaultdict(list)  # domain -> true group of every visit ("UNK" when unknown)
        self.alignment: dict[str, float] = {}

    def step(self, token_level_rewards: torch.Tensor, index, domains, groups) -> torch.Tensor:
        raw = token_level_rewards.sum(dim=-1)
        per_prompt, domain_of, group_of = prompts_of(raw, index, domains, groups)
        for uid, rewards in per_prompt.items():
            self.vectors[domain_of[uid]].append(np.asarray(rewards, dtype=np.float32))
            self.uids[domain_of[uid]].append(uid)
            self.truth[domain_of[uid]].append(group_of[uid])

        scores = raw.clone()
        for i in range(len(raw)):
            rewards = per_prompt[index[i]]
            if len(rewards) == 1:
                mean, std = torch.tensor(0.0), torch.tensor(1.0)
            else:
                mean, std = torch.mean(torch.tensor(rewards)), torch.std(torch.tensor(rewards))
            scores[i] = (scores[i] - mean) / (std + EPS)

        models = {}
        for domain, vectors in self.vectors.items():
            x = np.stack(vectors)
            models[domain] = KMeans(n_clusters=elbow_k(x), n_init="auto", random_state=0).fit(x)

        for i in range(len(raw)):
            domain = domain_of[index[i]]
            model = models[domain]
            sizes = np.unique(model.labels_, return_counts=True)[1].astype(float)
            inverse = 1.0 / sizes
            domain_mean = float((inverse * model.cluster_centers_.mean(axis=1)).sum() / inverse.sum())
            domain_factor = max(math.sqrt(len(self.vectors[domain])) * domain_mean, EPS)
            label = model.labels_[self.uids[domain].index(index[i])]
            group_mean = max(float(model.cluster_centers_[label].mean()), EPS)
            factor = min(max(domain_factor * math.sqrt(float(sizes[label])) * group_mean, EPS), FACTOR_CEILING)
            scaled = scores[i] / factor
            scores[i] = raw[i] if (math.isnan(scaled) or math.isinf(scaled)) else scaled

        self._measure_alignment(models, set(domains))
        return scores / (torch.std(scores) + EPS)

    def _measure_alignment(self, models, batch_domains) -> None:
        """ARI and NMI of the history's clusters against its known true groups, per domain and over all."""
        self.alignment = {}
        every_truth, every_cluster = [], []
        for domain in sorted(batch_domains):
            known = [j for j, g in enumerate(self.truth[domain]) if g != "UNK"]
            truth = [self.truth[domain][j] for j in known]
            clusters = [int(models[domain].labels_[j]) for j in known]
            every_truth += truth
            every_cluster += [f"{domain}_{c}" for c in clusters]
            if len(known) > 1:
                self.alignment[f"{domain}/ari"] = adjusted_rand_score(truth, clusters)
                self.alignment[f"{domain}/nmi"] = normalized_mutual_info_score(truth, clusters)
        if len(every_truth) > 1:
            self.alignment["ari"] = adjusted_rand_score(every_truth, every_cluster)
            self.alignment["nmi"] = normalized_mutual_info_score(every_truth, every_cluster)
