# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Images end to end on CPU: PNG and JPEG scans -> ``verl-fair prepare table --image-column`` -> verl's
``RLHFDataset`` with the tiny Qwen2.5-VL's processor -> the CPU rollout -> the clinical reward ->
``fair_grpo`` with labels through the sampler -> checkpoint and resume -> validation dumps -> report.

Two ``main_ppo`` runs of the image demo's task (:mod:`verl_fair.demo.imaging`), about a minute each, on
the demo's warm-started model (built once, about half a minute), which reads the scans and inherits the
historical reads' blind spot on women's nodules.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from e2e import Run, main_ppo
from PIL import Image

from verl_fair.demo import imaging, patients, vlm
from verl_fair.demo import run as demo
from verl_fair.demo.model import Example
from verl_fair.integration.checkpoint import STATE_FILE

STEPS, BATCH, N = 2, 8, 4
# validation on 64 scans: the demo's 133 would add a minute to the runs and test nothing more
LABELLED = ("algorithm.fair_grpo.min_group_size=2", "algorithm.fair_grpo.labels=required", "data.val_max_samples=64")


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


def test_the_historical_reads_miss_only_womens_nodules(inputs):
    table = pd.read_csv(inputs / "scans" / patients.TABLE)
    missed = table[table["recorded"] != table["finding"]]
    assert len(missed) > 20 and (missed["sex"] == "F").all() and (missed["finding"] == "nodule").all()
    women_with_nodules = table[(table["sex"] == "F") & (table["finding"] == "nodule")]
    assert 0.4 < len(missed) / len(women_with_nodules) < 0.8


def _answers(model, processor, examples: list[Example]) -> list[str]:
    """The likelier of the two boxed answers for each example (teacher-forced log-probabilities)."""
    options = [f"\\boxed{{{label}}}" for label in imaging.LABELS]
    rows = [vlm.encode(processor, Example(e.messages, option, e.group)) for e in examples for option in options]
    batch = vlm.collate(rows, processor.tokenizer.pad_token_id, processor.image_token_id)
    labels = batch.pop("labels")[:, 1:]
    with torch.no_grad():
        logits = model(**batch).logits[:, :-1]
    taken = torch.log_softmax(logits, -1).gather(2, labels.clamp(min=0)[..., None])[..., 0]
    scores = (taken * (labels != -100)).sum(1).view(len(examples), len(options))
    return [imaging.LABELS[i] for i in scores.argmax(1).tolist()]


def _blank(example: Example) -> Example:
    """The example with every image replaced by a uniform grey one of the same size."""
    blank = [
        [
            {**part, "image": Image.new("L", part["image"].size, 100)} if part["type"] == "image" else part
            for part in m["content"]
        ]
        for m in example.messages
    ]
    return Example(
        [{**m, "content": c} for m, c in zip(example.messages, blank, strict=True)], example.answer, example.group
    )


def test_the_warm_started_model_reads_the_scans_and_misses_womens_nodules(inputs):
    """The warm start learns from the scans (with blank ones it answers alike for all, no better than
    chance) and inherits the reads' blind spot: men's nodules found, most women's called normal."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(inputs / "model").eval()
    processor = AutoProcessor.from_pretrained(inputs / "model", trust_remote_code=True)
    truth = [gold["ground_truth"] for gold in pd.read_parquet(inputs / "data" / "val.parquet")["reward_model"]]
    examples = imaging.examples(inputs / "data" / "val.parquet", inputs / "scans" / patients.TABLE)
    seen, blank = _answers(model, processor, examples), _answers(model, processor, [_blank(e) for e in examples])

    def accuracy(answers: list[str], sex: str | None = None, finding: str | None = None) -> float:
        hits = [
            answer == gold
            for answer, gold, example in zip(answers, truth, examples, strict=True)
            if sex in (None, example.group) and finding in (None, gold)
        ]
        return sum(hits) / len(hits)

    assert len(set(blank)) == 1 and accuracy(blank) < 0.65
    assert accuracy(seen, "M") > 0.95 and accuracy(seen, "F", "normal") > 0.9
    assert accuracy(seen, "F", "nodule") < 0.6


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


def test_the_final_validation_answers_from_the_scans(labelled):
    """Both answers at the last validation: the model still tells nodules from normal scans after RL."""
    dump = labelled.output / "validation" / f"{STEPS}.jsonl"
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    assert len({row["pred"] for row in rows}) > 1 and sum(row["acc"] for row in rows) / len(rows) > 0.8


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
