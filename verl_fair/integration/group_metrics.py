# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Per-group training metrics, named for verl's logger.

Two families, logged every step by both trainers (the v1 sampler's metrics dict; on RayPPOTrainer,
:mod:`verl_fair.integration.legacy` adds them to verl's data metrics):

- ``fair/train/<domain>/<group>/{prompts,reward_mean,zero_variance_rate}``, ``fair/train/unk_share`` and
  ``fair/train/unk_reason/<attribute>/<reason>``: this step's batch;
- ``fair/estimator/<domain>/<group>/{weight,adv_share}``, ``fair/estimator/guard/*`` and, with
  ``variant: official_nd``, ``fair/estimator/latent/<domain>/{ari,nmi}``: the estimator's report. On v1 it
  is the previous step's (the sampler runs before the estimator); on RayPPOTrainer, this step's.

verl's ``MetricsAggregator`` reduces names containing ``max``/``min``/``sum``/``total`` with max, min
or sum; :func:`metric_name` keeps domain and group names from triggering that.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from verl_fair.algorithm.core import StepReport
from verl_fair.config import FairGRPOConfig
from verl_fair.groups.labels import UNK, GroupLabeler, label_prompts

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


def batch_metrics(records: list[PromptRecord], labeler: GroupLabeler, report: StepReport | None) -> dict[str, float]:
    """:func:`training_metrics` plus the share of this batch's prompts left UNK, per attribute and reason."""
    metrics = training_metrics(records, report)
    for (attribute, reason), count in sorted(labeler.unknown_.items()):
        metrics[metric_name("train", "unk_reason", attribute, reason)] = count / len(records)
    return metrics


def prompt_records(data, cfg: FairGRPOConfig, labeler: GroupLabeler) -> list[PromptRecord]:
    """One record per prompt: domain, group, gold label and rollout rewards.

    ``data`` maps field names to per-row columns (a TransferQueue batch, or a trainer batch's
    ``non_tensor_batch`` with ``rm_scores``): ``uid``, the data source, ``extra_info``, ``reward_model``.
    """
    uids = [str(u) for u in _column(data, "uid")]
    first: dict[str, int] = {}
    for row, uid in enumerate(uids):
        first.setdefault(uid, row)
    rows = list(first.values())
    sources, infos, models = (_column(data, name) for name in (cfg.data_source_key, "extra_info", "reward_model"))
    if sources is None and infos is None and models is None:
        sources = [None] * len(uids)
    metadata = label_prompts(
        *(None if column is None else [column[r] for r in rows] for column in (sources, infos)),
        labeler,
        None if models is None else [models[r] for r in rows],
    )
    records = {uids[r]: PromptRecord(uids[r], *meta) for r, meta in zip(rows, metadata, strict=True)}
    if "rm_scores" in data.keys():
        for uid, scores in zip(uids, data["rm_scores"].unbind(0), strict=True):
            records[uid].rewards.append(float(scores.sum()))
    return list(records.values())


def _column(data, name: str):
    """A field as a Python list, or None when the rows do not carry it."""
    if name not in data.keys():
        return None
    return list(data[name])
