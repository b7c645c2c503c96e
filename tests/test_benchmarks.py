# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The benchmarks stay runnable (their quick modes; the numbers live in benchmarks/RESULTS.md)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_estimator_benchmark_quick_mode():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.estimator", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| fair_grpo paper labelled |" in result.stdout and "| verl grpo |" in result.stdout
