"""Argument helpers shared by the commands."""

from __future__ import annotations


def pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} {item!r}: expected NAME=VALUE")
        pairs[key] = value
    return pairs
