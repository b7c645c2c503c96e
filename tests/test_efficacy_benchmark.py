"""The efficacy benchmark: the quick mode runs every phase end to end, and its parts hold (not the outcome)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]


def test_quick_mode_runs_every_phase_on_the_multi_source_cohort_and_reports_the_goal():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.efficacy", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "### Task: support" in out and "Validation sweep at GRPO's rate" in out and "### Goal" in out
    for source in ("ARF/MOSF_w/Sepsis", "Coma", "MOSF_w/Malig"):
        assert f"| {source} |" in out
    for arm in ("grpo", "fair_grpo", "fair_grpo_mean1", "official_nd"):
        assert f"| {arm} |" in out
    assert "Paired differences against GRPO after 3 steps" in out and "after 6 steps" in out


def test_the_warm_started_policy_answers_in_the_rewards_format():
    import torch

    from benchmarks.efficacy.policy import sample, tiny_model, warm_start
    from benchmarks.efficacy.train import task_and_vocab
    from verl_fair.reward_fns.clinical_diagnosis import compute_score

    task, vocab = task_and_vocab("synthetic")
    model = tiny_model(len(vocab.itos), 0)
    warm_start(model, vocab, task.warm_start(0, size=200), epochs=3, seed=0)
    cases = task.test[:200]
    responses, log_probs, mask = sample(model, vocab.prompts(cases), torch.Generator().manual_seed(0), greedy=True)
    answers = [vocab.decode(r) for r in responses.tolist()]
    scored = [compute_score("synthetic", a, c.label) for a, c in zip(answers, cases, strict=True)]
    assert sum(s["format_ok"] for s in scored) / len(scored) > 0.9
    assert (log_probs <= 0).all() and mask.dtype == torch.int64


def test_flchain_drops_the_censored_and_keeps_the_label_leak_out():
    from benchmarks.efficacy.tasks import flchain

    task = flchain()
    assert task.dropped and sum(task.dropped.values()) > 0
    size = len(task.fit) + len(task.validation) + len(task.test)
    assert size + sum(task.dropped.values()) == 7874
    assert not any(t.startswith("chapter") for c in task.test for t in c.tokens)


def test_support_has_eight_disease_sources_and_shows_no_column_measured_after_baseline():
    from benchmarks.efficacy.tasks import SUPPORT_FEATURES, support

    task = support()
    assert len(task.sources) == 8 and task.attributes == ("sex", "race")
    assert len(task.fit) + len(task.validation) + len(task.test) == 9105
    shown = {t.rsplit("_", 1)[0] for c in task.test for t in c.tokens}
    for leak in ("fac_sfdm2", "fac_dnr", "num_surv2m", "num_surv6m", "fac_dzclass"):
        assert leak not in SUPPORT_FEATURES and leak not in shown


def test_the_paired_test_finds_a_true_shift_and_not_a_null_one():
    from benchmarks.efficacy.stats import paired

    rng = np.random.default_rng(0)
    base = rng.normal(10, 2, 16)
    shifted = paired(base - 3 + rng.normal(0, 0.5, 16), base)
    null = paired(base + np.tile([0.5, -0.5], 8), base)  # differences of mean 0
    assert shifted["high"] < 0 and shifted["p"] < 0.01
    assert null["low"] < 0 < null["high"] and null["p"] == 1.0


@pytest.mark.parametrize("task", ["flchain", "synthetic", "support"])
def test_every_split_keeps_both_groups_of_every_attribute(task):
    from benchmarks.efficacy.tasks import TASKS

    spec = TASKS[task]()
    for part in (spec.fit, spec.validation, spec.test):
        for attribute in spec.attributes:
            assert len({c.groups[attribute] for c in part}) >= 2
