"""The one table of verl internals verl-fair relies on, and the one way it patches verl."""

from __future__ import annotations

import ast
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


@pytest.mark.parametrize("internal", patches.VERL_INTERNALS, ids=lambda i: f"{i.module}.{i.name}")
def test_every_verl_internal_still_exists(internal):
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
