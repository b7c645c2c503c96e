# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The command line and the CPU demo."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from verl_fair.demo import run as demo


def test_doctor_reports_registration():
    result = subprocess.run(
        [sys.executable, "-m", "verl_fair.cli", "doctor"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fair_grpo registered by verl_fair" in result.stdout


def test_python_warnings_are_one_line_each_without_source(tmp_path):
    """A group below --min-group-size warns from inside the metrics code; the CLI shows the message, not the code."""
    rows = ["gts,pred,group_sex"] + ["a,a,F", "b,a,F"] * 20 + ["a,b,M"] * 3
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "verl_fair.cli", "report", str(tmp_path / "p.csv"), "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "UserWarning" in line]
    assert len(warning) == 1 and warning[0].startswith("fairness.py:")
    assert warning[0].endswith("UserWarning: group sex=M has 3 samples (< min_group_size=30); it is left out of the "
                               "per-group metrics and the gaps")  # fmt: skip
    assert not [line for line in result.stderr.splitlines() if line.startswith(" ")]  # no source lines


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


def test_the_demo_task_hides_womens_heart_attacks_in_the_records(tmp_path):
    """The symptoms decide the diagnosis; the records the model is warm-started on miss only women's
    atypical heart attacks; prepare counts groups with the demo's own age bins, so no group is flagged."""
    import pandas as pd

    from verl_fair.demo import vignettes

    table = pd.read_csv(vignettes.write_task(tmp_path / "task"))
    atypical = table["symptoms"].map(lambda text: any(s in text for s in vignettes.ATYPICAL))
    benign = table["symptoms"].map(lambda text: all(s in vignettes.BENIGN for s in text.split(" and ")))
    assert ((table["diagnosis"] == "benign") == benign).all()
    missed = table[table["recorded"] != table["diagnosis"]]
    assert len(missed) > 10 and (missed["sex"] == "F").all() and atypical[missed.index].all()
    assert (missed["diagnosis"] == "cardiac").all() and not atypical[table["sex"] == "M"].any()
    assert vignettes.prepare(tmp_path / "task", ["--output", str(tmp_path / "data")]) == 0
    summary = json.loads((tmp_path / "data" / "summary.json").read_text())
    assert sorted(summary["groups"]) == [f"chest_pain / {s},{a}" for s in "FM" for a in ("A1", "A2")]
    assert summary["small_groups"] == [] and summary["unusable_demographics"] == {}


def test_the_demo_table_weighs_groups_against_their_share_of_prompts():
    def step(number, weights, shares, prompts):
        data = {}
        for group, count in prompts.items():
            data[f"fair/train/task/{group}/prompts"] = count
            data[f"fair/train/task/{group}/reward_mean"] = 0.5
        for group in weights:
            data[f"fair/estimator/task/{group}/weight"] = weights[group]
            data[f"fair/estimator/task/{group}/adv_share"] = shares[group]
        return {"step": number, "data": data}

    records = [
        step(1, {}, {}, {"F": 1, "M": 3}),
        step(2, {"F": 0.3, "M": 0.1}, {"F": 0.6, "M": 0.4}, {"F": 1, "M": 3}),
        step(3, {"M": 0.1}, {"M": 1.0}, {"F": 1, "M": 3}),
    ]
    header, female, male = demo.group_table(records).splitlines()
    assert "advantage share" in header
    assert female.split() == ["task", "F", "3", "25", "%", "0.50", "0.50", "0.300", "30", "%"]
    assert male.split() == ["task", "M", "9", "75", "%", "0.50", "0.50", "0.100", "70", "%"]


def test_the_demo_prints_the_gaps_of_the_first_and_last_validation():
    gaps = {"equal_opportunity_difference": 0.35, "equalized_odds_difference": None, "worst_group_accuracy": 0.78}
    report = {"steps": {"8": {**gaps, "equal_opportunity_difference": 0.0}, "0": gaps}}
    line = demo.gaps_line(report)
    assert "(step 0 -> 8" in line and "equal opportunity difference 0.350 -> 0.000" in line
    assert "equalized odds difference - -> -" in line and demo.gaps_line({}) == "fairness gaps: one validation only"


def test_the_demo_refuses_steps_batch_size_or_n_below_one_before_any_work(tmp_path, capsys):
    for flag, value in [("--steps", "0"), ("--steps", "-1"), ("--batch-size", "0"), ("--n", "0")]:
        with pytest.raises(SystemExit) as stop:
            demo.main([flag, value, "--output", str(tmp_path / "demo")])
        assert stop.value.code == 2
        assert f"argument {flag}: {value} is below 1; give an integer >= 1" in capsys.readouterr().err
        assert not (tmp_path / "demo").exists()
