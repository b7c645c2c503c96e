# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Opt-in per-group accuracy and fairness gaps in verl's validation metrics.

verl's own validation metrics average each numeric reward key per data source; they cannot split a key
by group. This hook adds, from the reward's ``acc`` and ``group_<attribute>`` keys (UNK samples are left
out):

    val-fair/<data_source>/<attribute>/<group>/acc        the group's mean accuracy
    val-fair/<data_source>/<attribute>/acc_gap            best minus worst group's mean accuracy
    val-fair/<data_source>/<attribute>/acc_worst_group    the worst group's mean accuracy
    val-fair/all/<attribute>/...                          the same over all data sources

The gaps need two groups or more. The plugin installs the hook on both trainers (v1 and
``RayPPOTrainer``) when the run's environment has ``VERL_FAIR_VALIDATION_METRICS=1``, whatever the
advantage estimator, so baselines get the same numbers; the shipped config sets it for the Ray workers
(``ray_kwargs.ray_init.runtime_env.env_vars``).
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


def group_metrics(data_sources: Sequence[str], infos: dict[str, Sequence[Any]]) -> dict[str, float]:
    """The metrics above from per-sample ``acc`` and ``group_<attribute>`` lists."""
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
            means = {group: float(np.mean(values)) for group, values in members.items()}
            prefix = f"val-fair/{_part(source)}/{attribute}"
            metrics.update({f"{prefix}/{_part(group)}/acc": mean for group, mean in means.items()})
            if len(means) > 1:
                metrics[f"{prefix}/acc_gap"] = max(means.values()) - min(means.values())
                metrics[f"{prefix}/acc_worst_group"] = min(means.values())
    return metrics


def _part(name: str) -> str:
    """``name`` as one part of a metric name."""
    return name.replace("/", "_")


def _with_group_metrics(original):
    def _val_metrics_update(self, data_sources, sample_uids, reward_extra_infos_dict, *args, **kwargs):
        metrics = original(self, data_sources, sample_uids, reward_extra_infos_dict, *args, **kwargs)
        return {**metrics, **group_metrics(data_sources, reward_extra_infos_dict)}

    return _val_metrics_update


def requested() -> bool:
    return os.environ.get(ENV, "").lower() in ("1", "true", "yes")


def enable() -> list[patches.Patch]:
    """Wrap ``_val_metrics_update`` of both verl trainers (idempotent)."""
    return [patches.wrap(module, name, _with_group_metrics) for module, name in _TARGETS]


def disable() -> None:
    for module, name in _TARGETS:
        patches.unwrap(module, name, _with_group_metrics)
