"""The command line and the CPU demo."""

import subprocess
import sys
from pathlib import Path

from verl_fair.demo.advantage import run


def test_doctor_reports_registration():
    result = subprocess.run([sys.executable, "-m", "verl_fair.cli", "doctor"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fair_grpo registered by verl_fair" in result.stdout


def test_config_dir_holds_the_shipped_yaml():
    result = subprocess.run([sys.executable, "-m", "verl_fair.cli", "config-dir"], capture_output=True, text=True)
    assert (Path(result.stdout.strip()) / "fair_grpo.yaml").is_file()


def test_demo_moves_advantage_mass_to_the_small_hard_group():
    counts, mass = run(steps=3, prompts=96, rollouts=6, seed=1)
    share = {name: mass[name][("chest_xray", "F,A4")] / sum(mass[name].values()) for name in mass}
    assert share["fair_grpo"] > 1.5 * share["grpo"]
