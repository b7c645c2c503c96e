# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Opt-in fairness gaps in verl's validation metrics.

The clinical reward's ``acc_grp_<attribute>_<value>`` keys already give per-group validation
accuracy through verl's own metric code. This hook adds what that code cannot compute, the gaps:

    val-fair/<data_source>/<attribute>/acc_gap            best minus worst group's mean accuracy
    val-fair/<data_source>/<attribute>/acc_worst_group    the worst group's mean accuracy
    val-fair/all/<attribute>/acc_gap, .../acc_worst_group the same over all data sources

Groups are read from the reward's ``group_<attribute>`` keys (UNK samples are left out). The plugin
installs it on both trainers (v1 and ``RayPPOTrainer``) when the run's environment has
``VERL_FAIR_VALIDATION_METRICS=1``, whatever the advantage estimator, so baselines get the same
numbers; the shipped config sets it for the Ray workers (``ray_kwargs.ray_init.runtime_env.env_vars``).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from verl_fair import patches
from verl_fair.groups.labels import UNK

ENV = "VERL_FAIR_VALIDATION_METRICS"
_TARGETS = (
    ("verl.trainer.ppo.v1.trainer_base", "PPOTrainer._val_metrics_update"),
    ("verl.trainer.ppo.ray_trainer", "RayPPOTrainer._val_metrics_update"),
)


def gap_metrics(data_sources: Sequence[str], infos: dict[str, Sequence[Any]]) -> dict[str, float]:
    """The gap metrics above from per-sample ``acc`` and ``group_<attribute>`` lists."""
    accuracy = infos.get("acc")
    if accuracy is None:
        return {}
    metrics = {}
    for key, groups in infos.items():
        if not key.startswith("group_") or len(groups) != len(accuracy):
            continue
        attribute = key[len("group_") :]
        by_source: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for source, group, acc in zip(data_sources, groups, accuracy, strict=True):
            if group in (None, UNK) or acc is None:
                continue
            by_source[str(source)][str(group)].append(float(acc))
            by_source["all"][str(group)].append(float(acc))
        for source, members in by_source.items():
            if len(members) < 2:
                continue
            means = [float(np.mean(values)) for values in members.values()]
            metrics[f"val-fair/{source}/{attribute}/acc_gap"] = max(means) - min(means)
            metrics[f"val-fair/{source}/{attribute}/acc_worst_group"] = min(means)
    return metrics


def _with_gaps(original):
    def _val_metrics_update(self, data_sources, sample_uids, reward_extra_infos_dict, *args, **kwargs):
        metrics = original(self, data_sources, sample_uids, reward_extra_infos_dict, *args, **kwargs)
        return {**metrics, **gap_metrics(data_sources, reward_extra_infos_dict)}

    return _val_metrics_update


def requested() -> bool:
    return os.environ.get(ENV, "").lower() in ("1", "true", "yes")


def enable() -> list[patches.Patch]:
    """Wrap ``_val_metrics_update`` of both verl trainers (idempotent)."""
    return [patches.wrap(module, name, _with_gaps) for module, name in _TARGETS]


def disable() -> None:
    for module, name in _TARGETS:
        patches.unwrap(module, name, _with_gaps)
