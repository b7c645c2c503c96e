# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Save the FairGRPO state with every verl checkpoint and restore it when verl resumes.

verl's v1 trainer builds ``trainer.checkpoint_callback_class`` in its controller process, the process
where the estimator runs, and calls ``on_save`` after each checkpoint; on ``RayPPOTrainer``, which has no
callback, :mod:`verl_fair.integration.legacy` calls :func:`start` and :func:`save` from its wraps. verl has
no load hook, so the state is restored when the trainer is built, following verl's own resume rules
(``trainer.resume_mode`` auto / resume_path / disable); it also checks the run's FairGRPO settings
(:mod:`verl_fair.integration.preflight`) before the trainer spends anything on them.

The state is ``verl_fair_state.npz`` in each ``global_step_N`` folder: plain arrays and JSON that cannot
run code when loaded (:mod:`verl_fair.algorithm.state`), every field checked on load. A resume that finds
no state, a corrupt or truncated file, or a state written with other ``algorithm.fair_grpo`` settings
stops the run with a message naming the fix; set ``VERL_FAIR_FRESH_STATE=1`` to start the statistics
afresh on purpose (for example when switching a GRPO run to FairGRPO).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

try:
    from verl.trainer.ppo.checkpoint_callback import CheckpointCallback
except ImportError:  # verl 0.8 and verl's neo branch: no v1 trainer to call it; RayPPOTrainer's wraps (legacy) do
    CheckpointCallback = object

from verl_fair.algorithm.state import STATE_FILE, StateError, read_state, write_state
from verl_fair.config import FairGRPOConfig
from verl_fair.integration import context
from verl_fair.integration.preflight import plan_run

logger = logging.getLogger(__name__)

FRESH_STATE_ENV = "VERL_FAIR_FRESH_STATE"


class FairStateCallback(CheckpointCallback):
    """``trainer.checkpoint_callback_class=verl_fair.integration.checkpoint.FairStateCallback``."""

    def __init__(self, config=None):
        super().__init__(config)
        self.active = config is not None and config.algorithm.adv_estimator == "fair_grpo"
        if self.active:
            start(config)

    def on_save(self, trainer, global_step: int, checkpoint_dir: str, async_save: bool = False, **kwargs) -> None:
        if self.active:
            save(checkpoint_dir, global_step)


def start(config) -> None:
    """At a FairGRPO trainer's start: stop on configuration problems, log what the run will do, restore the state."""
    plan = plan_run(config)
    if plan.problems:
        raise ValueError("verl-fair configuration problems:\n- " + "\n- ".join(plan.problems))
    logger.warning("verl-fair:\n  %s", "\n  ".join(plan.facts))
    restore(config)


def save(checkpoint_dir: str | os.PathLike, global_step: int) -> None:
    """Write this process's FairGRPO state into the ``global_step_N`` folder of a checkpoint just saved."""
    state = context.get_state()
    if state is None:
        return
    try:
        path = write_state(Path(checkpoint_dir) / STATE_FILE, state.state_dict())
    except StateError as problem:  # training goes on; this checkpoint resumes only with fresh statistics
        logger.error(
            "verl-fair: FairGRPO state of step %d not saved: %s. Bound the statistics (history, "
            "cluster.memory under variant=paper) or resume this checkpoint with %s=1",
            global_step,
            problem,
            FRESH_STATE_ENV,
        )
        return
    logger.info("verl-fair: FairGRPO state of step %d saved to %s", global_step, path)


def resume_folder(config) -> Path | None:
    """The ``global_step_N`` folder verl will resume from, by verl's own rules (None: a fresh run)."""
    from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

    trainer = config.trainer
    if trainer.resume_mode == "disable":
        return None
    if trainer.resume_mode == "resume_path":
        return Path(os.path.abspath(trainer.resume_from_path)) if trainer.resume_from_path else None
    folder = find_latest_ckpt_path(os.path.abspath(trainer.default_local_dir))
    return Path(folder) if folder else None


def restore(config) -> bool:
    """Load the saved state into this process's FairGRPO state when verl resumes; True if loaded."""
    folder = resume_folder(config)
    if folder is None:
        return False
    path = folder / STATE_FILE
    if not path.is_file():
        return _refuse(
            f"verl resumes from {folder}, but it holds no FairGRPO state ({STATE_FILE}): the group "
            "statistics and clustering memory would restart from zero. Resume from a checkpoint written "
            "with verl_fair.integration.checkpoint.FairStateCallback"
        )
    state = context.get_state(FairGRPOConfig.from_algorithm(config.algorithm))
    try:
        state.load_state_dict(read_state(path))
    except StateError as error:
        context.reset_state()
        return _refuse(str(error) if str(path) in str(error) else f"{error}\n(in {path})")
    logger.warning("verl-fair: FairGRPO state restored from %s (%d steps of statistics).", path, state.steps_)
    return True


def _refuse(message: str) -> bool:
    """Stop the run with ``message``, or start afresh when ``VERL_FAIR_FRESH_STATE`` says so."""
    if os.environ.get(FRESH_STATE_ENV, "").lower() not in ("1", "true", "yes"):
        raise RuntimeError(f"{message}. Or set {FRESH_STATE_ENV}=1 to start the FairGRPO statistics afresh.")
    logger.warning(
        "verl-fair: %s. Starting the FairGRPO statistics afresh because %s is set.", message, FRESH_STATE_ENV
    )
    return False
