"""The FairGRPO state file cannot run code, is written atomically, and every loaded field is checked."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from helpers import Prompt, make_batch
from hydra import compose, initialize_config_dir
from test_state_and_history import _steps

from verl_fair.algorithm.core import FairGRPO
from verl_fair.algorithm.state import StateError, read_state, write_state
from verl_fair.cli import main as cli
from verl_fair.config import FairGRPOConfig
from verl_fair.configs import folder as configs_folder
from verl_fair.integration import context
from verl_fair.integration.checkpoint import FRESH_STATE_ENV, PICKLE_STATE_FILE, STATE_FILE, FairStateCallback
from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo


class _Exploit:
    """A pickle that, when loaded, creates a file: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _config(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(configs_folder()), version_base=None):
        return compose(config_name="fair_grpo_trainer", overrides=[f"trainer.default_local_dir={tmp_path}", *overrides])


def _checkpoint(tmp_path, step=3):
    folder = tmp_path / f"global_step_{step}"
    folder.mkdir(parents=True, exist_ok=True)
    (tmp_path / "latest_checkpointed_iteration.txt").write_text(str(step))
    return folder


def _trained_state(variant="paper", steps=3):
    config = FairGRPOConfig.from_mapping({"variant": variant})
    state = FairGRPO(config)
    from verl_fair.algorithm.advantage import group_prompts

    for batch in list(_steps(steps, seed=1)):
        grouped = group_prompts(batch.token_level_rewards.sum(-1), batch.index)
        domains = [batch.non_tensor_batch["data_source"][r] for r in grouped.first_row]
        groups = [
            g.get("fair_group", "UNK") for g in (batch.non_tensor_batch["extra_info"][r] for r in grouped.first_row)
        ]
        state.step(grouped, domains, groups)
    return state


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_round_trip_restores_the_same_state(tmp_path, variant):
    state = _trained_state(variant)
    path = write_state(tmp_path / STATE_FILE, state.state_dict())
    fresh = FairGRPO(state.config)
    fresh.load_state_dict(read_state(path))
    batch = next(_steps(1, seed=9))
    from verl_fair.algorithm.advantage import group_prompts

    grouped = group_prompts(batch.token_level_rewards.sum(-1), batch.index)
    domains = [batch.non_tensor_batch["data_source"][r] for r in grouped.first_row]
    groups = ["UNK"] * grouped.num_prompts
    torch.testing.assert_close(
        fresh.step(grouped, domains, groups).advantages, state.step(grouped, domains, groups).advantages, rtol=0, atol=0
    )


def test_a_crafted_pickle_in_the_checkpoint_runs_nothing_and_says_how_to_convert(tmp_path, monkeypatch):
    monkeypatch.delenv(FRESH_STATE_ENV, raising=False)
    marker = tmp_path / "pwned"
    folder = _checkpoint(tmp_path)
    (folder / PICKLE_STATE_FILE).write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(RuntimeError, match="pickle written by verl-fair 0.1.*verl-fair convert-state .*--trust-pickle"):
        FairStateCallback(_config(tmp_path))
    assert not marker.exists()


def test_a_pickle_named_like_the_state_file_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(FRESH_STATE_ENV, raising=False)
    marker = tmp_path / "pwned"
    folder = _checkpoint(tmp_path)
    (folder / STATE_FILE).write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(RuntimeError, match="cannot be read as a verl-fair state file"):
        FairStateCallback(_config(tmp_path))
    assert not marker.exists()


def test_an_object_array_member_is_refused(tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Exploit(tmp_path / "pwned")], dtype=object), allow_pickle=True)
    path = tmp_path / STATE_FILE
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__meta__.npy", buffer.getvalue())
    with pytest.raises(StateError, match="cannot be read"):
        read_state(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupt_file_gives_a_clear_error_and_fresh_state_covers_it(tmp_path, monkeypatch, damage):
    monkeypatch.delenv(FRESH_STATE_ENV, raising=False)
    folder = _checkpoint(tmp_path)
    config = _config(tmp_path)
    state = FairGRPO(FairGRPOConfig.from_algorithm(config.algorithm))
    data = write_state(folder / STATE_FILE, state.state_dict()).read_bytes()
    (folder / STATE_FILE).write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": os.urandom(400), "empty": b""}[damage]
    )
    with pytest.raises(RuntimeError, match=f"(?s){STATE_FILE} cannot be read.*{FRESH_STATE_ENV}=1"):
        FairStateCallback(config)
    monkeypatch.setenv(FRESH_STATE_ENV, "1")
    FairStateCallback(config)
    assert context.get_state() is None


def _edited(state: dict, path: list, value) -> dict:
    target = state
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return state


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["group_stats", "sums"], "nan", r"state.group_stats.sums holds NaN"),
        (["group_stats", "sums"], "negative", r"negative question or rollout count"),
        (["group_stats", "sums"], "short", r"state.group_stats.sums has \d+ rows, expected"),
        (["steps"], -3, r"state.steps is -3"),
        (["steps"], "3", r"state.steps must be int"),
        (["guard_totals", "weight_cap"], -1, r"state.guard_totals.weight_cap is -1"),
        (["group_stats", "keys"], [[1, 2]], r"keys must be lists of names"),
        (["latent", "domains", "A", "vectors"], "nan", r"latent.domains.A.vectors holds NaN"),
        (["latent", "rng"], {"bit_generator": "nope"}, r"latent.rng is not a numpy generator state"),
        (["rule"], {"junk": 1}, r"keeps no state"),
    ],
)
def test_an_edited_state_is_refused_naming_the_field(path, value, message):
    state = _trained_state()
    saved = state.state_dict()
    if value in ("nan", "negative", "short"):
        array = saved
        for key in path:
            array = array[key]
        array = array.copy()
        if value == "nan":
            array.flat[0] = np.nan
        elif value == "negative":
            array[0, 0] = -1.0
        else:
            array = array[:-1]
        value = array
    before = state.state_dict()
    with pytest.raises(StateError, match=message):
        state.load_state_dict(_edited(saved, path, value))
    after = state.state_dict()  # a refused state leaves the loaded one untouched
    np.testing.assert_array_equal(before["group_stats"]["sums"], after["group_stats"]["sums"])


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = write_state(tmp_path / STATE_FILE, {"version": 2, "a": np.arange(3)})
    good = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_state(path, {"version": 2, "a": np.arange(5)})
    assert path.read_bytes() == good  # the old file is intact


def test_an_old_pickle_converts_knowingly(tmp_path, capsys):
    """A verl-fair 0.1 state (written here in its layout) converts with --trust-pickle and then loads."""
    config = _config(tmp_path)
    fair_grpo(
        **make_batch([Prompt([1, 0, 1, 1], "A", "M,A1"), Prompt([0, 1, 0, 0], "A", "UNK")]).kwargs(config.algorithm)
    )
    new = context.get_state().state_dict()
    old_fingerprint = {**__import__("json").loads(new["config"]), "alpha": 1.0, "dro_step_size": 0.01,
                       "dro_size_adjustment": 0.0}  # fmt: skip
    old_fingerprint.pop("rule_settings")
    old = {
        "version": 1,
        "config": __import__("json").dumps(old_fingerprint),
        "steps": new["steps"],
        "group_stats": {"version": 1, "keys": [tuple(k) for k in new["group_stats"]["keys"]],
                        "sums": new["group_stats"]["sums"], "window": []},
        "domain_stats": {"version": 1, "keys": [k[0] for k in new["domain_stats"]["keys"]],
                         "sums": new["domain_stats"]["sums"], "window": []},
        "latent": {**new["latent"], "domains": {d: {**m, "warm": {int(k): v for k, v in m["warm"].items()}}
                                                for d, m in new["latent"]["domains"].items()}},
        "dro": {"losses": {}},
        "guard_totals": {"small_group_pool": 2, "weight_cap": 0},
    }  # fmt: skip
    folder = _checkpoint(tmp_path)
    (folder / PICKLE_STATE_FILE).write_bytes(pickle.dumps(old))
    assert cli(["convert-state", str(folder / PICKLE_STATE_FILE)]) == 2
    assert "--trust-pickle" in capsys.readouterr().err and not (folder / STATE_FILE).exists()
    assert cli(["convert-state", str(folder / PICKLE_STATE_FILE), "--trust-pickle"]) == 0
    context.reset_state()
    FairStateCallback(config)
    restored = context.get_state()
    assert restored.steps_ == new["steps"] and restored.guard_totals_["small_group"] == 2
    np.testing.assert_array_equal(restored.state_dict()["group_stats"]["sums"], new["group_stats"]["sums"])
