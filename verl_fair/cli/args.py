# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Argument helpers shared by the commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} {item!r}: expected NAME=VALUE")
        pairs[key] = value
    return pairs


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``minimum`` (checked before the command runs)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}; give an integer >= {minimum}")
        return value

    return parse
