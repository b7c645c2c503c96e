"""Fairness audit reports from verl's validation dumps or any predictions table.

Inputs: verl's ``trainer.validation_data_dir`` dumps (``<step>.jsonl``, with the clinical reward's
``pred``, ``domain`` and ``group_<attribute>`` keys) or a CSV / Parquet / JSONL file with label,
prediction and group columns. Outputs: ``report.json``, ``report.md`` and PNG plots.

``report.json`` keys:
    n, data_sources, attributes      what was evaluated
    classes                          how the rates are taken: {"convention": "positive class", "positive":
                                     label} on a binary task, else {"convention": "one-vs-rest macro"}
    notes                            why a number is null (too few groups, no gold labels, ...)
    overall                          mean set-F1 and exact-match rate over all samples
    by_group                         {attribute: {group: count, accuracy, f1, tpr, fpr, ppv, selection_rate
                                     (+ *_ci intervals)}}: the positive class's on a binary task, else
                                     one-vs-rest per class, macro-averaged
    gaps                             the standard gaps averaged over attributes (demographic_parity_difference,
                                     equal_opportunity_difference, equalized_odds_difference[_mean],
                                     predictive_parity_difference, accuracy_difference, es_accuracy, es_f1,
                                     worst_group_accuracy, worst_k_accuracy) and the paper's PP, EOD,
                                     FPR_Diff, sigma_F1, Delta_F1, sigma_Acc, Delta_Acc, Acc, F1, Acc_ES, F1_ES
    gaps_by_attribute                the standard gaps of each attribute (+ *_ci intervals)
    steps                            {step: gaps} when dumps of several steps are given

A task is binary when every gold answer is one label of a pair {1, 0}, {true, false} or {yes, no} (the
first is positive), or when a positive label is given (``Columns.positive``, ``--positive-label``). The
paper's metrics keep both labels of a binary task as classes, as the paper does (docs/method.md §10).
Numbers that are undefined are ``null`` in the JSON files, with the reason under ``notes``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from verl_fair.metrics.fairness import (
    GAP_KEYS,
    PAPER_KEYS,
    UNK,
    Predictions,
    group_deltas,
    paper_metrics,
    standard_metrics,
)
from verl_fair.normalise.diagnosis import normalise_label, set_f1, split_labels, synonym_table
from verl_fair.reward_fns.clinical_diagnosis import DOMAIN_KEY

COMPONENTS = ("score", "acc", "format_ok")
BINARY_PAIRS = (("1", "0"), ("true", "false"), ("yes", "no"))  # (positive, negative), as normalised


@dataclass
class Columns:
    """Where the label, prediction, groups, data source and step are in a predictions table."""

    label: str = "gts"
    prediction: str = "pred"
    groups: dict[str, str] = field(default_factory=dict)  # attribute -> column
    data_source: str | None = "data_source"  # when absent: the reward's "domain" key, else one source "all"
    step: str | None = "step"
    synonyms: dict[str, str] = field(default_factory=dict)  # added to the reward's defaults
    positive: str | None = None  # the positive class of a binary task; None: found from the gold labels


def read_table(path: Path) -> pd.DataFrame:
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"), key=lambda p: (len(p.stem), p.stem))
        if not files:
            raise ValueError(f"{path} holds no *.jsonl validation dumps")
        return pd.concat([read_table(f) for f in files], ignore_index=True)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False)
    if path.suffix in (".jsonl", ".json"):
        try:
            table = pd.read_json(path, lines=True)
        except ValueError:
            _raise_bad_line(path)
            raise
        if not all(isinstance(c, str) for c in table.columns):  # lines that are arrays, not objects
            _raise_bad_line(path)
        return table
    raise ValueError(f"{path}: expected a folder of verl dumps, .jsonl, .csv or .parquet")


def _raise_bad_line(path: Path) -> None:
    """Name the first line of a JSONL file that is not a JSON object."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error.msg}); fix or remove the line") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object per line, found {type(row).__name__}")


def _data_sources(table: pd.DataFrame, column: str | None):
    for name in (column, DOMAIN_KEY):
        if name in table:
            return table[name].astype(str)
    return "all"


def load(paths: Sequence[Path], columns: Columns) -> pd.DataFrame:
    """Rows with data_source, step, y_true, y_pred (label sets), one column per attribute, reward components;
    ``attrs`` hold the attributes and the positive class (None unless the task is binary)."""
    table = pd.concat([read_table(Path(p)) for p in paths], ignore_index=True)
    if table.empty:
        raise ValueError(f"{', '.join(map(str, paths))} holds no predictions")
    groups = columns.groups or {c[len("group_") :]: c for c in table.columns if c.startswith("group_")}
    missing = [c for c in (columns.label, columns.prediction, *groups.values()) if c not in table.columns]
    if missing or not groups:
        raise ValueError(
            f"columns {missing or ['group_<attribute>']} are not in the predictions; they have "
            f"{sorted(table.columns)}. Name them with --label-column, --prediction-column and "
            "--group-column ATTRIBUTE=COLUMN."
        )
    # labels are normalised as the reward normalises them ("normal" = "no finding"), on both sides
    synonyms = synonym_table(columns.synonyms)
    frame = pd.DataFrame(
        {
            "data_source": _data_sources(table, columns.data_source),
            "step": table[columns.step] if columns.step in table else 0,
            "y_true": _each_distinct(table[columns.label], lambda v: split_labels(v, synonyms)),
            "y_pred": _each_distinct(table[columns.prediction], lambda v: split_labels(v, synonyms)),
        }
    )
    for attribute, column in groups.items():
        frame[attribute] = _each_distinct(table[column], _group_name)
    for component in COMPONENTS:
        if component in table:
            frame[component] = pd.to_numeric(table[component], errors="coerce")
    frame.attrs["attributes"] = list(groups)
    frame.attrs["positive"] = _positive_class(frame["y_true"], columns, synonyms)
    return frame


def _each_distinct(values: pd.Series, function) -> pd.Series:
    """``values.map(function)``, calling ``function`` once per distinct value (row by row for lists)."""
    try:
        codes, distinct = pd.factorize(values, use_na_sentinel=False)
    except TypeError:  # unhashable cells (lists, arrays)
        return values.map(function)
    mapped = np.empty(len(distinct), dtype=object)
    mapped[:] = [function(v) for v in distinct]
    return pd.Series(mapped[codes], index=values.index)


def _group_name(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        return UNK
    return str(value)


def _positive_class(gold: pd.Series, columns: Columns, synonyms: dict[str, str]) -> str | None:
    """The given positive label, or the first of a binary pair that holds every gold answer; else None."""
    answers = pd.unique(gold)
    labels = set().union(*answers)
    if columns.positive is not None:
        positive = normalise_label(columns.positive, synonyms)
        if positive not in labels:
            raise ValueError(
                f"--positive-label {columns.positive!r} is no gold label; the gold labels are "
                f"{sorted(labels)[:20]}. Give one of them."
            )
        return positive
    if any(len(s) > 1 for s in answers):
        return None
    return next((pos for pos, neg in BINARY_PAIRS if labels and labels <= {pos, neg}), None)


def evaluate(
    frame: pd.DataFrame, *, min_group_size: int = 1, n_boot: int | None = None, worst_k: int = 2, seed: int = 0
) -> dict[str, Any]:
    """The report dictionary (see the module docstring) for one set of predictions."""
    attributes, positive = frame.attrs["attributes"], frame.attrs.get("positive")
    predictions = Predictions(frame, attributes, positive)
    standard = standard_metrics(predictions, min_group_size=min_group_size, n_boot=n_boot, worst_k=worst_k, seed=seed)
    gaps = {key: _nanmean([standard[a]["gaps"][key] for a in attributes]) for key in GAP_KEYS}
    with warnings.catch_warnings():  # small groups were reported once already
        warnings.simplefilter("ignore")
        gaps.update(paper_metrics(predictions, min_group_size=min_group_size))
    pairs = pd.Series(list(zip(frame["y_true"], frame["y_pred"], strict=True)), dtype=object).value_counts()
    report = {
        "n": int(len(frame)),
        "data_sources": sorted(frame["data_source"].unique().tolist()),
        "attributes": attributes,
        "classes": {"convention": "positive class", "positive": positive}
        if positive is not None
        else {"convention": "one-vs-rest macro"},
        "notes": _notes(frame, standard, min_group_size),
        "overall": {
            "set_f1": float(sum(set_f1(p, t) * n for (t, p), n in pairs.items()) / max(len(frame), 1)),
            "exact_match": float(np.mean(frame["y_true"] == frame["y_pred"])),
        },
        "by_group": {a: standard[a]["by_group"] for a in attributes},
        "gaps": gaps,
        "gaps_by_attribute": {a: standard[a]["gaps"] for a in attributes},
    }
    steps = sorted(frame["step"].unique().tolist())
    if len(steps) > 1:
        report["steps"] = {}
        for step in steps:
            at_step = frame[frame["step"] == step]
            at_step.attrs = dict(frame.attrs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report["steps"][str(step)] = evaluate(at_step, min_group_size=min_group_size, worst_k=worst_k)["gaps"]
    return report


def _notes(frame: pd.DataFrame, standard: dict[str, Any], min_group_size: int) -> list[str]:
    """Why numbers of the report are undefined (null in the JSON)."""
    if len(frame) == 0 or not frame["y_true"].map(bool).any():
        return ["no sample has a gold label: every rate is undefined (check --label-column)"]
    notes = []
    for attribute, result in standard.items():
        if result["by_group"]:
            continue
        sizes = frame.loc[frame[attribute] != UNK, attribute].value_counts()
        found = ", ".join(f"{g} {n}" for g, n in sizes.head(10).items()) or "none"
        notes.append(
            f"{attribute}: its gaps need two groups of at least min_group_size={min_group_size} samples in a data "
            f"source; found {found} (lower --min-group-size or add samples)"
        )
    return notes


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def compare(
    before: pd.DataFrame, after: pd.DataFrame, *, n_boot: int = 200, min_group_size: int = 1, seed: int = 0
) -> dict[str, Any]:
    """Fairness delta report: per-group changes (after - before) of every rate with bootstrap intervals,
    the per-group reward components (score, acc, format_ok) of both, and both sets of gaps.

    Attributes in only one of the two are left out and named under ``notes``; a group in only one gets
    null changes and ``only_in``."""
    if before.attrs.get("positive") != after.attrs.get("positive"):
        raise ValueError(
            f"BEFORE has positive class {before.attrs.get('positive')!r} and AFTER {after.attrs.get('positive')!r}; "
            "give --positive-label so that both are read alike"
        )
    names = {"before": before.attrs["attributes"], "after": after.attrs["attributes"]}
    attributes = [a for a in names["before"] if a in names["after"]]
    if not attributes:
        raise ValueError(
            f"BEFORE and AFTER share no attribute (BEFORE: {names['before']}, AFTER: {names['after']}); "
            "name the same ones with --group-column ATTRIBUTE=COLUMN"
        )
    before, after = before.copy(), after.copy()
    for frame in (before, after):
        frame.attrs["attributes"] = attributes
    positive = before.attrs.get("positive")
    out: dict[str, Any] = {"attributes": attributes, "notes": [], "by_group": {}, "components": {}}
    for side in ("before", "after"):
        for attribute in sorted(set(names[side]) - set(attributes)):
            out["notes"].append(f"attribute {attribute} is only in {side.upper()}: left out of the comparison")
    for attribute in attributes:
        out["by_group"][attribute] = group_deltas(
            Predictions(before, attributes, positive),
            Predictions(after, attributes, positive),
            attribute,
            n_boot=n_boot,
            min_group_size=min_group_size,
            seed=seed,
        )
        if not out["by_group"][attribute]:
            out["notes"].append(
                f"{attribute}: no per-group changes; each side needs two groups of at least "
                f"min_group_size={min_group_size} samples"
            )
        out["components"][attribute] = {}
        for group in sorted((set(before[attribute]) | set(after[attribute])) - {UNK}):
            a, b = before[before[attribute] == group], after[after[attribute] == group]
            out["components"][attribute][group] = {
                c: {
                    "before": float(a[c].mean()),
                    "after": float(b[c].mean()),
                    "delta": float(b[c].mean() - a[c].mean()),
                }
                for c in COMPONENTS
                if c in a and c in b
            }
    out["gaps"] = {
        "before": evaluate(before, min_group_size=min_group_size)["gaps"],
        "after": evaluate(after, min_group_size=min_group_size)["gaps"],
    }
    return out


def to_json(value: Any) -> str:
    """``value`` as standard JSON: NaN and infinities become null (the report's notes say why)."""
    return json.dumps(_finite(value), indent=2, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def compare_markdown(delta: dict[str, Any], title: str = "Fairness delta report") -> str:
    lines = [
        f"# {title}",
        "",
        "Changes are after minus before, with 95 % bootstrap intervals.",
        "",
        "| gap | before | after | change |",
        "|---|---:|---:|---:|",
    ]
    for key in (*GAP_KEYS, *PAPER_KEYS):
        before, after = delta["gaps"]["before"][key], delta["gaps"]["after"][key]
        lines.append(f"| {key} | {_fmt(before)} | {_fmt(after)} | {_fmt(after - before)} |")
    lines += [f"- {note}" for note in delta.get("notes", [])]
    for attribute, groups in delta["by_group"].items():
        lines += [
            "",
            f"## By {attribute}",
            "",
            "| group | accuracy | F1 | TPR | FPR | PPV | reward components |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for group, row in groups.items():
            if "only_in" in row:
                lines.append(f"| {group} | only in {row['only_in'].upper()} | | | | | |")
                continue
            cells = [_fmt(row[k], row[f"{k}_ci"]) for k in ("accuracy", "f1", "tpr", "fpr", "ppv")]
            parts = delta["components"][attribute].get(group, {})
            components = ", ".join(f"{c} {v['before']:.3f} -> {v['after']:.3f}" for c, v in parts.items())
            lines.append(f"| {group} | " + " | ".join(cells) + f" | {components} |")
    return "\n".join(lines) + "\n"


def markdown(report: dict[str, Any], title: str = "Fairness report") -> str:
    """A human-readable summary of :func:`evaluate`'s output."""
    lines = [
        f"# {title}",
        "",
        f"{report['n']} predictions; data sources: {', '.join(report['data_sources'])}; "
        f"attributes: {', '.join(report['attributes'])}.",
        "",
        f"Overall set-F1 {report['overall']['set_f1']:.3f}, exact match {report['overall']['exact_match']:.3f}.",
        "",
        _convention(report.get("classes", {})),
        "",
        *(f"- {note}" for note in report.get("notes", [])),
        "## Gaps (standard definitions, averaged over attributes)",
        "",
        "| gap | value |",
        "|---|---:|",
    ]
    lines += [f"| {key} | {_fmt(report['gaps'][key])} |" for key in GAP_KEYS]
    lines += [
        "",
        "## The paper's table",
        "",
        "| " + " | ".join(PAPER_KEYS) + " |",
        "|" + "---:|" * len(PAPER_KEYS),
        "| " + " | ".join(_fmt(report["gaps"][k]) for k in PAPER_KEYS) + " |",
    ]
    for attribute, groups in report["by_group"].items():
        lines += [
            "",
            f"## By {attribute}",
            "",
            "| group | n | accuracy | F1 | TPR | FPR | PPV | selection rate |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for group, row in groups.items():
            cells = [
                _fmt(row[k], row.get(f"{k}_ci")) for k in ("accuracy", "f1", "tpr", "fpr", "ppv", "selection_rate")
            ]
            lines.append(f"| {group} | {row['count']:.0f} | " + " | ".join(cells) + " |")
    if "steps" in report:
        keys = ("equal_opportunity_difference", "predictive_parity_difference", "Delta_F1", "F1_ES")
        lines += ["", "## Across steps", "", "| step | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
        lines += [f"| {step} | " + " | ".join(_fmt(g[k]) for k in keys) + " |" for step, g in report["steps"].items()]
    return "\n".join(lines) + "\n"


def _convention(classes: dict[str, Any]) -> str:
    if classes.get("convention") == "positive class":
        positive = classes["positive"]
        return f"Binary task: per-group TPR, FPR and PPV and the standard gaps are the positive class `{positive}`'s."
    return "Per-group rates and the standard gaps: one-vs-rest per class, macro-averaged (one-vs-rest macro)."


def _fmt(value: float, interval: Sequence[float] | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
    return text + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def plots(report: dict[str, Any], folder: Path) -> list[Path]:
    """Per-group accuracy and TPR bars with intervals; gap trajectories across steps when there are several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    attributes = [a for a in report["attributes"] if report["by_group"][a]]
    if attributes:
        fig, axes = plt.subplots(2, len(attributes), figsize=(4.5 * len(attributes), 6.5), squeeze=False)
        for column, attribute in enumerate(attributes):
            groups = report["by_group"][attribute]
            names = list(groups)
            for row, metric in enumerate(("accuracy", "tpr")):
                values = np.array([groups[g][metric] for g in names])
                intervals = [groups[g].get(f"{metric}_ci") for g in names]
                errors = None
                if all(intervals):
                    errors = np.abs(np.array(intervals).T - values)
                axis = axes[row][column]
                axis.bar(names, values, yerr=errors, capsize=4, color="#4C72B0" if row == 0 else "#DD8452")
                axis.set_ylim(0, 1.05)
                axis.set_title(f"{metric} by {attribute}")
                axis.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        written.append(folder / "by_group.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    if "steps" in report:
        steps = list(report["steps"])
        fig, axis = plt.subplots(figsize=(6.5, 4))
        for key in ("equal_opportunity_difference", "predictive_parity_difference", "accuracy_difference", "Delta_F1"):
            axis.plot(
                [int(s) if s.isdigit() else s for s in steps],
                [report["steps"][s][key] for s in steps],
                marker="o",
                label=key,
            )
        axis.set_xlabel("training step")
        axis.set_ylabel("gap")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
        fig.tight_layout()
        written.append(folder / "gaps_over_steps.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def write(report: dict[str, Any], folder: Path, title: str = "Fairness report") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(to_json(report))
    (folder / "report.md").write_text(markdown(report, title))
    return [folder / "report.json", folder / "report.md", *plots(report, folder)]
