"""Save the FairGRPO state with every verl checkpoint and restore it when verl resumes.

The callback is also where the v1 trainer first hands verl-fair its whole configuration: it checks
the run (:mod:`verl_fair.integration.preflight`) and installs the opt-in validation gap metrics
(``trainer.fair_validation_metrics``).

verl's v1 trainer builds ``trainer.checkpoint_callback_class`` in its controller process, the process
where the estimator runs, and calls ``on_save`` after each checkpoint. verl has no load hook, so the
callback restores the state when it is built, following verl's own resume rules
(``trainer.resume_mode`` auto / resume_path / disable).

A resume that finds no FairGRPO state next to verl's checkpoint, or a state written with other
``algorithm.fair_grpo`` settings, stops the run with a message naming the fix; set
``VERL_FAIR_FRESH_STATE=1`` to start the statistics afresh on purpose (for example when switching a
GRPO run to FairGRPO).
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

from verl.trainer.ppo.checkpoint_callback import CheckpointCallback

from verl_fair.config import FairGRPOConfig
from verl_fair.integration import context
from verl_fair.integration.preflight import plan_run

logger = logging.getLogger(__name__)

STATE_FILE = "verl_fair_state.pkl"
FRESH_STATE_ENV = "VERL_FAIR_FRESH_STATE"


class FairStateCallback(CheckpointCallback):
    """``trainer.checkpoint_callback_class=verl_fair.integration.checkpoint.FairStateCallback``."""

    def __init__(self, config=None):
        super().__init__(config)
        if config is not None and config.trainer.get("fair_validation_metrics", False):
            from verl_fair.integration import validation

            validation.enable()
        self.active = config is not None and config.algorithm.adv_estimator == "fair_grpo"
        if self.active:
            plan = plan_run(config)
            if plan.problems:
                raise ValueError("verl-fair configuration problems:\n- " + "\n- ".join(plan.problems))
            logger.warning("verl-fair:\n  " + "\n  ".join(plan.facts))
            restore(config)

    def on_save(self, trainer, global_step: int, checkpoint_dir: str, async_save: bool = False, **kwargs) -> None:
        state = context.get_state()
        if not self.active or state is None:
            return
        path = save(state.state_dict(), checkpoint_dir)
        logger.info("verl-fair: FairGRPO state of step %d saved to %s", global_step, path)


def save(state: dict, checkpoint_dir: str | os.PathLike) -> Path:
    """Write ``state`` atomically into ``checkpoint_dir``; return the file's path."""
    path = Path(checkpoint_dir) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return path


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
    fresh_ok = os.environ.get(FRESH_STATE_ENV, "").lower() in ("1", "true", "yes")
    path = folder / STATE_FILE
    if not path.is_file():
        message = (
            f"verl resumes from {folder}, but it holds no FairGRPO state ({STATE_FILE}): the group "
            "statistics and clustering memory would restart from zero."
        )
        if not fresh_ok:
            raise RuntimeError(
                message + f" Set {FRESH_STATE_ENV}=1 to accept that, or resume from a checkpoint "
                "written with verl_fair.integration.checkpoint.FairStateCallback."
            )
        logger.warning(message + f" Continuing because {FRESH_STATE_ENV} is set.")
        return False
    with path.open("rb") as f:
        saved = pickle.load(f)  # written by this callback next to verl's own checkpoint
    state = context.get_state(FairGRPOConfig.from_algorithm(config.algorithm))
    try:
        state.load_state_dict(saved)
    except ValueError as error:
        if not fresh_ok:
            raise RuntimeError(f"{error}\n(from {path}; set {FRESH_STATE_ENV}=1 to start afresh instead)") from error
        logger.warning("verl-fair: %s\nStarting afresh because %s is set.", error, FRESH_STATE_ENV)
        context.reset_state()
        return False
    logger.warning("verl-fair: FairGRPO state restored from %s (%d steps of statistics).", path, state.steps_)
    return True
