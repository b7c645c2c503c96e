# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Per-step cost of latent group discovery at paper scale: 512 prompts x 10 rollouts, 7 data sources,
every prompt unlabelled, after 10, 1000 and 10000 steps of history.

    python -m benchmarks.latent [--write]

The `paper` variant's state stops growing once each data source's clustering memory is full (4096
vectors, about 56 steps here); its history is built with real steps up to then and fast-forwarded
beyond (statistics and reservoir counters scaled to the step count: the same state shape a real run
has). The `official` variant refits k-means on its whole history every step and is built for real to
step 100. One-token responses, so the time is the estimator's own work, not token-tensor traffic.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
import uuid

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.results import record
from verl_fair.integration import context
from verl_fair.integration.estimator import compute_fair_grpo_outcome_advantage as fair_grpo

PROMPTS, ROLLOUTS, SOURCES = 512, 10, 7


def batch(rng):
    difficulty = rng.choice([0.1, 0.5, 0.9], size=PROMPTS)
    rewards = (rng.random((PROMPTS, ROLLOUTS)) < difficulty[:, None]).astype(np.float32).reshape(-1, 1)
    index = np.array([str(uuid.uuid4()) for _ in range(PROMPTS)], dtype=object).repeat(ROLLOUTS)
    sources = np.array([f"dataset{i % SOURCES}" for i in range(PROMPTS)], dtype=object).repeat(ROLLOUTS)
    meta = {"data_source": sources, "extra_info": np.array([{}] * len(index), dtype=object)}
    return torch.from_numpy(rewards), torch.ones(len(index), 1, dtype=torch.int64), index, meta


def fast_forward(steps_done: int, steps: int) -> None:
    """Scale the paper state's counts from ``steps_done`` to ``steps`` steps of history."""
    state = context.get_state().state_dict()
    factor = steps / steps_done
    for key in ("group_stats", "domain_stats"):
        state[key]["sums"] = state[key]["sums"] * factor
    for memory in state["latent"]["domains"].values():
        memory["seen"] = int(memory["seen"] * factor)
    state["steps"] = steps
    context.get_state().load_state_dict(state)


def measure(variant: str, depths, build_until: int, repeats: int, rng) -> dict[int, float]:
    config = {"fair_grpo": {"variant": variant, "labels": "none"}}
    context.reset_state()
    out, done = {}, 0
    for depth in depths:
        real = min(depth, build_until)
        for _ in tqdm(range(done, real), desc=f"{variant}: history to step {real}", leave=False):
            rewards, mask, index, meta = batch(rng)
            fair_grpo(rewards, mask, index, config, meta)
        if depth > real:
            fast_forward(real, depth)
        done = real
        saved = context.get_state().state_dict()
        times = []
        for _ in range(repeats):
            context.get_state().load_state_dict(copy.deepcopy(saved))
            rewards, mask, index, meta = batch(rng)
            start = time.perf_counter()
            fair_grpo(rewards, mask, index, config, meta)
            times.append((time.perf_counter() - start) * 1e3)
        out[depth] = statistics.median(times)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="append the results to RESULTS.md")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    paper = measure("paper", (10, 1000, 10000), build_until=60, repeats=5, rng=rng)
    official = measure("official", (10, 100), build_until=100, repeats=3, rng=rng)
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads. "
        "Command: `python -m benchmarks.latent`. Median milliseconds per estimator step, every prompt "
        "unlabelled (512 x 10, 7 data sources).",
        "",
        "| variant | " + " | ".join(f"step {d}" for d in (10, 100, 1000, 10000)) + " |",
        "|---|---:|---:|---:|---:|",
        "| paper | " + " | ".join(f"{paper[d]:.0f}" if d in paper else "-" for d in (10, 100, 1000, 10000)) + " |",
        "| official | "
        + " | ".join(f"{official[d]:.0f}" if d in official else "-" for d in (10, 100, 1000, 10000))
        + " |",
    ]
    record("Latent group discovery (`python -m benchmarks.latent`)", lines, args.write)


if __name__ == "__main__":
    main()
