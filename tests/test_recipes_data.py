# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Each recipes/data converter on small generated files in its dataset's layout."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_imaging import write_dicom, write_nifti, write_video

RECIPES = Path(__file__).parents[1] / "recipes" / "data"


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path)


def _csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def chexpert(root):
    rows = []
    for i, (sex, age, edema) in enumerate([("Female", 58, "1.0"), ("Male", 77, "-1.0")]):
        path = f"CheXpert-v1.0-small/train/patient0000{i}/study1/view1_frontal.jpg"
        _image(root / path)
        labels = {
            name: ""
            for name in (
                "No Finding",
                "Enlarged Cardiomediastinum",
                "Cardiomegaly",
                "Lung Opacity",
                "Lung Lesion",
                "Consolidation",
                "Pneumonia",
                "Atelectasis",
                "Pneumothorax",
                "Pleural Effusion",
                "Pleural Other",
                "Fracture",
                "Support Devices",
            )
        }
        labels["No Finding"] = "" if edema == "1.0" else "1.0"
        rows.append(
            {
                "Path": path,
                "Sex": sex,
                "Age": age,
                "Frontal/Lateral": "Frontal",
                "AP/PA": "AP",
                "Edema": edema,
                **labels,
            }
        )
    _csv(root / "CheXpert-v1.0-small/train.csv", rows)
    return ["Edema", "No Finding"], {"sex": "F", "age": 58.0}


def hemorrhage(root):
    """The NIfTI release: ct_scans/049.nii (2 slices) and its file names; no Patients_CT/ JPEGs."""
    _csv(
        root / "hemorrhage_diagnosis_raw_ct.csv",
        [
            {
                "PatientNumber": 49,
                "SliceNumber": 1,
                "Intraventricular": 0,
                "Intraparenchymal": 0,
                "Subarachnoid": 0,
                "Epidural": 1,
                "Subdural": 0,
                "No_Hemorrhage": 0,
                "Fracture_Yes_No": 0,
            },
            {
                "PatientNumber": 49,
                "SliceNumber": 2,
                "Intraventricular": 0,
                "Intraparenchymal": 0,
                "Subarachnoid": 0,
                "Epidural": 0,
                "Subdural": 0,
                "No_Hemorrhage": 1,
                "Fracture_Yes_No": 0,
            },
        ],
    )
    (root / "Patient_demographics.csv").write_text(
        'Patient Number,"Age\n(years)",Gender,Intraventricular,Epidural\n49,35,Male,,1\n'
    )
    write_nifti(root / "ct_scans/049.nii", np.stack([np.full((8, 8), 40.0), np.full((8, 8), 70.0)], axis=-1))
    return ["Epidural", "no hemorrhage"], {"sex": "M", "age": 35.0}


def vindr_mammo(root):
    """The DICOM release: images/<study_id>/<image_id>.dicom; no png/."""
    _csv(
        root / "breast-level_annotations.csv",
        [
            {
                "study_id": "s1",
                "series_id": "r1",
                "image_id": "i1",
                "laterality": "L",
                "view_position": "CC",
                "height": 10,
                "width": 10,
                "breast_birads": "BI-RADS 1",
                "breast_density": "DENSITY C",
                "split": "training",
            },
            {
                "study_id": "s1",
                "series_id": "r1",
                "image_id": "i2",
                "laterality": "R",
                "view_position": "MLO",
                "height": 10,
                "width": 10,
                "breast_birads": "BI-RADS 4",
                "breast_density": "DENSITY C",
                "split": "training",
            },
        ],
    )
    _csv(
        root / "metadata.csv",
        [{"SOP Instance UID": "i1", "Patient's Age": "053Y"}, {"SOP Instance UID": "i2", "Patient's Age": "053Y"}],
    )
    write_dicom(root / "images/s1/i1.dicom", [[0, 4095]], "MONOCHROME1", WindowCenter=2048, WindowWidth=4096)
    write_dicom(root / "images/s1/i2.dicom", [[0, 4095]])
    return ["BI-RADS 1", "BI-RADS 4"], {"sex": None, "age": 53.0, "density": "DENSITY C"}


def isic2020(root):
    _csv(
        root / "train.csv",
        [
            {
                "image_name": "ISIC_1",
                "patient_id": "IP_1",
                "sex": "female",
                "age_approx": "45.0",
                "anatom_site_general_challenge": "head/neck",
                "diagnosis": "unknown",
                "benign_malignant": "benign",
                "target": 0,
            },
            {
                "image_name": "ISIC_2",
                "patient_id": "IP_2",
                "sex": "",
                "age_approx": "",
                "anatom_site_general_challenge": "torso",
                "diagnosis": "melanoma",
                "benign_malignant": "malignant",
                "target": 1,
            },
        ],
    )
    _image(root / "jpeg/train/ISIC_1.jpg")
    _image(root / "jpeg/train/ISIC_2.jpg")
    return ["benign", "malignant"], {"sex": "F", "age": 45.0, "site": "head/neck"}


def ham10000(root):
    _csv(
        root / "HAM10000_metadata.csv",
        [
            {
                "lesion_id": "HAM_1",
                "image_id": "ISIC_1",
                "dx": "bkl",
                "dx_type": "histo",
                "age": "80.0",
                "sex": "female",
                "localization": "scalp",
            },
            {
                "lesion_id": "HAM_2",
                "image_id": "ISIC_2",
                "dx": "mel",
                "dx_type": "histo",
                "age": "",
                "sex": "unknown",
                "localization": "back",
            },
        ],
    )
    _image(root / "HAM10000_images_part_1/ISIC_1.jpg")
    _image(root / "HAM10000_images_part_2/ISIC_2.jpg")
    return ["benign keratosis", "melanoma"], {"sex": "F", "age": 80.0, "site": "scalp"}


def pad_ufes_20(root):
    _csv(
        root / "metadata.csv",
        [
            {
                "patient_id": "PAT_46",
                "lesion_id": 881,
                "age": 55,
                "gender": "FEMALE",
                "fitspatrick": "3.0",
                "region": "NECK",
                "diagnostic": "BCC",
                "img_id": "PAT_46_881_14.png",
            },
            {
                "patient_id": "PAT_47",
                "lesion_id": 882,
                "age": 61,
                "gender": "",
                "fitspatrick": "",
                "region": "FACE",
                "diagnostic": "NEV",
                "img_id": "PAT_47_882_1.png",
            },
        ],
    )
    _image(root / "images/imgs_part_1/PAT_46_881_14.png")
    _image(root / "images/imgs_part_3/PAT_47_882_1.png")
    return ["basal cell carcinoma", "nevus"], {"sex": "F", "age": 55.0, "fitzpatrick": "3.0"}


def covid_blues(root):
    """The release: lus_videos/<video_file>.mp4; no frames/."""
    _csv(
        root / "clinical_variables.csv",
        [
            {"patient_id": 7, "cov_test": 1, "pat_sex": 1, "pat_age": 64.0},
            {"patient_id": 9, "cov_test": 0, "pat_sex": 0, "pat_age": -99},
        ],
    )
    _csv(
        root / "severity.csv",
        [{"video_file": "patient_7_L1", "Severity Score": 2}, {"video_file": "patient_9_R3_2", "Severity Score": 0}],
    )
    write_video(root / "lus_videos/patient_7_L1.mp4", seconds=2)
    write_video(root / "lus_videos/patient_9_R3_2.mp4", seconds=2)
    return ["COVID-19", "no COVID-19"], {"sex": "M", "age": 64.0}


@pytest.mark.parametrize("layout", [chexpert, hemorrhage, vindr_mammo, isic2020, ham10000, pad_ufes_20, covid_blues])
def test_converter(layout, tmp_path):
    root, out = tmp_path / "download", tmp_path / "out"
    labels, first_demographics = layout(root)
    env = {
        **os.environ,
        "ROOT": str(root),
        "OUT": str(out),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    if layout is covid_blues:
        command = [sys.executable, str(RECIPES / "covid_blues.py"), str(root), "--output", str(out)]
    else:
        command = ["bash", str(RECIPES / f"{layout.__name__}.sh")]
    result = subprocess.run(
        [*command, "--val-fraction", "0", "--on-error", "stop"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = pd.read_parquet(out / "train.parquet")
    assert list(rows["reward_model"].map(lambda r: r["ground_truth"])) == labels
    assert rows["extra_info"][0]["demographics"] == first_demographics
    assert all(len(images) == 1 for images in rows["images"])


def test_sklearn_diabetes_smoke_data(tmp_path):
    result = subprocess.run(
        [sys.executable, str(RECIPES / "sklearn_diabetes.py"), "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = pd.concat([pd.read_parquet(tmp_path / f"{s}.parquet") for s in ("train", "val")])
    assert len(rows) == 442 and "images" not in rows.columns
    assert set(rows["reward_model"].map(lambda r: r["ground_truth"])) == {"progression", "no progression"}
    assert {e["demographics"]["sex_code"] for e in rows["extra_info"]} == {"1", "2"}
    assert all(18 <= e["demographics"]["age"] <= 80 for e in rows["extra_info"])
