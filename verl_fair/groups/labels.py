"""Demographic group keys from a row's ``extra_info`` (method.md decision 7).

Rules, in order:
- ``extra_info["fair_group"]``, when present and not empty, is the key as given;
- otherwise each configured attribute is read from ``extra_info`` itself, its nested
  ``demographics`` mapping, or the authors' ``demo`` string ("sex: Male, age: 68"). ``sex`` becomes
  its upper-case first letter (M, F, ...), ``age`` its bin (A1 for age <= 25, A2 for <= 50, A3 for
  <= 75, A4 above, with the default bins), any other attribute (race, insurance, skin type ...) its
  stripped text;
- absent, empty, "nan", "none", "null", "unknown" and unparseable values are UNK; the key joins the
  attribute values in the configured order (``"M,A3"``, ``"F,UNK"``), and a prompt is UNK only when
  every attribute is.

:class:`GroupLabeler` applies these rules to batches, counts every UNK by attribute and reason, and
says once when a configured attribute appears in no row of a batch (a misspelt name).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

UNK = "UNK"
MISSING_TEXT = frozenset({"", "nan", "none", "null", "unknown", "unk", "n/a", "na", "?"})
ABSENT, EMPTY, UNPARSEABLE = "absent", "empty", "unparseable"
_NOT_FOUND = object()


def parse_demo_string(demo: str) -> dict[str, str]:
    """``"sex: Male, age: 68"`` -> ``{"sex": "Male", "age": "68"}``; items without ':' are ignored."""
    out = {}
    for item in demo.split(","):
        key, sep, value = item.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _lookup(extra_info: Mapping[str, Any], attribute: str) -> Any:
    if attribute in extra_info:
        return extra_info[attribute]
    nested = extra_info.get("demographics")
    if isinstance(nested, Mapping) and attribute in nested:
        return nested[attribute]
    demo = extra_info.get("demo")
    if isinstance(demo, str):
        return parse_demo_string(demo).get(attribute, _NOT_FOUND)
    return _NOT_FOUND


def attribute_value(extra_info: Mapping[str, Any], attribute: str) -> Any:
    """The raw value of ``attribute`` (see the module docstring for where it is looked up); None if absent."""
    value = _lookup(extra_info, attribute)
    return None if value is _NOT_FOUND else value


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_TEXT


def age_bin(value: Any, bins: Sequence[float]) -> str:
    """``A1``..``A{len(bins)+1}`` for a numeric age, UNK when missing or unparseable."""
    return _age_status(value, bins)[0]


def _age_status(value: Any, bins: Sequence[float]) -> tuple[str, str | None]:
    if _is_missing(value):
        return UNK, EMPTY
    try:
        age = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        return UNK, UNPARSEABLE
    if not math.isfinite(age) or age < 0:
        return UNK, UNPARSEABLE
    for i, edge in enumerate(bins):
        if age <= edge:
            return f"A{i + 1}", None
    return f"A{len(bins) + 1}", None


def attribute_status(
    extra_info: Mapping[str, Any], attribute: str, age_bins: Sequence[float]
) -> tuple[str, str | None]:
    """(component of the group key, why it is UNK or None) for one attribute of one row."""
    value = _lookup(extra_info, attribute)
    if value is _NOT_FOUND:
        return UNK, ABSENT
    if attribute == "age":
        return _age_status(value, age_bins)
    if _is_missing(value):
        return UNK, EMPTY
    text = str(value).strip()
    return (text[0].upper() if attribute == "sex" else text), None


def attribute_label(attribute: str, value: Any, age_bins: Sequence[float]) -> str:
    """One attribute's component of the group key, from its raw value."""
    return attribute_status({attribute: value}, attribute, age_bins)[0]


def _explicit(extra_info: Mapping[str, Any]) -> str | None:
    explicit = extra_info.get("fair_group")
    return None if _is_missing(explicit) else str(explicit).strip()


def _join(parts: Sequence[str]) -> str:
    """The intersectional key of per-attribute parts; UNK only when every part is."""
    return UNK if all(p == UNK for p in parts) else ",".join(parts)


def group_key(
    extra_info: Any, attributes: Sequence[str] = ("sex", "age"), age_bins: Sequence[float] = (25.0, 50.0, 75.0)
) -> str:
    """The intersectional group key of one row; UNK when no attribute is known."""
    if not isinstance(extra_info, Mapping):
        return UNK
    explicit = _explicit(extra_info)
    if explicit is not None:
        return explicit
    return _join([attribute_status(extra_info, a, age_bins)[0] for a in attributes])


class GroupLabeler:
    """Group keys for batches of ``extra_info``, with UNK counts by attribute and reason.

    ``unknown_`` counts, per (attribute, reason), the rows of the last batch whose attribute was
    UNK: reason ``absent`` (not in the row), ``empty`` (None, "", "nan", "unknown" ...) or
    ``unparseable`` (an age that is not a number). Rows with ``fair_group`` are not counted.
    """

    def __init__(self, attributes: Sequence[str], age_bins: Sequence[float]) -> None:
        self.attributes = tuple(attributes)
        self.age_bins = tuple(age_bins)
        self.unknown_: Counter = Counter()
        self.reported_: set[str] = set()

    def assign(self, extra_infos: Sequence[Any]) -> list[str]:
        """One group key per row; updates ``unknown_`` and reports never-present attributes once."""
        self.unknown_ = Counter()
        keys = []
        present = Counter()
        for info in extra_infos:
            if not isinstance(info, Mapping):
                self.unknown_.update((a, ABSENT) for a in self.attributes)
                keys.append(UNK)
                continue
            explicit = _explicit(info)
            parts = []
            for attribute in self.attributes:
                part, reason = attribute_status(info, attribute, self.age_bins)
                present[attribute] += reason != ABSENT
                if reason is not None and explicit is None:
                    self.unknown_[(attribute, reason)] += 1
                parts.append(part)
            keys.append(explicit if explicit is not None else _join(parts))
        self._report_absent(extra_infos, present)
        return keys

    def _report_absent(self, extra_infos: Sequence[Any], present: Counter) -> None:
        """Warn once per attribute absent from every row of a batch whose rows do carry demographics."""
        carries_demographics = any(present.values()) or any(
            isinstance(info, Mapping) and (info.get("demographics") or isinstance(info.get("demo"), str))
            for info in extra_infos
        )
        if not carries_demographics:
            return
        for attribute in self.attributes:
            if present[attribute] == 0 and attribute not in self.reported_:
                self.reported_.add(attribute)
                seen = sorted({k for info in extra_infos[:50] if isinstance(info, Mapping) for k in _keys(info)})
                logger.warning(
                    "fair_grpo group attribute %r is in no row of this batch (extra_info keys seen: %s). "
                    "Misspelt in algorithm.fair_grpo.group_attributes? Every prompt is UNK for it.",
                    attribute,
                    seen,
                )


def _keys(info: Mapping[str, Any]) -> list[str]:
    keys = [k for k in info if k not in ("demographics", "demo")]
    nested = info.get("demographics")
    if isinstance(nested, Mapping):
        keys += list(nested)
    if isinstance(info.get("demo"), str):
        keys += list(parse_demo_string(info["demo"]))
    return keys
