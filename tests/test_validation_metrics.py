# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Fairness gaps added to verl's own validation metrics."""

import subprocess
import sys

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from verl_fair.configs import folder as configs_folder
from verl_fair.integration import validation
from verl_fair.integration.validation import group_metrics
from verl_fair.reward_fns.clinical_diagnosis import compute_score


def _samples():
    cases = [
        ("cxr", "F", 30, True),
        ("cxr", "F", 80, False),
        ("cxr", "M", 40, True),
        ("cxr", "M", 60, True),
        ("derm", "F", 30, True),
        ("derm", "M", 30, False),
        ("derm", None, None, True),
    ]
    results = [
        compute_score(
            source, "\\boxed{edema}" if right else "\\boxed{mass}", "edema", {"demographics": {"sex": sex, "age": age}}
        )
        for source, sex, age, right in cases
    ]
    infos = {key: [r[key] for r in results] for key in results[0]}
    infos["reward"] = [r["score"] for r in results]
    return [c[0] for c in cases], infos


def test_group_accuracy_and_gaps_by_data_source_and_overall():
    sources, infos = _samples()
    metrics = group_metrics(sources, infos)
    assert metrics["val-fair/cxr/sex/F/acc"] == pytest.approx(0.5) and metrics["val-fair/cxr/sex/M/acc"] == 1.0
    assert metrics["val-fair/all/sex/F/acc"] == pytest.approx(2 / 3)
    assert "val-fair/derm/sex/UNK/acc" not in metrics  # the sample without a sex is left out
    assert metrics["val-fair/cxr/sex/acc_gap"] == pytest.approx(0.5)
    assert metrics["val-fair/cxr/sex/acc_worst_group"] == pytest.approx(0.5)
    assert metrics["val-fair/derm/sex/acc_gap"] == pytest.approx(1.0)
    assert metrics["val-fair/all/sex/acc_gap"] == pytest.approx(0.0)  # F and M both 2 of 3 overall
    assert metrics["val-fair/all/sex/acc_worst_group"] == pytest.approx(2 / 3)
    assert metrics["val-fair/cxr/age/acc_worst_group"] == 0.0  # A4


def test_one_group_has_its_accuracy_but_no_gap_and_slashes_stay_inside_a_part():
    infos = {"acc": [1.0, 0.0], "group_site": ["a/b", "a/b"]}
    metrics = group_metrics(["x/y", "x/y"], infos)
    assert metrics == {"val-fair/x_y/site/a_b/acc": 0.5, "val-fair/all/site/a_b/acc": 0.5}


@pytest.fixture
def hook():
    """The wrap the plugin installs with VERL_FAIR_VALIDATION_METRICS=1, undone afterwards."""
    yield validation.enable()
    validation.disable()


def test_hook_through_verls_val_metrics_update(hook):
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    sources, infos = _samples()
    trainer = object.__new__(PPOTrainerSync)
    metrics = trainer._val_metrics_update(sources, [f"u{i}" for i in range(len(sources))], infos, sample_turns=[])
    assert metrics["val-fair/cxr/sex/acc_gap"] == pytest.approx(0.5)
    assert metrics["val-fair/cxr/sex/F/acc"] == pytest.approx(0.5)
    assert np.isfinite(metrics["val-core/cxr/acc/mean@1"])
    validation.disable()
    assert PPOTrainer._val_metrics_update is hook[0].original  # undone: the rest of the session sees verl's own


def test_the_shipped_config_asks_every_worker_for_the_hook():
    with initialize_config_dir(config_dir=str(configs_folder()), version_base=None):
        config = compose(config_name="fair_grpo_trainer", overrides=["algorithm.adv_estimator=grpo"])
    assert config.ray_kwargs.ray_init.runtime_env.env_vars[validation.ENV] == "1"


PLUGIN = """
import os, sys
os.environ["VERL_FAIR_VALIDATION_METRICS"] = sys.argv[1]
import verl
from verl.trainer.ppo.v1.trainer_base import PPOTrainer
print("wrapped:", hasattr(PPOTrainer._val_metrics_update, "__verl_fair_patch__"))
"""


@pytest.mark.parametrize("requested", ["1", "0"])
def test_the_plugin_installs_the_hook_when_the_run_asks(requested):
    result = subprocess.run([sys.executable, "-c", PLUGIN, requested], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrapped: {requested == '1'}" in result.stdout
