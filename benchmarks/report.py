# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Time of a fairness report: the library over 100,000 predictions (8 groups per attribute, 2 attributes),
and the ``verl-fair report`` command over a 1,000,000-row parquet file of label strings (target: 10 s).

python -m benchmarks.report [--write]
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.results import record
from verl_fair.cli import main as cli
from verl_fair.metrics.report import evaluate

CLI_ROWS = 1_000_000


def predictions(n: int = 100_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, size=n)
    predicted = np.where(rng.random(n) < 0.8, truth, 1 - truth)
    frame = pd.DataFrame(
        {
            "data_source": "all",
            "step": 0,
            "y_true": [frozenset({"positive"}) if t else frozenset() for t in truth],
            "y_pred": [frozenset({"positive"}) if p else frozenset() for p in predicted],
            "site": rng.choice([f"s{i}" for i in range(8)], size=n),
            "age": rng.choice([f"A{i}" for i in range(8)], size=n),
        }
    )
    frame.attrs["attributes"] = ["site", "age"]
    return frame


def cli_table(path: Path, n: int = CLI_ROWS, seed: int = 0) -> None:
    """A predictions table as users give it: label strings, group columns, one data source."""
    rng = np.random.default_rng(seed)
    labels = np.array(["pneumonia", "edema", "no finding", "effusion"])
    pd.DataFrame(
        {
            "gts": labels[rng.integers(4, size=n)],
            "pred": labels[rng.integers(4, size=n)],
            "group_sex": rng.choice(["F", "M"], size=n),
            "group_age": rng.choice(["A1", "A2", "A3", "A4"], size=n),
            "data_source": "chexpert",
        }
    ).to_parquet(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="append the results to RESULTS.md")
    args = parser.parse_args(argv)
    frame = predictions()
    timings = {}
    for label, n_boot in (("without intervals", None), ("with 200 bootstrap resamples", 200)):
        start = time.perf_counter()
        evaluate(frame, n_boot=n_boot)
        timings[label] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "predictions.parquet"
        cli_table(table)
        start = time.perf_counter()
        cli(["report", str(table), "--output", str(Path(folder) / "out")])
        timings[f"`verl-fair report` on {CLI_ROWS:,} rows (read, normalise, write, plot)"] = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    lines = [
        f"Machine: {platform.processor() or platform.machine()}. Command: `python -m benchmarks.report`. "
        "100,000 binary predictions, 2 attributes of 8 groups each, standard and paper metrics; then the "
        f"command line on {CLI_ROWS:,} rows of 4 labels, 2 attributes (peak memory of the process {peak_gb:.1f} GB).",
        "",
    ]
    lines += [f"- {label}: {seconds:.2f} s" for label, seconds in timings.items()]
    record("Fairness report (`python -m benchmarks.report`)", lines, args.write)


if __name__ == "__main__":
    main()
