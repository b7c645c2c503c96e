"""Per-group training metrics, named for verl's logger.

Two families, both logged every step through the sampler's metrics dict:

- ``fair/train/<domain>/<group>/{prompts,reward_mean,zero_variance_rate}`` and ``fair/train/unk_share``:
  this step's batch, computed by the sampler from TransferQueue;
- ``fair/estimator/<domain>/<group>/{weight,adv_share}``, ``fair/estimator/guard/*`` and, with
  ``variant: official_nd``, ``fair/estimator/latent/<domain>/{ari,nmi}``: the estimator's previous step
  (the estimator has no metrics channel, so these lag by one step).

verl's ``MetricsAggregator`` reduces names containing ``max``/``min``/``sum``/``total`` with max, min
or sum; :func:`metric_name` keeps domain and group names from triggering that.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from verl_fair.algorithm.core import StepReport
from verl_fair.groups.labels import UNK

_AGGREGATION_WORDS = re.compile(r"(max|min|sum|total)", re.IGNORECASE)


@dataclass
class PromptRecord:
    uid: str
    domain: str
    group: str
    label: str | None = None
    rewards: list[float] = field(default_factory=list)


def metric_name(*parts: str) -> str:
    """``fair/<parts>`` with '/' inside a part replaced and aggregation keywords split by '_'."""
    clean = [_AGGREGATION_WORDS.sub(lambda m: m.group(0)[0] + "_" + m.group(0)[1:], p.replace("/", "_")) for p in parts]
    return "/".join(["fair", *clean])


def training_metrics(records: list[PromptRecord], report: StepReport | None) -> dict[str, float]:
    """This batch's per-group counts and rewards, plus the estimator's report of its previous step."""
    metrics: dict[str, float] = {}
    by_group: dict[tuple[str, str], list[PromptRecord]] = defaultdict(list)
    for record in records:
        by_group[(record.domain, record.group)].append(record)
    for (domain, group), members in sorted(by_group.items()):
        rewards = [r for m in members for r in m.rewards]
        metrics[metric_name("train", domain, group, "prompts")] = float(len(members))
        if rewards:
            metrics[metric_name("train", domain, group, "reward_mean")] = float(np.mean(rewards))
            metrics[metric_name("train", domain, group, "zero_variance_rate")] = float(
                np.mean([len(set(m.rewards)) <= 1 for m in members])
            )
    metrics[metric_name("train", "unk_share")] = float(np.mean([r.group == UNK for r in records])) if records else 0.0
    if report is not None and report.prompts:
        metrics.update(estimator_metrics(report))
    return metrics


def estimator_metrics(report: StepReport) -> dict[str, float]:
    """Mean weight and share of the advantage mass per group, and guard firings, of a step."""
    metrics: dict[str, float] = {}
    for key, (weight, share) in report.group_summary().items():
        metrics[metric_name("estimator", *key, "weight")] = weight
        metrics[metric_name("estimator", *key, "adv_share")] = share
    for name, value in report.metrics().items():
        metrics[name.replace("fair/", "fair/estimator/", 1)] = value
    for (domain, measure), value in report.domain_alignment.items():
        metrics[metric_name("estimator", "latent", domain, measure)] = value
    return metrics
