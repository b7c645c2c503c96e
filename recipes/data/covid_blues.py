# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""COVID-BLUES (lung ultrasound videos, COVID-19 test result, age and sex) -> verl parquet.

    python recipes/data/covid_blues.py ROOT --output data/covid_blues [--at-seconds 1] [verl-fair prepare options]

ROOT holds clinical_variables.csv (patient_id, cov_test 1/0, pat_sex 0 female / 1 male, pat_age; -99
marks a missing value), severity.csv (video_file) and the videos lus_videos/<video_file>.mp4, as in the
release. Each video becomes one example, its frame shown at --at-seconds (default 1 s), extracted into
OUTPUT/frames/<video_file>.png (kept: a later run reuses them; pass --overwrite to replace the
prepared parquet); frames already in ROOT/frames/ are used instead. The split uses the patient, so a
patient's videos stay together.
"""

import argparse
import re
import sys
import tempfile
from pathlib import Path

import pandas as pd

from verl_fair.cli import main


def patient_table(root: Path) -> Path:
    """severity.csv with the patient id taken from the file name, joined to the clinical variables."""
    videos = pd.read_csv(root / "severity.csv", dtype=str, keep_default_na=False)
    videos["patient_id"] = videos["video_file"].map(lambda name: re.match(r"patient_(\d+)", name).group(1))
    clinical = pd.read_csv(root / "clinical_variables.csv", dtype=str, keep_default_na=False)
    clinical["patient_id"] = clinical["patient_id"].str.replace(r"\.0$", "", regex=True)
    table = videos.merge(clinical[["patient_id", "cov_test", "pat_sex", "pat_age"]], on="patient_id", how="left")
    diagnoses = {"1": "COVID-19", "1.0": "COVID-19", "0": "no COVID-19", "0.0": "no COVID-19"}
    table["diagnosis"] = table["cov_test"].map(diagnoses).fillna("")
    table["sex"] = table["pat_sex"].map({"0": "F", "0.0": "F", "1": "M", "1.0": "M"}).fillna("")
    path = Path(tempfile.mkdtemp()) / "covid_blues.csv"
    table.to_csv(path, index=False)
    return path


def frames_folder(root: Path, output: Path, at_seconds: float) -> Path:
    """ROOT/frames when it is there, else OUTPUT/frames filled with one frame per video of ROOT/lus_videos."""
    if (root / "frames").is_dir():
        return root / "frames"
    from verl_fair.data.imaging import convert_folder

    report = convert_folder("video", root / "lus_videos", output / "frames", at_seconds=at_seconds)
    print(report.summary())
    return output / "frames"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("root", type=Path, help="the COVID-BLUES release")
    parser.add_argument("--output", type=Path, required=True, help="folder for the parquet files and the frames")
    parser.add_argument("--at-seconds", type=float, default=1.0, help="the time of each video's frame")
    args, rest = parser.parse_known_args()
    try:
        frames = frames_folder(args.root, args.output, args.at_seconds)
    except (ValueError, ImportError) as error:
        sys.exit(f"covid_blues.py: {error}")
    question = "Does this lung ultrasound frame show COVID-19? Options: COVID-19, no COVID-19."
    sys.exit(
        main(
            ["prepare", "table", str(patient_table(args.root)), "--output", str(args.output)]
            + ["--data-source", "covid_blues", "--label-column", "diagnosis", "--image-column", "video_file"]
            + ["--image-suffix", ".png", "--image-root", str(frames), "--id-column", "patient_id"]
            + ["--sex-column", "sex", "--age-column", "pat_age", "--question", question, *rest]
        )
    )
