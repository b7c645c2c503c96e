# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""verl-fair report on binary tables (fairlearn's numbers), bad inputs and undefined numbers."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, equal_opportunity_difference, equalized_odds_difference
from sklearn.metrics import precision_score

from verl_fair.metrics import report as audit


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "verl_fair.cli", "report", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def _binary_table(labels=("1", "0"), n=600, seed=0):
    rng = np.random.default_rng(seed)
    group = rng.choice(["F", "M", "X"], size=n, p=[0.5, 0.35, 0.15])
    truth = rng.random(n) < np.where(group == "F", 0.3, 0.5)
    flip = rng.random(n) < np.where(group == "F", 0.1, 0.35)
    pred = truth ^ flip
    pos, neg = labels
    frame = pd.DataFrame({"gts": np.where(truth, pos, neg), "pred": np.where(pred, pos, neg), "group_sex": group})
    return frame, truth, pred, group


@pytest.mark.parametrize("labels", [("1", "0"), ("true", "false"), ("yes", "no"), ("died", "survived")])
def test_binary_tables_equal_fairlearn_for_the_positive_class(tmp_path, labels):
    frame, truth, pred, group = _binary_table(labels)
    frame.to_csv(tmp_path / "p.csv", index=False)
    extra = ["--positive-label", "died"] if labels[0] == "died" else []
    result = _cli(tmp_path / "p.csv", "--output", tmp_path / "out", "--min-group-size", "1", *extra)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["classes"] == {"convention": "positive class", "positive": labels[0]}
    gaps = report["gaps"]
    assert gaps["equal_opportunity_difference"] == pytest.approx(
        equal_opportunity_difference(truth, pred, sensitive_features=group)
    )
    assert gaps["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(truth, pred, sensitive_features=group)
    )
    ppv = MetricFrame(
        metrics=lambda t, p: precision_score(t, p, zero_division=0), y_true=truth, y_pred=pred, sensitive_features=group
    ).by_group
    assert gaps["predictive_parity_difference"] == pytest.approx(ppv.max() - ppv.min())
    for name, value in ppv.items():
        assert report["by_group"]["sex"][name]["ppv"] == pytest.approx(value)
    assert "positive class" in (tmp_path / "out" / "report.md").read_text()


def test_two_named_labels_stay_one_vs_rest_macro_and_say_so(tmp_path):
    frame, *_ = _binary_table(("a", "b"))
    frame.to_csv(tmp_path / "p.csv", index=False)
    assert _cli(tmp_path / "p.csv", "--output", tmp_path / "out", "--min-group-size", "1").returncode == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["classes"] == {"convention": "one-vs-rest macro"}
    assert "one-vs-rest macro" in (tmp_path / "out" / "report.md").read_text()


def test_an_unknown_positive_label_is_named(tmp_path):
    _binary_table()[0].to_csv(tmp_path / "p.csv", index=False)
    result = _cli(tmp_path / "p.csv", "--output", tmp_path / "out", "--positive-label", "maybe")
    assert result.returncode == 2 and "--positive-label 'maybe' is no gold label" in result.stderr


def test_one_group_gives_null_numbers_with_a_reason_in_standard_json(tmp_path):
    frame, *_ = _binary_table()
    frame.assign(group_sex="F").to_csv(tmp_path / "p.csv", index=False)
    result = _cli(tmp_path / "p.csv", "--output", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out" / "report.json").read_text()
    assert "NaN" not in text
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert report["gaps"]["equal_opportunity_difference"] is None
    assert "sex: its gaps need two groups" in report["notes"][0] and "note: sex" in result.stderr


def test_a_malformed_jsonl_line_names_file_and_line(tmp_path):
    folder = tmp_path / "dumps"
    folder.mkdir()
    good = json.dumps({"gts": "a", "pred": "a", "group_sex": "F"})
    (folder / "10.jsonl").write_text(f"{good}\n{good}\n{{not json\n")
    result = _cli(folder, "--output", tmp_path / "out")
    assert result.returncode == 2 and "10.jsonl:3: not valid JSON" in result.stderr


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.jsonl", "", "holds no predictions"),
        ("header.csv", "gts,pred,group_sex\n", "holds no predictions"),
        ("arrays.jsonl", "[1, 2]\n", "arrays.jsonl:1: expected a JSON object per line, found list"),
    ],
)
def test_empty_inputs_and_lines_that_are_not_objects_are_named(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    result = _cli(tmp_path / name, "--output", tmp_path / "out")
    assert result.returncode == 2 and message in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag,value", [("--bootstrap", "-5"), ("--min-group-size", "0"), ("--worst-k", "0")])
def test_bad_numbers_stop_before_anything_is_written(tmp_path, flag, value):
    _binary_table()[0].to_csv(tmp_path / "p.csv", index=False)
    result = _cli(tmp_path / "p.csv", "--output", tmp_path / "out", flag, value)
    assert result.returncode == 2 and flag in result.stderr and not (tmp_path / "out").exists()


def test_inputs_and_compare_together_are_refused(tmp_path):
    _binary_table()[0].to_csv(tmp_path / "p.csv", index=False)
    result = _cli(tmp_path / "p.csv", "--compare", tmp_path / "p.csv", tmp_path / "p.csv", "--output", tmp_path / "o")
    assert result.returncode == 2 and "not both" in result.stderr


def test_compare_with_an_attribute_or_group_on_one_side_only(tmp_path):
    before, *_ = _binary_table(seed=1)
    after, *_ = _binary_table(seed=2)
    before["group_age"] = "A1"
    after.loc[after["group_sex"] == "X", "group_sex"] = "Y"
    before.to_csv(tmp_path / "before.csv", index=False)
    after.to_csv(tmp_path / "after.csv", index=False)
    result = _cli("--compare", tmp_path / "before.csv", tmp_path / "after.csv", "--output", tmp_path / "d")
    assert result.returncode == 0, result.stderr
    delta = json.loads((tmp_path / "d" / "delta.json").read_text())
    assert delta["attributes"] == ["sex"] and "attribute age is only in BEFORE" in delta["notes"][0]
    assert delta["by_group"]["sex"]["X"]["only_in"] == "before" and delta["by_group"]["sex"]["Y"]["only_in"] == "after"
    assert delta["by_group"]["sex"]["F"]["tpr"] is not None
    assert "only in AFTER" in (tmp_path / "d" / "delta.md").read_text()


def test_labels_are_normalised_once_per_distinct_value():
    calls = []
    values = pd.Series(["a", "b", "a", None, "a"] * 1000)
    mapped = audit._each_distinct(values, lambda v: calls.append(v) or str(v))
    assert len(calls) == 3 and mapped.tolist() == [str(v) for v in values]


def _report(tmp_path, frame, *args, name="p.csv"):
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    result = _cli(path, "--output", tmp_path / "out", "--min-group-size", "1", *args)
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / "out" / "report.json").read_text()), result


def test_an_answer_that_is_neither_class_counts_as_wrong_as_the_reward_scores_it(tmp_path):
    from verl_fair.reward_fns.clinical_diagnosis import compute_score

    frame = pd.DataFrame(
        {
            "gts": ["0", "0", "1", "1", "0", "1"] * 10,
            "pred": ["maybe", "0", "1", "0, 1", "", "1"] * 10,
            "group_sex": ["F", "F", "F", "F", "M", "M"] * 10,
        }
    )
    report, result = _report(tmp_path, frame)
    assert report["classes"] == {"convention": "positive class", "positive": "1"}
    rewards = [
        compute_score("d", f"\\boxed{{{p}}}", g)["acc"] for g, p in zip(frame["gts"], frame["pred"], strict=True)
    ]
    for group, members in frame.assign(acc=rewards).groupby("group_sex"):
        assert report["by_group"]["sex"][group]["accuracy"] == pytest.approx(members["acc"].mean())
    assert report["by_group"]["sex"]["F"]["accuracy"] == pytest.approx(0.5)  # maybe and "0, 1" are wrong
    assert report["by_group"]["sex"]["M"]["tpr"] == 1.0 and report["by_group"]["sex"]["M"]["fpr"] == 1.0
    assert any("30 answers are neither 1 nor 0" in note for note in report["notes"])
    assert "30 answers are neither 1 nor 0" in result.stderr


def test_an_answer_is_read_against_its_gold_labels_as_the_reward_reads_it(tmp_path):
    from verl_fair.reward_fns.clinical_diagnosis import compute_score

    frame = pd.DataFrame(
        {
            "gts": ["Hand and foot disease", "Hand and foot disease", "Fever", "Rash"] * 10,
            "pred": ["hand and foot disease", "Hand, foot disease", "Fever", "Rash and fever"] * 10,
            "group_sex": ["F", "M", "F", "M"] * 10,
        }
    )
    report, _ = _report(tmp_path, frame)
    rewards = [
        compute_score("d", f"\\boxed{{{p}}}", g)["acc"] for g, p in zip(frame["gts"], frame["pred"], strict=True)
    ]
    assert rewards[:4] == [1.0, 0.0, 1.0, 0.0]  # "and" keeps the gold label whole; a comma makes two labels
    assert report["overall"]["exact_match"] == pytest.approx(np.mean(rewards))


def test_rows_without_a_gold_label_are_left_out_counted_and_named(tmp_path):
    frame, *_ = _binary_table(n=200)
    jsonl = frame.astype(object)
    jsonl.loc[[3, 7], "gts"] = None
    report, _ = _report(tmp_path, jsonl, name="p.jsonl")
    assert report["n"] == 198
    assert any("2 rows have no gold label" in n and "p.jsonl rows 4, 8" in n for n in report["notes"])
    csv = frame.copy()
    csv.loc[[0, 1, 2], "gts"] = ["", "NaN", "None"]
    report, _ = _report(tmp_path, csv)
    assert report["n"] == 197 and report["classes"] == {"convention": "positive class", "positive": "1"}
    assert any("3 rows have no gold label" in n and "p.csv rows 1, 2, 3" in n for n in report["notes"])


def test_every_row_without_a_gold_label_is_an_error(tmp_path):
    pd.DataFrame({"gts": [""] * 40, "pred": ["a"] * 40, "group_sex": ["F", "M"] * 20}).to_csv(
        tmp_path / "p.csv", index=False
    )
    result = _cli(tmp_path / "p.csv", "--output", tmp_path / "out")
    assert result.returncode == 2 and "no row of" in result.stderr and "--label-column" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_group_without_positives_has_a_null_tpr_left_out_of_the_gaps(tmp_path):
    frame = pd.DataFrame(
        {
            "gts": ["1", "1", "0", "0"] * 5 + ["1", "0", "0", "0"] * 5 + ["0"] * 20,
            "pred": ["1", "0", "0", "0"] * 5 + ["1", "0", "1", "0"] * 5 + ["0", "1"] * 10,
            "group_sex": ["F"] * 20 + ["M"] * 20 + ["X"] * 20,
        }
    )
    report, _ = _report(tmp_path, frame)
    assert report["by_group"]["sex"]["X"]["tpr"] is None
    assert report["gaps"]["equal_opportunity_difference"] == pytest.approx(1.0 - 0.5)
    assert any("sex=X has no gold positive" in note and "TPR" in note for note in report["notes"])


def test_missing_group_values_are_left_out_with_a_note(tmp_path):
    frame, *_ = _binary_table(n=200)
    frame.loc[:9, "group_sex"] = ["NaN", "", "None", "unknown", "nan"] * 2
    report, _ = _report(tmp_path, frame)
    assert set(report["by_group"]["sex"]) == {"F", "M", "X"}
    assert any("sex: 10 rows have no value" in note for note in report["notes"])


def test_compare_takes_the_last_step_of_each_side_and_names_the_steps(tmp_path):
    before, *_ = _binary_table(seed=1)
    after, *_ = _binary_table(seed=2)
    before["step"] = [0, 5] * (len(before) // 2)
    after["step"] = 9
    before.to_csv(tmp_path / "before.csv", index=False)
    after.to_csv(tmp_path / "after.csv", index=False)
    result = _cli("--compare", tmp_path / "before.csv", tmp_path / "after.csv", "--output", tmp_path / "d")
    assert result.returncode == 0, result.stderr
    delta = json.loads((tmp_path / "d" / "delta.json").read_text())
    assert any("BEFORE holds steps 0, 5: compared at its last step, 5" in note for note in delta["notes"])
    last = before[before["step"] == 5]
    f_before = last[last["group_sex"] == "F"]
    expected = (f_before["gts"] == f_before["pred"]).mean()
    f_after = after[after["group_sex"] == "F"]
    assert delta["by_group"]["sex"]["F"]["accuracy"] == pytest.approx(
        (f_after["gts"] == f_after["pred"]).mean() - expected
    )


def test_a_missing_column_in_compare_names_the_side(tmp_path):
    _binary_table()[0].to_csv(tmp_path / "good.csv", index=False)
    _binary_table()[0].drop(columns="pred").to_csv(tmp_path / "bad.csv", index=False)
    result = _cli("--compare", tmp_path / "good.csv", tmp_path / "bad.csv", "--output", tmp_path / "d")
    assert result.returncode == 2 and "AFTER" in result.stderr and "bad.csv" in result.stderr


def test_a_repeated_group_column_is_refused(tmp_path):
    _binary_table()[0].to_csv(tmp_path / "p.csv", index=False)
    result = _cli(
        tmp_path / "p.csv", "--output", tmp_path / "o", "--group-column", "sex=group_sex", "--group-column", "sex=x"
    )
    assert result.returncode == 2 and "--group-column sex is given twice" in result.stderr


def test_steps_that_are_not_whole_numbers_are_refused(tmp_path):
    frame = _binary_table()[0].assign(step=["10"] * 5 + ["final"] + ["10"] * 594)
    frame.to_csv(tmp_path / "p.csv", index=False)
    result = _cli(tmp_path / "p.csv", "--output", tmp_path / "o")
    assert result.returncode == 2 and "'final'" in result.stderr and "row 6" in result.stderr
    assert "--step-column" in result.stderr and not (tmp_path / "o").exists()


def test_an_output_that_is_a_file_is_refused(tmp_path):
    _binary_table()[0].to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "taken").write_text("x")
    result = _cli(tmp_path / "p.csv", "--output", tmp_path / "taken")
    assert result.returncode == 2 and "must be a folder" in result.stderr and "is a file" in result.stderr
    assert "Errno" not in result.stderr
