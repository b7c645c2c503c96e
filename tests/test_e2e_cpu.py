"""verl's real trainer end to end on CPU: ``python -m verl.trainer.main_ppo`` subprocesses with the CPU
backend, the tiny warm-started model and the diabetes task, whose rollouts get varying rewards.

Each run starts its own Ray cluster; a run takes about a minute on 2 cores (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from e2e import Run, main_ppo

from verl_fair.demo import run as demo
from verl_fair.integration.checkpoint import STATE_FILE

STEPS, BATCH, N = 3, 8, 4


def shipped(inputs: Path, output: Path, *extra: str, steps: int = STEPS, save_freq: int | None = None) -> list[str]:
    return demo.shipped_config_command(
        [*demo.run_overrides(inputs, output, steps=steps, batch_size=BATCH, n=N, save_freq=save_freq), *extra]
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cpu_inputs")
    demo.build_inputs(folder)
    return folder


@pytest.fixture(scope="module")
def labelled(inputs, tmp_path_factory) -> Run:
    """FairGRPO with labels (the shipped config), checkpoints every step; groups get their own factor early."""
    output = tmp_path_factory.mktemp("labelled")
    return main_ppo(
        inputs,
        output,
        shipped(
            inputs, output, "algorithm.fair_grpo.min_group_size=2", "algorithm.fair_grpo.labels=required", save_freq=1
        ),
    ).check()


def test_labelled_run_logs_groups_and_reweights_them(labelled):
    train = labelled.series("fair/train/diabetes/")
    assert sorted(train) == [1, 2, 3]
    groups = {name.split("/")[3] for step in train.values() for name in step}
    assert len(groups) >= 3 and all("," in g and not g.startswith("UNK") for g in groups)
    for step in (1, 2, 3):
        advantages = labelled.series("critic/advantages/")[step]
        assert advantages["critic/advantages/max"] > 0 > advantages["critic/advantages/min"]
    weights = [v for name, v in labelled.series("fair/estimator/diabetes/")[STEPS].items() if name.endswith("/weight")]
    assert len(weights) >= 3 and max(weights) - min(weights) > 1e-3, weights
    assert 0 < labelled.series("val-fair/")[STEPS]["val-fair/all/sex_code/acc_worst_group"] <= 1
    assert labelled.state(STEPS)["steps"] == STEPS


def test_demo_table_shows_each_group(labelled):
    table = demo.group_table(labelled.metrics).splitlines()
    assert table[0].split()[:3] == ["data", "source,", "group"] and len(table) >= 4
    assert all(row.startswith("diabetes ") for row in table[1:])
    assert demo.validation_line(labelled.metrics).startswith(f"validation (step 0 -> {STEPS}): accuracy ")


def test_labelled_run_writes_a_report(labelled, tmp_path):
    from verl_fair.cli import main

    assert main(["report", str(labelled.output / "validation"), "--output", str(tmp_path)]) == 0
    assert {"report.md", "report.json", "by_group.png"} <= {p.name for p in tmp_path.iterdir()}


def test_resume_restores_the_estimator_state_and_continues(labelled, inputs, tmp_path):
    """Resumed from step 2 of the labelled run, the run restores its state and, on the same batch
    (verl resumes the data loader), reaches the same visit counts at step 3."""
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    shutil.copytree(labelled.output / "checkpoints" / "global_step_2", checkpoints / "global_step_2")
    (checkpoints / "latest_checkpointed_iteration.txt").write_text("2")
    resumed = main_ppo(
        inputs,
        tmp_path,
        shipped(
            inputs, tmp_path, "algorithm.fair_grpo.min_group_size=2", "algorithm.fair_grpo.labels=required", save_freq=1
        ),
    ).check()
    assert f"FairGRPO state restored from {checkpoints / 'global_step_2' / STATE_FILE} (2 steps" in resumed.log
    assert sorted(resumed.series("fair/train/")) == [3]
    before, after, uninterrupted = labelled.state(2), resumed.state(3), labelled.state(3)
    assert after["steps"] == 3 and after["group_stats"]["keys"] == uninterrupted["group_stats"]["keys"]
    visits = lambda state: state["group_stats"]["sums"][:, 0]  # noqa: E731
    assert (visits(after) == visits(uninterrupted)).all() and (visits(after) > visits(before)).any()


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


def test_legacy_trainer_with_the_adapter_gets_labels(inputs, tmp_path):
    """labels=required stops the run unless the adapter hands the estimator the batch's demographics."""
    run = main_ppo(
        inputs,
        tmp_path,
        shipped(inputs, tmp_path, "trainer.use_v1=False", "algorithm.fair_grpo.labels=required", steps=2),
        env={"VERL_FAIR_LEGACY_ADAPTER": "1"},
    ).check()
    assert "runs label-free" not in run.log
    assert run.series("critic/advantages/")[2]["critic/advantages/max"] > 0


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
