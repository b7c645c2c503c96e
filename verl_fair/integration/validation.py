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

import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from verl_fair import patches
from verl_fair.groups.labels import UNK

logger = logging.getLogger(__name__)

ENV = "VERL_FAIR_VALIDATION_METRICS"
ALL = "all"  # the metric-name part of all data sources together
_warned: set[str] = set()
_TARGETS = (
    ("verl.trainer.ppo.v1.trainer_base", "PPOTrainer._val_metrics_update"),
    ("verl.trainer.ppo.ray_trainer", "RayPPOTrainer._val_metrics_update"),
)


def group_metrics(data_sources: Sequence[Any], infos: dict[str, Sequence[Any]]) -> dict[str, float]:
    """The metrics above from per-sample ``acc`` and ``group_<attribute>`` lists.

    A sample counts where its group is a string other than UNK and its accuracy a finite number. A key whose
    list is not one value per sample is left out with a warning. Names become one part of a metric name
    each: '/' turns into '_', and a name that would then clash (a data source called ``all``, ``a/b`` beside
    ``a_b``) gets a numeric suffix, with a warning.
    """
    accuracy = infos.get("acc")
    if accuracy is None:
        return {}
    if len(data_sources) != len(accuracy):
        _warn_once(f"{len(data_sources)} data sources for {len(accuracy)} acc values: no val-fair metrics")
        return {}
    kept = [_finite(a) for a in accuracy]
    sources = _unique_parts({str(s) for s in data_sources}, reserved={ALL})
    attributes = _unique_parts({k[len("group_") :] for k in infos if k.startswith("group_")})
    metrics = {}
    for attribute, part in attributes.items():
        groups = infos[f"group_{attribute}"]
        if len(groups) != len(accuracy):
            _warn_once(f"group_{attribute} has {len(groups)} values for {len(accuracy)} samples: left out")
            continue
        scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for source, group, acc in zip(data_sources, groups, kept, strict=True):
            if isinstance(group, str) and group != UNK and acc is not None:
                scores[sources[str(source)]][group].append(acc)
                scores[ALL][group].append(acc)
        for scope, members in scores.items():
            means = {name: float(np.mean(values)) for name, values in members.items()}
            prefix = f"val-fair/{scope}/{part}"
            group_parts = _unique_parts(means)
            metrics.update({f"{prefix}/{group_parts[name]}/acc": mean for name, mean in means.items()})
            if len(means) > 1:
                metrics[f"{prefix}/acc_gap"] = max(means.values()) - min(means.values())
                metrics[f"{prefix}/acc_worst_group"] = min(means.values())
    return metrics


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _unique_parts(names: Iterable[str], reserved: Iterable[str] = ()) -> dict[str, str]:
    """Each name as a distinct metric-name part ('/' as '_'); names that need no change keep their part."""
    parts: dict[str, str] = {}
    taken = set(reserved)
    for name in sorted(names, key=lambda n: ("/" in n, n)):
        part = base = name.replace("/", "_")
        suffix = 2
        while part in taken:
            part, suffix = f"{base}_{suffix}", suffix + 1
        if part != base:
            _warn_once(f"{name!r} would clash with another name in val-fair metrics: it is {part!r} there")
        parts[name] = part
        taken.add(part)
    return parts


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning("val-fair: %s", message)


def _with_group_metrics(original):
    def _val_metrics_update(self, data_sources, sample_uids, reward_extra_infos_dict, *args, **kwargs):
        metrics = original(self, data_sources, sample_uids, reward_extra_infos_dict, *args, **kwargs)
        try:
            return {**metrics, **group_metrics(data_sources, reward_extra_infos_dict)}
        except Exception:  # opt-in metrics never stop a validation
            logger.warning("val-fair: no group metrics this validation", exc_info=True)
            return metrics

    return _val_metrics_update


def requested() -> bool:
    return os.environ.get(ENV, "").lower() in ("1", "true", "yes")


def enable() -> list[patches.Patch]:
    """Wrap ``_val_metrics_update`` of both verl trainers (idempotent)."""
    return [patches.wrap(module, name, _with_group_metrics) for module, name in _TARGETS]


def disable() -> None:
    for module, name in _TARGETS:
        patches.unwrap(module, name, _with_group_metrics)
