"""Time of a fairness report over 100,000 predictions, 8 groups per attribute, 2 attributes.

python -m benchmarks.report [--write]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import pandas as pd

from benchmarks.results import record
from verl_fair.metrics.report import evaluate


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
    lines = [
        f"Machine: {platform.processor() or platform.machine()}. Command: `python -m benchmarks.report`. "
        "100,000 binary predictions, 2 attributes of 8 groups each, standard and paper metrics.",
        "",
    ]
    lines += [f"- {label}: {seconds:.2f} s" for label, seconds in timings.items()]
    record("Fairness report (`python -m benchmarks.report`)", lines, args.write)


if __name__ == "__main__":
    main()
