# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""What the demo's two tasks share: patients with a sex and an age, grouped by sex x age under / over 50,
written as a table with ``patient``, ``sex`` and ``age`` columns and prepared with ``verl-fair prepare``."""

from __future__ import annotations

import csv
from pathlib import Path

ATTRIBUTES = ("sex", "age")
AGE_SPLIT = 50  # the demo's age bins: under 50 (A1), 50 and over (A2)
TABLE = "patients.csv"

# the tasks' groups for the shipped config's estimator and reward
TASK_OVERRIDES = (
    f"algorithm.fair_grpo.group_attributes=[{','.join(ATTRIBUTES)}]",
    f"algorithm.fair_grpo.age_bins=[{AGE_SPLIT}]",
)


def write_table(folder: Path, rows: list[dict]) -> Path:
    """``rows`` (one dict per patient, the same keys) as ``folder``/:data:`TABLE`; its path."""
    path = folder / TABLE
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def prepare(table: Path, data_source: str, label_column: str, question: str, options: list[str]) -> int:
    """``verl-fair prepare table`` on a patient table with ``options`` (at least ``--output FOLDER``, and
    ``--image-column`` for scans); its exit code."""
    from verl_fair.cli import main

    return main(
        [
            "prepare",
            "table",
            str(table),
            "--data-source",
            data_source,
            "--label-column",
            label_column,
            "--sex-column",
            "sex",
            "--age-column",
            "age",
            "--id-column",
            "patient",
            "--question",
            question,
            "--group-attributes",
            *ATTRIBUTES,
            "--age-bins",
            str(AGE_SPLIT),
            *options,
        ]
    )
