# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Running ``python -m verl.trainer.main_ppo`` as a subprocess for the end-to-end tests: its output, exit
code, wall time, peak memory and logged metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from verl_fair.algorithm.state import read_state
from verl_fair.demo import run as demo
from verl_fair.integration.checkpoint import STATE_FILE


class Run:
    def __init__(self, output: Path, result: subprocess.CompletedProcess, seconds: float, peak_gb: float) -> None:
        self.output, self.code, self.log, self.seconds, self.peak_gb = (
            output,
            result.returncode,
            result.stdout,
            seconds,
            peak_gb,
        )
        self.metrics = demo.read_metrics(output / "metrics.jsonl")

    def check(self) -> Run:
        assert self.code == 0, self.log[-6000:]
        return self

    def state(self, step: int) -> dict:
        return read_state(self.output / "checkpoints" / f"global_step_{step}" / STATE_FILE)

    def visit_counts(self, step: int) -> dict[tuple[str, ...], float]:
        """Question visits per (data source, group) in the state saved at ``step`` (keys in any order: a
        group's first visit can come earlier or later within a batch from one run to the next)."""
        stats = self.state(step)["group_stats"]
        return {tuple(key): float(sums[0]) for key, sums in zip(stats["keys"], stats["sums"], strict=True)}

    def series(self, prefix: str) -> dict[int, dict[str, float]]:
        """Per step, the logged metrics whose name starts with ``prefix`` (steps without any left out)."""
        steps = {r["step"]: {k: v for k, v in r["data"].items() if k.startswith(prefix)} for r in self.metrics}
        return {step: values for step, values in steps.items() if values}


def main_ppo(
    inputs: Path,
    output: Path,
    command: list[str],
    env: dict | None = None,
    timeout: int = 600,
    also: Sequence[int] = (),
) -> Run:
    """The run, its peak memory summed with that of the process trees ``also`` (a pre-started cluster's nodes)."""
    output.mkdir(parents=True, exist_ok=True)
    started = time.time()
    log = output / "train.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**demo.trainer_env(output), **(env or {})},
        )
        peak = 0.0
        while process.poll() is None and time.time() - started < timeout:
            peak = max(peak, sum(demo.tree_memory_gb(pid) for pid in (process.pid, *also)))
            time.sleep(1.0)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # with the Ray cluster it started
        process.wait()
    seconds = time.time() - started
    print(f"{output.name}: exit {process.returncode}, {seconds:.0f} s, peak {peak:.1f} GB")
    return Run(
        output, subprocess.CompletedProcess(command, process.returncode, log.read_text(errors="replace")), seconds, peak
    )
