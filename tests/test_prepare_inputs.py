# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""verl-fair prepare on bad and awkward inputs: every problem is named (file, line, id) and counted, never
written silently wrong; the output folder is replaced whole or refused, never mixed."""

import importlib.util
import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from verl_fair.cli import main
from verl_fair.data import prepare as data


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (200, 10, 10)).save(path)
    return path


def _jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _row(i, **overrides) -> dict:
    return {"id": f"p{i}", "problem": "Which finding?", "answer": "edema", "dataset": "cxr"} | overrides


def _prepare(examples, output: Path, **kwargs) -> data.Report:
    report = data.Report()
    data.prepare(examples, output, report=report, **{"val_fraction": 0.0, **kwargs})
    return report


def _rows(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(folder / f) for f in ("train.parquet", "val.parquet") if (folder / f).exists()])


def _table_cli(table: Path, output: Path, *extra: str) -> list[str]:
    command = ["prepare", "table", str(table), "--output", str(output), "--data-source", "d", "--label-column", "dx"]
    return [*command, *extra]


# 1. the output folder: refused when used, replaced whole with --overwrite, never mixed


@pytest.fixture
def cohort(tmp_path) -> Path:
    table = tmp_path / "in" / "cohort.csv"
    table.parent.mkdir()
    pd.DataFrame({"id": [f"p{i}" for i in range(40)], "dx": ["mel"] * 40, "sex": ["F", "M"] * 20}).to_csv(
        table, index=False
    )
    return table


def _cli(table: Path, output: Path, *extra: str) -> list[str]:
    return _table_cli(table, output, "--id-column", "id", "--sex-column", "sex", *extra)


def test_a_second_run_into_a_used_output_folder_is_refused_naming_overwrite(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_cli(cohort, out, "--val-fraction", "0.5", "--balance")) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(_cli(cohort, out, "--val-fraction", "0")) == 2
    error = capsys.readouterr().err
    assert f"--output {out} is not empty" in error and "give --overwrite" in error
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched


def test_overwrite_replaces_the_folder_whole_so_runs_never_mix(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_cli(cohort, out, "--val-fraction", "0.5", "--balance")) == 0
    assert {p.name for p in out.iterdir()} == {"train.parquet", "val.parquet", "train_balanced.parquet", "summary.json"}
    assert main(_cli(cohort, out, "--val-fraction", "0", "--overwrite")) == 0
    assert {p.name for p in out.iterdir()} == {"train.parquet", "summary.json"}
    assert len(pd.read_parquet(out / "train.parquet")) == 40
    assert json.loads((out / "summary.json").read_text())["written"] == {"train": 40}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no staging folder left behind


def test_a_failed_overwrite_leaves_the_old_folder_as_it_was(cohort, tmp_path):
    out = tmp_path / "out"
    assert main(_cli(cohort, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "in" / "bad.csv"
    pd.DataFrame({"id": ["a", "b"], "dx": ["mel", ""], "sex": ["F", "M"]}).to_csv(bad, index=False)
    assert main(_cli(bad, out, "--overwrite", "--on-error", "stop")) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_overwrite_keeps_image_folders_it_reads_and_never_deletes_its_inputs(tmp_path, capsys):
    out = tmp_path / "out"
    _image(out / "png" / "a.png")  # a recipe's converted images, under the output folder
    table = tmp_path / "t.csv"
    pd.DataFrame({"image": ["png/a.png"], "dx": ["mel"]}).to_csv(table, index=False)
    command = [*_table_cli(table, out), "--image-column", "image", "--image-root", str(out), "--images", "path"]
    assert main([*command, "--val-fraction", "0"]) == 0  # only the image folder there: not "used"
    assert main([*command, "--val-fraction", "0"]) == 2  # now it holds a run
    assert main([*command, "--val-fraction", "0", "--overwrite"]) == 0
    assert (out / "png" / "a.png").is_file() and (out / "train.parquet").is_file()
    assert Path(pd.read_parquet(out / "train.parquet")["images"][0][0]).is_file()
    inside = out / "t.csv"
    table.rename(inside)
    capsys.readouterr()
    assert main([*_table_cli(inside, out), "--image-column", "image", "--image-root", str(out), "--overwrite"]) == 2
    assert "lies in --output" in capsys.readouterr().err and inside.is_file()


# 2. ages: DICOM strings, units, decimal commas; booleans and exponents are unparseable


def test_ages_from_a_csv_are_parsed_or_counted_by_reason(tmp_path):
    ages = ["006M", "003W", "010D", "065Y", "6 months", "1,5", "1e2", "True", "False", "-99", ""]
    table = tmp_path / "t.csv"
    pd.DataFrame({"id": [str(i) for i in range(len(ages))], "dx": ["x"] * len(ages), "age": ages}).to_csv(
        table, index=False
    )
    spec = data.TableSpec(data_source="d", label_column="dx", age_column="age", id_column="id")
    report = _prepare(data.read_table(table, spec), tmp_path / "out")
    written = [e["demographics"]["age"] for e in pd.read_parquet(tmp_path / "out" / "train.parquet")["extra_info"]]
    expected = [0.5, 3 * 7 / 365.25, 10 / 365.25, 65.0, 0.5, 1.5, None, None, None, None, None]
    assert [None if w is None else round(w, 9) for w in written] == [
        None if e is None else round(e, 9) for e in expected
    ]
    by_reason = {reason: n for (attribute, reason), n in report.unusable_demographics.items() if attribute == "age"}
    assert by_reason == {"unparseable": 3, "out of range": 1, "missing": 1}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["unusable_demographics"]
    assert {k: n for k, n in summary.items() if k.startswith("age")} == {
        "age: missing": 1,
        "age: out of range": 1,
        "age: unparseable": 3,
    }


def test_a_boolean_age_column_from_parquet_is_unparseable_not_one(tmp_path):
    table = tmp_path / "t.parquet"
    pd.DataFrame({"id": ["a", "b", "c"], "dx": ["x"] * 3, "age": [True, False, True]}).to_parquet(table)
    spec = data.TableSpec(data_source="d", label_column="dx", age_column="age", id_column="id")
    report = _prepare(data.read_table(table, spec), tmp_path / "out")
    ages = [e["demographics"]["age"] for e in pd.read_parquet(tmp_path / "out" / "train.parquet")["extra_info"]]
    assert ages == [None, None, None] and report.unusable_demographics[("age", "unparseable")] == 3


# 3. labels: list cells are labels; a JSON object or boolean answer is a bad row


def test_list_valued_label_cells_in_parquet_become_their_labels(tmp_path):
    table = tmp_path / "t.parquet"
    pd.DataFrame({"id": ["a", "b", "c"], "dx": [["mel", "nv"], ["bkl"], []]}).to_parquet(table)
    spec = data.TableSpec(data_source="d", label_column="dx", id_column="id")
    report = _prepare(data.read_table(table, spec), tmp_path / "out")
    rows = pd.read_parquet(tmp_path / "out" / "train.parquet")
    assert list(rows["reward_model"].map(lambda r: r["ground_truth"])) == ["mel, nv", "bkl"]
    assert report.skipped == ["t.parquet row 2 (id c): label: no diagnosis label"]
    assert data._labels(("a", "b")) == ["a", "b"] and data._labels(np.array(["a", "b"])) == ["a", "b"]


def test_a_json_object_or_boolean_answer_is_a_bad_row_not_a_label(tmp_path):
    path = _jsonl(
        tmp_path / "d.jsonl",
        [_row(1), _row(2, answer={"dx": "edema"}), _row(3, answer=True), _row(4, answer=["edema", False])],
    )
    report = _prepare(data.read_jsonl(path), tmp_path / "out")
    assert list(_rows(tmp_path / "out")["reward_model"].map(lambda r: r["ground_truth"])) == ["edema"]
    assert [s.split(" holds a JSON")[0] for s in report.skipped] == [
        "d.jsonl line 2 (id p2): label: 'answer'",
        "d.jsonl line 3 (id p3): label: 'answer'",
        "d.jsonl line 4 (id p4): label: 'answer'",
    ]
    assert "object" in report.skipped[0] and "boolean" in report.skipped[1]


# 4. images: read by Pillow, inside the image folders, present when the table has images


@pytest.mark.parametrize("embed", [True, False])
def test_files_that_are_not_images_are_bad_rows_naming_the_file(tmp_path, embed):
    folder = tmp_path / "data"
    _image(folder / "good.png")
    (folder / "notes.png").write_text("not an image")
    (folder / "noise.jpg").write_bytes(bytes(range(256)) * 8)
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(jpeg, "JPEG")
    (folder / "cut.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    names = ["good.png", "notes.png", "noise.jpg", "cut.jpg"]
    path = _jsonl(folder / "d.jsonl", [_row(i, images=[name]) for i, name in enumerate(names)])
    report = _prepare(data.read_jsonl(path), tmp_path / "out", embed_images=embed)
    assert len(_rows(tmp_path / "out")) == 1
    assert [s.split(": image: ")[0] for s in report.skipped] == [f"d.jsonl line {n} (id p{n - 1})" for n in (2, 3, 4)]
    for name, message in zip(names[1:], report.skipped, strict=True):
        assert str(folder / name) in message
    assert "not an image" in report.skipped[0] and "broken image" in report.skipped[2]


def test_jsonl_image_paths_outside_the_files_folder_are_refused(tmp_path):
    folder = tmp_path / "data"
    _image(folder / "a.png")
    outside = _image(tmp_path / "elsewhere" / "b.png")
    rows = [
        _row(1, images=["a.png"]),
        _row(2, images=["../../../../etc/passwd"]),
        _row(3, images=[str(outside)]),
        _row(4, images=[str(folder / "a.png")]),  # absolute, but inside: fine
        _row(5, images=[""]),
    ]
    path = _jsonl(folder / "d.jsonl", rows)
    report = _prepare(data.read_jsonl(path), tmp_path / "out")
    assert len(_rows(tmp_path / "out")) == 2
    assert report.skipped[0].startswith("d.jsonl line 2 (id p2): image: '../../../../etc/passwd' leads outside")
    assert "--image-root" in report.skipped[0] and report.skipped[1].startswith("d.jsonl line 3 (id p3): image:")
    assert report.skipped[2].startswith("d.jsonl line 5 (id p5): image:")
    again = _prepare(data.read_jsonl(path, image_roots=[tmp_path / "elsewhere"]), tmp_path / "again")
    assert len(_rows(tmp_path / "again")) == 3 and len(again.skipped) == 2


def test_an_empty_image_cell_in_a_table_with_images_is_a_bad_row(tmp_path):
    _image(tmp_path / "a.png")
    table = tmp_path / "t.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "image": ["a.png", "", "../t.png"], "dx": ["x", "y", "z"]}).to_csv(
        table, index=False
    )
    spec = data.TableSpec(data_source="d", label_column="dx", image_column="image", id_column="id")
    report = _prepare(data.read_table(table, spec), tmp_path / "out")
    rows = pd.read_parquet(tmp_path / "out" / "train.parquet")
    assert len(rows) == 1 and all(p["content"].startswith("<image>") for p in rows["prompt"].map(lambda m: m[0]))
    assert report.skipped[0] == (
        "t.csv line 3 (id b): image: empty cell in the image column 'image'; fill it or drop the row"
    )
    assert report.skipped[1].startswith("t.csv line 4 (id c): image: '../t.png' leads outside")
    templated = data.TableSpec(data_source="d", label_column="dx", image_template="{image}", id_column="id")
    assert "empty cell(s) ['image']" in _prepare(data.read_table(table, templated), tmp_path / "t2").skipped[0]


# 5. encodings, line numbers and ids, empty inputs, duplicates


def test_a_line_that_is_not_utf8_is_one_bad_row_and_a_bom_is_ignored(tmp_path):
    path = tmp_path / "d.jsonl"
    latin1 = json.dumps(_row(2, problem="caf\xe9"), ensure_ascii=False).encode("latin-1")
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join([json.dumps(_row(1)).encode(), latin1, json.dumps(_row(3)).encode()]))
    report = _prepare(data.read_jsonl(path), tmp_path / "out")
    assert sorted(e["source_id"] for e in _rows(tmp_path / "out")["extra_info"]) == ["p1", "p3"]
    column = latin1.index(b"\xe9") + 1
    assert report.skipped == [
        f"d.jsonl line 2 (no id): encoding: byte 0xe9 at column {column} is not UTF-8; re-save the file as UTF-8"
    ]


def test_a_csv_row_that_is_not_utf8_is_one_bad_row(tmp_path):
    table = tmp_path / "t.csv"
    table.write_bytes(b"\xef\xbb\xbfid,dx\np1,mel\np2,caf\xe9\np3,nv\n")
    report = _prepare(
        data.read_table(table, data.TableSpec(data_source="d", label_column="dx", id_column="id")), tmp_path / "o"
    )
    assert [e["source_id"] for e in pd.read_parquet(tmp_path / "o" / "train.parquet")["extra_info"]] == ["p1", "p3"]
    assert report.skipped[0].startswith("t.csv line 3 (id p2): encoding: column(s) ['dx']")


def test_errors_name_the_file_line_and_row_id_whatever_came_before(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [_row(1), "", _row(2, images=["nope.png"]), _row(3, problem="")])
    report = _prepare(data.read_jsonl(path), tmp_path / "out")
    assert report.skipped[0].startswith("d.jsonl line 3 (id p2): image: ") and "nope.png" in report.skipped[0]
    assert report.skipped[1] == "d.jsonl line 4 (id p3): question: empty"
    table = tmp_path / "t.parquet"
    pd.DataFrame({"id": ["a", "b"], "dx": ["x", None]}).to_parquet(table)
    spec = data.TableSpec(data_source="d", label_column="dx", id_column="id")
    assert _prepare(data.read_table(table, spec), tmp_path / "o2").skipped == [
        "t.parquet row 1 (id b): label: no diagnosis label"
    ]


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("", (), "the file is empty"),
        ("id,dx\n", (), "header but no rows"),
        ("id,dx\na,mel\n", ("--val-fraction", "1.5"), "must be in [0, 1)"),
        ("id,dx\na,\n", (), "no row could be prepared"),
    ],
)
def test_inputs_that_give_nothing_to_train_on_exit_2_with_a_message(tmp_path, capsys, content, extra, message):
    table = tmp_path / "t.csv"
    table.write_text(content)
    assert main([*_table_cli(table, tmp_path / "out"), "--id-column", "id", *extra]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_an_empty_jsonl_exits_2(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text("\n\n")
    assert main(["prepare", "jsonl", str(path), "--output", str(tmp_path / "out")]) == 2
    assert "no rows" in capsys.readouterr().err


def test_duplicate_ids_are_kept_in_one_split_counted_and_warned(tmp_path, capsys):
    table = tmp_path / "t.csv"
    ids = [f"p{i}" for i in range(30)] + ["p1", "p1", "p2"]
    pd.DataFrame({"id": ids, "dx": ["x"] * len(ids)}).to_csv(table, index=False)
    assert main([*_table_cli(table, tmp_path / "out"), "--id-column", "id", "--val-fraction", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "rows sharing an id (kept, in one split): 3 in 2 ids" in printed and "warning: 3 rows share" in printed
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["duplicate_ids"] == {"rows": 3, "ids": 2} and summary["duplicate_id_examples"] == [
        "d / p1",
        "d / p2",
    ]
    splits = {}
    for row in _rows(tmp_path / "out")["extra_info"]:
        splits.setdefault(row["source_id"], set()).add(row["split"])
    assert all(len(s) == 1 for s in splits.values()) and len(splits) == 30


# 6. multi_label: whether a row's data source has examples with several gold labels


def test_extra_info_says_whether_the_data_source_is_multi_label(tmp_path, capsys):
    rows = [
        _row(1, dataset="cxr", answer="edema"),
        _row(2, dataset="cxr", answer=["edema", "mass"]),
        _row(3, dataset="derm", answer="melanoma"),
        _row(4, dataset="derm", answer="Melanoma, melanoma"),  # one label, twice
        _row(5, dataset="eye", answer="glaucoma"),
    ]
    path = _jsonl(tmp_path / "d.jsonl", rows)
    assert main(["prepare", "jsonl", str(path), "--output", str(tmp_path / "out"), "--val-fraction", "0"]) == 0
    written = _rows(tmp_path / "out")
    assert {(r.data_source, r.extra_info["multi_label"]) for r in written.itertuples()} == {
        ("cxr", True),
        ("derm", False),
        ("eye", False),
    }
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["data_source_kinds"] == {"multi_label": 1, "single_label": 2}
    assert summary["data_sources"] == {"multi_label": ["cxr"], "single_label": ["derm", "eye"]}
    assert "data sources: 1 multi-label (cxr); 2 single-label (derm, eye)" in capsys.readouterr().out


# every input row is written or skipped, never lost

_KINDS = st.sampled_from(["good", "no label", "json", "not utf8", "bool answer", "blank", "outside"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(_KINDS, min_size=1, max_size=12), fraction=st.sampled_from([0.0, 0.3, 0.9]))
def test_every_input_row_is_written_or_skipped(kinds, fraction):
    lines = {
        "good": json.dumps(_row(0)).encode(),
        "no label": json.dumps(_row(0, answer="")).encode(),
        "json": b"{oops",
        "not utf8": b'{"problem": "\xff"}',
        "bool answer": json.dumps(_row(0, answer=False)).encode(),
        "blank": b"  ",
        "outside": json.dumps(_row(0, images=["../x.png"])).encode(),
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.jsonl"
        path.write_bytes(b"\n".join(lines[k] for k in kinds) + b"\n")
        report = data.Report()
        rows = sum(k != "blank" for k in kinds)
        try:
            data.prepare(data.read_jsonl(path), Path(folder) / "out", report=report, val_fraction=fraction)
        except ValueError as error:  # nothing to train on: nothing written, and said why
            assert "good" not in kinds or "validation split" in str(error) or rows == 0
            assert not (Path(folder) / "out").exists()
        assert report.input_rows == rows
        assert report.written["train"] + report.written["val"] + len(report.skipped) == rows
        assert sum(report.skipped_by_field.values()) == len(report.skipped)


# 7. table cells and files that look like data but are not: missing markers, label text, malformed lines, formats


def _dx_table(tmp_path: Path, labels: list[str], name: str = "t.csv") -> Path:
    table = tmp_path / name
    pd.DataFrame({"id": [f"p{i}" for i in range(len(labels))], "dx": labels}).to_csv(table, index=False)
    return table


def _spec(**overrides) -> data.TableSpec:
    return data.TableSpec(**{"data_source": "d", "label_column": "dx", "id_column": "id", **overrides})


def test_missing_value_markers_in_the_label_column_are_skipped_rows_not_diagnoses(tmp_path):
    table = _dx_table(tmp_path, ["mel", "NaN", "nan", "None", "nv, nan"])
    report = _prepare(data.read_table(table, _spec()), tmp_path / "out")
    assert list(_rows(tmp_path / "out")["reward_model"].map(lambda r: r["ground_truth"])) == ["mel"]
    assert [s.split(": label: ")[0] for s in report.skipped] == [f"t.csv line {n} (id p{n - 2})" for n in (3, 4, 5, 6)]
    assert "'NaN' marks a missing value" in report.skipped[0] and "'nan' marks" in report.skipped[3]
    assert report.skipped_by_field == {"label": 4}


def test_and_inside_a_label_does_not_split_it_or_make_the_source_multi_label(tmp_path):
    table = _dx_table(tmp_path, ["Hand and foot disease", "measles", "Rock & roll"])
    _prepare(data.read_table(table, _spec()), tmp_path / "out")
    rows = _rows(tmp_path / "out")
    assert list(rows["reward_model"].map(lambda r: r["ground_truth"])) == [
        "Hand and foot disease",
        "measles",
        "Rock & roll",
    ]
    assert not any(info["multi_label"] for info in rows["extra_info"])


def test_a_csv_line_with_more_cells_than_the_header_is_refused_and_ids_stay_right(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text('id,dx,sex\np1,mel,F,extra,cells\np2,nv,M\n\n"p3",nv,F\np4,"a\nb",M,x\np5,bkl\n')
    report = _prepare(data.read_table(table, _spec(sex_column="sex")), tmp_path / "out")
    written = _rows(tmp_path / "out")
    assert [(e["source_id"], e["demographics"]["sex"]) for e in written["extra_info"]] == [
        ("p2", "M"),
        ("p3", "F"),
        ("p5", None),
    ]
    fix = "put a cell that holds ',' in double quotes, or remove the extra cells"
    assert report.skipped == [
        f"t.csv line 2 (id 2): cells: 5 cells, but the header has 3 columns; {fix}",
        f"t.csv line 6 (id 6): cells: 4 cells, but the header has 3 columns; {fix}",
    ]
    assert report.input_rows == 5 and report.skipped_by_field == {"cells": 2}


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("t.jsonl", lambda frame, path: frame.to_json(path, orient="records", lines=True)),
        ("t.json", lambda frame, path: frame.to_json(path, orient="records")),
        ("t.tsv", lambda frame, path: frame.to_csv(path, sep="\t", index=False)),
        ("t.PARQUET", lambda frame, path: frame.to_parquet(path)),
    ],
)
def test_tables_are_read_by_their_suffix(tmp_path, name, write):
    write(pd.DataFrame({"id": ["a", "b"], "dx": ["mel", "nv, bkl"], "sex": ["F", "M"]}), tmp_path / name)
    report = _prepare(data.read_table(tmp_path / name, _spec(sex_column="sex")), tmp_path / "out")
    rows = _rows(tmp_path / "out")
    assert list(rows["reward_model"].map(lambda r: r["ground_truth"])) == ["mel", "nv, bkl"] and not report.skipped
    assert [e["demographics"]["sex"] for e in rows["extra_info"]] == ["F", "M"]


def test_a_table_suffix_that_cannot_be_read_is_refused_naming_the_formats(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("id,dx\np1,mel\n")
    (tmp_path / "t.xlsx").write_text("id,dx\np1,mel\n")
    with zipfile.ZipFile(tmp_path / "book.xlsx", "w") as book:  # a workbook as far as pandas looks before openpyxl
        book.writestr("xl/workbook.xml", "<workbook/>")
    for name, problem in (("t.txt", "the suffix '.txt' is not a table format"), ("t.xlsx", "not an .xlsx workbook")):
        assert main(_table_cli(tmp_path / name, tmp_path / "out")) == 2
        error = capsys.readouterr().err
        assert f"{tmp_path / name}: {problem}" in error and ".csv, .tsv, .jsonl, .json, .parquet" in error
    if importlib.util.find_spec("openpyxl") is None:
        assert main(_table_cli(tmp_path / "book.xlsx", tmp_path / "out")) == 2
        assert "reading .xlsx needs openpyxl (pip install openpyxl)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_label_map_codes_match_ignoring_case_as_the_reward_does(tmp_path):
    table = _dx_table(tmp_path, ["MEL", "mel", "Mel.", "nv"])
    _prepare(data.read_table(table, _spec(label_map={"mel": "melanoma"})), tmp_path / "out")
    truths = _rows(tmp_path / "out")["reward_model"].map(lambda r: r["ground_truth"])
    assert list(truths) == ["melanoma", "melanoma", "melanoma", "nv"]
    with pytest.raises(ValueError, match="--label-map gives 'mel' and 'MEL' different names"):
        list(data.read_table(table, _spec(label_map={"mel": "melanoma", "MEL": "nevus"})))


def test_a_joined_table_with_a_key_on_two_rows_is_refused_naming_the_key_and_lines(tmp_path, capsys):
    table = _dx_table(tmp_path, ["mel", "nv"])
    people = tmp_path / "people.csv"
    people.write_text("id,sex\np0,F\np1,M\np0,M\np1,M\n")  # p1 twice alike: one row; p0 twice, differing
    assert main([*_table_cli(table, tmp_path / "out"), "--id-column", "id", "--join", f"{people}:id"]) == 2
    error = capsys.readouterr().err
    assert f"--join {people}: the key 'id' = 'p0' is on people.csv line 2, people.csv line 4 with different" in error
    people.write_text("id,sex\np0,F\np1,M\np1,M\n")
    assert main([*_table_cli(table, tmp_path / "out"), "--id-column", "id", "--join", f"{people}:id"]) == 0


def test_an_output_path_without_a_folder_name_is_refused_saying_why(tmp_path, capsys):
    table = _dx_table(tmp_path, ["mel"])
    assert main([*_table_cli(table, Path("/"))]) == 2
    error = capsys.readouterr().err
    assert "--output /: the root folder cannot be replaced" in error and "empty name" not in error


def test_a_folder_named_like_an_image_is_said_to_be_a_folder(tmp_path):
    (tmp_path / "dir.png").mkdir()
    path = _jsonl(tmp_path / "d.jsonl", [_row(1), _row(2, images=["dir.png"])])
    report = _prepare(data.read_jsonl(path), tmp_path / "out")
    assert report.skipped == [
        f"d.jsonl line 2 (id p2): image: {tmp_path / 'dir.png'} is a folder, not an image file; name the image in it"
    ]


def test_a_symbolic_link_in_the_image_folder_pointing_outside_it_is_refused(tmp_path):
    outside = _image(tmp_path / "elsewhere" / "secret.png")
    folder = tmp_path / "data"
    _image(folder / "a.png")
    (folder / "link.png").symlink_to(outside)
    (folder / "inner.png").symlink_to(folder / "a.png")  # a link that stays inside is fine
    path = _jsonl(
        folder / "d.jsonl", [_row(1, images=["a.png"]), _row(2, images=["link.png"]), _row(3, images=["inner.png"])]
    )
    report = _prepare(data.read_jsonl(path), tmp_path / "out")
    assert len(_rows(tmp_path / "out")) == 2
    assert report.skipped == [
        f"d.jsonl line 2 (id p2): image: 'link.png' resolves through a symbolic link to {outside}, outside the image "
        "folders "
        f"({folder}); copy the file in, or add its folder with --image-root"
    ]


def test_a_key_given_twice_in_a_demographics_string_is_a_conflict_not_the_last_value(tmp_path):
    rows = [_row(1, demo="sex: F, age: 40, sex: M"), _row(2, demo="sex: F; age: 50; age: 50"), _row(3, demo="sex: M")]
    report = _prepare(data.read_jsonl(_jsonl(tmp_path / "d.jsonl", rows)), tmp_path / "out")
    demographics = [e["demographics"] for e in _rows(tmp_path / "out")["extra_info"]]
    assert [(d["sex"], d["age"]) for d in demographics] == [(None, 40.0), ("F", 50.0), ("M", None)]
    assert report.unusable_demographics[("sex", "conflicting values")] == 1
    assert "sex conflicting values: 1" in data.summary_text(report, 30)


def test_each_field_is_counted_under_one_name_whatever_the_input_calls_it(tmp_path):
    rows = [_row(1), _row(2, answer={"dx": 1}), _row(3, problem=7), _row(4, answer=""), _row(5, problem="")]
    report = _prepare(data.read_jsonl(_jsonl(tmp_path / "d.jsonl", rows)), tmp_path / "out")
    assert report.skipped_by_field == {"label": 2, "question": 2}
    assert "'answer' holds a JSON object" in report.skipped[0] and "'problem' holds a JSON number" in report.skipped[1]
