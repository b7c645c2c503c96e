# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Throughput and worst-case latency of the clinical-diagnosis reward.

    python -m benchmarks.reward [--write]

Throughput: realistic responses (a <think> block of a few hundred words, then a boxed multi-label
answer), single thread. Worst case: the slowest of several adversarial 1 MB inputs.
"""

from __future__ import annotations

import argparse
import platform
import time

from benchmarks.results import record
from verl_fair.reward_fns.clinical_diagnosis import compute_score

ADVERSARIAL = {
    "1 MB of '{'": "{" * 1_000_000,
    "1 MB of '\\boxed{'": "\\boxed{" * 150_000,
    "1 MB of '<answer>'": "<answer>" * 125_000,
    "1 MB inside one \\boxed{}": "\\boxed{" + "x" * 1_000_000 + "}",
    "1 MB of separators": "and, " * 200_000,
}


def realistic(i: int) -> str:
    thought = " ".join(["the opacity in the lower lobe suggests fluid"] * 40)
    return f"<think>{thought} case {i}</think> The answer is \\boxed{{Pleural Effusion, Edema}}."


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="append the results to RESULTS.md")
    args = parser.parse_args(argv)
    responses = [realistic(i) for i in range(5000)]
    extra = {"demographics": {"sex": "female", "age": 71}}
    start = time.perf_counter()
    for response in responses:
        compute_score("chexpert", response, "Edema, Pleural Effusion", extra)
    per_second = len(responses) / (time.perf_counter() - start)
    worst = {}
    for name, text in ADVERSARIAL.items():
        start = time.perf_counter()
        compute_score("chexpert", text, "Edema", extra)
        worst[name] = (time.perf_counter() - start) * 1e3
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, one thread. Command: `python -m benchmarks.reward`.",
        "",
        f"- Throughput on realistic responses (~{len(responses[0]) // 1000} kB each): {per_second:,.0f} responses/s",
        *[f"- {name}: {ms:.0f} ms" for name, ms in worst.items()],
        f"- Worst case on 1 MB: {max(worst.values()):.0f} ms",
    ]
    record("Reward function (`python -m benchmarks.reward`)", lines, args.write)


if __name__ == "__main__":
    main()
