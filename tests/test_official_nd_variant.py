# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""variant=official_nd reproduces the authors' fair_grpo_nd against a loop-based reference."""

import uuid
from importlib import resources

import numpy as np
import pytest
import torch
import yaml
from helpers import Prompt, make_batch
from official_nd_reference import OfficialNDReference
from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.ppo.ray_trainer import compute_advantage

import verl_fair.plugin  # noqa: F401  (registration, as the entry point does)
from verl_fair.algorithm.state import STATE_FILE, read_state, write_state
from verl_fair.config import FairGRPOConfig, FairGRPOConfigError
from verl_fair.integration import context
from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo
from verl_fair.integration.group_metrics import estimator_metrics

OFFICIAL_ND = {"fair_grpo": {"variant": "official_nd"}}
GROUPS = ["M,A1", "F,A2", "M,A3", "F,A4"]
DIFFICULTY = ([0.92, 0.6, 0.25, 0.04], [0.55, 0.2, 0.15, 0.1])  # success rates and their shares: uneven clusters


def _random_prompts(rng, n, graded, unk_share, revisits):
    prompts = []
    for _ in range(int(rng.integers(4, 10))):
        rate = rng.choice(DIFFICULTY[0], p=DIFFICULTY[1])
        if graded:
            rewards = np.clip(rng.normal(rate, 0.2, size=n), 0, 1).round(2)
        else:
            rewards = (rng.random(n) < rate).astype(float)
        group = "UNK" if rng.random() < unk_share else str(rng.choice(GROUPS))
        domain = str(rng.choice(["A", "B", "C"], p=[0.6, 0.3, 0.1]))
        unused = sorted(set(revisits) - {p.uid for p in prompts})  # a uid seen in an earlier step
        uid = str(rng.choice(unused)) if unused and rng.random() < 0.2 else str(uuid.uuid4())
        prompts.append(Prompt(list(rewards), domain, group, uid=uid))
    return prompts


def _truth(batch):
    return [e.get("fair_group", "UNK") for e in batch.non_tensor_batch["extra_info"]]


def _compare(rng, steps, n, graded, unk_share, with_metadata=True):
    """Run ours and the reference side by side; the largest absolute difference over all steps."""
    reference, revisits, largest = OfficialNDReference(), [], 0.0
    for step in range(steps):
        prompts = _random_prompts(rng, n, graded, unk_share, revisits)
        revisits += [p.uid for p in prompts]
        batch = make_batch(prompts, shuffle_seed=step)
        domains = batch.non_tensor_batch["data_source"] if with_metadata else ["unlabelled"] * len(batch.index)
        expected = reference.step(batch.token_level_rewards, batch.index, domains, _truth(batch))
        advantages, _ = fair_grpo(**batch.kwargs(OFFICIAL_ND, with_metadata=with_metadata))
        torch.testing.assert_close(advantages, expected.unsqueeze(-1) * batch.response_mask, rtol=0, atol=0)
        largest = max(largest, float((advantages - expected.unsqueeze(-1) * batch.response_mask).abs().max()))
    return largest, reference


@pytest.mark.parametrize("graded", [False, True], ids=["binary", "graded"])
@pytest.mark.parametrize("unk_share", [0.0, 1.0, 0.3], ids=["labelled", "unlabelled", "mixed"])
def test_official_nd_matches_loop_reference_bit_for_bit(graded, unk_share):
    rng = np.random.default_rng(11 + int(graded) + int(10 * unk_share))
    largest, _ = _compare(rng, steps=6, n=5, graded=graded, unk_share=unk_share)
    assert largest == 0.0


def test_official_nd_with_single_rollout_prompts_matches_reference():
    """n = 1: the authors score r / (1 + eps) (mean 0, std 1), as verl's grpo does."""
    largest, _ = _compare(np.random.default_rng(3), steps=5, n=1, graded=True, unk_share=0.3)
    assert largest == 0.0


def test_official_nd_without_metadata_matches_reference_in_one_domain():
    largest, _ = _compare(np.random.default_rng(4), steps=4, n=4, graded=False, unk_share=1.0, with_metadata=False)
    assert largest == 0.0


def test_true_groups_change_the_metrics_but_never_the_advantages():
    prompts = _random_prompts(np.random.default_rng(5), 5, True, 0.0, [])
    labelled, _ = fair_grpo(**make_batch(prompts, shuffle_seed=0).kwargs(OFFICIAL_ND))
    labelled_metrics = context.last_report().metrics()
    context.reset_state()
    masked = [Prompt(p.rewards, p.domain, "UNK", p.uid) for p in prompts]
    unlabelled, _ = fair_grpo(**make_batch(masked, shuffle_seed=0).kwargs(OFFICIAL_ND))
    assert torch.equal(labelled, unlabelled)
    assert "fair/latent/ari" in labelled_metrics and "fair/latent/ari" not in context.last_report().metrics()


def test_alignment_with_true_groups_is_reported_per_data_source_as_the_authors_compute_it():
    _, reference = _compare(np.random.default_rng(6), steps=4, n=5, graded=False, unk_share=0.3)
    report = context.last_report()
    assert report.metrics()["fair/latent/ari"] == reference.alignment["ari"]
    assert report.metrics()["fair/latent/nmi"] == reference.alignment["nmi"]
    per_source = {f"{d}/{m}": v for (d, m), v in report.domain_alignment.items()}
    assert per_source == {k: v for k, v in reference.alignment.items() if "/" in k} and per_source
    logged = estimator_metrics(report)
    domain, measure = next(iter(report.domain_alignment))
    assert logged[f"fair/estimator/latent/{domain}/{measure}"] == report.domain_alignment[(domain, measure)]


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::sklearn.exceptions.ConvergenceWarning")
def test_nonfinite_scaled_score_falls_back_to_the_raw_reward():
    """A score that overflows float32 once divided by the clamped factor keeps the raw reward instead."""
    prompts = [Prompt([-1e35], "A", "UNK"), Prompt([0.5], "A", "UNK"), Prompt([1.0], "A", "UNK")]
    batch = make_batch(prompts)
    expected = OfficialNDReference().step(batch.token_level_rewards, batch.index, ["A"] * 3, ["UNK"] * 3)
    advantages, _ = fair_grpo(**batch.kwargs(OFFICIAL_ND))
    assert context.last_report().guards["nonfinite_fallback"] == 1
    torch.testing.assert_close(advantages, expected.unsqueeze(-1) * batch.response_mask, rtol=0, atol=0)


def test_resumed_state_file_continues_like_an_uninterrupted_run(tmp_path):
    rng = np.random.default_rng(8)
    steps = [make_batch(_random_prompts(rng, 4, False, 0.3, []), shuffle_seed=s) for s in range(4)]
    uninterrupted = [fair_grpo(**b.kwargs(OFFICIAL_ND))[0] for b in steps]
    alignment = context.last_report().domain_alignment
    context.reset_state()
    for b in steps[:2]:
        fair_grpo(**b.kwargs(OFFICIAL_ND))
    path = write_state(tmp_path / STATE_FILE, context.get_state().state_dict())
    context.reset_state()
    context.get_state(FairGRPOConfig.from_mapping({"variant": "official_nd"})).load_state_dict(read_state(path))
    for b, expected in zip(steps[2:], uninterrupted[2:], strict=True):
        assert torch.equal(fair_grpo(**b.kwargs(OFFICIAL_ND))[0], expected)
    assert context.last_report().domain_alignment == alignment and alignment


def test_official_nd_through_verls_compute_advantage():
    prompts = _random_prompts(np.random.default_rng(9), 4, False, 0.3, [])
    batch = make_batch(prompts, shuffle_seed=0, padding_rows=2)
    real = len(batch.index) - 2
    expected = OfficialNDReference().step(
        batch.token_level_rewards[:real], batch.index[:real], batch.non_tensor_batch["data_source"], _truth(batch)
    )
    algorithm = OmegaConf.create(
        {"adv_estimator": "fair_grpo", "norm_adv_by_std_in_grpo": True, "fair_grpo": {"variant": "official_nd"}}
    )
    context.publish({p.uid: (p.domain, p.group) for p in prompts})  # what the metadata sampler does
    data = DataProto.from_dict(
        tensors={"token_level_rewards": batch.token_level_rewards, "response_mask": batch.response_mask},
        non_tensors={"uid": batch.index},
    )
    out = compute_advantage(data, adv_estimator="fair_grpo", config=algorithm).batch["advantages"]
    torch.testing.assert_close(out[:real], expected.unsqueeze(-1) * batch.response_mask[:real], rtol=0, atol=0)
    assert torch.equal(out[real:], torch.zeros_like(out[real:]))


def test_official_nd_takes_the_official_defaults_and_names_itself_when_refusing_a_change():
    nd, official = (
        FairGRPOConfig.from_mapping({"variant": "official_nd"}),
        FairGRPOConfig.from_mapping({"variant": "official"}),
    )
    assert (nd.reward_floor, nd.max_weight_ratio, nd.min_group_size) == (None, None, None)
    assert (nd.cluster, nd.history) == (official.cluster, official.history)
    with pytest.raises(FairGRPOConfigError, match="cluster.features='sorted' is not valid with variant=official_nd"):
        FairGRPOConfig.from_mapping({"variant": "official_nd", "cluster": {"features": "sorted"}})
    shipped = yaml.safe_load(resources.files("verl_fair").joinpath("configs/fair_grpo.yaml").read_text())
    assert FairGRPOConfig.from_mapping({**shipped, "variant": "official_nd"}) == nd
