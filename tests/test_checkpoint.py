# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The checkpoint callback: a resumed run gives the advantages of an uninterrupted one."""

import logging

import pytest
import torch
from helpers import Prompt, make_batch
from hydra import compose, initialize_config_dir
from test_state_and_history import _steps

from verl_fair.algorithm import state as state_file
from verl_fair.configs import folder as configs_folder
from verl_fair.integration import context
from verl_fair.integration.checkpoint import FRESH_STATE_ENV, STATE_FILE, FairStateCallback
from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo


def _config(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(configs_folder()), version_base=None):
        return compose(config_name="fair_grpo_trainer", overrides=[f"trainer.default_local_dir={tmp_path}", *overrides])


def _save_like_verl(callback, tmp_path, step):
    folder = tmp_path / f"global_step_{step}"
    folder.mkdir()
    (tmp_path / "latest_checkpointed_iteration.txt").write_text(str(step))
    callback.on_save(trainer=None, global_step=step, checkpoint_dir=str(folder))
    return folder


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_resume_gives_the_same_advantages_as_an_uninterrupted_run(tmp_path, variant):
    config = _config(tmp_path, f"algorithm.fair_grpo.variant={variant}")
    batches = list(_steps(6, seed=3))
    uninterrupted = [fair_grpo(**b.kwargs(config.algorithm))[0] for b in batches]

    context.reset_state()
    callback = FairStateCallback(config)
    for b in batches[:3]:
        fair_grpo(**b.kwargs(config.algorithm))
    assert (_save_like_verl(callback, tmp_path, 3) / STATE_FILE).is_file()

    context.reset_state()  # a new process: verl builds the callback again, which restores the state
    FairStateCallback(config)
    assert context.get_state().steps_ == 3
    for expected, batch in zip(uninterrupted[3:], batches[3:], strict=True):
        torch.testing.assert_close(fair_grpo(**batch.kwargs(config.algorithm))[0], expected, rtol=0, atol=0)


def test_resume_without_saved_state_stops_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(FRESH_STATE_ENV, raising=False)
    (tmp_path / "global_step_5").mkdir()
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("5")
    with pytest.raises(RuntimeError, match=f"holds no FairGRPO state.*{FRESH_STATE_ENV}=1"):
        FairStateCallback(_config(tmp_path))
    monkeypatch.setenv(FRESH_STATE_ENV, "1")
    FairStateCallback(_config(tmp_path))  # accepted on purpose
    assert context.get_state() is None


def test_state_from_other_settings_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(FRESH_STATE_ENV, raising=False)
    config = _config(tmp_path)
    callback = FairStateCallback(config)
    fair_grpo(**make_batch([Prompt([1, 0], "A", "M,A1")]).kwargs(config.algorithm))
    _save_like_verl(callback, tmp_path, 1)
    context.reset_state()
    with pytest.raises(RuntimeError, match="different algorithm.fair_grpo configuration"):
        FairStateCallback(_config(tmp_path, "algorithm.fair_grpo.weighting=alpha_fair"))


def test_fresh_runs_and_disabled_resume_load_nothing(tmp_path):
    FairStateCallback(_config(tmp_path))
    FairStateCallback(_config(tmp_path, "trainer.resume_mode=disable"))
    assert context.get_state() is None


def test_bad_settings_stop_the_trainer_at_start_up(tmp_path):
    with pytest.raises(ValueError, match="weighting='fair'"):
        FairStateCallback(_config(tmp_path, "algorithm.fair_grpo.weighting=fair"))


def test_start_up_summary_is_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        FairStateCallback(_config(tmp_path))
    assert "v1 trainer: labelled" in caplog.text and STATE_FILE in caplog.text


def test_idle_for_other_estimators(tmp_path):
    config = _config(tmp_path, "algorithm.adv_estimator=grpo")
    fair_grpo(**make_batch([Prompt([1, 0], "A", "M,A1")]).kwargs(config.algorithm))  # a state exists
    callback = FairStateCallback(config)
    assert not callback.active
    callback.on_save(trainer=None, global_step=1, checkpoint_dir=str(tmp_path / "x"))
    assert not (tmp_path / "x" / STATE_FILE).exists()
    assert FairStateCallback(_config(tmp_path)).active  # the same settings with fair_grpo are active


def test_a_state_over_the_readers_limit_is_not_written_and_the_run_goes_on(tmp_path, monkeypatch, caplog):
    config = _config(tmp_path)
    callback = FairStateCallback(config)
    for batch in _steps(2, seed=3):
        fair_grpo(**batch.kwargs(config.algorithm))
    monkeypatch.setattr(state_file, "MAX_META_BYTES", 64)
    with caplog.at_level(logging.ERROR, logger="verl_fair"):
        folder = _save_like_verl(callback, tmp_path, 2)
    assert not (folder / STATE_FILE).exists()
    assert f"state of step 2 not saved: {folder / STATE_FILE} was not written" in caplog.text
    assert FRESH_STATE_ENV in caplog.text
