# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""verl's RayPPOTrainer (``trainer.use_v1=False``) end to end on CPU, with the shipped config and no switch:
labelled FairGRPO, its metrics, and its state checkpointed and restored.

Two ``python -m verl.trainer.main_ppo`` runs share every assertion: an uninterrupted two-step run that
checkpoints each step, and a resume from its first checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from e2e import Run, main_ppo

from verl_fair.demo import run as demo
from verl_fair.integration.checkpoint import STATE_FILE

STEPS, BATCH, N = 2, 8, 4
LABELLED = ("trainer.use_v1=False", "algorithm.fair_grpo.labels=required", "algorithm.fair_grpo.min_group_size=2")


def command(inputs: Path, output: Path) -> list[str]:
    overrides = demo.run_overrides(inputs, output, steps=STEPS, batch_size=BATCH, n=N, save_freq=1)
    return demo.shipped_config_command([*overrides, *LABELLED])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("legacy_inputs")
    demo.build_inputs(folder, warm_epochs=4)
    return folder


@pytest.fixture(scope="module")
def uninterrupted(inputs, tmp_path_factory) -> Run:
    output = tmp_path_factory.mktemp("uninterrupted")
    return main_ppo(inputs, output, command(inputs, output)).check()


@pytest.fixture(scope="module")
def resumed(uninterrupted, inputs, tmp_path_factory) -> Run:
    output = tmp_path_factory.mktemp("resumed")
    checkpoints = output / "checkpoints"
    checkpoints.mkdir()
    shutil.copytree(uninterrupted.output / "checkpoints" / "global_step_1", checkpoints / "global_step_1")
    (checkpoints / "latest_checkpointed_iteration.txt").write_text("1")
    return main_ppo(inputs, output, command(inputs, output)).check()


def test_ray_ppo_trainer_trains_labelled_fair_grpo_and_says_so(uninterrupted):
    # logged from the wrap of RayPPOTrainer.__init__: verl's RayPPOTrainer ran
    assert "RayPPOTrainer (trainer.use_v1=False): labelled from the batch's data_source" in uninterrupted.log
    assert "runs label-free" not in uninterrupted.log
    train = uninterrupted.series("fair/train/chest_pain/")
    assert sorted(train) == [1, 2]
    groups = {name.split("/")[3] for step in train.values() for name in step}
    assert len(groups) >= 3 and all("," in g and not g.startswith("UNK") for g in groups)


def test_ray_ppo_trainer_logs_the_metrics_v1_logs(uninterrupted):
    for step in (1, 2):  # the estimator's report of the step itself (v1 logs it one step later)
        names = uninterrupted.series("fair/")[step]
        assert "fair/train/unk_share" in names
        assert any(n.startswith("fair/estimator/chest_pain/") and n.endswith("/weight") for n in names), names
        assert any(n.startswith("fair/estimator/chest_pain/") and n.endswith("/adv_share") for n in names)
    validation = uninterrupted.series("val-fair/")[STEPS]
    assert 0 < validation["val-fair/all/sex/acc_worst_group"] <= 1
    assert {"val-fair/chest_pain/sex/F/acc", "val-fair/chest_pain/sex/M/acc"} <= set(validation)


def test_ray_ppo_trainer_checkpoints_the_state(uninterrupted):
    assert [uninterrupted.state(step)["steps"] for step in (1, 2)] == [1, 2]


def test_a_resumed_ray_ppo_trainer_reaches_the_uninterrupted_statistics(uninterrupted, resumed):
    folder = resumed.output / "checkpoints" / "global_step_1"
    assert f"FairGRPO state restored from {folder / STATE_FILE} (1 steps" in resumed.log
    assert sorted(resumed.series("fair/train/")) == [2]
    assert resumed.state(2)["steps"] == 2
    assert resumed.visit_counts(2) == uninterrupted.visit_counts(2)
    print(f"RayPPOTrainer: {uninterrupted.seconds:.0f} s for {STEPS} steps, resume {resumed.seconds:.0f} s")
