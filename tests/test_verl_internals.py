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


@pytest.mark.parametrize("internal", patches.VERL_INTERNALS, ids=lambda i: f"{i.module}.{i.name}")
def test_every_verl_internal_still_exists(internal):
    if internal in patches.VLLM_INTERNALS and VLLM_MISSING:
        pytest.skip("vLLM is not installed here (make setup-vllm; tests/test_e2e_vllm.py runs beside it)")
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
patch = patches.wrap("verl.trainer.ppo.v1.trainer_base", "PPOTrainer._val_metrics_update", lambda f: lambda *a: "x")
print("imported before:", "verl.trainer.ppo.v1.trainer_base" in sys.modules, patch.applied)
from verl.trainer.ppo.v1.trainer_base import PPOTrainer
print("applied on import:", patch.applied, PPOTrainer._val_metrics_update(None))
patch.undo()
print("undone:", PPOTrainer._val_metrics_update is patch.original)
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


def test_the_compute_advantage_wrap_reaches_ray_ppo_trainer_and_v1():
    """Both of verl's callers run the wrapper: RayPPOTrainer.fit through its module global, v1 through
    compute_advantage_for_multi_trajectories, which imported the name at its own import."""
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
    assert "[ok] verl-fair's wraps reach every caller in this verl (both trainers)" in result.stdout
