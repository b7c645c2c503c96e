"""Fairness gaps added to verl's own validation metrics."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from verl_fair.cli import configs_folder
from verl_fair.integration.checkpoint import FairStateCallback
from verl_fair.integration.validation import gap_metrics
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


def test_gap_metrics_by_data_source_and_overall():
    sources, infos = _samples()
    metrics = gap_metrics(sources, infos)
    assert metrics["val-fair/cxr/sex/acc_gap"] == pytest.approx(0.5)
    assert metrics["val-fair/cxr/sex/acc_worst_group"] == pytest.approx(0.5)
    assert metrics["val-fair/derm/sex/acc_gap"] == pytest.approx(1.0)
    assert metrics["val-fair/all/sex/acc_gap"] == pytest.approx(0.0)  # F and M both 2 of 3 overall
    assert metrics["val-fair/all/sex/acc_worst_group"] == pytest.approx(2 / 3)
    assert metrics["val-fair/cxr/age/acc_worst_group"] == 0.0  # A4


def test_hook_through_verls_val_metrics_update(tmp_path):
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    with initialize_config_dir(config_dir=str(configs_folder()), version_base=None):
        config = compose(
            config_name="fair_grpo_trainer",
            overrides=[f"trainer.default_local_dir={tmp_path}", "algorithm.adv_estimator=grpo"],
        )
    FairStateCallback(config)  # what verl's trainer builds; installs the hook even for the grpo baseline
    sources, infos = _samples()
    trainer = object.__new__(PPOTrainerSync)
    metrics = trainer._val_metrics_update(sources, [f"u{i}" for i in range(len(sources))], infos, sample_turns=[])
    assert metrics["val-fair/cxr/sex/acc_gap"] == pytest.approx(0.5)
    assert metrics["val-aux/cxr/acc_grp_sex_F/mean@1"] == pytest.approx(0.5)  # verl's own per-group number
    assert np.isfinite(metrics["val-core/cxr/acc/mean@1"])
