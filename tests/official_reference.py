# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""An independent, loop-based reading of the authors' ``fair_grpo`` (docs/method.md §2 and §6).

Everything is recomputed from the full history at every step, row by row, exactly as the method
describes; it is slow on purpose and shares no code with verl_fair.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch
from sklearn.cluster import KMeans

EPS = 1e-6


def prompts_of(raw: torch.Tensor, index, domains, groups) -> tuple[dict, dict, dict]:
    """Per uid, in first-seen order: its rollouts' rewards, its data source and its group."""
    per_prompt, domain_of, group_of = defaultdict(list), {}, {}
    for i in range(len(raw)):
        per_prompt[index[i]].append(raw[i].item())
        domain_of[index[i]], group_of[index[i]] = domains[i], groups[i]
    return per_prompt, domain_of, group_of


def elbow_k(x: np.ndarray, k_max: int = 3, tol: float = 0.10) -> int:
    k_cap = min(k_max, len(np.unique(x, axis=0)))
    inertia = [KMeans(n_clusters=k, n_init="auto", random_state=0).fit(x).inertia_ for k in range(1, k_cap + 1)]
    if k_cap == 1:
        return 1
    drops = [inertia[i] - inertia[i + 1] for i in range(k_cap - 1)]
    for i in range(1, len(drops)):
        if drops[i] < tol * drops[i - 1]:
            return i + 1
    return k_cap


class OfficialReference:
    def __init__(self) -> None:
        self.explicit = defaultdict(lambda: defaultdict(list))  # domain -> group -> [vectors]
        self.unk_vectors = defaultdict(list)  # domain -> [vectors]
        self.unk_uids = defaultdict(list)

    def step(self, token_level_rewards: torch.Tensor, index, domains, groups) -> torch.Tensor:
        raw = token_level_rewards.sum(dim=-1)
        per_prompt, domain_of, group_of = prompts_of(raw, index, domains, groups)
        for uid, rewards in per_prompt.items():
            vector = np.asarray(rewards, dtype=np.float32)
            if group_of[uid] == "UNK":
                self.unk_vectors[domain_of[uid]].append(vector)
                self.unk_uids[domain_of[uid]].append(uid)
            else:
                self.explicit[domain_of[uid]][group_of[uid]].append(vector)

        scores = raw.clone()
        means = {u: torch.mean(torch.tensor(v)) for u, v in per_prompt.items()}
        stds = {u: torch.std(torch.tensor(v)) for u, v in per_prompt.items()}
        for i in range(len(raw)):
            scores[i] = (scores[i] - means[index[i]]) / (stds[index[i]] + EPS)

        clusters = {}
        for domain, vectors in self.unk_vectors.items():
            if not vectors:
                continue
            x = np.stack(vectors)
            model = KMeans(n_clusters=elbow_k(x), n_init="auto", random_state=0).fit(x)
            clusters[domain] = model

        for i in range(len(raw)):
            uid, domain, group = index[i], domain_of[index[i]], group_of[index[i]]
            visits, rewards = 0, []
            for vectors in list(self.explicit[domain].values()) + [self.unk_vectors[domain]]:
                visits += len(vectors)
                for v in vectors:
                    rewards.extend(v.tolist())
            domain_factor = max(math.sqrt(visits) * float(np.mean(rewards)), EPS)
            if group == "UNK":
                model = clusters[domain]
                label = model.labels_[self.unk_uids[domain].index(uid)]
                size = float(np.unique(model.labels_, return_counts=True)[1][label])
                mean = float(model.cluster_centers_[label].mean())
            else:
                vectors = self.explicit[domain][group]
                size = float(len(vectors))
                mean = float(np.mean([r for v in vectors for r in v.tolist()]))
            factor = domain_factor * math.sqrt(size) * mean
            scaled = scores[i] / factor
            if not (math.isnan(scaled) or math.isinf(scaled)):
                scores[i] = scaled
        return scores / (torch.std(scores) + EPS)
