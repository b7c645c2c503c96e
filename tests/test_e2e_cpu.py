# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""verl's real trainer end to end on CPU: ``python -m verl.trainer.main_ppo`` subprocesses with the CPU
backend, the demo's chest-pain task and its tiny model, warm-started briefly so that rollouts get varying
rewards in every group.

Each run starts its own Ray cluster; a run takes about a minute on 2 cores (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from e2e import Run, main_ppo

from verl_fair.demo import run as demo

STEPS, BATCH, N = 3, 8, 4


def shipped(inputs: Path, output: Path, *extra: str, steps: int = STEPS, save_freq: int | None = None) -> list[str]:
    return demo.shipped_config_command(
        [*demo.run_overrides(inputs, output, steps=steps, batch_size=BATCH, n=N, save_freq=save_freq), *extra]
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cpu_inputs")
    demo.build_inputs(folder, warm_epochs=4)
    return folder


@pytest.fixture(scope="module")
def labelled(inputs, tmp_path_factory) -> Run:
    """FairGRPO with labels (the shipped config); groups get their own factor early. (Resuming is tested on
    a two-node cluster in test_cluster.py and with images in test_e2e_image.py.)"""
    output = tmp_path_factory.mktemp("labelled")
    return main_ppo(
        inputs,
        output,
        shipped(inputs, output, "algorithm.fair_grpo.min_group_size=2", "algorithm.fair_grpo.labels=required"),
    ).check()


def test_labelled_run_logs_groups_and_reweights_them(labelled):
    train = labelled.series("fair/train/chest_pain/")
    assert sorted(train) == [1, 2, 3]
    groups = {name.split("/")[3] for step in train.values() for name in step}
    assert len(groups) >= 3 and all("," in g and not g.startswith("UNK") for g in groups)
    for step in (1, 2, 3):
        advantages = labelled.series("critic/advantages/")[step]
        assert advantages["critic/advantages/max"] > 0 > advantages["critic/advantages/min"]
    weights = [
        v for name, v in labelled.series("fair/estimator/chest_pain/")[STEPS].items() if name.endswith("/weight")
    ]
    assert len(weights) >= 3 and max(weights) - min(weights) > 1e-3, weights
    assert 0 < labelled.series("val-fair/")[STEPS]["val-fair/all/sex/acc_worst_group"] <= 1
    assert labelled.state(STEPS)["steps"] == STEPS


def test_demo_table_shows_each_group(labelled):
    table = demo.group_table(labelled.metrics).splitlines()
    assert table[0].split()[:3] == ["data", "source,", "group"] and len(table) >= 4
    assert all(row.startswith("chest_pain ") for row in table[1:])
    assert demo.validation_line(labelled.metrics).startswith(f"validation (step 0 -> {STEPS}): accuracy ")


def test_labelled_run_writes_a_report(labelled, tmp_path):
    from verl_fair.cli import main

    assert main(["report", str(labelled.output / "validation"), "--output", str(tmp_path)]) == 0
    assert {"report.md", "report.json", "by_group.png"} <= {p.name for p in tmp_path.iterdir()}


def test_bare_estimator_runs_label_free_and_says_so(inputs, tmp_path):
    """verl's own config with only algorithm.adv_estimator=fair_grpo."""
    command = [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        "algorithm.adv_estimator=fair_grpo",
        "reward.custom_reward_function.path=pkg://verl_fair.reward_fns.clinical_diagnosis",
        "reward.custom_reward_function.name=compute_score",
        *demo.run_overrides(inputs, tmp_path, steps=2, batch_size=BATCH, n=N),
    ]
    run = main_ppo(inputs, tmp_path, command).check()
    assert "runs label-free: every prompt is UNK in one domain" in run.log
    assert run.series("critic/advantages/")[2]["critic/advantages/max"] > 0
    assert not run.series("fair/train/")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algorithm.fair_grpo.weigthing=none", "Key 'weigthing' is not in struct"),
        ("algorithm.fair_grpo.weighting=fairgpro", "algorithm.fair_grpo.weighting='fairgpro' is not valid"),
    ],
)
def test_config_mistake_stops_the_run_at_start_up(inputs, tmp_path, override, message):
    run = main_ppo(inputs, tmp_path, shipped(inputs, tmp_path, override))
    assert run.code != 0 and message in run.log, run.log[-3000:]
    assert not run.metrics  # stopped before the first validation
