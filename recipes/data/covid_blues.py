"""COVID-BLUES (lung ultrasound videos, COVID-19 test result, age and sex) -> verl parquet.

    python recipes/data/covid_blues.py ROOT --output data/covid_blues [verl-fair prepare options]

ROOT holds clinical_variables.csv (patient_id, cov_test 1/0, pat_sex 0 female / 1 male, pat_age; -99
marks a missing value), severity.csv (video_file) and frames/<video_file>.png, one frame per video, e.g.
``for v in lus_videos/*.mp4; do ffmpeg -loglevel error -ss 1 -i "$v" -frames:v 1 "frames/$(basename "$v" .mp4).png"; done``.
Each video becomes one example; the split uses the patient, so a patient's videos stay together.
"""

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
    table["diagnosis"] = table["cov_test"].map({"1": "COVID-19", "1.0": "COVID-19", "0": "no COVID-19",
                                                "0.0": "no COVID-19"}).fillna("")
    table["sex"] = table["pat_sex"].map({"0": "F", "0.0": "F", "1": "M", "1.0": "M"}).fillna("")
    path = Path(tempfile.mkdtemp()) / "covid_blues.csv"
    table.to_csv(path, index=False)
    return path


if __name__ == "__main__":
    root, rest = Path(sys.argv[1]), sys.argv[2:]
    sys.exit(main(["prepare", "table", str(patient_table(root)), "--data-source", "covid_blues",
                   "--label-column", "diagnosis", "--image-column", "video_file", "--image-suffix", ".png",
                   "--image-root", str(root / "frames"), "--id-column", "patient_id", "--sex-column", "sex",
                   "--age-column", "pat_age",
                   "--question", "Does this lung ultrasound frame show COVID-19? Options: COVID-19, no COVID-19.",
                   *rest]))
