# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Demographic values as verl-fair reads them everywhere: sex, age in years, missing markers.

Every function returns ``(value, reason)``: the normalised value, or None and why it is unusable
(:data:`EMPTY`, :data:`UNPARSEABLE`, :data:`OUT_OF_RANGE`, :data:`UNRECOGNISED`, :data:`CONFLICTING`),
so that callers can count what they could not use instead of guessing.

Ages: numbers (not booleans), decimal text with a point or a comma (``"68"``, ``"68.5"``, ``"1,5"``),
DICOM age strings (``"065Y"``, ``"006M"``, ``"003W"``, ``"010D"``) and text with a unit (``"68 years"``,
``"6 months"``, ``"3 weeks"``, ``"10 days"``) are years; anything else (``"1e2"``, ``"abc"``, ``True``)
is unparseable, and ages outside [0, 130] (``-99``, a common missing-value code) are out of range.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any

EMPTY, UNPARSEABLE, OUT_OF_RANGE, UNRECOGNISED = "empty", "unparseable", "out of range", "unrecognised"
CONFLICTING = "conflicting values"
MISSING_TEXT = frozenset({"", "nan", "none", "null", "unknown", "unk", "n/a", "na", "?"})
SEX_VALUES = {"m": "M", "male": "M", "man": "M", "boy": "M", "f": "F", "female": "F", "woman": "F", "girl": "F"}
MAX_AGE = 130.0

_YEARS_PER_UNIT = {"y": 1.0, "m": 1 / 12, "w": 7 / 365.25, "d": 1 / 365.25}
_UNITS = {"year": "y", "years": "y", "yr": "y", "yrs": "y", "y": "y", "month": "m", "months": "m", "mo": "m",
          "week": "w", "weeks": "w", "wk": "w", "day": "d", "days": "d", "d": "d"}  # fmt: skip
_DICOM_AGE = re.compile(r"(\d{3})([DWMY])", re.IGNORECASE)
_AGE_TEXT = re.compile(r"(\d+(?:[.,]\d+)?)\s*([a-z]*)", re.IGNORECASE)


@dataclass(frozen=True)
class Conflict:
    """Different values given for one attribute ("sex: F, sex: M"): unusable, since either may be the wrong one."""

    values: tuple[str, ...]


def missing_reason(value: Any) -> str | None:
    """:data:`CONFLICTING` for a :class:`Conflict`, :data:`EMPTY` for a missing value (see :func:`is_missing`),
    else None."""
    if isinstance(value, Conflict):
        return CONFLICTING
    return EMPTY if is_missing(value) else None


def is_missing(value: Any) -> bool:
    """None, NaN, a missing marker such as "", "nan", "unknown", "n/a", or a :class:`Conflict`."""
    if value is None or isinstance(value, Conflict):
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_TEXT


def sex(value: Any) -> tuple[str | None, str | None]:
    """``"M"`` or ``"F"`` from M/F, male/female, man/woman (any case), else None with the reason."""
    reason = missing_reason(value)
    if reason is not None:
        return None, reason
    found = SEX_VALUES.get(str(value).strip().lower())
    return (found, None) if found else (None, UNRECOGNISED)


def age_years(value: Any) -> tuple[float | None, str | None]:
    """Age in years (see the module docstring for the accepted forms), else None with the reason."""
    reason = missing_reason(value)
    if reason is not None:
        return None, reason
    if isinstance(value, bool):
        return None, UNPARSEABLE
    if isinstance(value, numbers.Real):
        years = float(value)
        if not math.isfinite(years):
            return None, UNPARSEABLE
    else:
        years = _parse_age_text(str(value).strip())
        if years is None:
            return None, UNPARSEABLE
    if not 0.0 <= years <= MAX_AGE:
        return None, OUT_OF_RANGE
    return years, None


def _parse_age_text(text: str) -> float | None:
    dicom = _DICOM_AGE.fullmatch(text)
    if dicom:
        return int(dicom.group(1)) * _YEARS_PER_UNIT[dicom.group(2).lower()]
    if text.startswith("-") and _AGE_TEXT.fullmatch(text[1:].strip()):
        return -1.0  # a negative number: out of range, not unparseable
    found = _AGE_TEXT.fullmatch(text)
    if not found:
        return None
    unit = _UNITS.get(found.group(2).lower(), None if found.group(2) else "y")
    if unit is None:
        return None
    return float(found.group(1).replace(",", ".")) * _YEARS_PER_UNIT[unit]


def age_bin(years: float, bins: tuple[float, ...] | list[float]) -> str:
    """``A1`` .. ``A{len(bins) + 1}``: the first bin whose upper edge is at least ``years``."""
    for i, edge in enumerate(bins):
        if years <= edge:
            return f"A{i + 1}"
    return f"A{len(bins) + 1}"


_DEMO_ITEM = re.compile(r"[,;]\s*(?=[A-Za-z_][\w ]*:)")  # a comma or ";" that starts the next "key:" (not "1,5")


def parse_demo_string(demo: str) -> dict[str, str | Conflict]:
    """The authors' ``"sex: Male, age: 68"`` -> ``{"sex": "Male", "age": "68"}`` (items may also be separated by
    ";"); items without ':' are ignored. A key given twice with values that differ (ignoring case) is a
    :class:`Conflict`, which every reader takes as unusable."""
    out: dict[str, str | Conflict] = {}
    for item in _DEMO_ITEM.split(demo):
        key, sep, value = item.partition(":")
        key, value = key.strip().lower(), value.strip()
        if not sep:
            continue
        seen = out.get(key)
        if seen is None:
            out[key] = value
        elif isinstance(seen, Conflict):
            out[key] = Conflict((*seen.values, value))
        elif seen.lower() != value.lower():
            out[key] = Conflict((seen, value))
    return out
