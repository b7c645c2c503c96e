# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The FairGRPO state file cannot run code, is written atomically, and every loaded field is checked."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from test_state_and_history import _steps

from verl_fair.algorithm import state as state_file
from verl_fair.algorithm.core import FairGRPO
from verl_fair.algorithm.state import META, StateError, read_state, write_state
from verl_fair.cli import main as cli
from verl_fair.config import FairGRPOConfig
from verl_fair.configs import folder as configs_folder
from verl_fair.integration import context
from verl_fair.integration.checkpoint import FRESH_STATE_ENV, STATE_FILE, FairStateCallback

ROOT = Path(__file__).resolve().parents[1]


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


def _trained_state(variant="paper", steps=3, **settings):
    config = FairGRPOConfig.from_mapping({"variant": variant, **settings})
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


def test_a_pickle_beside_the_checkpoint_is_never_loaded(tmp_path, monkeypatch):
    monkeypatch.delenv(FRESH_STATE_ENV, raising=False)
    marker = tmp_path / "pwned"
    folder = _checkpoint(tmp_path)
    (folder / "verl_fair_state.pkl").write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(RuntimeError, match="holds no FairGRPO state"):
        FairStateCallback(_config(tmp_path))
    assert not marker.exists()


def test_a_pickle_named_like_the_state_file_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(FRESH_STATE_ENV, raising=False)
    marker = tmp_path / "pwned"
    folder = _checkpoint(tmp_path)
    (folder / STATE_FILE).write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(RuntimeError, match="not a zip archive"):
        FairStateCallback(_config(tmp_path))
    assert not marker.exists()


def test_an_object_array_member_is_refused(tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Exploit(tmp_path / "pwned")], dtype=object), allow_pickle=True)
    path = tmp_path / STATE_FILE
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__meta__.npy", buffer.getvalue())
    with pytest.raises(StateError, match="member __meta__.npy has dtype object; a state holds numeric arrays only"):
        read_state(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_file_that_is_no_zip_archive_says_so_and_fresh_state_covers_it(tmp_path, monkeypatch, damage):
    monkeypatch.delenv(FRESH_STATE_ENV, raising=False)
    folder = _checkpoint(tmp_path)
    config = _config(tmp_path)
    state = FairGRPO(FairGRPOConfig.from_algorithm(config.algorithm))
    data = write_state(folder / STATE_FILE, state.state_dict()).read_bytes()
    (folder / STATE_FILE).write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": os.urandom(400), "empty": b""}[damage]
    )
    with pytest.raises(
        RuntimeError,
        match=rf"(?s){STATE_FILE} cannot be loaded: not a verl-fair state file \(not a zip.*{FRESH_STATE_ENV}=1",
    ) as refused:
        FairStateCallback(config)
    assert "pickle" not in str(refused.value)
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
        (["group_stats", "sums"], "negative", r"state.group_stats.sums\[0\] .*: a negative count"),
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


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _meta(tree) -> bytes:
    return _npy(np.frombuffer(tree if isinstance(tree, bytes) else json.dumps(tree).encode(), dtype=np.uint8))


def _state_file(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    """A zip of raw ``.npy`` members, as a crafted state file would be."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _huge_header() -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    return buffer.getvalue() + bytes(8)


_GOOD_META = {"format": "verl-fair-state", "version": 2, "state": {"a": {"__array__": "a0"}}}


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({f"{META}.npy": _meta([1, 2])}, r"its __meta__ is a list, not a JSON object"),
        ({f"{META}.npy": _meta(b"[" * 200_000 + b"]" * 200_000)}, r"__meta__ is nested too deeply"),
        (
            {f"{META}.npy": _meta({**_GOOD_META, "state": {"a": json.loads("[" * 40 + "]" * 40)}})},
            r"nested deeper than",
        ),
        (
            {f"{META}.npy": _meta(_GOOD_META), "a0.npy": _huge_header()},
            r"member a0.npy claims shape \(1000000000000,\)",
        ),
        (
            {f"{META}.npy": _meta({**_GOOD_META, "state": {"a": {"__array__": [1]}}})},
            r"refers to a missing array \[1\]",
        ),
        ({f"{META}.npy": _meta(b'{"format": 1, "format": 2}')}, r"__meta__ names the key 'format' twice"),
        ({f"{META}.npy": _meta(_GOOD_META), "a0.npy": _npy(np.zeros(2)), "a0.npy ": b""}, r"unexpected member"),
        ({"a0.npy": _npy(np.zeros(2))}, r"has no __meta__.npy member"),
    ],
    ids=[
        "meta-list",
        "meta-deep",
        "tree-deep",
        "huge-shape",
        "bad-reference",
        "duplicate-json-key",
        "odd-name",
        "no-meta",
    ],
)
def test_a_malformed_state_file_is_refused_by_the_state_error_and_fresh_state_covers_it(
    tmp_path, monkeypatch, members, message
):
    monkeypatch.delenv(FRESH_STATE_ENV, raising=False)
    path = _state_file(_checkpoint(tmp_path) / STATE_FILE, members)
    with pytest.raises(StateError, match=message) as refused:
        read_state(path)
    assert str(path) in str(refused.value) and "good copy" in str(refused.value)
    with pytest.raises(RuntimeError, match=f"(?s){message}.*{FRESH_STATE_ENV}=1"):
        FairStateCallback(_config(tmp_path))
    monkeypatch.setenv(FRESH_STATE_ENV, "1")
    FairStateCallback(_config(tmp_path))
    assert context.get_state() is None


def test_a_compressed_bomb_is_refused_before_it_is_unpacked(tmp_path, monkeypatch):
    monkeypatch.setattr(state_file, "MAX_STATE_BYTES", 1 << 20, raising=False)
    bomb = {f"{META}.npy": _meta(_GOOD_META), "a0.npy": _npy(np.zeros(64 << 20, dtype=np.uint8))}
    path = _state_file(tmp_path / STATE_FILE, bomb, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1 << 20  # small on disk, 64 MiB unpacked
    tracemalloc.start()
    try:
        with pytest.raises(StateError, match=r"members unpack to 671\d{5} bytes, more than a state file's 1048576"):
            read_state(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_member_larger_than_its_header_says_is_refused(tmp_path):
    header = _npy(np.zeros(2))
    path = _state_file(tmp_path / STATE_FILE, {f"{META}.npy": _meta(_GOOD_META), "a0.npy": header + bytes(8)})
    with pytest.raises(StateError, match=r"member a0.npy claims shape \(2,\) \(16 bytes\) but holds 24"):
        read_state(path)


@pytest.mark.parametrize("number", [b"NaN", b"-Infinity", b"1e400"])
def test_non_finite_numbers_in_the_json_are_refused(tmp_path, number):
    tree = json.dumps({**_GOOD_META, "state": {"x": 0.5}}).encode().replace(b"0.5", number)
    path = _state_file(tmp_path / STATE_FILE, {f"{META}.npy": _meta(tree)})
    with pytest.raises(StateError, match=f"__meta__ holds the non-finite number {number.decode()}"):
        read_state(path)


def test_duplicate_statistics_keys_are_refused():
    state = _trained_state()
    saved = state.state_dict()
    keys = saved["group_stats"]["keys"]
    keys[1] = list(keys[0])
    with pytest.raises(StateError, match=re.escape(f"state.group_stats.keys lists {keys[0]} twice")):
        state.load_state_dict(saved)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            1,
            1e308,
            r"sums\[0\] \(key \['B', 'UNK'\]\): 6 visits, reward sum 1e\+308, 30 rollouts: a mean reward beyond",
        ),
        (1, -1e308, r"sums\[0\] \(key \['B', 'UNK'\]\): 6 visits, reward sum -1e\+308, 30 rollouts: a mean reward"),
        (2, 1.0, r"sums\[0\] \(key \['B', 'UNK'\]\): 6 visits, reward sum 11, 1 rollouts: more question visits than"),
        (0, -1.0, r"sums\[0\] \(key \['B', 'UNK'\]\): -1 visits, reward sum 11, 30 rollouts: a negative count"),
        (2, 1e300, r"sums\[0\] \(key \['B', 'UNK'\]\): 6 visits, reward sum 11, 1e\+300 rollouts: more rollouts than"),
    ],
    ids=["huge-sum", "huge-negative-sum", "visits-over-rollouts", "negative-count", "huge-count"],
)
def test_implausible_statistics_are_refused_naming_the_key(column, value, message):
    state = _trained_state()
    saved = state.state_dict()
    sums = saved["group_stats"]["sums"]
    assert tuple(sums[0]) == (6.0, 11.0, 30.0)  # the first key of this state: 6 visits, 30 rollouts
    sums[0, column] = value
    with pytest.raises(StateError, match=message):
        state.load_state_dict(saved)


def test_implausible_window_rows_are_refused_naming_the_step():
    state = _trained_state(history={"window": 5})
    saved = state.state_dict()
    saved["group_stats"]["window_rows"][1][0, 0] = -2.0
    with pytest.raises(StateError, match=r"state.group_stats.window\[1\].rows\[0\] \(key .*: a negative count"):
        state.load_state_dict(saved)


def test_convert_state_is_no_longer_a_command(tmp_path, capsys):
    (tmp_path / "verl_fair_state.pkl").write_bytes(pickle.dumps({"version": 1}))
    with pytest.raises(SystemExit) as exited:
        cli(["convert-state", str(tmp_path / "verl_fair_state.pkl"), "--trust-pickle"])
    assert exited.value.code == 2 and "invalid choice: 'convert-state'" in capsys.readouterr().err
    assert not (tmp_path / STATE_FILE).exists()


def test_no_document_mentions_the_retired_pickle_state():
    documents = [ROOT / "README.md", *(ROOT / "docs").rglob("*"), *(ROOT / "recipes").rglob("*")]
    mentions = [
        str(doc.relative_to(ROOT))
        for doc in documents
        if doc.is_file()
        and doc.suffix in (".md", ".sh", ".yaml", ".py", ".txt")
        and any(word in doc.read_text() for word in ("convert-state", "verl_fair_state.pkl", "trust-pickle"))
    ]
    assert mentions == []


def test_a_zip_this_python_cannot_unpack_is_refused_by_the_state_error(tmp_path):
    path = tmp_path / STATE_FILE
    member = zipfile.ZipInfo(f"{META}.npy")
    member.extract_version = 68  # a zip feature set newer than zipfile reads
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, _meta(_GOOD_META))
    with pytest.raises(StateError, match=r"corrupt or truncated \(NotImplementedError: zip file version 6.8\)"):
        read_state(path)
