# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Demographic group keys from a row's ``extra_info`` (docs/method.md §5).

Rules, in order:
- ``extra_info`` may be a mapping or a JSON object in a string (as some verl datasets store it);
- ``extra_info["fair_group"]``, when present and not empty, is the key as given;
- otherwise each configured attribute is read from ``extra_info`` itself, its nested
  ``demographics`` mapping, or the authors' ``demo`` string ("sex: Male, age: 68"). ``sex`` becomes
  M or F, ``age`` its bin (A1 for age <= 25, A2 for <= 50, A3 for <= 75, A4 above, with the default
  bins), any other attribute (race, insurance, skin type ...) its stripped text; values are read by
  :mod:`verl_fair.normalise.demographics`, the normaliser ``prepare`` and the reward use too;
- absent, empty and unusable values are UNK; the key joins the attribute values in the configured
  order (``"M,A3"``, ``"F,UNK"``), and a prompt is UNK only when every attribute is.

:func:`label_prompts` turns rows into per-prompt :class:`PromptMetadata` (data source, group and gold
label), for the estimator and the sampler alike. :class:`GroupLabeler` applies the rules to batches,
counts every UNK by attribute and reason, and says once when a configured attribute appears in no row
of a batch (a misspelt name).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from verl_fair.normalise import demographics
from verl_fair.normalise.diagnosis import label_key

logger = logging.getLogger(__name__)

UNK = "UNK"
AGE_BINS = (25.0, 50.0, 75.0)  # upper edges of the age bins A1..A4 unless a run gives its own
LABEL_FREE_DOMAIN = "default"  # the data source of prompts whose rows name none
ABSENT = "absent"
NOT_A_MAPPING = "extra_info not a mapping"
_NOT_FOUND = object()


def as_mapping(extra_info: Any) -> Mapping[str, Any] | None:
    """``extra_info`` as a mapping: itself, or the JSON object a string holds; None otherwise."""
    if isinstance(extra_info, Mapping):
        return extra_info
    if isinstance(extra_info, (str, bytes)):
        try:
            parsed = json.loads(extra_info)
        except ValueError:
            return None
        return parsed if isinstance(parsed, Mapping) else None
    return None


def _lookup(extra_info: Mapping[str, Any], attribute: str) -> Any:
    if attribute in extra_info:
        return extra_info[attribute]
    nested = as_mapping(extra_info.get("demographics"))
    if nested is not None and attribute in nested:
        return nested[attribute]
    demo = extra_info.get("demo")
    if isinstance(demo, str):
        return demographics.parse_demo_string(demo).get(attribute, _NOT_FOUND)
    return _NOT_FOUND


def attribute_status(
    extra_info: Mapping[str, Any], attribute: str, age_bins: Sequence[float]
) -> tuple[str, str | None]:
    """(component of the group key, why it is UNK or None) for one attribute of one row."""
    value = _lookup(extra_info, attribute)
    if value is _NOT_FOUND:
        return UNK, ABSENT
    if attribute == "age":
        years, reason = demographics.age_years(value)
        return (UNK, reason) if years is None else (demographics.age_bin(years, tuple(age_bins)), None)
    if attribute == "sex":
        sex, reason = demographics.sex(value)
        return (UNK, reason) if sex is None else (sex, None)
    if demographics.is_missing(value):
        return UNK, demographics.EMPTY
    return str(value).strip(), None


def _explicit(extra_info: Mapping[str, Any]) -> str | None:
    explicit = extra_info.get("fair_group")
    return None if demographics.is_missing(explicit) else str(explicit).strip()


def _join(parts: Sequence[str]) -> str:
    """The intersectional key of per-attribute parts; UNK only when every part is."""
    return UNK if all(p == UNK for p in parts) else ",".join(parts)


def group_key(extra_info: Any, attributes: Sequence[str] = ("sex", "age"), age_bins: Sequence[float] = AGE_BINS) -> str:
    """The intersectional group key of one row; UNK when no attribute is known."""
    return GroupLabeler(attributes, age_bins).key(extra_info)[0]


class GroupLabeler:
    """Group keys for batches of ``extra_info``, with UNK counts by attribute and reason.

    ``unknown_`` counts, per (attribute, reason), the rows of the last batch whose attribute was
    UNK: reason ``absent`` (not in the row), ``empty`` (None, "", "nan", "unknown" ...),
    ``unparseable`` or ``out of range`` (an age), ``unrecognised`` (a sex other than M/F), or
    ``extra_info not a mapping``. Rows with ``fair_group`` are not counted.
    """

    def __init__(self, attributes: Sequence[str], age_bins: Sequence[float]) -> None:
        self.attributes = tuple(attributes)
        self.age_bins = tuple(age_bins)
        self.unknown_: Counter = Counter()
        self.reported_: set[str] = set()

    def key(self, extra_info: Any) -> tuple[str, list[tuple[str, str | None]]]:
        """(group key, per-attribute (component, reason)) of one row."""
        info = as_mapping(extra_info)
        if info is None:
            return UNK, [(UNK, NOT_A_MAPPING if extra_info is not None else ABSENT)] * len(self.attributes)
        statuses = [attribute_status(info, a, self.age_bins) for a in self.attributes]
        explicit = _explicit(info)
        return (explicit if explicit is not None else _join([part for part, _ in statuses])), statuses

    def assign(self, extra_infos: Sequence[Any]) -> list[str]:
        """One group key per row; updates ``unknown_`` and reports never-present attributes once."""
        self.unknown_ = Counter()
        keys = []
        present: Counter = Counter()
        infos = [as_mapping(info) for info in extra_infos]
        for raw, info in zip(extra_infos, infos, strict=True):
            key, statuses = self.key(raw)
            keys.append(key)
            if info is not None and _explicit(info) is not None:
                continue
            for attribute, (_, reason) in zip(self.attributes, statuses, strict=True):
                present[attribute] += reason not in (ABSENT, NOT_A_MAPPING)
                if reason is not None:
                    self.unknown_[(attribute, reason)] += 1
        self._report_absent(infos, present)
        return keys

    def _report_absent(self, infos: Sequence[Mapping[str, Any] | None], present: Counter) -> None:
        """Warn once per attribute absent from every row of a batch whose rows do carry demographics."""
        carries_demographics = any(present.values()) or any(
            info is not None and (info.get("demographics") or isinstance(info.get("demo"), str)) for info in infos
        )
        if not carries_demographics:
            return
        for attribute in self.attributes:
            if present[attribute] == 0 and attribute not in self.reported_:
                self.reported_.add(attribute)
                seen = sorted({k for info in infos[:50] if info is not None for k in _keys(info)})
                logger.warning(
                    "fair_grpo group attribute %r is in no row of this batch (extra_info keys seen: %s). "
                    "Misspelt in algorithm.fair_grpo.group_attributes? Every prompt is UNK for it.",
                    attribute,
                    seen,
                )


class PromptMetadata(NamedTuple):
    """What the estimator needs to know of a prompt: its data source, its group and its gold label (or None)."""

    domain: str
    group: str
    label: str | None = None


def label_prompts(
    sources: Sequence[Any] | None,
    extra_infos: Sequence[Any] | None,
    labeler: GroupLabeler,
    reward_models: Sequence[Any] | None = None,
) -> list[PromptMetadata]:
    """The :class:`PromptMetadata` of each prompt, from its first row's data source, ``extra_info`` and
    ``reward_model`` (whose ``ground_truth`` is the gold label).

    A missing column gives every prompt :data:`LABEL_FREE_DOMAIN`, UNK or no label.
    """
    columns = [c for c in (sources, extra_infos, reward_models) if c is not None]
    if not columns:
        raise ValueError("label_prompts needs at least one of the data-source, extra_info and reward_model columns")
    count = len(columns[0])
    domains = [LABEL_FREE_DOMAIN] * count if sources is None else [_domain(s) for s in sources]
    groups = [UNK] * count if extra_infos is None else labeler.assign(extra_infos)
    labels = [None] * count if reward_models is None else [_gold(m) for m in reward_models]
    return [PromptMetadata(*entry) for entry in zip(domains, groups, labels, strict=True)]


def _gold(reward_model: Any) -> str | None:
    found = as_mapping(reward_model)
    return None if found is None else label_key(found.get("ground_truth"))


def _domain(source: Any) -> str:
    return LABEL_FREE_DOMAIN if demographics.is_missing(source) else str(source).strip()


def _keys(info: Mapping[str, Any]) -> list[str]:
    keys = [k for k in info if k not in ("demographics", "demo")]
    nested = as_mapping(info.get("demographics"))
    if nested is not None:
        keys += list(nested)
    if isinstance(info.get("demo"), str):
        keys += list(demographics.parse_demo_string(info["demo"]))
    return keys
