"""Images end to end on CPU: PNG and JPEG scans -> ``verl-fair prepare table --image-column`` -> verl's
``RLHFDataset`` with the tiny Qwen2.5-VL's processor -> the CPU rollout -> the clinical reward ->
``fair_grpo`` with labels through the sampler -> checkpoint and resume -> validation dumps -> report.

Three ``main_ppo`` runs of the image demo's task (:mod:`verl_fair.demo.imaging`), about a minute each.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pandas as pd
import pytest
from e2e import Run, main_ppo
from PIL import Image

from verl_fair.demo import imaging
from verl_fair.demo import run as demo
from verl_fair.integration.checkpoint import STATE_FILE

STEPS, BATCH, N = 2, 8, 4
LABELLED = ("algorithm.fair_grpo.min_group_size=2", "algorithm.fair_grpo.labels=required")


def shipped(inputs: Path, output: Path, *extra: str, steps: int = STEPS, save_freq: int | None = None) -> list[str]:
    overrides = demo.run_overrides(
        inputs, output, steps=steps, batch_size=BATCH, n=N, save_freq=save_freq, modality="image"
    )
    return demo.shipped_config_command([*overrides, *extra], modality="image")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("image_inputs")
    demo.build_inputs(folder, modality="image")
    return folder


@pytest.fixture(scope="module")
def labelled(inputs, tmp_path_factory) -> Run:
    output = tmp_path_factory.mktemp("image_labelled")
    return main_ppo(inputs, output, shipped(inputs, output, *LABELLED, save_freq=1)).check()


def test_prepare_embeds_the_png_and_jpeg_bytes(inputs):
    frame = pd.read_parquet(inputs / "data" / "train.parquet")
    formats = {Image.open(io.BytesIO(row[0]["bytes"])).format for row in frame["images"]}
    assert formats == {"PNG", "JPEG"}
    assert all(row[0]["content"].count("<image>") == 1 for row in frame["prompt"])
    assert {str(info["demographics"]["sex"]) for info in frame["extra_info"]} == {"F", "M"}


def test_images_reach_the_model_and_log_probs_agree(labelled):
    line = imaging.images_line(labelled.log)
    assert line.startswith("images reached the model: ") and " 0 of " not in line, line
    for step in range(1, STEPS + 1):
        training = labelled.series("training/")[step]
        # as close as on text prompts (benchmarks/RESULTS.md: 0.002 to 0.003)
        assert 0 < training["training/rollout_probs_diff_mean"] < 0.01, training


def test_labelled_groups_are_reweighted_and_validated(labelled):
    train = labelled.series(f"fair/train/{imaging.DATA_SOURCE}/")
    assert sorted(train) == [1, 2]
    groups = {name.split("/")[3] for step in train.values() for name in step}
    assert groups <= {"F,A1", "F,A2", "M,A1", "M,A2"} and len(groups) >= 3, groups
    weights = [v for k, v in labelled.series("fair/estimator/")[STEPS].items() if k.endswith("/weight")]
    assert len(weights) >= 3 and max(weights) - min(weights) > 1e-3, weights
    assert 0 <= labelled.series("val-fair/")[STEPS]["val-fair/all/sex/acc_worst_group"] <= 1


def test_resume_restores_the_state_and_the_report_reads_the_dumps(labelled, inputs, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    shutil.copytree(labelled.output / "checkpoints" / "global_step_1", checkpoints / "global_step_1")
    (checkpoints / "latest_checkpointed_iteration.txt").write_text("1")
    resumed = main_ppo(inputs, tmp_path, shipped(inputs, tmp_path, *LABELLED, save_freq=1)).check()
    assert f"FairGRPO state restored from {checkpoints / 'global_step_1' / STATE_FILE} (1 steps" in resumed.log
    after, uninterrupted = resumed.state(2), labelled.state(2)
    assert after["group_stats"]["keys"] == uninterrupted["group_stats"]["keys"]
    assert (after["group_stats"]["sums"][:, 0] == uninterrupted["group_stats"]["sums"][:, 0]).all()

    from verl_fair.cli import main

    report = tmp_path / "report"
    assert main(["report", str(labelled.output / "validation"), "--output", str(report)]) == 0
    assert "sex" in (report / "report.md").read_text()
