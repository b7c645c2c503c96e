# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Fairness audit reports from verl's validation dumps or any predictions table.

Inputs: verl's ``trainer.validation_data_dir`` dumps (``<step>.jsonl``, with the clinical reward's
``pred``, ``domain`` and ``group_<attribute>`` keys) or a CSV / Parquet / JSONL file with label,
prediction and group columns. Outputs: ``report.json``, ``report.md`` and PNG plots.

``report.json`` keys:
    n, data_sources, attributes      what was evaluated
    classes                          how the rates are taken: {"convention": "positive class", "positive":
                                     label} on a binary task, else {"convention": "one-vs-rest macro"}
    notes                            why a number is null (too few groups, no gold positive, ...) and which
                                     rows were left out (no gold label, no group value) or count as wrong
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
    by_group_at_steps                {step: by_group (+ *_ci intervals)} at the first and the last of them

A task is binary when every gold answer is one label of a pair {1, 0}, {true, false} or {yes, no} (the
first is positive), or when a positive label is given (``Columns.positive``, ``--positive-label``). The
paper's metrics keep both labels of a binary task as classes, as the paper does (docs/method.md §10).
An answer that is not exactly one of a binary task's labels (``maybe``, empty, ``1, 0``) counts as wrong,
as the reward scores it. Rows without a gold label are left out; rows without a group value (empty, null,
NaN, "unknown", the reward's "UNK") are left out of that attribute; both are counted under ``notes``.
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
from verl_fair.normalise.demographics import is_missing
from verl_fair.normalise.diagnosis import normalise_label, set_f1, split_labels, synonym_table
from verl_fair.reward_fns.clinical_diagnosis import DOMAIN_KEY

COMPONENTS = ("score", "acc", "format_ok")
BINARY_PAIRS = (("1", "0"), ("true", "false"), ("yes", "no"))  # (positive, negative), as normalised
PLOTTED_GROUPS = 30  # by_group.png shows at most this many groups per attribute, the lowest accuracy first
PLOT_RESAMPLES = 200  # bootstrap resamples for the intervals at the first and the last step
UNDEFINED = {"tpr": "no gold positive", "fpr": "no gold negative", "ppv": "no positive prediction"}


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


def input_files(path: Path) -> list[Path]:
    """``path``, or the ``<step>.jsonl`` dumps of a folder in step order."""
    if not path.is_dir():
        return [path]
    files = sorted(path.glob("*.jsonl"), key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise ValueError(f"{path} holds no *.jsonl validation dumps")
    return files


def read_table(path: Path) -> pd.DataFrame:
    if path.is_dir():
        return pd.concat([read_table(f) for f in input_files(path)], ignore_index=True)
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
    ``attrs`` hold the attributes, the positive class and answers of a binary task (else None) and the
    notes on rows left out (no gold label)."""
    files = [f for p in paths for f in input_files(Path(p))]
    tables = [read_table(f) for f in files]
    table = pd.concat(tables, ignore_index=True)
    named = ", ".join(map(str, paths))
    if table.empty:
        raise ValueError(f"{named} holds no predictions")
    groups = columns.groups or {c[len("group_") :]: c for c in table.columns if c.startswith("group_")}
    missing = [c for c in (columns.label, columns.prediction, *groups.values()) if c not in table.columns]
    if missing or not groups:
        raise ValueError(
            f"columns {missing or ['group_<attribute>']} are not in {named}; it has "
            f"{sorted(table.columns)}. Name them with --label-column, --prediction-column and "
            "--group-column ATTRIBUTE=COLUMN."
        )
    origins = [(f.name, len(t)) for f, t in zip(files, tables, strict=True)]
    # labels are normalised as the reward normalises them ("normal" = "no finding"), on both sides
    synonyms = synonym_table(columns.synonyms)
    y_true = _each_distinct(table[columns.label], lambda v: frozenset() if is_missing(v) else split_labels(v, synonyms))
    answers = pd.Series(list(zip(table[columns.prediction], y_true, strict=True)), index=table.index)
    frame = pd.DataFrame(
        {
            "data_source": _data_sources(table, columns.data_source),
            "step": _steps(table, columns.step, origins),
            "y_true": y_true,
            # each answer is read against its row's gold labels, as the reward reads it
            "y_pred": _each_distinct(answers, lambda answer: split_labels(answer[0], synonyms, answer[1])),
        }
    )
    for attribute, column in groups.items():
        frame[attribute] = _each_distinct(table[column], _group_name)
    for component in COMPONENTS:
        if component in table:
            frame[component] = pd.to_numeric(table[component], errors="coerce")
    no_gold = ~frame["y_true"].map(bool)
    if no_gold.all():
        raise ValueError(
            f"no row of {named} has a gold label in column {columns.label!r} (all {len(frame)} are empty, null or "
            "NaN); name the gold label column with --label-column"
        )
    notes = []
    if no_gold.any():
        notes.append(
            f"{int(no_gold.sum())} rows have no gold label (empty, null or NaN in {columns.label!r}; "
            f"{_rows_named(np.flatnonzero(no_gold), origins)}): left out"
        )
        frame = frame[~no_gold].reset_index(drop=True)
    frame.attrs["attributes"] = list(groups)
    frame.attrs["positive"], frame.attrs["answers"] = _binary_task(frame["y_true"], columns, synonyms)
    frame.attrs["notes"] = notes
    return frame


def _rows_named(positions: np.ndarray, origins: list[tuple[str, int]], limit: int = 5) -> str:
    """Where rows of the concatenated inputs are ("p.csv rows 4, 8"; 1-based data rows), the first ``limit``."""
    ends = np.cumsum([n for _, n in origins])
    by_file: dict[str, list[str]] = {}
    for position in positions[:limit]:
        index = int(np.searchsorted(ends, position, side="right"))
        by_file.setdefault(origins[index][0], []).append(str(position - (ends[index - 1] if index else 0) + 1))
    text = "; ".join(f"{name} row{'s' if len(rows) > 1 else ''} {', '.join(rows)}" for name, rows in by_file.items())
    return text + (f" and {len(positions) - limit} more" if len(positions) > limit else "")


def _steps(table: pd.DataFrame, column: str | None, origins: list[tuple[str, int]]) -> pd.Series | int:
    """The step column as integers (0 when absent); raises naming the rows whose step is no whole number."""
    if column not in table:
        return 0
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna() | (values % 1 != 0)
    if bad.any():
        first = table[column][bad].iloc[0]
        raise ValueError(
            f"column {column!r} holds {int(bad.sum())} values that are not whole step numbers, e.g. {first!r} "
            f"({_rows_named(np.flatnonzero(bad), origins)}); fix them, or point --step-column at the column "
            "of training steps"
        )
    return values.astype(np.int64)


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
    """The group's name; UNK for a missing value (empty, null, NaN, "unknown", ... as training reads them)."""
    return UNK if is_missing(value) else str(value).strip()


def _binary_task(
    gold: pd.Series, columns: Columns, synonyms: dict[str, str]
) -> tuple[str | None, frozenset[str] | None]:
    """(positive class, the labels an answer may be): the given positive label and, on a single-label task,
    the gold labels (with the other of its binary pair); else the pair that holds every gold answer and
    that pair; (None, None) for other tasks."""
    answers = pd.unique(gold)
    labels = frozenset().union(*answers)
    single = all(len(s) == 1 for s in answers)
    if columns.positive is not None:
        positive = normalise_label(columns.positive, synonyms)
        if positive not in labels:
            raise ValueError(
                f"--positive-label {columns.positive!r} is no gold label; the gold labels are "
                f"{sorted(labels)[:20]}. Give one of them."
            )
        pairs = [frozenset(pair) for pair in BINARY_PAIRS if positive in pair]
        return positive, labels.union(*pairs) if single else None
    if not single:
        return None, None
    pair = next((pair for pair in BINARY_PAIRS if labels <= set(pair)), None)
    return (pair[0], frozenset(pair)) if pair else (None, None)


def evaluate(
    frame: pd.DataFrame, *, min_group_size: int = 1, n_boot: int | None = None, worst_k: int = 2, seed: int = 0
) -> dict[str, Any]:
    """The report dictionary (see the module docstring) for one set of predictions."""
    attributes, positive = frame.attrs["attributes"], frame.attrs.get("positive")
    predictions = _predictions(frame, attributes)
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
        "notes": _notes(frame, predictions, standard, min_group_size),
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
        report["steps"], report["by_group_at_steps"] = {}, {}
        for step in steps:
            at_step = frame[frame["step"] == step]
            at_step.attrs = {**frame.attrs, "notes": []}
            first_or_last = step in (steps[0], steps[-1])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = evaluate(
                    at_step,
                    min_group_size=min_group_size,
                    n_boot=(n_boot or PLOT_RESAMPLES) if first_or_last else None,
                    worst_k=worst_k,
                    seed=seed,
                )
            report["steps"][str(step)] = found["gaps"]
            if first_or_last:
                report["by_group_at_steps"][str(step)] = found["by_group"]
    report["notes"] += _plot_notes(report)
    return report


def _predictions(frame: pd.DataFrame, attributes: Sequence[str]) -> Predictions:
    return Predictions(frame, attributes, frame.attrs.get("positive"), frame.attrs.get("answers"))


def _notes(frame: pd.DataFrame, predictions: Predictions, standard: dict[str, Any], min_group_size: int) -> list[str]:
    """Rows left out or counted as wrong, and why numbers of the report are undefined (null in the JSON)."""
    notes = list(frame.attrs.get("notes", []))
    invalid = predictions.invalid()
    if invalid.any():
        answers = sorted(predictions.answers, key=lambda a: a != predictions.positive)
        labels = f"neither {answers[0]} nor {answers[1]}" if len(answers) == 2 else f"none of {', '.join(answers)}"
        seen = frame.loc[invalid, "y_pred"].map(lambda s: ", ".join(sorted(s))).value_counts()
        examples = ", ".join(f"{a!r} {n}" for a, n in seen.head(5).items())
        notes.append(
            f"{int(invalid.sum())} answers are {labels} ({examples}): they count as wrong, as the reward "
            "scores them (a false negative where the gold label is the positive class, else a false positive)"
        )
    for attribute, result in standard.items():
        unknown = int((frame[attribute] == UNK).sum())
        if unknown:
            notes.append(
                f"{attribute}: {unknown} rows have no value (empty, null, NaN, unknown): left out of its groups"
            )
        if not result["by_group"]:
            sizes = frame.loc[frame[attribute] != UNK, attribute].value_counts()
            found = ", ".join(f"{g} {n}" for g, n in sizes.head(10).items()) or "none"
            notes.append(
                f"{attribute}: its gaps need two groups of at least min_group_size={min_group_size} samples in a "
                f"data source; found {found} (lower --min-group-size or add samples)"
            )
        for rate, reason in UNDEFINED.items():
            groups = [g for g, row in result["by_group"].items() if math.isnan(row[rate])]
            if groups:
                names = ", ".join(groups[:10]) + (f" and {len(groups) - 10} more" if len(groups) > 10 else "")
                notes.append(
                    f"{attribute}={names} {'has' if len(groups) == 1 else 'have'} {reason}: "
                    f"{rate.upper()} null there and left out of the gaps"
                )
    return notes


def _plotted_series(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What by_group.png shows: {legend label: by_group}, each group at the first and the last step, or pooled."""
    at_steps = report.get("by_group_at_steps")
    return {f"step {step}": by_group for step, by_group in at_steps.items()} if at_steps else {"": report["by_group"]}


def plotted_groups(report: dict[str, Any], attribute: str) -> list[str]:
    """The groups by_group.png shows for ``attribute``: all, or the PLOTTED_GROUPS of lowest accuracy (at the
    last step shown), lowest first."""
    series = list(_plotted_series(report).values())
    names = list(dict.fromkeys(g for by_group in series for g in by_group.get(attribute, {})))
    if len(names) <= PLOTTED_GROUPS:
        return names
    last = series[-1].get(attribute, {})
    return sorted(names, key=lambda g: last.get(g, {}).get("accuracy", math.inf))[:PLOTTED_GROUPS]


def _plot_notes(report: dict[str, Any]) -> list[str]:
    notes = []
    for attribute in report["attributes"]:
        count = len(report["by_group"][attribute])
        if count > PLOTTED_GROUPS:
            at = f" at step {list(report['by_group_at_steps'])[-1]}" if "by_group_at_steps" in report else ""
            notes.append(
                f"{attribute}: {count} groups; by_group.png shows the {PLOTTED_GROUPS} with the lowest accuracy{at} "
                "(report.json and report.md have them all)"
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

    A side holding several steps (a folder of dumps) is compared at its last step, the checkpoint it ends
    with, named under ``notes``: pooling steps would mix different models. Attributes in only one of the two
    are left out and named under ``notes``; a group in only one gets null changes and ``only_in``."""
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
    (before, before_notes), (after, after_notes) = _last_step(before, "BEFORE"), _last_step(after, "AFTER")
    for frame in (before, after):
        frame.attrs["attributes"] = attributes
    notes = before_notes + after_notes
    out: dict[str, Any] = {"attributes": attributes, "notes": notes, "by_group": {}, "components": {}}
    for side in ("before", "after"):
        for attribute in sorted(set(names[side]) - set(attributes)):
            out["notes"].append(f"attribute {attribute} is only in {side.upper()}: left out of the comparison")
    for attribute in attributes:
        out["by_group"][attribute] = group_deltas(
            _predictions(before, attributes),
            _predictions(after, attributes),
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


def _last_step(frame: pd.DataFrame, side: str) -> tuple[pd.DataFrame, list[str]]:
    """A copy of ``frame`` at its last step, and notes: the steps it held and its rows left out at loading."""
    notes = [f"{side}: {note}" for note in frame.attrs.get("notes", [])]
    steps = sorted(frame["step"].unique().tolist())
    last = frame[frame["step"] == steps[-1]].reset_index(drop=True)
    last.attrs = dict(frame.attrs)
    if len(steps) > 1:
        notes.append(
            f"{side} holds steps {', '.join(map(str, steps))}: compared at its last step, {steps[-1]} "
            "(give one step's dump to compare another)"
        )
    return last, notes


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
        *_steps_shown(report),
        *(f"- {note}" for note in report.get("notes", [])),
        *([""] if report.get("notes") else []),
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


def _steps_shown(report: dict[str, Any]) -> list[str]:
    """Which steps the numbers pool and by_group.png shows (nothing to say for one step)."""
    if "steps" not in report:
        return []
    steps, (first, last) = list(report["steps"]), list(report["by_group_at_steps"])
    return [
        f'The tables pool all {len(steps)} steps ({", ".join(steps)}); "Across steps" gives the gaps of each. '
        f"by_group.png shows each group at step {first} (first) and step {last} (last), with 95 % bootstrap "
        "intervals.",
        "",
    ]


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


def by_group_figure(report: dict[str, Any]):
    """Per-group accuracy and TPR bars with their intervals: each group at the first and the last step side by
    side when there are several steps, else over all rows; None without per-group numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attributes = [a for a in report["attributes"] if report["by_group"][a]]
    if not attributes:
        return None
    series = _plotted_series(report)
    shown = {a: plotted_groups(report, a) for a in attributes}
    widths = [max(4.5, 0.25 * len(shown[a]) * len(series) + 1.5) for a in attributes]
    fig, axes = plt.subplots(
        2, len(attributes), figsize=(sum(widths), 6.5), squeeze=False, gridspec_kw={"width_ratios": widths}
    )
    colours = ("#9DB4D6", "#2F5597") if len(series) > 1 else ("#4C72B0",)
    width = 0.8 / len(series)
    for column, attribute in enumerate(attributes):
        names = shown[attribute]
        positions = np.arange(len(names))
        for row, metric in enumerate(("accuracy", "tpr")):
            axis = axes[row][column]
            for i, (label, by_group) in enumerate(series.items()):
                rows = [by_group.get(attribute, {}).get(g, {}) for g in names]
                values = np.array([_number(r.get(metric)) for r in rows])
                intervals = np.array([r.get(f"{metric}_ci") or [np.nan, np.nan] for r in rows], dtype=float)
                errors = np.abs(intervals.T - values)
                offset = (i - (len(series) - 1) / 2) * width
                axis.bar(positions + offset, values, width, yerr=errors, capsize=3, color=colours[i], label=label)
                for x in (positions + offset)[np.isnan(values)]:  # undefined (null): say so instead of a gap
                    axis.text(x, 0.02, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="grey")
            axis.set_xticks(positions, names, rotation=90 if len(names) > 8 else 0)
            axis.set_xlim(-0.6, len(names) - 0.4)
            axis.set_ylim(0, 1.05)
            axis.set_title(f"{'TPR' if metric == 'tpr' else metric} by {attribute}")
            axis.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        first, last = series
        fig.suptitle(f"Each group at {first} and {last} (95 % bootstrap intervals)", x=0.02, ha="left", fontsize=10)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.01, 0.965), ncol=2, fontsize=9, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 0.92))
    else:
        fig.tight_layout()
    return fig


def _number(value: float | None) -> float:
    return np.nan if value is None else value


def plots(report: dict[str, Any], folder: Path) -> list[Path]:
    """by_group.png (see :func:`by_group_figure`); gap trajectories across steps when there are several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig = by_group_figure(report)
    if fig is not None:
        written.append(folder / "by_group.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    if "steps" in report:
        steps = list(report["steps"])
        fig, axis = plt.subplots(figsize=(6.5, 4))
        for key in ("equal_opportunity_difference", "predictive_parity_difference", "accuracy_difference", "Delta_F1"):
            axis.plot([int(s) for s in steps], [_number(report["steps"][s][key]) for s in steps], marker="o", label=key)
        axis.set_xlabel("training step")
        axis.set_ylabel("gap")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
        fig.tight_layout()
        written.append(folder / "gaps_over_steps.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def check_output(folder: Path) -> None:
    """Raise unless ``folder`` is a folder or can be made one (no file in the way)."""
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                raise ValueError(
                    f"--output {folder} must be a folder (for report.json, report.md and the plots), but {path} "
                    "is a file; give another path or move the file"
                )
            return


def write(report: dict[str, Any], folder: Path, title: str = "Fairness report") -> list[Path]:
    check_output(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(to_json(report))
    (folder / "report.md").write_text(markdown(report, title))
    return [folder / "report.json", folder / "report.md", *plots(report, folder)]
