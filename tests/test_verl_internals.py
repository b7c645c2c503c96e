# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The one table of verl internals verl-fair relies on, and the one way it patches verl."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from verl_fair import patches

PACKAGE = Path(__file__).resolve().parents[1] / "verl_fair"


def test_verl_is_the_pinned_minor_version():
    import verl

    assert verl.__version__.startswith("0.9."), "verl-fair is pinned to verl 0.9.x: re-check VERL_INTERNALS"


VLLM_MISSING = importlib.util.find_spec("vllm") is None
NO_V1 = "this verl has no v1 trainer (verl 0.8, verl's neo branch): RayPPOTrainer only"


@pytest.mark.parametrize("internal", patches.VERL_INTERNALS, ids=lambda i: f"{i.module}.{i.name}")
def test_every_verl_internal_still_exists(internal):
    if internal in patches.VLLM_INTERNALS and VLLM_MISSING:
        pytest.skip("vLLM is not installed here (make setup-vllm; tests/test_e2e_vllm.py runs beside it)")
    if internal.v1_only and not patches.v1_trainer_available():
        pytest.skip(NO_V1)
    internal.resolve()


def test_the_engine_registry_still_honours_the_device_override():
    from verl.workers.engine.base import EngineRegistry

    assert "VERL_ENGINE_DEVICE" in inspect.getsource(EngineRegistry.get_engine_cls)


def _imported_names() -> set[tuple[str, str]]:
    """(module, name) of every ``from verl... import name`` and ``transfer_queue`` use in the package."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "verl":
                if node.module != "verl" and not node.module.startswith("verl_fair"):
                    found.update((node.module, alias.name) for alias in node.names)
    return found


def test_the_table_lists_every_verl_name_the_package_imports():
    listed = {(i.module, i.name.split(".")[0]) for i in patches.VERL_INTERNALS}
    public = {("verl", "DataProto")}
    missing = sorted(_imported_names() - listed - public)
    assert not missing, f"add these to verl_fair.patches.VERL_INTERNALS: {missing}"


def test_a_wrap_is_idempotent_and_undone():
    import verl.trainer.ppo.ray_trainer as ray_trainer

    original = ray_trainer.compute_advantage

    def make(function):
        return lambda *args, **kwargs: ("wrapped", function(*args, **kwargs))

    patch = patches.wrap("verl.trainer.ppo.ray_trainer", "compute_advantage", make)
    try:
        assert patches.wrap("verl.trainer.ppo.ray_trainer", "compute_advantage", make) is patch
        assert ray_trainer.compute_advantage.__wrapped__ is original
        assert ray_trainer.compute_advantage.__name__ == original.__name__
    finally:
        patches.unwrap("verl.trainer.ppo.ray_trainer", "compute_advantage", make)
    assert ray_trainer.compute_advantage is original


def test_only_listed_internals_can_be_wrapped():
    with pytest.raises(ValueError, match="not in verl_fair.patches.VERL_INTERNALS"):
        patches.wrap("verl.trainer.ppo.core_algos", "compute_grpo_outcome_advantage", lambda f: f)


WAITING = """
import sys
from verl_fair import patches
patch = patches.wrap("verl.trainer.ppo.ray_trainer", "RayPPOTrainer._val_metrics_update", lambda f: lambda *a: "x")
print("imported before:", "verl.trainer.ppo.ray_trainer" in sys.modules, patch.applied)
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
print("applied on import:", patch.applied, RayPPOTrainer._val_metrics_update(None))
patch.undo()
print("undone:", RayPPOTrainer._val_metrics_update is patch.original)
"""


def test_a_wrap_waits_for_its_module_to_be_imported():
    """Patching costs nothing in processes that never import the wrapped module (a fresh process)."""
    result = subprocess.run([sys.executable, "-c", WAITING], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "imported before: False False" in result.stdout
    assert "applied on import: True x" in result.stdout and "undone: True" in result.stdout


WRAPPED = [i for i in patches.VERL_INTERNALS if i.callers]


@pytest.mark.parametrize("internal", WRAPPED, ids=lambda i: f"{i.module}.{i.name}")
def test_each_wrapped_name_is_listed_where_verl_defines_it_and_reaches_every_caller(internal):
    if internal.v1_only and not patches.v1_trainer_available():
        pytest.skip(NO_V1)
    assert not internal.problems()


def test_every_wrap_the_package_makes_targets_a_name_with_its_callers():
    from verl_fair.cpu import plugin as cpu_plugin
    from verl_fair.integration import legacy, validation

    wrapped = {(m, n) for m, n, _ in legacy._WRAPS} | set(validation._TARGETS)
    wrapped.add(("verl.utils.distributed", cpu_plugin._INITIALISER))
    assert wrapped == {(i.module, i.name) for i in WRAPPED}


MOVED = {
    # verl moved f to fake_new; fake_old still re-exports it, the caller imports it from the new home
    "fake_new": "def f():\n    return 'f'\n",
    "fake_old": "from fake_new import f\n",
    "fake_caller": "from fake_new import f\n\ndef run():\n    return f()\n\ndef other():\n    return None\n",
}


@pytest.fixture
def moved_layout(monkeypatch):
    import types

    for name, source in MOVED.items():
        module = types.ModuleType(name)
        monkeypatch.setitem(sys.modules, name, module)
        exec(compile(source, name, "exec"), module.__dict__)


def test_a_moved_definition_or_a_lost_caller_is_a_problem(moved_layout):
    moved = patches.VerlInternal("fake_old", "f", "test", ("fake_caller:run",))
    assert moved.problems() == ["fake_old.f is defined in fake_new as f: list and wrap it there"]
    assert not patches.VerlInternal("fake_new", "f", "test", ("fake_caller:run",)).problems()
    lost = patches.VerlInternal("fake_new", "f", "test", ("fake_caller:other",))
    assert lost.problems() == ["fake_caller:other no longer calls f"]


def test_a_caller_with_alternatives_is_checked_where_this_verl_has_it(moved_layout):
    """RayPPOTrainer is built by main_ppo_v0's TaskRunner on verl 0.9+ and by main_ppo's on verl 0.8."""
    older = patches.VerlInternal("fake_new", "f", "test", ("fake_gone:run|fake_caller:run",))
    assert not older.problems()
    assert older.binding_modules() == ("fake_new", "fake_gone", "fake_caller")
    lost = patches.VerlInternal("fake_new", "f", "test", ("fake_caller:other|fake_caller:run",))
    assert lost.problems() == ["fake_caller:other no longer calls f"]  # the first one present counts
    nowhere = patches.VerlInternal("fake_new", "f", "test", ("fake_gone:run|fake_none:run",))
    assert patches.wrap_problems((nowhere,)) == ["fake_new.f or a caller is gone: No module named 'fake_none'"]


def test_the_compute_advantage_wrap_reaches_ray_ppo_trainer_and_v1():
    """Both of verl's callers run the wrapper: RayPPOTrainer.fit through its module global, v1 through
    compute_advantage_for_multi_trajectories, which imported the name at its own import."""
    if not patches.v1_trainer_available():
        pytest.skip(NO_V1)
    import numpy as np
    from helpers import Prompt, make_batch
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo import ray_trainer
    from verl.trainer.ppo.v1 import utils as v1_utils

    calls = []

    def make(function):
        def recording(data, adv_estimator, *args, **kwargs):
            calls.append(adv_estimator)
            return function(data, adv_estimator, *args, **kwargs)

        return recording

    batch = make_batch([Prompt([1, 0, 1, 1], "A", "M,A3"), Prompt([0, 0, 1, 0], "A", "F,A4")])

    def data():
        tensors = {"token_level_rewards": batch.token_level_rewards, "response_mask": batch.response_mask}
        return DataProto.from_dict(tensors=tensors, non_tensors={"uid": np.array(batch.non_tensor_batch["uid"])})

    config = OmegaConf.create({"norm_adv_by_std_in_grpo": True, "fair_grpo": {"labels": "auto"}})
    patches.wrap("verl.trainer.ppo.ray_trainer", "compute_advantage", make)
    try:
        ray_trainer.RayPPOTrainer.fit.__globals__["compute_advantage"](data(), "fair_grpo", config=config)
        v1_utils.compute_advantage_for_multi_trajectories(
            data(), batch_keys=[], adv_estimator="fair_grpo", num_repeat=4, config=config
        )
    finally:
        patches.unwrap("verl.trainer.ppo.ray_trainer", "compute_advantage", make)
    assert calls == ["fair_grpo", "fair_grpo"]
    assert not hasattr(v1_utils.compute_advantage, "__verl_fair_patch__") or (
        v1_utils.compute_advantage.__verl_fair_patch__.make_wrapper is not make
    )


def test_wrap_problems_lists_each_moved_name(moved_layout):
    moved = patches.VerlInternal("fake_old", "f", "test", ("fake_caller:run",))
    unwrapped = patches.VerlInternal("fake_old", "f", "test")  # imported, not wrapped: not checked
    gone = patches.VerlInternal("fake_old", "g", "test", ("fake_caller:run",))
    assert patches.wrap_problems((moved, unwrapped, gone)) == [
        *moved.problems(),
        "fake_old.g or a caller is gone: module 'fake_old' has no attribute 'g'",
    ]


def test_doctor_checks_that_every_wrap_reaches_verls_callers():
    result = subprocess.run(
        [sys.executable, "-m", "verl_fair.cli", "doctor"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    trainers = "both trainers" if patches.v1_trainer_available() else "RayPPOTrainer"
    assert f"[ok] verl-fair's wraps reach every caller in this verl ({trainers})" in result.stdout


def test_doctor_says_what_runs_on_each_verl():
    from verl_fair.cli.doctor import verl_support

    assert verl_support("0.9.1", v1=True, entry_points=True) == [
        "[ok] verl 0.9.1: FairGRPO on RayPPOTrainer (trainer.use_v1=False) and the v1 trainer"
    ]
    neo = verl_support("0.9.0.dev", v1=False, entry_points=True)
    assert neo[0].startswith("[--] verl 0.9.0.dev is outside the range tested in CI (>=0.9.1,<0.10)")
    assert "FairGRPO on RayPPOTrainer only" in neo[0]
    assert "has no v1 trainer" in neo[1] and "Run with trainer.use_v1=False" in neo[1] and len(neo) == 2
    assert verl_support("0.10.0.dev", v1=True, entry_points=True)[0].startswith("[--] verl 0.10.0.dev is outside")
    old = verl_support("0.8.0", v1=False, entry_points=False, platforms=False)
    assert "loads no verl.plugins entry points: set VERL_USE_EXTERNAL_MODULES=verl_fair.plugin for" in old[2]
    assert "the CPU backend (verl_fair.cpu, the demos) cannot run on it" in old[3] and len(old) == 4


@pytest.mark.parametrize("v1", [True, False], ids=["v1-trainer", "no-v1-trainer"])
def test_preflight_refuses_use_v1_on_a_verl_without_the_v1_trainer(monkeypatch, tmp_path, v1):
    from hydra import compose, initialize_config_dir

    from verl_fair.configs import folder as configs_folder
    from verl_fair.integration import preflight

    monkeypatch.setattr(preflight, "v1_trainer_available", lambda: v1)
    with initialize_config_dir(config_dir=str(configs_folder()), version_base=None):
        config = compose(
            config_name="fair_grpo_trainer", overrides=["++trainer.use_v1=True"]
        )  # ++: verl 0.8 has no such key
    refused = [p for p in preflight.plan_run(config).problems if "has no v1 trainer" in p]
    assert bool(refused) is not v1
    assert not refused or "set trainer.use_v1=False" in refused[0]


def test_preflight_tells_this_verls_trainers_apart():
    """Without a stand-in: on a verl with no v1 trainer (check-verl on verl's neo branch), use_v1=True is refused."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from verl_fair.configs import folder as configs_folder
    from verl_fair.integration.preflight import plan_run

    with initialize_config_dir(config_dir=str(configs_folder()), version_base=None):
        config = compose(
            config_name="fair_grpo_trainer", overrides=["++trainer.use_v1=True"]
        )  # ++: verl 0.8 has no such key
    refused = any("has no v1 trainer" in p for p in plan_run(config).problems)
    assert refused is not patches.v1_trainer_available()
    with open_dict(config.trainer):
        config.trainer.pop("use_v1")  # as in verl 0.8, whose config has no such key
    plan = plan_run(config)
    assert any(p.startswith("RayPPOTrainer") for p in plan.facts) is not patches.v1_trainer_available()


@pytest.mark.parametrize("callbacks", [True, False], ids=["checkpoint-callbacks", "no-checkpoint-callbacks"])
def test_preflight_refuses_a_state_callback_this_v1_trainer_never_calls(monkeypatch, callbacks):
    """verl main before its PR #7513 has the v1 trainer but no checkpoint callbacks: the state would be lost."""
    from hydra import compose, initialize_config_dir

    from verl_fair.configs import folder as configs_folder
    from verl_fair.integration import preflight

    if not patches.v1_trainer_available():
        pytest.skip(NO_V1)
    monkeypatch.setattr(preflight, "checkpoint_callbacks_available", lambda: callbacks)
    with initialize_config_dir(config_dir=str(configs_folder()), version_base=None):
        config = compose(config_name="fair_grpo_trainer")
    plan = preflight.plan_run(config)
    refused = [p for p in plan.problems if "calls no checkpoint callback" in p]
    assert bool(refused) is not callbacks
    assert not refused or "set trainer.use_v1=False (RayPPOTrainer saves it)" in refused[0]
    assert any("FairGRPO state is saved with every checkpoint" in f for f in plan.facts) is callbacks
    assert patches.checkpoint_callbacks_available()  # verl 0.9.1 has them
