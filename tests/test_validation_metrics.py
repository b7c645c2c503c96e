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


def test_names_that_would_clash_get_a_suffix_and_a_warning(caplog):
    infos = {"acc": [1.0, 0.0, 1.0, 0.0], "group_sex": ["F", "F", "M", "M"]}
    metrics = group_metrics(["all", "all", "a/b", "a_b"], infos)
    assert metrics["val-fair/all_2/sex/F/acc"] == 0.5  # the data source called "all"
    assert metrics["val-fair/all/sex/F/acc"] == 0.5 and metrics["val-fair/all/sex/M/acc"] == 0.5  # every source
    assert metrics["val-fair/a_b/sex/M/acc"] == 0.0 and metrics["val-fair/a_b_2/sex/M/acc"] == 1.0
    assert "'a/b' would clash" in caplog.text and "'all' would clash" in caplog.text


def test_samples_without_a_finite_accuracy_or_a_string_group_are_left_out():
    infos = {"acc": [float("nan"), 1.0, 0.0, None, 1.0], "group_sex": ["F", "F", "M", "M", None]}
    infos["group_size"] = [4, 4, 4, 4, 4]  # not a group attribute: numbers
    metrics = group_metrics(["a"] * 5, infos)
    assert metrics["val-fair/a/sex/F/acc"] == 1.0 and metrics["val-fair/a/sex/acc_gap"] == 1.0
    assert not any("/size/" in name for name in metrics)


def test_lists_of_the_wrong_length_are_left_out_with_a_warning(caplog):
    assert group_metrics(["a"], {"acc": [1.0, 0.0], "group_sex": ["F", "M"]}) == {}
    metrics = group_metrics(["a", "a"], {"acc": [1.0, 0.0], "group_sex": ["F"], "group_age": ["A1", "A2"]})
    assert set(metrics) == {
        f"val-fair/{s}/age/{n}" for s in ("a", "all") for n in ("A1/acc", "A2/acc", "acc_gap", "acc_worst_group")
    }
    assert "1 data sources for 2 acc values" in caplog.text and "group_sex has 1 values for 2 samples" in caplog.text


@pytest.fixture
def hook():
    """The wrap the plugin installs with VERL_FAIR_VALIDATION_METRICS=1, undone afterwards."""
    yield validation.enable()
    validation.disable()


def test_hook_through_verls_val_metrics_update(hook, monkeypatch):
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    sources, infos = _samples()
    trainer = object.__new__(PPOTrainerSync)
    metrics = trainer._val_metrics_update(sources, [f"u{i}" for i in range(len(sources))], infos, sample_turns=[])
    assert metrics["val-fair/cxr/sex/acc_gap"] == pytest.approx(0.5)
    assert metrics["val-fair/cxr/sex/F/acc"] == pytest.approx(0.5)
    assert np.isfinite(metrics["val-core/cxr/acc/mean@1"])
    monkeypatch.setattr(validation, "group_metrics", lambda *_: 1 / 0)
    broken = trainer._val_metrics_update(sources, ["u"] * len(sources), infos, sample_turns=[])
    assert "val-core/cxr/acc/mean@4" in broken and not any(n.startswith("val-fair/") for n in broken)
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
