# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""verl-fair prepare: the authors' JSONL and generic tables to verl parquet, checked row by row."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from verl_fair.data import prepare as data


def _image(path: Path, shade: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 0, 0)).save(path)
    return path


@pytest.fixture
def authors_jsonl(tmp_path):
    _image(tmp_path / "chest_xray/chexpert/a.png")
    _image(tmp_path / "derm/ham/b.png")
    rows = [
        {
            "problem": "<image>Which findings? Options: Edema, Mass",
            "answer": "Edema, Mass",
            "images": ["chest_xray/chexpert/a.png"],
            "data_source": "chest_xray",
            "dataset": "chexpert",
            "demo": "sex: Male, age: 68",
        },
        {
            "problem": "What lesion is this?",
            "answer": "melanoma",
            "images": ["derm/ham/b.png"],
            "data_source": "derm",
            "dataset": "ham10000",
            "demo": "age: nan, sex: unknown",
        },
        {"problem": "Missing image", "answer": "x", "images": ["nope.png"], "dataset": "chexpert"},
        {"problem": "No label", "answer": "", "images": [], "dataset": "chexpert"},
        {"problem": "No demo at all", "answer": "Mass", "images": [], "dataset": "chexpert"},
    ]
    path = tmp_path / "geom_train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    return path


def _run(examples, tmp_path, **kwargs):
    report = kwargs.pop("report")
    return data.prepare(examples, tmp_path / "out", report=report, **kwargs)


def _all_rows(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))], ignore_index=True)


def test_authors_jsonl_rows_become_verl_rows(authors_jsonl, tmp_path):
    report = data.Report()
    _run(data.read_jsonl(authors_jsonl), tmp_path, report=report, val_fraction=0.0)
    rows = _all_rows(tmp_path / "out").set_index("data_source")
    assert sorted(rows.index) == ["chexpert", "chexpert", "ham10000"]
    first = rows.loc["chexpert"].iloc[0]
    content = first["prompt"][0]["content"]
    assert content.startswith("<image>Which findings?") and content.count("<image>") == 1
    assert "\\boxed{}" in content and first["reward_model"]["ground_truth"] == "Edema, Mass"
    assert Image.open(__import__("io").BytesIO(first["images"][0]["bytes"])).size == (8, 8)
    assert first["extra_info"]["demographics"] == {"sex": "M", "age": 68.0}
    assert first["extra_info"]["modality"] == "chest_xray"
    assert rows.loc["ham10000"]["extra_info"]["demographics"] == {"sex": None, "age": None}
    # every bad row is named, none silently dropped
    assert len(report.skipped) == 3
    assert any("geom_train.jsonl line 3 (id 3): image" in s and "nope.png" in s for s in report.skipped)
    assert any("geom_train.jsonl line 4 (id 4): label" in s for s in report.skipped)
    assert any("geom_train.jsonl line 6 (no id): json" in s for s in report.skipped)
    assert report.skipped_by_field == {"image": 1, "label": 1, "json": 1}
    assert report.input_rows == 6 and sum(report.written.values()) + len(report.skipped) == 6
    assert report.unusable_demographics[("sex", "missing")] == 2  # "unknown" and no demo (written rows only)
    assert report.unusable_demographics[("age", "missing")] == 2  # "nan" and no demo at all
    assert report.groups[("chexpert", "M,A3")] == 1 and report.groups[("ham10000", "UNK")] == 1


def test_on_error_stop_raises_at_the_first_bad_row(authors_jsonl, tmp_path):
    report = data.Report()
    with pytest.raises(data.RowError, match=r"line 3 \(id 3\): image"):
        _run(data.read_jsonl(authors_jsonl), tmp_path, report=report, on_error="stop")


def test_images_as_paths(authors_jsonl, tmp_path):
    report = data.Report()
    _run(data.read_jsonl(authors_jsonl), tmp_path, report=report, embed_images=False, val_fraction=0.0)
    rows = _all_rows(tmp_path / "out")
    paths = [p for images in rows["images"] for p in images]
    assert paths and all(Path(p).is_absolute() and Path(p).is_file() for p in paths)


def test_split_is_deterministic_and_about_the_fraction(tmp_path):
    examples = [data.Example("d", "q", ["x"], [], {"sex": None, "age": None}, str(i)) for i in range(2000)]
    chosen = [data.in_validation(e, 0.2, seed=3) for e in examples]
    assert 0.17 < sum(chosen) / len(chosen) < 0.23
    assert chosen == [data.in_validation(e, 0.2, seed=3) for e in reversed(examples)][::-1]
    assert chosen != [data.in_validation(e, 0.2, seed=4) for e in examples]


def test_ham10000_like_table_with_label_map(tmp_path):
    for name in ("ISIC_1", "ISIC_2", "ISIC_3"):
        _image(tmp_path / "images" / f"{name}.jpg")
    pd.DataFrame(
        {
            "image_id": ["ISIC_1", "ISIC_2", "ISIC_3"],
            "dx": ["mel", "nv", "bkl"],
            "age": ["45.0", "", "80"],
            "sex": ["male", "female", "unknown"],
            "localization": ["back", "face", "trunk"],
        }
    ).to_csv(tmp_path / "meta.csv", index=False)
    spec = data.TableSpec(
        data_source="ham10000",
        label_column="dx",
        label_map={"mel": "melanoma", "nv": "nevus"},
        image_column="image_id",
        image_roots=[tmp_path / "images"],
        image_suffix=".jpg",
        sex_column="sex",
        age_column="age",
        attribute_columns={"site": "localization"},
        question="What lesion is on the {localization}?",
    )
    report = data.Report()
    _run(data.read_table(tmp_path / "meta.csv", spec), tmp_path, report=report, val_fraction=0.0)
    rows = _all_rows(tmp_path / "out")
    assert list(rows["reward_model"].map(lambda r: r["ground_truth"])) == ["melanoma", "nevus", "bkl"]
    assert rows["prompt"][0][0]["content"].startswith("<image>What lesion is on the back?")
    assert [e["demographics"]["sex"] for e in rows["extra_info"]] == ["M", "F", None]
    assert [e["demographics"]["site"] for e in rows["extra_info"]] == ["back", "face", "trunk"]
    assert report.unusable_demographics[("age", "missing")] == 1


def test_chexpert_like_one_hot_table_and_dicom_ages(tmp_path):
    _image(tmp_path / "p1.jpg")
    _image(tmp_path / "p2.jpg")
    pd.DataFrame(
        {
            "Path": ["p1.jpg", "p2.jpg"],
            "Sex": ["Female", "Male"],
            "Age": ["058Y", "077Y"],
            "Edema": ["1.0", "-1.0"],
            "Pleural Effusion": ["1.0", ""],
            "No Finding": ["", "1.0"],
        }
    ).to_csv(tmp_path / "train.csv", index=False)
    spec = data.TableSpec(
        data_source="chexpert",
        label_columns=["Edema", "Pleural Effusion", "No Finding"],
        image_column="Path",
        sex_column="Sex",
        age_column="Age",
    )
    report = data.Report()
    _run(data.read_table(tmp_path / "train.csv", spec), tmp_path, report=report, val_fraction=0.0)
    rows = _all_rows(tmp_path / "out")
    assert list(rows["reward_model"].map(lambda r: r["ground_truth"])) == ["Edema, Pleural Effusion", "No Finding"]
    assert [e["demographics"]["age"] for e in rows["extra_info"]] == [58.0, 77.0]


def test_table_spec_errors_name_the_columns(tmp_path):
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "t.csv", index=False)
    spec = data.TableSpec(data_source="x", label_column="dx", sex_column="gender")
    with pytest.raises(ValueError, match=r"columns \['dx', 'gender'\] are not in the table"):
        list(data.read_table(tmp_path / "t.csv", spec))


def test_cli_prints_a_summary_and_flags_small_groups(authors_jsonl, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "verl_fair.cli",
            "prepare",
            "jsonl",
            str(authors_jsonl),
            "--output",
            str(tmp_path / "cli"),
            "--min-group-size",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "skipped rows: 3" in result.stdout and "<-- below 2" in result.stdout
    summary = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert summary["skipped_rows"] == 3 and summary["small_groups"]


def test_round_trip_through_verls_dataset_to_the_reward(tmp_path):
    """A prepared parquet loads through verl's RLHFDataset and extra_info reaches the reward unchanged.

    Text-only: verl's dataset insists on a multimodal processor for image rows, and building one
    offline needs torchvision, which the CPU build of torch here does not have.
    """
    from omegaconf import OmegaConf
    from tiny_tokenizer import tiny_tokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    from verl_fair.reward_fns.clinical_diagnosis import compute_score

    pd.DataFrame({"bmi": ["31.2"], "bp": ["88"], "outcome": ["progression"], "sex": ["F"], "age": ["30"]}).to_csv(
        tmp_path / "cohort.csv", index=False
    )
    spec = data.TableSpec(
        data_source="diabetes",
        label_column="outcome",
        sex_column="sex",
        age_column="age",
        question="BMI {bmi}, blood pressure {bp}. Will the disease progress?",
    )
    report = data.Report()
    _run(data.read_table(tmp_path / "cohort.csv", spec), tmp_path, report=report, val_fraction=0.0)
    written = pd.read_parquet(tmp_path / "out" / "train.parquet")
    assert "images" not in written.columns
    config = OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": str(tmp_path / "cache")})
    dataset = RLHFDataset(str(tmp_path / "out" / "train.parquet"), tiny_tokenizer(), config)
    batch = collate_fn([dataset[0]])
    assert batch["raw_prompt"][0][0]["content"].startswith("BMI 31.2, blood pressure 88.")
    extra_info = batch["extra_info"][0]
    assert extra_info == written["extra_info"][0] | {"demographics": {"sex": "F", "age": 30.0}}
    result = compute_score(
        batch["data_source"][0], "\\boxed{Progression}", batch["reward_model"][0]["ground_truth"], extra_info
    )
    assert result["acc"] == 1.0 and result["group_sex"] == "F" and result["group"] == "F,A2"


def test_join_brings_patient_demographics_to_each_slice(tmp_path):
    for slice_number in (1, 2):
        _image(tmp_path / "049" / f"{slice_number}.jpg")
    _image(tmp_path / "050" / "1.jpg")
    pd.DataFrame(
        {
            "PatientNumber": ["49", "49", "50"],
            "SliceNumber": ["1", "2", "1"],
            "Epidural": ["1", "0", "0"],
            "Subdural": ["0", "1", "0"],
            "No_Hemorrhage": ["0", "0", "1"],
            "image": ["049/1.jpg", "049/2.jpg", "050/1.jpg"],
        }
    ).to_csv(tmp_path / "slices.csv", index=False)
    pd.DataFrame({"Patient Number": ["49"], "Age": ["35"], "Gender": ["Male"]}).to_csv(
        tmp_path / "demo.csv", index=False
    )
    spec = data.TableSpec(
        data_source="hemorrhage",
        label_columns=["Epidural", "Subdural", "No_Hemorrhage"],
        image_column="image",
        sex_column="Gender",
        age_column="Age",
        joins=[(tmp_path / "demo.csv", "PatientNumber", "Patient Number")],
    )
    report = data.Report()
    _run(data.read_table(tmp_path / "slices.csv", spec), tmp_path, report=report, val_fraction=0.0)
    rows = _all_rows(tmp_path / "out")
    assert [e["demographics"] for e in rows["extra_info"]] == [{"sex": "M", "age": 35.0}] * 2 + [
        {"sex": None, "age": None}
    ]
    assert report.groups[("hemorrhage", "M,A2")] == 2 and report.groups[("hemorrhage", "UNK")] == 1


def test_balanced_training_file_oversamples_small_groups(tmp_path):
    examples = []
    for i in range(30):
        sex = "M" if i < 20 else "F"
        examples.append(data.Example("d", "q", ["x"], [], {"sex": sex, "age": 40}, str(i)))
    examples.append(data.Example("d", "q", ["x"], [], {"sex": None, "age": None}, "unk"))
    report = data.Report()
    data.prepare(examples, tmp_path / "out", report=report, val_fraction=0.0, balance=True)
    rows = pd.read_parquet(tmp_path / "out" / "train_balanced.parquet")
    sexes = rows["extra_info"].map(lambda e: e["demographics"]["sex"]).value_counts(dropna=False)
    assert (
        sexes["M"] == 20
        and sexes["F"] == 20
        and rows["extra_info"].map(lambda e: e["demographics"]["sex"] is None).sum() == 1
    )
    assert report.written["train_balanced"] == 41
    again = data.Report()
    data.prepare(examples, tmp_path / "again", report=again, val_fraction=0.0, balance=True)
    assert (
        pd.read_parquet(tmp_path / "again" / "train_balanced.parquet")["extra_info"].tolist()
        == rows["extra_info"].tolist()
    )


@pytest.mark.parametrize("bins", [["50", "25"], ["nan"], ["inf"], ["-1"], ["25", "25"]])
def test_age_bins_the_estimator_refuses_are_refused_before_reading(tmp_path, capsys, bins):
    from verl_fair.cli import main

    pd.DataFrame({"dx": ["mel"], "age": ["40"]}).to_csv(tmp_path / "t.csv", index=False)
    command = ["prepare", "table", str(tmp_path / "t.csv"), "--output", str(tmp_path / "out"), "--data-source", "d"]
    with pytest.raises(SystemExit) as exited:
        main([*command, "--label-column", "dx", "--age-column", "age", "--age-bins", *bins])
    assert exited.value.code == 2 and not (tmp_path / "out").exists()
    assert f"--age-bins {' '.join(bins)}: expected a non-empty, strictly increasing list" in capsys.readouterr().err
