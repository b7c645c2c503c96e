"""The command line and the CPU demo."""

import subprocess
import sys
from pathlib import Path

from verl_fair.demo import run as demo


def test_doctor_reports_registration():
    result = subprocess.run(
        [sys.executable, "-m", "verl_fair.cli", "doctor"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fair_grpo registered by verl_fair" in result.stdout


def test_config_dir_holds_the_shipped_yaml():
    result = subprocess.run([sys.executable, "-m", "verl_fair.cli", "config-dir"], capture_output=True, text=True)
    assert (Path(result.stdout.strip()) / "fair_grpo.yaml").is_file()


def test_demo_stops_at_once_without_enough_memory(tmp_path, capsys):
    assert demo.main(["--min-memory-gb", "1e6", "--output", str(tmp_path / "demo")]) == 2
    assert "--min-memory-gb" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_cpu_overrides_are_printed_one_per_line(capsys):
    from verl_fair.cli import main
    from verl_fair.cpu import HYDRA_OVERRIDES

    assert main(["cpu-overrides"]) == 0
    assert capsys.readouterr().out.split() == list(HYDRA_OVERRIDES)
