# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""verl-fair discover: offline clusters of feature vectors become explicit groups."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from verl_fair.groups.discover import discover


def _parquet(path, rng, rows=300):
    sexes = rng.choice(["F", "M"], size=rows)
    centres = {"F": np.array([0.0, 0.0, 3.0]), "M": np.array([3.0, 3.0, 0.0])}
    features = [list(centres[s] + rng.normal(0, 0.3, 3)) for s in sexes]
    features[0] = None  # a row without features
    frame = pd.DataFrame(
        {
            "data_source": ["derm"] * rows,
            "embedding": features,
            "extra_info": [{"index": i, "demographics": {"sex": s, "age": None}} for i, s in enumerate(sexes)],
        }
    )
    frame.to_parquet(path, index=False)
    return sexes


def test_clusters_become_fair_groups_and_align_with_hidden_labels(tmp_path):
    _parquet(tmp_path / "in.parquet", np.random.default_rng(0))
    report = discover(tmp_path / "in.parquet", tmp_path / "out.parquet", "embedding", attributes=["sex"])
    entry = report["data_sources"]["derm"]
    assert entry["clustered"] == 299 and report["rows_without_features"] == 1
    assert entry["ari"] > 0.95 and entry["nmi"] > 0.9 and len(entry["sizes"]) == 2
    out = pd.read_parquet(tmp_path / "out.parquet")
    groups = [info["fair_group"] for info in out["extra_info"]]
    assert groups[0] is None and set(groups[1:]) == {"cluster0", "cluster1"}
    assert json.loads((tmp_path / "out.discover.json").read_text())["data_sources"]["derm"]["clustered"] == 299


def test_existing_groups_are_kept_unless_overwritten(tmp_path):
    _parquet(tmp_path / "in.parquet", np.random.default_rng(1))
    discover(tmp_path / "in.parquet", tmp_path / "once.parquet", "embedding", k=2)
    with pytest.raises(ValueError, match="already have extra_info.fair_group"):
        discover(tmp_path / "once.parquet", tmp_path / "twice.parquet", "embedding")
    discover(tmp_path / "once.parquet", tmp_path / "twice.parquet", "embedding", overwrite=True, k=3, prefix="g")
    assert {i["fair_group"] for i in pd.read_parquet(tmp_path / "twice.parquet")["extra_info"]} - {None} == {
        "g0",
        "g1",
        "g2",
    }


def test_cli_reports_sizes_and_names_a_missing_column(tmp_path):
    _parquet(tmp_path / "in.parquet", np.random.default_rng(2))
    command = [
        sys.executable,
        "-m",
        "verl_fair.cli",
        "discover",
        str(tmp_path / "in.parquet"),
        "--output",
        str(tmp_path / "out.parquet"),
    ]
    ok = subprocess.run(
        [*command, "--feature-column", "embedding", "--group-attributes", "sex"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "derm: 299/300 rows" in ok.stdout and "ARI" in ok.stdout and "1 rows had no usable" in ok.stdout
    bad = subprocess.run([*command, "--feature-column", "clip"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "column 'clip' is not in" in bad.stderr


def test_one_odd_first_row_does_not_make_the_others_unusable(tmp_path):
    rng = np.random.default_rng(3)
    _parquet(tmp_path / "in.parquet", rng)
    frame = pd.read_parquet(tmp_path / "in.parquet")
    frame.at[1, "embedding"] = [1.0, 2.0, 3.0, 4.0, 5.0]  # the first usable row has another length
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    report = discover(tmp_path / "in.parquet", tmp_path / "out.parquet", "embedding", k=2)
    assert report["rows_without_features"] == 2 and report["data_sources"]["derm"]["clustered"] == 298


def test_extra_info_as_a_json_string_keeps_its_demographics_and_form(tmp_path):
    rng = np.random.default_rng(4)
    _parquet(tmp_path / "in.parquet", rng)
    frame = pd.read_parquet(tmp_path / "in.parquet")
    frame["extra_info"] = [json.dumps({"index": i, "sex": "F"}) for i in range(len(frame))]
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    discover(tmp_path / "in.parquet", tmp_path / "out.parquet", "embedding", k=2)
    written = pd.read_parquet(tmp_path / "out.parquet")["extra_info"]
    assert isinstance(written[5], str)
    info = json.loads(written[5])
    assert info["sex"] == "F" and info["index"] == 5 and info["fair_group"].startswith("cluster")


@pytest.mark.parametrize("flag", ["--k-max", "--k"])
def test_k_below_one_is_refused_by_name(tmp_path, flag):
    _parquet(tmp_path / "in.parquet", np.random.default_rng(0))
    result = subprocess.run(
        [sys.executable, "-m", "verl_fair.cli", "discover", tmp_path / "in.parquet", "--output",
         tmp_path / "o.parquet", "--feature-column", "embedding", flag, "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and flag in result.stderr and "below 1" in result.stderr


def test_a_missing_input_is_said_not_to_exist_with_its_path(tmp_path, capsys):
    from verl_fair.cli import main

    missing = tmp_path / "nope.parquet"
    assert main(["discover", str(missing), "--output", str(tmp_path / "o.parquet"), "--feature-column", "f"]) == 2
    assert f"verl-fair discover: {missing} does not exist; give the parquet file" in capsys.readouterr().err
    assert main(["discover", str(tmp_path), "--output", str(tmp_path / "o.parquet"), "--feature-column", "f"]) == 2
    assert f"verl-fair discover: {tmp_path} is a folder; give the parquet file" in capsys.readouterr().err
