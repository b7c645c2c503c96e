# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Time fair_grpo against verl's grpo and grpo_vectorized at paper scale, after 10/100/1000 steps.

    python -m benchmarks.estimator            # paper scale: 512 prompts x 10 rollouts x 4096 tokens
    python -m benchmarks.estimator --quick    # a small smoke run

Each variant's history is built by real estimator steps on cheap batches (one response token),
then the step is timed on a full-size batch. The official label-free variant refits k-means on its
whole history every step, so building 1000 real steps would take hours: its 1000-step history is
its 100-step history tiled ten times (the same number of vectors a real run would hold).
Results go to stdout and, with --write, into benchmarks/RESULTS.md.
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

VARIANTS = [("paper", True), ("paper", False), ("official", True), ("official", False)]


def make_batch(rng, prompts, rollouts, length, device):
    """Binary rewards with per-prompt difficulty, 7 data sources, sex x age demographics."""
    difficulty = rng.random(prompts)
    rewards = (rng.random((prompts, rollouts)) < difficulty[:, None]).astype(np.float32).reshape(-1)
    token_rewards = torch.zeros(prompts * rollouts, length, device=device)
    token_rewards[:, -1] = torch.from_numpy(rewards).to(device)
    mask = torch.ones(prompts * rollouts, length, dtype=torch.int64, device=device)
    index = np.array([str(uuid.uuid4()) for _ in range(prompts)], dtype=object).repeat(rollouts)
    order = rng.permutation(prompts * rollouts)  # verl reorders rows
    meta = {
        "data_source": np.array([f"dataset{i % 7}" for i in range(prompts)], dtype=object).repeat(rollouts),
        "extra_info": np.array(
            [{"sex": "MF"[i % 2], "age": 18 + (i * 7) % 70} for i in range(prompts)], dtype=object
        ).repeat(rollouts),
    }
    return (token_rewards[order], mask[order], index[order], {k: v[order] for k, v in meta.items()})


def timed(fn, repeats, device, before=None):
    """Median milliseconds of ``fn`` over ``repeats`` calls; ``before`` runs untimed ahead of each."""
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def tile_history(factor):
    """Repeat the official clustering history and counts ``factor`` times (see the module docstring)."""
    state = context.get_state().state_dict()
    state["latent"]["vectors"] = {d: np.tile(v, (factor, 1)) for d, v in state["latent"]["vectors"].items()}
    for key in ("group_stats", "domain_stats"):
        state[key]["sums"] = state[key]["sums"] * factor
    context.get_state().load_state_dict(state)


def run(prompts, rollouts, length, depths, repeats, device):
    """Milliseconds per step: {name: ms} for verl's estimators, {(name, depth): ms} for fair_grpo."""
    from verl.trainer.ppo.core_algos import (
        compute_grpo_outcome_advantage,
        compute_grpo_vectorized_outcome_advantage,
    )

    rng = np.random.default_rng(0)
    rewards, mask, index, meta = make_batch(rng, prompts, rollouts, length, device)
    baselines = {
        "grpo": timed(lambda: compute_grpo_outcome_advantage(rewards, mask, index), repeats, device),
        "grpo_vectorized": timed(
            lambda: compute_grpo_vectorized_outcome_advantage(rewards, mask, index), repeats, device
        ),
    }
    results = {}
    for variant, labelled in VARIANTS:
        name = f"fair_grpo {variant} {'labelled' if labelled else 'label-free'}"
        config = {"norm_adv_by_std_in_grpo": True, "fair_grpo": {"variant": variant}}
        context.reset_state()
        done = 0
        for depth in tqdm(depths, desc=name, leave=False):
            if variant == "official" and not labelled and depth > 100 and done:
                tile_history(depth // done)
            else:
                for _ in range(depth - done):
                    r, m, i, small_meta = make_batch(rng, prompts, rollouts, 1, torch.device("cpu"))
                    fair_grpo(r, m, i, config, small_meta if labelled else None)
            done = depth
            saved = context.get_state().state_dict()
            slow = variant == "official" and not labelled and depth > 100
            results[(name, depth)] = timed(
                lambda c=config, m=meta if labelled else None: fair_grpo(rewards, mask, index, c, m),
                1 if slow else repeats,
                device,
                before=lambda s=saved: context.get_state().load_state_dict(copy.deepcopy(s)),
            )
    return baselines, results


def report(baselines, results, depths, command, device):
    grpo = baselines["grpo"]
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"device {device}{' (' + torch.cuda.get_device_name() + ')' if device.type == 'cuda' else ''}; "
        f"torch {torch.__version__}. Command: `{command}`. Median milliseconds per step.",
        "",
        "| estimator | " + " | ".join(f"step {d}" for d in depths) + f" | vs grpo at step {depths[-1]} "
        f"| step {depths[-1]} / step {depths[0]} |",
        "|---|" + "---:|" * (len(depths) + 2),
    ]
    for name, ms in baselines.items():
        lines.append(f"| verl {name} | " + " | ".join(f"{ms:.1f}" for _ in depths) + f" | {ms / grpo:.2f}x | - |")
    for variant, labelled in VARIANTS:
        name = f"fair_grpo {variant} {'labelled' if labelled else 'label-free'}"
        row = [results[(name, d)] for d in depths]
        lines.append(
            f"| {name} | "
            + " | ".join(f"{ms:.1f}" for ms in row)
            + f" | {row[-1] / grpo:.2f}x | {row[-1] / row[0]:.2f}x |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--write", action="store_true", help="append the table to RESULTS.md")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.quick:
        sizes, depths, repeats = (32, 5, 64), (2, 5, 10), 3
    else:
        sizes, depths, repeats = (512, 10, 4096), (10, 100, 1000), 5
    baselines, results = run(*sizes, depths, repeats, device)
    command = "python -m benchmarks.estimator" + (" --quick" if args.quick else "") + f" --device {args.device}"
    record(
        "Estimator step time (`python -m benchmarks.estimator`)",
        report(baselines, results, depths, command, device).splitlines(),
        args.write,
    )
    return baselines, results


if __name__ == "__main__":
    main()
