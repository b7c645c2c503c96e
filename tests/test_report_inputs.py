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


def test_no_gold_labels_is_explained(tmp_path):
    pd.DataFrame({"gts": [""] * 40, "pred": ["a"] * 40, "group_sex": ["F", "M"] * 20}).to_csv(
        tmp_path / "p.csv", index=False
    )
    result = _cli(tmp_path / "p.csv", "--output", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["notes"] == ["no sample has a gold label: every rate is undefined (check --label-column)"]


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
