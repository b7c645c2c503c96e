# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""FairGRPO on verl's ``RayPPOTrainer`` (``trainer.use_v1=False``), verl's other trainer and its coming default.

``RayPPOTrainer`` holds every prompt's non-tensor fields (``data_source``, ``extra_info``, ...) in its batch,
but hands a registered estimator only rewards, mask and uids, and has no sampler or checkpoint hook. The
plugin therefore wraps four verl names (:mod:`verl_fair.patches`, applied when verl imports them), and each
wrapper acts only when the run's ``algorithm.adv_estimator`` is ``fair_grpo``:

- ``compute_advantage``: labels the batch's prompts as the v1 sampler does, publishes them for the estimator
  and keeps this step's ``fair/train/*`` and ``fair/estimator/*`` metrics;
- ``compute_data_metrics``: adds those metrics to the step's metrics (nothing to add on v1, where the sampler
  logs them);
- ``RayPPOTrainer.__init__``: checks the run's settings, logs what it will do and restores the FairGRPO state
  on resume (:func:`verl_fair.integration.checkpoint.start`);
- ``RayPPOTrainer._save_checkpoint``: writes the state into each ``global_step_N`` folder.

Nothing needs switching on; the former ``VERL_FAIR_LEGACY_ADAPTER`` variable is no longer read.
"""

from __future__ import annotations

import os
from pathlib import Path

from verl_fair import patches

ESTIMATOR = "fair_grpo"
_TRAINER = "verl.trainer.ppo.ray_trainer"
_pending = None  # (prompt records, labeler) of the batch whose advantages were computed last


def runs_fair_grpo(config) -> bool:
    """True for a trainer config whose advantage estimator is ``fair_grpo``."""
    return _name(config.algorithm.adv_estimator) == ESTIMATOR


def _name(adv_estimator) -> str:
    return str(getattr(adv_estimator, "value", adv_estimator))


def _labelled(original):
    def compute_advantage(data, adv_estimator, *args, config=None, **kwargs):
        if _name(adv_estimator) == ESTIMATOR:
            publish_batch(data, config)
        return original(data, adv_estimator, *args, config=config, **kwargs)

    return compute_advantage


def publish_batch(data, config) -> None:
    """Publish each prompt's domain, group and gold label for the estimator, and keep the prompts for
    :func:`take_metrics`; a no-op for a batch without data source or demographics (v1's holds uids only,
    and its sampler publishes)."""
    from verl_fair.config import FairGRPOConfig
    from verl_fair.groups.labels import GroupLabeler
    from verl_fair.integration import context
    from verl_fair.integration.group_metrics import prompt_records

    global _pending
    cfg = FairGRPOConfig.from_algorithm(config)
    if not any(column in data.non_tensor_batch for column in (cfg.data_source_key, "extra_info", "reward_model")):
        return
    labeler = GroupLabeler(cfg.group_attributes, cfg.age_bins)
    scores = data.batch.get("token_level_scores", data.batch["token_level_rewards"])  # the rewards v1 logs
    records = prompt_records({**data.non_tensor_batch, "rm_scores": scores}, cfg, labeler)
    context.publish({r.uid: (r.domain, r.group, r.label) for r in records})
    _pending = (records, labeler)


def take_metrics() -> dict[str, float]:
    """The ``fair/*`` metrics of the batch last published, with the estimator's report of it; once."""
    from verl_fair.integration import context
    from verl_fair.integration.group_metrics import batch_metrics

    global _pending
    if _pending is None:
        return {}
    (records, labeler), _pending = _pending, None
    return batch_metrics(records, labeler, context.last_report())


def _with_fair_metrics(original):
    def compute_data_metrics(*args, **kwargs):
        return {**original(*args, **kwargs), **take_metrics()}

    return compute_data_metrics


def _starting(original):
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if runs_fair_grpo(self.config):
            from verl_fair.integration import checkpoint

            checkpoint.start(self.config)

    return __init__


def _saving(original):
    def _save_checkpoint(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if runs_fair_grpo(self.config):
            from verl_fair.integration import checkpoint

            folder = Path(os.path.abspath(self.config.trainer.default_local_dir)) / f"global_step_{self.global_steps}"
            checkpoint.save(folder, self.global_steps)
        return result

    return _save_checkpoint


_WRAPS = (
    (_TRAINER, "compute_advantage", _labelled),
    ("verl.trainer.ppo.metric_utils", "compute_data_metrics", _with_fair_metrics),
    (_TRAINER, "RayPPOTrainer.__init__", _starting),
    (_TRAINER, "RayPPOTrainer._save_checkpoint", _saving),
)


def enable() -> list[patches.Patch]:
    """Install the wraps (idempotent; each waits for verl to import its module)."""
    return [patches.wrap(*spec) for spec in _WRAPS]


def disable() -> None:
    """Restore verl's own functions."""
    for spec in _WRAPS:
        patches.unwrap(*spec)
