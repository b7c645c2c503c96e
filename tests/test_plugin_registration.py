# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""In fresh processes: verl's entry-point loading registers fair_grpo, in either import order."""

import os
import subprocess
import sys

import pytest

CHECK = "from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY as R; print('fair_grpo' in R)"


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "code",
    [
        f"import verl; {CHECK}",
        f"import verl_fair; import verl; {CHECK}",
        f"import verl_fair.plugin; {CHECK}",
    ],
    ids=["verl-only", "verl_fair-then-verl", "plugin-module-first"],
)
def test_fair_grpo_is_registered_in_a_fresh_process(code):
    assert _run(code) == "True"


def test_external_plugins_none_disables_it():
    assert _run(f"import verl; {CHECK}", VERL_USE_EXTERNAL_PLUGINS="none") == "False"


def test_registration_is_idempotent_and_verl_fair_never_imports_verl():
    code = (
        "import sys, verl_fair; assert 'verl' not in sys.modules, 'verl_fair imported verl'; "
        "import verl_fair.plugin as p; p.register(); p.register(); import importlib; importlib.reload(p); "
        f"{CHECK}"
    )
    assert _run(code) == "True"


def test_a_foreign_fair_grpo_is_left_in_place_with_a_warning():
    code = "\n".join(
        [
            "import logging, os, sys",
            "logging.basicConfig(stream=sys.stdout, level=logging.WARNING)",
            "os.environ['VERL_USE_EXTERNAL_PLUGINS'] = 'none'",
            "import verl",
            "from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY as R",
            "def fork_estimator(**kw): pass",
            "R['fair_grpo'] = fork_estimator",
            "import verl_fair.plugin",
            "print(R['fair_grpo'] is fork_estimator)",
        ]
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "already registered" in result.stdout and result.stdout.strip().endswith("True")
