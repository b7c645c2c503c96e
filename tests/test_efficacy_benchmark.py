"""The efficacy benchmark's quick mode: the pipeline works end to end (not the outcome)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_quick_mode_trains_and_reports_every_task():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.efficacy", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for task in ("diabetes", "synthetic"):
        assert f"### Task: {task}" in result.stdout
    for method in ("| grpo |", "| fair_grpo_paper |", "| warm_start |"):
        assert result.stdout.count(method) == 2
    assert "nan ± nan" not in result.stdout.split("| grpo |")[1].splitlines()[0]


def test_the_policy_answers_in_the_rewards_format():
    import torch

    from benchmarks.efficacy.policy import Vocabulary, sample, tiny_model, warm_start
    from benchmarks.efficacy.tasks import synthetic
    from verl_fair.reward_fns.clinical_diagnosis import compute_score

    task = synthetic(0, size=200)
    vocab = Vocabulary(task.train + task.test)
    model = tiny_model(len(vocab.itos), 0)
    warm_start(model, vocab, task.warm_start, epochs=5, seed=0)
    prompts = torch.tensor([vocab.prompt(c) for c in task.test])
    responses, log_probs, mask = sample(model, prompts, torch.Generator().manual_seed(0), greedy=True)
    scored = [
        compute_score("synthetic", vocab.decode(r), c.label) for r, c in zip(responses.tolist(), task.test, strict=True)
    ]
    assert sum(s["format_ok"] for s in scored) / len(scored) > 0.9
    assert (log_probs <= 0).all() and mask.dtype == torch.int64
