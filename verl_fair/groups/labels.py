"""Demographic group keys from a row's ``extra_info`` (method.md decision 7).

Rules, in order:
- ``extra_info["fair_group"]``, when present and not empty, is the key as given;
- otherwise each configured attribute is read from ``extra_info`` itself, its nested
  ``demographics`` mapping, or the authors' ``demo`` string ("sex: Male, age: 68"); ``sex`` becomes its upper-case first letter (M, F, ...), ``age`` its bin
  (A1 for age <= 25, A2 for <= 50, A3 for <= 75, A4 above, with the default bins), any other
  attribute its stripped text;
- missing, empty, "nan", "none", "null", "unknown" and unparseable values are UNK; the key joins the
  attribute values in the configured order (``"M,A3"``, ``"F,UNK"``), and a prompt is UNK only when
  every attribute is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

UNK = "UNK"
MISSING_TEXT = frozenset({"", "nan", "none", "null", "unknown", "unk", "n/a", "na", "?"})


def attribute_value(extra_info: Mapping[str, Any], attribute: str) -> Any:
    """The raw value of ``attribute`` in ``extra_info``, its ``demographics`` mapping, or the authors'
    ``demo`` string ("sex: Male, age: 68"); None if absent."""
    if attribute in extra_info:
        return extra_info[attribute]
    nested = extra_info.get("demographics")
    if isinstance(nested, Mapping):
        return nested.get(attribute)
    demo = extra_info.get("demo")
    if isinstance(demo, str):
        return parse_demo_string(demo).get(attribute)
    return None


def parse_demo_string(demo: str) -> dict[str, str]:
    """``"sex: Male, age: 68"`` -> ``{"sex": "Male", "age": "68"}``; items without ':' are ignored."""
    out = {}
    for item in demo.split(","):
        key, sep, value = item.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_TEXT


def age_bin(value: Any, bins: Sequence[float]) -> str:
    """``A1``..``A{len(bins)+1}`` for a numeric age, UNK when missing or unparseable."""
    if _is_missing(value) or isinstance(value, bool):
        return UNK
    try:
        age = float(value)
    except (TypeError, ValueError):
        return UNK
    if not math.isfinite(age) or age < 0:
        return UNK
    for i, edge in enumerate(bins):
        if age <= edge:
            return f"A{i + 1}"
    return f"A{len(bins) + 1}"


def attribute_label(attribute: str, value: Any, age_bins: Sequence[float]) -> str:
    """One attribute's component of the group key."""
    if attribute == "age":
        return age_bin(value, age_bins)
    if _is_missing(value):
        return UNK
    text = str(value).strip()
    return text[0].upper() if attribute == "sex" else text


def group_key(extra_info: Any, attributes: Sequence[str] = ("sex", "age"),
              age_bins: Sequence[float] = (25.0, 50.0, 75.0)) -> str:
    """The intersectional group key of one row; UNK when no attribute is known."""
    if not isinstance(extra_info, Mapping):
        return UNK
    explicit = extra_info.get("fair_group")
    if not _is_missing(explicit):
        return str(explicit).strip()
    parts = [attribute_label(a, attribute_value(extra_info, a), age_bins) for a in attributes]
    return UNK if all(p == UNK for p in parts) else ",".join(parts)
