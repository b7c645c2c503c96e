# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Printing benchmark results and appending them to benchmarks/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def record(title: str, lines: list[str], write: bool) -> None:
    """Print ``lines``; with ``write``, append them to RESULTS.md under a ``## title`` heading."""
    print("\n".join(lines))
    if write:
        with RESULTS.open("a") as out:
            out.write(f"\n## {title}\n\n" + "\n".join(lines) + "\n")
