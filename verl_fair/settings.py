# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Declared settings: one :class:`Knob` per ``algorithm.fair_grpo`` key, with its default, its check and its
one-line description.

The estimator's core knobs are declared in :mod:`verl_fair.config`, each weighting rule declares its own
(:mod:`verl_fair.algorithm.weighting`); the shipped ``configs/fair_grpo.yaml`` is rendered from these
declarations (``python -m verl_fair.config``), so every default is written down once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

AUTO = "auto"  # a knob set to auto (or left out) takes the default of the chosen variant
_SAME = object()


class FairGRPOConfigError(ValueError):
    """Bad ``algorithm.fair_grpo`` settings; the message names every bad key, its value and the fix."""


class Invalid(ValueError):
    """Raised by a knob's check with the text of what is allowed."""


@dataclass(frozen=True)
class Knob:
    """One setting: dotted ``key`` under ``algorithm.fair_grpo``, ``default``, ``doc`` and ``check``.

    ``check(value)`` returns the parsed value or raises :class:`Invalid`. ``official`` is the default
    under ``variant: official`` when it differs; with ``official_fixed`` that variant accepts nothing else.
    """

    key: str
    default: Any
    doc: str
    check: Callable[[Any], Any]
    official: Any = _SAME
    official_fixed: bool = False

    def default_for(self, variant: str) -> Any:
        return self.official if variant == "official" and self.official is not _SAME else self.default

    @property
    def has_variant_default(self) -> bool:
        return self.official is not _SAME and self.official != self.default


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(low: float | None = None, high: float | None = None, *, above: bool = False, nullable: bool = False,
           null_means: str = "") -> Callable[[Any], float | None]:  # fmt: skip
    """A finite number in [low, high] (``(low, high]`` with ``above``), optionally null."""
    low_text = "" if low is None else (f"> {low:g}" if above else f">= {low:g}")
    bounds = " and ".join(t for t in (low_text, "" if high is None else f"<= {high:g}") if t)
    allowed = f"a number {bounds}".strip() + (f", or null {null_means}".rstrip() if nullable else "")

    def check(value: Any) -> float | None:
        if value is None and nullable:
            return None
        if not is_number(value) or (low is not None and (value <= low if above else value < low)):
            raise Invalid(allowed)
        if high is not None and value > high:
            raise Invalid(allowed)
        return float(value)

    return check


def integer(low: int, high: int | None = None, *, nullable: bool = False, null_means: str = "") -> Callable:
    """An integer in [low, high], optionally null."""
    allowed = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
    allowed += f", or null {null_means}".rstrip() if nullable else ""

    def check(value: Any) -> int | None:
        if value is None and nullable:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
            raise Invalid(allowed)
        return value

    return check


def choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise Invalid("one of " + ", ".join(repr(o) for o in options))
        return value

    return check


def name_list(value: Any) -> tuple[str, ...]:
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(a, str) and a.strip() == a != "" for a in value)
        or len(set(value)) != len(value)
    ):
        raise Invalid("a non-empty list of distinct attribute names without surrounding spaces, e.g. [sex, age]")
    return tuple(value)


def increasing_numbers(value: Any) -> tuple[float, ...]:
    """Upper age-bin edges in years: finite, strictly increasing, none negative (no age falls below 0)."""
    allowed = "a non-empty, strictly increasing list of upper bin edges in years, none negative, e.g. [25, 50, 75]"
    if not isinstance(value, (list, tuple)) or not value or not all(is_number(b) for b in value):
        raise Invalid(allowed)
    if list(value) != sorted(set(value)) or value[0] < 0:
        raise Invalid(allowed)
    return tuple(float(b) for b in value)


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("a non-empty name")
    return value


@dataclass(frozen=True)
class HistoryConfig:
    """Statistics window: ``all`` steps, the last ``window`` steps, or an ``ema`` with decay beta."""

    mode: str = "all"  # all | window | ema
    window: int | None = None
    ema: float | None = None

    @classmethod
    def parse(cls, value: Any) -> HistoryConfig:
        if value is None or value == "all":
            return cls()
        if isinstance(value, Mapping) and len(value) == 1:
            ((mode, arg),) = value.items()
            if mode == "window" and isinstance(arg, int) and not isinstance(arg, bool) and arg >= 1:
                return cls(mode="window", window=arg)
            if mode == "ema" and is_number(arg) and 0.0 < arg < 1.0:
                return cls(mode="ema", ema=float(arg))
        raise Invalid("'all', {window: K} with integer K >= 1, or {ema: beta} with 0 < beta < 1")
