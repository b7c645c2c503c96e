# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Latent groups for prompts without demographic labels (docs/method.md §6).

Each UNK prompt is described by its vector of rollout rewards; k-means over those vectors, per data
source, gives pseudo-groups. The number of clusters comes from the elbow rule over k = 1..k_cap.

- :class:`OfficialLatentGroups` reproduces the authors' clustering (``official`` and ``official_nd``):
  unsorted vectors, the whole history refitted every step with ``KMeans(n_init="auto", random_state=0)``.
  Its cost grows with training length, which is the point of reproducing it. It also keeps each
  visit's true group, when known, to measure the clusters against (``official_nd``).
- :class:`LatentGroups` (the ``paper`` variant): sorted (or quantile) vectors, bounded memory per
  domain, k-means warm-started from the previous step's centroids, and cluster ids kept stable
  across steps by minimum-cost matching of centroids. A step's prompts are clustered in a canonical
  order (by feature vector), so their order in the batch, which verl's balancing shuffles, changes
  nothing.

Both return, per prompt, a cluster id, the cluster's size N_g in question visits and its mean
reward mu_g (the centroid's mean). scikit-learn and SciPy are imported on first use only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from verl_fair.algorithm.state import StateError, expect, expect_array, expect_count
from verl_fair.config import ClusterConfig
from verl_fair.groups.labels import UNK


@dataclass
class LatentAssignment:
    """Per prompt: cluster id, cluster size N_g (question visits) and cluster mean reward mu_g; and the
    domain's inverse-cluster-size weighted mean of the centroid means (the authors' ``fair_grpo_nd`` mu_d)."""

    cluster_ids: np.ndarray
    sizes: np.ndarray
    means: np.ndarray
    domain_mean: float = float("nan")


def select_k_elbow(inertias: Sequence[float], tol: float) -> int:
    """Smallest k in 2..K-1 whose inertia drop is below ``tol`` times the previous drop, else K.

    ``inertias[k - 1]`` is the k-means inertia with k clusters, for k = 1..K.
    """
    if len(inertias) == 1:
        return 1
    drops = -np.diff(np.asarray(inertias, dtype=np.float64))
    for i in range(1, len(drops)):
        if drops[i] < tol * drops[i - 1]:
            return i + 1
    return len(inertias)


def quantile_vector(vector: np.ndarray, dim: int) -> np.ndarray:
    """The ``dim``-point quantile vector of ``vector``'s sorted values (linear interpolation)."""
    grid = np.linspace(0.0, 1.0, dim)
    return np.interp(grid, np.linspace(0.0, 1.0, len(vector)), np.sort(np.asarray(vector, dtype=np.float64)))


def modal_length(vectors: Sequence[np.ndarray]) -> int:
    """The most common vector length: a domain's rollout count n."""
    return int(np.bincount([len(v) for v in vectors]).argmax())


def _fit_elbow(x: np.ndarray, k_max: int, tol: float, make_kmeans: Callable[[int], object]):
    """Fit k = 1..k_cap, pick k by the elbow; returns (chosen model, {k: model})."""
    k_cap = min(k_max, len(np.unique(x, axis=0)))
    models = {k: make_kmeans(k).fit(x) for k in range(1, k_cap + 1)}
    k = select_k_elbow([models[k].inertia_ for k in range(1, k_cap + 1)], tol)
    return models[k], models


class OfficialLatentGroups:
    """The authors' clustering of UNK prompts: unsorted vectors, full history, refit every step."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.vectors_: dict[str, list[np.ndarray]] = {}
        self.first_visit_: dict[str, dict[str, int]] = {}
        self.truth_: dict[str, list[str]] = {}  # the true group of every visit, UNK when unknown
        self.labels_: dict[str, np.ndarray] = {}  # every visit's cluster in the domain's latest fit

    def remember_truth(self, domain: str, truth: Sequence[str]) -> None:
        """The true groups (UNK when unknown) of the prompts the next :meth:`assign` of ``domain`` adds."""
        self.truth_.setdefault(domain, []).extend(truth)

    def assign(
        self, domain: str, vectors: Sequence[np.ndarray], uids: Sequence[str], unk_visits: float, step: int
    ) -> LatentAssignment:
        """Add this step's UNK prompts of ``domain`` to its history, refit, label them."""
        from sklearn.cluster import KMeans

        history = self.vectors_.setdefault(domain, [])
        first = self.first_visit_.setdefault(domain, {})
        dim = len(history[0]) if history else modal_length(vectors)
        for uid, vector in zip(uids, vectors, strict=True):
            first.setdefault(uid, len(history))  # the authors look a uid up by its first visit
            if len(vector) != dim:  # uneven rollout counts, which the authors' code rejects
                vector = quantile_vector(vector, dim)
            history.append(np.asarray(vector, dtype=np.float32))
        x = np.stack(history)
        model, _ = _fit_elbow(
            x, self.config.k_max, self.config.tol, lambda k: KMeans(n_clusters=k, n_init="auto", random_state=0)
        )
        self.labels_[domain] = model.labels_
        counts = np.unique(model.labels_, return_counts=True)[1].astype(np.float64)
        labels = model.labels_[[first[uid] for uid in uids]]
        means = np.array([float(model.cluster_centers_[c].mean()) for c in labels], dtype=np.float64)
        inverse = 1.0 / counts
        domain_mean = float((inverse * model.cluster_centers_.mean(axis=1)).sum() / inverse.sum())
        return LatentAssignment(labels.astype(np.int64), counts[labels], means, domain_mean)

    def alignment(self, domains: Sequence[str]) -> dict[tuple[str, str], float]:
        """ARI and NMI of the latest clusters against the true groups, over every visit of each domain
        whose true group is known, as the authors' ``fair_grpo_nd`` measures them: ``(domain, "ari")``,
        ``(domain, "nmi")`` per domain, and ``("", "ari")``, ``("", "nmi")`` over the domains together
        (clusters told apart by domain, true groups not). A pair needs two known visits."""
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        scores: dict[tuple[str, str], float] = {}
        every_truth, every_cluster = [], []
        for domain in sorted(set(domains)):
            known = [i for i, group in enumerate(self.truth_.get(domain, [])) if group != UNK]
            truth = [self.truth_[domain][i] for i in known]
            clusters = self.labels_[domain][known] if known else np.empty(0, dtype=np.int64)
            every_truth += truth
            every_cluster += [f"{domain}_{c}" for c in clusters]
            if len(known) > 1:
                scores[(domain, "ari")] = float(adjusted_rand_score(truth, clusters))
                scores[(domain, "nmi")] = float(normalized_mutual_info_score(truth, clusters))
        if len(every_truth) > 1:
            scores[("", "ari")] = float(adjusted_rand_score(every_truth, every_cluster))
            scores[("", "nmi")] = float(normalized_mutual_info_score(every_truth, every_cluster))
        return scores

    def state_dict(self) -> dict:
        return {
            "vectors": {d: np.stack(v) for d, v in self.vectors_.items()},
            "first_visit": {d: dict(f) for d, f in self.first_visit_.items()},
            "truth": {d: list(t) for d, t in self.truth_.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        vectors = expect(state, "vectors", dict, "latent")
        first_visit = expect(state, "first_visit", dict, "latent")
        if set(vectors) != set(first_visit):
            raise StateError("latent.vectors and latent.first_visit name different data sources")
        truths = expect(state, "truth", dict, "latent") if "truth" in state else {}  # only official_nd keeps them
        if not set(truths) <= set(vectors):
            raise StateError("latent.truth names data sources that latent.vectors does not")
        loaded, visits = {}, {}
        for domain in vectors:
            history = expect_array(vectors, domain, "latent.vectors", ndim=2)
            uids = expect(first_visit, domain, dict, "latent.first_visit")
            if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(history) for v in uids.values()):
                raise StateError(f"latent.first_visit.{domain} refers to visits outside its {len(history)} vectors")
            truth = truths.get(domain, [])
            if domain in truths and (
                not isinstance(truth, list) or len(truth) != len(history) or not all(isinstance(g, str) for g in truth)
            ):
                raise StateError(f"latent.truth.{domain} must list one group name per stored vector ({len(history)})")
            loaded[domain] = list(np.asarray(history, dtype=np.float32))
            visits[domain] = dict(uids)
        self.vectors_, self.first_visit_ = loaded, visits
        self.truth_, self.labels_ = {d: list(t) for d, t in truths.items()}, {}


@dataclass
class _DomainMemory:
    dim: int
    vectors: np.ndarray  # (filled, dim)
    steps: np.ndarray  # step at which each kept vector was seen
    seen: int = 0  # vectors offered to the reservoir so far
    centroids: np.ndarray | None = None  # centroids of the chosen k, rows aligned with ids
    ids: np.ndarray | None = None
    warm: dict[int, np.ndarray] | None = None  # last centroids for each k tried
    next_id: int = 0


class LatentGroups:
    """Bounded, warm-started, stable latent groups (the ``paper`` variant).

    ``window_steps`` (from ``history: {window: K}``) also expires memory older than K steps.
    """

    def __init__(self, config: ClusterConfig, window_steps: int | None = None) -> None:
        self.config = config
        self.window_steps = window_steps
        self.rng_ = np.random.default_rng(config.seed)
        self.domains_: dict[str, _DomainMemory] = {}

    def features(self, vectors: Sequence[np.ndarray], dim: int) -> np.ndarray:
        """Rows of length ``dim``: the sorted rewards, or their quantiles for another rollout count."""
        out = np.empty((len(vectors), dim), dtype=np.float64)
        for i, vector in enumerate(vectors):
            if len(vector) != dim:
                out[i] = quantile_vector(vector, dim)
            else:
                out[i] = np.sort(vector) if self.config.features == "sorted" else vector
        return out

    def assign(
        self, domain: str, vectors: Sequence[np.ndarray], uids: Sequence[str], unk_visits: float, step: int
    ) -> LatentAssignment:
        """Cluster memory plus this step's UNK prompts of ``domain``; label the prompts; update memory.

        ``unk_visits`` is the domain's UNK question visits in the statistics window: a cluster's N_g is
        its share of the fitted vectors times that number, on the scale of explicit groups' counts.
        ``step`` is the training step, which dates memory for ``history: {window: K}``.
        """
        from sklearn.cluster import KMeans

        if domain not in self.domains_:
            dim = modal_length(vectors)
            self.domains_[domain] = _DomainMemory(dim, np.empty((0, dim)), np.empty(0, dtype=np.int64), warm={})
        mem = self.domains_[domain]
        self._expire(mem, step)
        current = self.features(vectors, mem.dim)
        order = np.lexsort(current.T[::-1])  # a canonical order: the batch's row order must not matter
        current = current[order]
        x = np.concatenate([mem.vectors, current])

        def make_kmeans(k: int):
            init = mem.warm.get(k)
            if init is not None:
                return KMeans(n_clusters=k, init=init, n_init=1)
            return KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=self.config.seed)

        model, models = _fit_elbow(x, self.config.k_max, self.config.tol, make_kmeans)
        mem.warm = {k: m.cluster_centers_.copy() for k, m in models.items()}
        ids = self._stable_ids(mem, model.cluster_centers_)
        labels = np.empty(len(order), dtype=np.int64)
        labels[order] = model.labels_[len(mem.vectors) :]
        counts = np.bincount(model.labels_, minlength=len(ids)).astype(np.float64)
        sizes = counts[labels] / len(x) * unk_visits
        means = model.cluster_centers_.mean(axis=1)[labels]
        self._remember(mem, current, step)
        return LatentAssignment(ids[labels], sizes, means)

    def _stable_ids(self, mem: _DomainMemory, centroids: np.ndarray) -> np.ndarray:
        """Give each new centroid the id of its matched previous centroid, or a fresh id."""
        from scipy.optimize import linear_sum_assignment

        ids = np.full(len(centroids), -1, dtype=np.int64)
        if mem.centroids is not None:
            cost = np.linalg.norm(centroids[:, None, :] - mem.centroids[None, :, :], axis=-1)
            rows, cols = linear_sum_assignment(cost)
            ids[rows] = mem.ids[cols]
        for i in np.flatnonzero(ids < 0):
            ids[i] = mem.next_id
            mem.next_id += 1
        mem.centroids, mem.ids = centroids.copy(), ids
        return ids

    def _expire(self, mem: _DomainMemory, step: int) -> None:
        if self.window_steps is not None:
            keep = mem.steps > step - self.window_steps
            mem.vectors, mem.steps = mem.vectors[keep], mem.steps[keep]

    def _remember(self, mem: _DomainMemory, current: np.ndarray, step: int) -> None:
        """Keep at most ``cluster.memory`` vectors: the newest (sliding) or a uniform sample (reservoir)."""
        cap = self.config.memory
        steps = np.full(len(current), step, dtype=np.int64)
        if cap is None or self.config.memory_mode == "sliding":
            start = 0 if cap is None else -cap
            mem.vectors = np.concatenate([mem.vectors, current])[start:]
            mem.steps = np.concatenate([mem.steps, steps])[start:]
            return
        vectors, kept_steps = list(mem.vectors), list(mem.steps)
        for row, step in zip(current, steps, strict=True):  # Algorithm R
            mem.seen += 1
            if len(vectors) < cap:
                vectors.append(row)
                kept_steps.append(step)
            else:
                slot = int(self.rng_.integers(mem.seen))
                if slot < cap:
                    vectors[slot], kept_steps[slot] = row, step
        mem.vectors = np.asarray(vectors, dtype=np.float64).reshape(-1, mem.dim)
        mem.steps = np.asarray(kept_steps, dtype=np.int64)

    def state_dict(self) -> dict:
        return {
            "rng": self.rng_.bit_generator.state,
            "domains": {
                d: {
                    "dim": m.dim,
                    "vectors": m.vectors,
                    "steps": m.steps,
                    "seen": m.seen,
                    "centroids": m.centroids,
                    "ids": m.ids,
                    "warm": {str(k): c for k, c in m.warm.items()},
                    "next_id": m.next_id,
                }
                for d, m in self.domains_.items()
            },
        }

    def load_state_dict(self, state: dict) -> None:
        rng = expect(state, "rng", dict, "latent")
        domains = expect(state, "domains", dict, "latent")
        memories = {d: _load_memory(expect(domains, d, dict, "latent.domains"), f"latent.domains.{d}") for d in domains}
        generator = np.random.default_rng()
        try:
            generator.bit_generator.state = rng
        except (TypeError, ValueError, KeyError) as error:
            raise StateError(f"latent.rng is not a numpy generator state: {error}") from error
        self.rng_, self.domains_ = generator, memories


def _load_memory(state: dict, path: str) -> _DomainMemory:
    """A checked :class:`_DomainMemory` from its state dict."""
    dim = expect_count(state, "dim", path)
    vectors = expect_array(state, "vectors", path, ndim=2)
    if vectors.shape[1] != dim:
        raise StateError(f"{path}.vectors has {vectors.shape[1]} columns, expected dim={dim}")
    steps = expect_array(state, "steps", path, ndim=1, length=len(vectors), integer=True)
    centroids = expect_array(state, "centroids", path, ndim=2, optional=True)
    ids = expect_array(state, "ids", path, ndim=1, integer=True, non_negative=True, optional=True)
    if (centroids is None) != (ids is None) or (centroids is not None and len(centroids) != len(ids)):
        raise StateError(f"{path}.centroids and {path}.ids do not match")
    warm = {}
    for k, centres in expect(state, "warm", dict, path).items():
        if not k.isdigit():
            raise StateError(f"{path}.warm has key {k!r}; keys are cluster counts")
        warm[int(k)] = expect_array({"c": centres}, "c", f"{path}.warm.{k}", ndim=2, length=int(k))
    next_id = expect_count(state, "next_id", path)
    if ids is not None and len(ids) and ids.max() >= next_id:
        raise StateError(f"{path}.next_id={next_id} but cluster id {ids.max()} is in use")
    return _DomainMemory(dim, vectors, steps, expect_count(state, "seen", path), centroids, ids, warm, next_id)
