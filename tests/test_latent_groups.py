# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Latent groups of UNK prompts: elbow rule, bounded memory, stable ids, determinism."""

import numpy as np
import pytest

from verl_fair.config import ClusterConfig
from verl_fair.groups.latent import LatentGroups, OfficialLatentGroups, quantile_vector, select_k_elbow


@pytest.mark.parametrize(
    ("inertias", "k"),
    [
        ([5.0], 1),
        ([5.0, 1.0], 2),
        ([10.0, 2.0, 1.5], 2),  # the second drop (0.5) is below 10 % of the first (8)
        ([10.0, 6.0, 3.0], 3),
    ],
)
def test_elbow_rule(inertias, k):
    assert select_k_elbow(inertias, tol=0.10) == k


def _vectors(rng, count, n=16):
    """Three difficulty levels: easy, medium, hard prompts."""
    levels = rng.choice([0.95, 0.5, 0.05], size=count)
    return [(rng.random(n) < p).astype(np.float32) for p in levels], levels


def test_paper_latent_groups_separate_difficulty_levels():
    rng = np.random.default_rng(0)
    latent = LatentGroups(ClusterConfig())
    vectors, levels = _vectors(rng, 300)
    found = latent.assign("A", vectors, [str(i) for i in range(300)], unk_visits=300, step=1)
    assert len(set(found.cluster_ids)) == 3
    for level in (0.95, 0.5, 0.05):
        ids = found.cluster_ids[levels == level]
        assert np.bincount(ids).max() / len(ids) > 0.8
    for cluster in set(found.cluster_ids):  # N_g is the cluster's size, mu_g its mean reward
        members = found.cluster_ids == cluster
        assert np.all(found.sizes[members] == members.sum())
        assert found.means[members][0] == pytest.approx(np.mean([vectors[i].mean() for i in np.flatnonzero(members)]))
    assert sorted(set(np.round(found.means, 1))) == [0.1, 0.5, 0.9]


def test_cluster_ids_are_stable_across_steps():
    rng = np.random.default_rng(1)
    latent = LatentGroups(ClusterConfig())
    mapping = None
    for step in range(5):
        vectors, levels = _vectors(rng, 120)
        found = latent.assign(
            "A", vectors, [f"{step}-{i}" for i in range(120)], unk_visits=120 * (step + 1), step=step + 1
        )
        majority = {lvl: np.bincount(found.cluster_ids[levels == lvl]).argmax() for lvl in (0.95, 0.5, 0.05)}
        mapping = mapping or majority
        assert majority == mapping


def test_memory_is_bounded_and_sizes_scale_to_the_window():
    rng = np.random.default_rng(2)
    for mode in ("reservoir", "sliding"):
        latent = LatentGroups(ClusterConfig(memory=50, memory_mode=mode))
        for step in range(6):
            vectors, _ = _vectors(rng, 40)
            found = latent.assign(
                "A", vectors, [f"{step}-{i}" for i in range(40)], unk_visits=40 * (step + 1), step=step + 1
            )
            assert len(latent.domains_["A"].vectors) <= 50
        # every visit in the window is represented: cluster sizes add up to the UNK visits
        fitted = 50 + 40
        labels, counts = np.unique(found.cluster_ids, return_counts=True)
        assert found.sizes.max() <= 240 and found.sizes.min() >= 240 / fitted


def test_same_seed_same_groups():
    results = []
    for _ in range(2):
        rng = np.random.default_rng(3)
        latent = LatentGroups(ClusterConfig(memory=64, seed=5))
        out = []
        for step in range(4):
            vectors, _ = _vectors(rng, 50)
            out.append(
                latent.assign("A", vectors, [str(i) for i in range(50)], unk_visits=50, step=step + 1).cluster_ids
            )
        results.append(np.concatenate(out))
    np.testing.assert_array_equal(results[0], results[1])


def test_identical_vectors_form_one_group():
    latent = LatentGroups(ClusterConfig())
    found = latent.assign("A", [np.ones(4, dtype=np.float32)] * 5, list("abcde"), unk_visits=5, step=1)
    assert set(found.cluster_ids) == {0} and np.all(found.sizes == 5) and np.all(found.means == 1.0)


def test_quantile_vectors_for_other_rollout_counts():
    np.testing.assert_allclose(quantile_vector(np.array([1.0, 0.0]), 3), [0.0, 0.5, 1.0])
    latent = LatentGroups(ClusterConfig())
    assert latent.features([np.array([1, 0, 1, 0], dtype=np.float32)], 4).tolist() == [[0, 0, 1, 1]]


def test_official_latent_keeps_the_whole_history():
    rng = np.random.default_rng(4)
    latent = OfficialLatentGroups(ClusterConfig(features="raw", memory=None))
    for step in range(3):
        vectors, _ = _vectors(rng, 20)
        found = latent.assign(
            "A", vectors, [f"{step}-{i}" for i in range(20)], unk_visits=20 * (step + 1), step=step + 1
        )
    assert len(latent.vectors_["A"]) == 60
    assert found.sizes.max() <= 60


def test_window_history_expires_memory_older_than_k_steps():
    rng = np.random.default_rng(5)
    latent = LatentGroups(ClusterConfig(memory=1000), window_steps=2)
    for step in range(1, 6):
        vectors, _ = _vectors(rng, 10)
        for domain in ("A", "B"):  # several domains in one step must not advance the clock twice
            latent.assign(domain, vectors, [str(i) for i in range(10)], unk_visits=10, step=step)
    assert sorted(set(latent.domains_["A"].steps)) == [4, 5]
    assert len(latent.domains_["B"].vectors) == 20


def test_ids_do_not_depend_on_the_order_of_the_batch():
    rng = np.random.default_rng(6)
    vectors, _ = _vectors(rng, 90)
    order = rng.permutation(90)
    ids = []
    for batch in (vectors, [vectors[i] for i in order]):
        latent = LatentGroups(ClusterConfig())
        warm_up, _ = _vectors(np.random.default_rng(7), 90)
        latent.assign("A", warm_up, [str(i) for i in range(90)], unk_visits=90, step=1)
        ids.append(latent.assign("A", batch, [str(i) for i in range(90)], unk_visits=180, step=2).cluster_ids)
    np.testing.assert_array_equal(ids[0][order], ids[1])


def test_uneven_rollout_counts_cluster_with_quantile_vectors():
    latent = LatentGroups(ClusterConfig())
    vectors = [np.ones(8, np.float32), np.ones(5, np.float32), np.zeros(8, np.float32), np.zeros(3, np.float32)]
    found = latent.assign("A", vectors, list("abcd"), unk_visits=4, step=1)
    assert found.cluster_ids[0] == found.cluster_ids[1] != found.cluster_ids[2] == found.cluster_ids[3]


def test_masked_labels_are_recovered_with_high_adjusted_rand_index():
    """Prompts whose difficulty depends on a hidden group: latent groups find the groups (paper variant)."""
    import torch
    from helpers import Prompt, make_batch

    from verl_fair.integration import context
    from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo

    rng = np.random.default_rng(8)
    success = {"hard": 0.05, "medium": 0.5, "easy": 0.95}
    for step in range(4):
        prompts = []
        for i in range(96):
            group = ["hard", "medium", "easy"][i % 3]
            rewards = list((rng.random(16) < success[group]).astype(float))
            prompts.append(Prompt(rewards, "A", group))
        advantages, _ = fair_grpo(**make_batch(prompts, shuffle_seed=step).kwargs({"fair_grpo": {"labels": "none"}}))
        assert torch.isfinite(advantages).all()
        metrics = context.last_report().metrics()
        assert metrics["fair/latent/ari"] >= 0.8 and metrics["fair/latent/nmi"] >= 0.7
    assert all(g.startswith("latent") for _, g in context.last_report().prompt_keys)


def _permuted(batch, order):
    """The same batch with its rows in another order (as verl's sequence balancing reorders them)."""
    from helpers import Batch

    return Batch(
        batch.token_level_rewards[order],
        batch.response_mask[order],
        batch.index[order],
        {k: np.asarray(v, dtype=object)[order] for k, v in batch.non_tensor_batch.items()},
    )


def test_paper_latent_groups_do_not_depend_on_the_order_of_rows():
    """The same prompts in another row order give the same advantages, step after step (paper variant)."""
    import uuid

    import torch
    from helpers import Prompt, make_batch

    from verl_fair.integration import context
    from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo

    rng = np.random.default_rng(3)
    steps = []
    for _ in range(4):
        prompts = [
            Prompt(list((rng.random(6) < p).astype(float)), ["A", "B"][i % 2], "UNK", uid=str(uuid.uuid4()))
            for i, p in enumerate(rng.random(40))
        ]
        batch = make_batch(prompts)
        steps.append((batch, rng.permutation(len(batch.index))))
    runs = []
    for shuffled in (False, True):
        context.reset_state()
        runs.append([])
        for batch, order in steps:
            used = _permuted(batch, order) if shuffled else batch
            advantages, _ = fair_grpo(**used.kwargs({"fair_grpo": {"variant": "paper"}}, with_metadata=False))
            if shuffled:
                advantages = advantages[np.argsort(order)]
            runs[-1].append(advantages)
    for in_order, reordered in zip(*runs, strict=True):
        torch.testing.assert_close(reordered, in_order, rtol=0, atol=1e-6)
