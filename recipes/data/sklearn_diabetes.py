# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""scikit-learn's diabetes data (442 real patients with age and a sex code; shipped inside scikit-learn, no
download) as a small text-only clinical task with demographics, for smoke tests and CPU runs.

    python recipes/data/sklearn_diabetes.py --output data/smoke [verl-fair prepare options]

Each patient becomes a prompt listing BMI, blood pressure and six serum measurements; the diagnosis is
whether the disease progression score one year later is above the cohort median. Age is in years; sex is
coded 1/2 in the source with no documented meaning, so it is kept as the attribute ``sex_code``: train
with ``algorithm.fair_grpo.group_attributes=[sex_code,age]``. The outcome is hard to learn from the
text (the efficacy study screened it out: benchmarks/RESULTS.md); the CPU demo uses a task that a tiny
model can learn.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

DATA_SOURCE = "diabetes"
ATTRIBUTES = ("sex_code", "age")
QUESTION = (
    "A patient with diabetes has BMI {bmi}, mean blood pressure {bp}, total cholesterol {s1}, LDL {s2}, "
    "HDL {s3}, cholesterol/HDL {s4}, log triglycerides {s5} and blood sugar {s6}. Will the disease "
    "progress more than for the median patient within a year? Options: progression, no progression."
)


def patient_table(folder: str | Path) -> Path:
    """The cohort as a CSV with a binary ``outcome``, ``sex`` (1/2), ``age`` and a patient id."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame["outcome"] = (frame["target"] > frame["target"].median()).map({True: "progression", False: "no progression"})
    frame["sex"] = frame["sex"].astype(int).astype(str)
    frame["patient"] = [f"p{i}" for i in range(len(frame))]
    path = Path(folder) / "diabetes.csv"
    frame.to_csv(path, index=False)
    return path


def prepare_arguments(table: Path) -> list[str]:
    """``verl-fair prepare`` arguments that turn :func:`patient_table` into verl parquet files."""
    return [
        "prepare",
        "table",
        str(table),
        "--data-source",
        DATA_SOURCE,
        "--label-column",
        "outcome",
        "--attribute-column",
        "sex_code=sex",
        "--age-column",
        "age",
        "--id-column",
        "patient",
        "--question",
        QUESTION,
        "--group-attributes",
        *ATTRIBUTES,
    ]


def prepare(options: list[str]) -> int:
    """Run ``verl-fair prepare`` on the cohort with ``options`` (at least ``--output FOLDER``); its exit code."""
    from verl_fair.cli import main

    with tempfile.TemporaryDirectory() as folder:
        return main([*prepare_arguments(patient_table(folder)), *options])


if __name__ == "__main__":
    sys.exit(prepare(sys.argv[1:]))
