# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The shipped Hydra configurations: ``fair_grpo.yaml`` (every ``algorithm.fair_grpo`` knob, rendered by
``python -m verl_fair.config``) and ``fair_grpo_trainer.yaml`` (verl's ``ppo_trainer`` with FairGRPO)."""

from importlib import resources
from pathlib import Path


def folder() -> Path:
    """The folder holding the YAML files, for Hydra's ``--config-path``."""
    return Path(str(resources.files(__name__)))
