# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
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


TASK_FILE = """
import numpy as np
import pandas as pd

from benchmarks.efficacy.tasks import TableTask


def efficacy_task() -> TableTask:
    rng = np.random.default_rng(0)
    n = 600
    marker = rng.normal(size=n)
    frame = pd.DataFrame({
        "hospital": rng.choice(["north", "south"], size=n),
        "sex": rng.choice(["female", "male"], size=n),
        "age": rng.integers(30, 90, size=n),
        "marker": marker,
        "smoker": rng.choice(["yes", "no"], size=n),
        "outcome": np.where(marker + rng.normal(scale=0.5, size=n) > 0, "sick", "well"),
    })
    return TableTask("outside", frame, "outcome", ("sick", "well"), ("sex", "age"), ("marker", "smoker"),
                     ("sex", "M"), source="hospital")
"""


def _efficacy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.efficacy", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_a_task_module_outside_the_repository_is_listed_and_runs_in_quick_mode(tmp_path):
    task_file = tmp_path / "outside_task.py"
    task_file.write_text(TASK_FILE)
    listed = _efficacy("--task-module", str(task_file), "--list-tasks")
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "outside: 600 rows" in listed.stdout and "data sources: north (" in listed.stdout
    assert "groups: sex=F (" in listed.stdout and "age=A2 (" in listed.stdout
    assert "support: 9105 rows" in listed.stdout and "flchain: 7679 rows" in listed.stdout
    quick = _efficacy("--task-module", str(task_file), "--quick")
    assert quick.returncode == 0, quick.stderr[-3000:]
    assert "### Task: outside" in quick.stdout and "| north |" in quick.stdout and "### Goal" in quick.stdout


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def something_else():\n    pass\n", "defines no function efficacy_task()"),
        (TASK_FILE.replace('"outcome", ("sick", "well")', '"outcome", ("ill", "well")'), "not one of the labels"),
        (TASK_FILE.replace('("marker", "smoker")', '("marker", "smoking")'), "column(s) ['smoking'] not in the frame"),
        ("raise RuntimeError('no data here')\n", "importing it failed: RuntimeError: no data here"),
    ],
)
def test_a_bad_task_module_stops_with_a_message_naming_the_file_and_the_fix(tmp_path, capsys, source, message):
    from benchmarks.efficacy.run import main

    task_file = tmp_path / "bad_task.py"
    task_file.write_text(source)
    assert main(["--task-module", str(task_file), "--list-tasks"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: --task-module {task_file}: ") and message in error


def test_an_altered_support_file_is_refused_before_it_is_unpickled(tmp_path, monkeypatch):
    from benchmarks.efficacy import tasks

    monkeypatch.setattr(tasks, "SUPPORT_SHA256", "0" * 64)
    with pytest.raises(tasks.TaskError, match="SHA-256 .* expected 0{64} .*pip install survset==0.2.11"):
        tasks.support_table()
