# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Clinical datasets to verl's parquet format, with demographics in ``extra_info``.

Two readers feed one writer:

- :func:`read_jsonl`: the JSONL layout the FairGRPO authors trained on (``problem``, ``answer``,
  ``images`` relative to the file, ``dataset``, ``data_source``, ``demo`` = "sex: Male, age: 68");
- :func:`read_table`: a table (CSV, TSV, JSON Lines, JSON, Parquet or, with openpyxl, XLSX, told by the
  file's suffix) with a label column (or one-hot label columns), an optional image-path column and
  demographic columns named by the caller; ``--join`` tables add columns by key, one row per key.

Each output row has ``data_source`` (the FairGRPO domain), ``prompt`` (one user message: an
``<image>`` marker per image, the question, the paper's think-then-box instruction), ``images``
(``{"bytes": ...}`` dicts or absolute paths), ``ability``, ``reward_model.ground_truth`` (labels
joined by ", ") and ``extra_info``: ``index``, ``split``, ``source_id``, ``modality``,
``demographics`` (``sex`` as M/F, ``age`` in years, plus any extra attributes, None when unknown) and
``multi_label``: True when some example of the row's data source has more than one gold label (as
the reward splits a ground truth), else False, so that the reward can tell multi-label data sources,
where naming several labels is expected, from single-label ones, where it is hedging.

Labels are split on ",", ";", "|" and new lines, never on "and" or "&" ("Hand and foot disease" is one
label). Every row is checked. A bad row is reported with the file, its line (CSV/TSV and the authors'
JSONL: the line in the file where the row starts; other tables: ``row`` and the 0-based row index), its
id and the field, and skipped, or stops the run (``on_error="stop"``); nothing is dropped silently. Bad
rows: a line that is not UTF-8 or not JSON, a CSV line with more cells than the header, no question, no
label (a missing-value marker such as "NaN" or "None", or a JSON object or boolean, is no label), an
empty image cell in a table with images, an image path outside the image folders (symbolic links are
followed), a file Pillow cannot read as an image. Unusable demographic values do not drop a row: they
become None and are counted by attribute and reason (a key given twice with different values in a
``demo`` string is a conflict); rows sharing an id are kept (in one split) and counted.

The output folder is written whole or not at all: the files go to a temporary sibling folder that
then replaces the output folder. A folder that is not empty is refused unless ``overwrite``; the
folders of images the run reads (a recipe's converted images under the output folder) are carried
over, and a run never deletes its own inputs.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import string
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verl_fair.groups.labels import AGE_BINS, UNK, group_key
from verl_fair.normalise import demographics as normalise
from verl_fair.normalise.diagnosis import LABEL_SEPARATORS, normalise_label, synonym_table

logger = logging.getLogger(__name__)

INSTRUCTION = (
    " You FIRST think about the reasoning process as an internal monologue and then provide the final "
    "answer. The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST "
    "BE put in \\boxed{}."
)
ABILITY = "medical_diagnosis"
SPLITS = ("train", "val")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by errors="surrogateescape"
_FIELD_ROOT = re.compile(r"[.\[]")
TABLE_FORMATS = ".csv, .tsv, .jsonl, .json, .parquet and .xlsx (with openpyxl)"


class RowError(ValueError):
    """A row that cannot become a training example; names the file and line, the row id and the field."""

    def __init__(self, where: str, field_name: str, message: str, row_id: str | None = None) -> None:
        shown = f"id {_printable(row_id)}" if row_id else "no id"
        super().__init__(f"{where} ({shown}): {field_name}: {message}")
        self.where, self.row_id, self.field_name = where, row_id, field_name


@dataclass
class Example:
    """One prepared example before it is written."""

    data_source: str
    question: str
    labels: list[str]
    images: list[Path]
    demographics: dict[str, Any]  # raw values of sex, age and the extra attributes; normalised on writing
    source_id: str
    modality: str | None = None
    where: str = ""  # "<file> line N" or "<file> row N"; "item N" (its position) when empty


@dataclass
class Report:
    """What happened to the input: rows read, written and skipped, and every degradation."""

    input_rows: int = 0
    written: Counter = field(default_factory=Counter)  # split -> rows
    skipped: list[str] = field(default_factory=list)
    skipped_by_field: Counter = field(default_factory=Counter)  # field -> skipped rows
    unusable_demographics: Counter = field(default_factory=Counter)  # (attribute, reason) -> rows
    groups: Counter = field(default_factory=Counter)  # (data source, group key) -> rows
    duplicate_rows: int = 0  # written rows whose (data source, id) an earlier written row has
    duplicate_ids: list[str] = field(default_factory=list)  # "data source / id", each once
    data_sources: dict[str, bool] = field(default_factory=dict)  # data source -> multi-label
    warnings: list[str] = field(default_factory=list)

    def skip(self, error: RowError) -> None:
        self.skipped.append(str(error))
        self.skipped_by_field[error.field_name] += 1

    def small_groups(self, threshold: int) -> list[tuple[str, str, int]]:
        return [(d, g, n) for (d, g), n in sorted(self.groups.items()) if n < threshold]

    def kinds(self) -> dict[str, list[str]]:
        """Data source names by kind: ``multi_label`` and ``single_label``."""
        return {
            kind: sorted(s for s, multi in self.data_sources.items() if multi == wanted)
            for kind, wanted in (("multi_label", True), ("single_label", False))
        }

    def as_dict(self, threshold: int) -> dict[str, Any]:
        kinds = self.kinds()
        return {
            "input_rows": self.input_rows,
            "written": dict(self.written),
            "skipped_rows": len(self.skipped),
            "skipped_by_field": dict(sorted(self.skipped_by_field.items())),
            "skipped": self.skipped[:1000],
            "unusable_demographics": {f"{a}: {r}": n for (a, r), n in sorted(self.unusable_demographics.items())},
            "duplicate_ids": {"rows": self.duplicate_rows, "ids": len(self.duplicate_ids)},
            "duplicate_id_examples": self.duplicate_ids[:100],
            "data_source_kinds": {kind: len(names) for kind, names in kinds.items()},
            "data_sources": kinds,
            "groups": {f"{d} / {g}": n for (d, g), n in sorted(self.groups.items())},
            "small_groups": [{"data_source": d, "group": g, "rows": n} for d, g, n in self.small_groups(threshold)],
            "warnings": self.warnings,
        }


def normalise_sex(value: Any, report: Report) -> str | None:
    sex, reason = normalise.sex(value)
    if reason is not None:
        report.unusable_demographics[("sex", "missing" if reason == normalise.EMPTY else reason)] += 1
    return sex


def normalise_age(value: Any, report: Report) -> float | None:
    """Years (see :func:`verl_fair.normalise.demographics.age_years`); None when missing or unusable."""
    age, reason = normalise.age_years(value)
    if reason is not None:
        report.unusable_demographics[("age", "missing" if reason == normalise.EMPTY else reason)] += 1
    return age


def normalise_attribute(name: str, value: Any, report: Report) -> str | None:
    reason = normalise.missing_reason(value)
    if reason is not None:
        report.unusable_demographics[(name, "missing" if reason == normalise.EMPTY else reason)] += 1
        return None
    return str(value).strip()


def demographics(raw: Mapping[str, Any], report: Report) -> dict[str, Any]:
    """Normalised demographics: sex, age and the extra attributes, each None when unusable (and counted)."""
    out = {"sex": normalise_sex(raw.get("sex"), report), "age": normalise_age(raw.get("age"), report)}
    for name in raw:
        if name not in out:
            out[name] = normalise_attribute(name, raw[name], report)
    return out


def read_jsonl(
    path: Path, attributes: Sequence[str] = (), image_roots: Sequence[Path] = ()
) -> Iterator[Example | RowError]:
    """Examples from the authors' JSONL layout, one per non-blank line.

    Image paths are looked up in the file's folder, then in each of ``image_roots``; a path that leads
    outside them (``..``, an absolute path elsewhere) is a bad row. Each line is decoded on its own: a
    line that is not UTF-8 is a bad row, not the end of the run; a UTF-8 byte order mark is ignored.
    Raises ValueError when the file has no rows.
    """
    roots = [path.parent, *image_roots]
    rows = 0
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            where = f"{path.name} line {number}"
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                rows += 1
                byte = f"byte 0x{raw[error.start]:02x} at column {error.start + 1}"
                yield RowError(where, "encoding", f"{byte} is not UTF-8; re-save the file as UTF-8")
                continue
            if not line.strip():
                continue
            rows += 1
            yield _jsonl_example(line, number, where, roots, attributes)
    if rows == 0:
        raise ValueError(f"{path}: no rows (the file is empty or holds only blank lines)")


def _jsonl_example(line: str, number: int, where: str, roots: Sequence[Path], attributes: Sequence[str]):
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        return RowError(where, "json", str(error))
    if not isinstance(row, dict):
        return RowError(where, "json", "a line must hold one JSON object")
    row_id = str(number) if row.get("id") is None else str(row["id"])
    source = row.get("dataset") or row.get("data_source")
    if not isinstance(source, str) or not source.strip():
        return RowError(where, "dataset", "missing data source ('dataset' or 'data_source')", row_id)
    problem = row.get("problem")
    if problem is not None and not isinstance(problem, str):
        message = f"'problem' holds a JSON {_json_type(problem)}, not a question; give a string"
        return RowError(where, "question", message, row_id)
    answer_field = "answer" if "answer" in row else "ground_truth"
    answer = row.get(answer_field)
    for value in answer if isinstance(answer, list) else [answer]:
        if isinstance(value, (dict, list, bool)):
            message = f"'{answer_field}' holds a JSON {_json_type(value)}, which is not a diagnosis label; give a "
            return RowError(where, "label", message + "string or a list of strings", row_id)
    try:
        labels = _labels(answer)
    except ValueError as error:
        return RowError(where, "label", f"'{answer_field}': {error}", row_id)
    images = row.get("images")
    images = [] if images is None else [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not all(isinstance(p, str) and p.strip() for p in images):
        return RowError(where, "image", "expected a list of image paths (strings, none empty)", row_id)
    try:
        paths = [_find(p.strip(), roots) for p in images]
    except ValueError as error:
        return RowError(where, "image", str(error), row_id)
    demo = row.get("demo")
    if isinstance(demo, Mapping):
        parsed = {str(k).strip().lower(): v for k, v in demo.items()}
    elif isinstance(demo, str):
        parsed = normalise.parse_demo_string(demo)
    elif demo is None:
        parsed = {}
    else:
        return RowError(where, "demo", f"a JSON {_json_type(demo)}; expected 'sex: Male, age: 68' or an object", row_id)
    return Example(
        data_source=source.strip(),
        question=(problem or "").replace("<image>", "").strip(),
        labels=labels,
        images=paths,
        demographics={name: parsed.get(name) for name in ("sex", "age", *attributes)},
        source_id=row_id,
        modality=str(row["data_source"]) if row.get("dataset") and row.get("data_source") else None,
        where=where,
    )


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", bool: "boolean", int: "number", float: "number"}.get(type(value), "value")


@dataclass
class TableSpec:
    """How to read a table: which columns hold what. ``label_map`` codes match labels ignoring case and
    punctuation, as the reward compares labels."""

    data_source: str | None = None
    data_source_column: str | None = None
    label_column: str | None = None
    label_columns: Sequence[str] = ()
    positive_values: Sequence[str] = ("1", "1.0", "true", "yes")
    label_map: Mapping[str, str] = field(default_factory=dict)
    image_column: str | None = None
    image_template: str | None = None  # e.g. "Patients_CT/{PatientNumber:0>3}/brain/{SliceNumber}.jpg"
    image_roots: Sequence[Path] = ()  # folders searched in order (default: the table's folder)
    image_suffix: str = ""
    sex_column: str | None = None
    age_column: str | None = None
    attribute_columns: Mapping[str, str] = field(default_factory=dict)
    question: str = "What is the diagnosis?"
    id_column: str | None = None
    joins: Sequence[tuple[Path, str, str]] = ()  # (table, column here, column there): left joins, one row per key

    def validate(self, columns: Iterable[str]) -> None:
        columns = set(columns)
        if self.image_column and self.image_template:
            raise ValueError("give at most one of --image-column and --image-template")
        if (self.data_source is None) == (self.data_source_column is None):
            raise ValueError("give exactly one of --data-source NAME or --data-source-column COLUMN")
        if bool(self.label_column) == bool(self.label_columns):
            raise ValueError("give exactly one of --label-column COLUMN or --label-columns COLUMN [COLUMN ...]")
        wanted = [
            self.data_source_column,
            self.label_column,
            self.image_column,
            self.sex_column,
            self.age_column,
            self.id_column,
            *self.label_columns,
            *self.attribute_columns.values(),
        ]
        missing = sorted({c for c in wanted if c and c not in columns})
        if missing:
            raise ValueError(f"columns {missing} are not in the table; it has {sorted(columns)}")

    def roots(self, table: Path) -> list[Path]:
        """The folders images are looked up in: ``image_roots``, or the table's folder."""
        return list(self.image_roots) or [table.parent]


def read_table(path: Path, spec: TableSpec) -> Iterator[Example | RowError]:
    """Examples from a table described by ``spec``, read by its suffix (see :func:`_read`).

    A cell holding a list (a Parquet list column) gives one label per item. A CSV/TSV line with more
    cells than the header is a bad row. When the table has images (``image_column`` or
    ``image_template``) a row with an empty image cell is a bad row, and so is one whose image path
    leads outside the image folders. Raises ValueError for a table with no rows or a suffix it cannot
    read, a header with bytes that are not UTF-8, columns ``spec`` names that are not there, a joined
    table with a key on rows that differ, or ``label_map`` codes that match alike but name differently.
    """
    table = _read(path)
    frame = table.frame
    for other, here, there in spec.joins:
        extra = _read(other)
        for name, columns, key in (("this table", frame.columns, here), (str(other), extra.frame.columns, there)):
            if key not in columns:
                raise ValueError(f"join column {key!r} is not in {name}; it has {sorted(columns)}")
        extra_rows = _one_row_per_key(extra, there)
        frame = frame.merge(extra_rows, how="left", left_on=here, right_on=there, suffixes=("", f" ({other.stem})"))
        frame = frame.fillna("")
    spec.validate(frame.columns)
    if frame.empty:
        raise ValueError(f"{path}: the table has a header but no rows")
    roots = spec.roots(path)
    positive = {v.lower() for v in spec.positive_values}
    codes = _label_codes(spec.label_map)
    for index, row in enumerate(frame.to_dict(orient="records")):
        # the id of a row without an id column or image: its line in a CSV, else its 1-based position
        where, default_id = table.where(index), table.default_id(index)
        if index in table.malformed:
            yield RowError(where, "cells", table.malformed[index], default_id)
            continue
        try:
            yield _table_example(row, where, default_id, spec, roots, positive, codes)
        except RowError as error:
            yield error


def _one_row_per_key(table: _Table, key: str):
    """The rows of a joined table, identical rows counted once; ValueError naming the key and the rows when a
    key is on rows that differ (which of them holds the right values cannot be told)."""
    frame = table.frame
    distinct = frame[~frame.astype(str).duplicated()]
    clashing = distinct[distinct[key].duplicated(keep=False)]
    if not clashing.empty:
        value = clashing[key].iloc[0]
        places = ", ".join(table.where(i) for i in clashing.index[clashing[key] == value])
        others = clashing[key].nunique() - 1
        more = f" ({others} more keys are on several rows)" if others else ""
        raise ValueError(
            f"--join {table.path}: the key {key!r} = {_printable(str(value))!r} is on {places} with different "
            f"values{more}; a joined table needs one row per key: remove or merge the duplicates"
        )
    return distinct


def _label_codes(label_map: Mapping[str, str]) -> dict[str, str]:
    """``label_map`` keyed by normalised code (case and punctuation ignored, as the reward compares labels);
    ValueError for two codes that match alike but give different names."""
    codes: dict[str, tuple[str, str]] = {}  # normalised code -> (code as given, name)
    for code, name in label_map.items():
        key = normalise_label(code, {})
        if key in codes and codes[key][1] != name:
            raise ValueError(
                f"--label-map gives {codes[key][0]!r} and {code!r} different names ({codes[key][1]!r}, {name!r}); "
                "codes match ignoring case and punctuation: keep one of them"
            )
        codes[key] = (code, name)
    return {key: name for key, (_, name) in codes.items()}


def _table_example(
    row: Mapping[str, Any],
    where: str,
    default_id: str,
    spec: TableSpec,
    roots: Sequence[Path],
    positive: set[str],
    codes: Mapping[str, str],
) -> Example:
    row_id = None
    if spec.id_column:
        if _blank(row[spec.id_column]):
            message = f"empty cell in the id column {spec.id_column!r}; fill it or drop the row"
            raise RowError(where, "id", message, default_id)
        row_id = str(row[spec.id_column]).strip()
    undecodable = [column for column, value in row.items() if isinstance(value, str) and _NOT_UTF8.search(value)]
    if undecodable:
        message = f"column(s) {undecodable} hold bytes that are not UTF-8; re-save the file as UTF-8"
        raise RowError(where, "encoding", message, row_id or default_id)
    names = _image_names(row, spec, where, row_id or default_id)
    row_id = row_id or (names[0] if names else default_id)
    if spec.label_column:
        try:
            labels = _labels(row[spec.label_column])
        except ValueError as error:
            raise RowError(where, "label", str(error), row_id) from None
    else:
        labels = [c for c in spec.label_columns if str(row[c]).strip().lower() in positive]
    labels = [codes.get(normalise_label(label, {}), label) for label in labels]
    raw = {
        "sex": row.get(spec.sex_column) if spec.sex_column else None,
        "age": row.get(spec.age_column) if spec.age_column else None,
        **{name: row.get(column) for name, column in spec.attribute_columns.items()},
    }
    try:
        question = spec.question.format_map(row)
    except (KeyError, ValueError, IndexError) as error:
        raise RowError(where, "question", f"the template cannot be filled: {error}", row_id) from None
    try:
        images = [_find(name, roots) for name in names]
    except ValueError as error:
        raise RowError(where, "image", str(error), row_id) from None
    return Example(
        data_source=spec.data_source or str(row[spec.data_source_column]).strip(),
        question=question,
        labels=labels,
        images=images,
        demographics=raw,
        source_id=row_id,
        where=where,
    )


def _image_names(row: Mapping[str, Any], spec: TableSpec, where: str, row_id: str) -> list[str]:
    """The row's image paths (relative to the image roots, or absolute); [] when the table has no images."""
    if spec.image_template:
        fields = {_FIELD_ROOT.split(f)[0] for _, f, _, _ in string.Formatter().parse(spec.image_template) if f}
        empty = sorted(f for f in fields if f in row and _blank(row[f]))
        if empty:
            message = f"empty cell(s) {empty} in the image template {spec.image_template!r}; fill them or drop the row"
            raise RowError(where, "image", message, row_id)
        try:
            return [spec.image_template.format_map(row)]
        except (KeyError, ValueError, IndexError) as error:
            raise RowError(where, "image", f"the image template cannot be filled: {error}", row_id) from None
    if not spec.image_column:
        return []
    value = row[spec.image_column]
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    cells = value if isinstance(value, (list, tuple)) else [value]
    if not cells or any(_blank(cell) for cell in cells):
        message = f"empty cell in the image column {spec.image_column!r}; fill it or drop the row"
        raise RowError(where, "image", message, row_id)
    return [f"{str(cell).strip()}{spec.image_suffix}" for cell in cells]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _absolute(path: Path | str) -> Path:
    """``path`` made absolute with ``..`` resolved by name, without following symbolic links."""
    return Path(os.path.abspath(path))


def _find(name: str, roots: Sequence[Path]) -> Path:
    """The first root holding ``name`` (the first root it lies in when none does, so the check names a path).

    ValueError when ``name`` leads outside every root (``..``, an absolute path elsewhere), by name or
    through a symbolic link.
    """
    inside = []
    folders = ", ".join(str(r) for r in roots)
    for root in roots:
        base = _absolute(root)
        candidate = _absolute(base / name)
        if candidate.is_relative_to(base):
            if candidate.is_file():
                target = candidate.resolve()
                if not any(target.is_relative_to(Path(r).resolve()) for r in roots):
                    raise ValueError(
                        f"{name!r} resolves through a symbolic link to {target}, outside the image folders "
                        f"({folders}); copy the file in, or add its folder with --image-root"
                    )
                return candidate
            inside.append(candidate)
    if not inside:
        raise ValueError(
            f"{name!r} leads outside the image folders ({folders}); give a path inside them, or add its folder "
            "with --image-root"
        )
    return inside[0]


@dataclass
class _Table:
    """A table as read, with where each row is in its file."""

    path: Path
    frame: Any  # a pandas DataFrame
    lines: list[int] | None = None  # CSV/TSV: the line each row starts on; None: rows are told by position
    malformed: dict[int, str] = field(default_factory=dict)  # row position -> why the row cannot be read

    def where(self, index: int) -> str:
        return f"{self.path.name} line {self.lines[index]}" if self.lines else f"{self.path.name} row {index}"

    def default_id(self, index: int) -> str:
        return str(self.lines[index]) if self.lines else str(index + 1)


def _read(path: Path) -> _Table:
    """The table at ``path``, read by its suffix (:data:`TABLE_FORMATS`), with headers whose whitespace (even
    new lines) is collapsed. CSV/TSV cells are strings (see :func:`_read_delimited`); the other formats keep
    their types. ValueError naming the formats for another suffix."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        table = _read_delimited(path, "\t" if suffix == ".tsv" else ",")
    elif suffix == ".parquet":
        table = _Table(path, pd.read_parquet(path))
    elif suffix in (".jsonl", ".json"):
        try:
            frame = pd.read_json(path, lines=suffix == ".jsonl", dtype=False, convert_dates=False)
        except ValueError as error:
            kind = "JSON Lines (one object per line)" if suffix == ".jsonl" else "JSON (an array of objects)"
            raise ValueError(f"{path}: not a table in {kind}: {error}") from None
        table = _Table(path, frame)
    elif suffix == ".xlsx":
        try:
            table = _Table(path, pd.read_excel(path, dtype=object))
        except ImportError:
            raise ValueError(
                f"{path}: reading .xlsx needs openpyxl (pip install openpyxl); or save the sheet in one of the other "
                f"formats read: {TABLE_FORMATS}"
            ) from None
        except (zipfile.BadZipFile, ValueError, KeyError) as error:
            raise ValueError(f"{path}: not an .xlsx workbook ({error}); give {TABLE_FORMATS}") from None
    else:
        raise ValueError(
            f"{path}: the suffix {suffix or '(none)'!r} is not a table format read here; give {TABLE_FORMATS}"
        )
    table.frame = table.frame.rename(columns=lambda c: " ".join(str(c).split()))
    return table


def _read_delimited(path: Path, separator: str) -> _Table:
    """A CSV/TSV table of string cells, with the line each row starts on. Blank lines are skipped, short rows
    padded with empty cells; a row with more cells than the header is kept in place, cut to the header, and
    marked malformed, so that later rows keep their lines and ids. Bytes that are not UTF-8 are kept as
    surrogates for the row check to name."""
    import csv

    import pandas as pd

    rows, lines, malformed = [], [], {}
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, delimiter=separator)
        try:
            header = next((cells for cells in reader if cells), None)
            if header is None:
                raise ValueError(f"{path}: the file is empty")
            end = header_line = reader.line_num
            width = len(header)
            for cells in reader:
                start, end = end + 1, reader.line_num
                if len(cells) <= 1 and not "".join(cells).strip():
                    continue
                if len(cells) > width:
                    malformed[len(rows)] = (
                        f"{len(cells)} cells, but the header has {width} columns; put a cell that holds "
                        f"{separator!r} in double quotes, or remove the extra cells"
                    )
                rows.append(cells[:width] + [""] * (width - len(cells)))
                lines.append(start)
        except csv.Error as error:
            raise ValueError(f"{path} line {reader.line_num}: {error}") from None
    names = [" ".join(name.split()) or f"Unnamed: {i}" for i, name in enumerate(header)]
    if any(_NOT_UTF8.search(name) for name in names):
        raise ValueError(
            f"{path} line {header_line}: the header has bytes that are not UTF-8; re-save the file as UTF-8"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"{path} line {header_line}: the header names {repeated} more than once; give each column its own name"
        )
    # plain str cells: arrow-backed strings refuse the surrogates
    return _Table(path, pd.DataFrame(rows, columns=names, dtype=object), lines, malformed)


def _labels(value: Any) -> list[str]:
    """Labels of a cell: a list's items, or a string split on :data:`LABEL_SEPARATORS`; ValueError for a
    mapping or a missing-value marker ("NaN", "None", "n/a" ...: see :func:`normalise.is_missing`)."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [label for item in value for label in _labels(item)] if value else []
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, Mapping):
        raise ValueError(f"a mapping ({_printable(str(value))[:80]}) is not a diagnosis label")
    labels = [part for part in LABEL_SEPARATORS.split(str(value).strip()) if part]
    missing = [label for label in labels if normalise.is_missing(label)]
    if missing:
        raise ValueError(
            f"{_printable(missing[0])!r} marks a missing value, not a diagnosis; fill in the label or drop the row"
        )
    return labels


def _printable(text: str | None) -> str:
    """``text`` with undecodable bytes shown as escapes, so that it can be printed and logged."""
    return (text or "").encode("utf-8", "backslashreplace").decode("utf-8")


def in_validation(example: Example, fraction: float, seed: int) -> bool:
    """Deterministic split from a hash of (seed, data source, source id): stable under reordering."""
    digest = hashlib.sha256(f"{seed}|{example.data_source}|{example.source_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def verified_image(path: Path, where: str, row_id: str | None) -> bytes:
    """The bytes of ``path`` once Pillow has read it as an image; :class:`RowError` naming the file otherwise.

    ``verify()`` checks the structure (for PNG every chunk's checksum); other formats are also decoded
    (JPEG at a reduced scale), which catches truncated files.
    """
    from PIL import Image, UnidentifiedImageError

    if path.is_dir():
        raise RowError(where, "image", f"{path} is a folder, not an image file; name the image in it", row_id)
    if not path.is_file():
        raise RowError(where, "image", f"{path} does not exist", row_id)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RowError(where, "image", f"{path} cannot be read: {error}", row_id) from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                image.draft(image.mode, (64, 64))
                image.load()
    except UnidentifiedImageError:
        raise RowError(where, "image", f"{path} is not an image Pillow can read", row_id) from None
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error ... for broken files
        message = f"{path} is a broken image ({type(error).__name__}: {error}); re-export it or drop the row"
        raise RowError(where, "image", message, row_id) from None
    return data


def to_row(example: Example, number: int, split: str, images: list, report: Report) -> dict[str, Any]:
    """The verl parquet row of a checked example; ``images`` as written (bytes dicts or paths)."""
    content = "<image>" * len(example.images) + example.question + INSTRUCTION
    return {
        "data_source": example.data_source,
        "prompt": [{"role": "user", "content": content}],
        "images": images,
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": ", ".join(example.labels)},
        "extra_info": {
            "index": number,
            "split": split,
            "source_id": example.source_id,
            "modality": example.modality,
            "demographics": demographics(example.demographics, report),
        },
    }


def check(example: Example, embed_images: bool = True) -> list:
    """The images of an example that can be trained on, as written (``{"bytes": ...}`` or absolute paths);
    :class:`RowError` for one that cannot."""
    if not example.question.strip():
        raise RowError(example.where, "question", "empty", example.source_id)
    if not example.labels:
        raise RowError(example.where, "label", "no diagnosis label", example.source_id)
    images = []
    for path in example.images:
        data = verified_image(path, example.where, example.source_id)
        images.append({"bytes": data} if embed_images else str(_absolute(path)))
    return images


def balanced(
    rows: list[dict], seed: int, group_attributes: Sequence[str], age_bins: Sequence[float] = AGE_BINS
) -> list[dict]:
    """Oversample every labelled (data source, group) to its data source's largest group (the resampling
    baseline, GRPO+RS); UNK rows are kept once. Deterministic for a seed."""
    import random

    by_group: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        key = (row["data_source"], group_key(row["extra_info"], group_attributes, age_bins))
        by_group.setdefault(key, []).append(row)
    largest = Counter()
    for (source, group), members in by_group.items():
        if group != UNK:
            largest[source] = max(largest[source], len(members))
    chooser = random.Random(seed)
    out = []
    for (source, group), members in sorted(by_group.items()):
        out += members
        if group != UNK:
            out += [chooser.choice(members) for _ in range(largest[source] - len(members))]
    return out


def check_output(
    output: Path, overwrite: bool, inputs: Sequence[Path] = (), image_roots: Sequence[Path] = ()
) -> list[str]:
    """The entries of ``output`` to carry over into the new output folder: the sub-folders that hold (or
    are) an image root, such as a recipe's converted images.

    ValueError when ``output`` is a file, when it holds anything else and ``overwrite`` is off, or when
    an input (the table, a joined table, the JSONL) lies in what ``overwrite`` would delete.
    """
    if not output.exists():
        return []
    if not output.is_dir():
        raise ValueError(f"--output {output} is a file; give a folder")
    here, roots = _absolute(output), [_absolute(r) for r in image_roots]
    kept, other = [], []
    for entry in sorted(output.iterdir()):
        holds_images = any(r == here or r.is_relative_to(here / entry.name) for r in roots)
        (kept if entry.is_dir() and holds_images else other).append(entry.name)
    if other and not overwrite:
        shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        raise ValueError(
            f"--output {output} is not empty (it holds {shown}); writing into it would mix this run with what "
            "is there: give --overwrite to replace the folder, or another --output"
        )
    _refuse_deleting(output, kept, inputs, "the input")
    return kept


def _refuse_deleting(output: Path, kept: Sequence[str], paths: Iterable[Path], what: str) -> None:
    here = _absolute(output)
    for path in paths:
        absolute = _absolute(path)
        if absolute.is_relative_to(here) and absolute != here and absolute.relative_to(here).parts[0] not in kept:
            raise ValueError(
                f"{what} {path} lies in --output {output}, which this run replaces: move it out, or give another "
                "--output"
            )


def _replace(output: Path, staging: Path, kept: Sequence[str]) -> None:
    """Make ``staging`` the output folder; the old one's ``kept`` entries move into it, the rest goes."""
    if not output.exists():
        staging.rename(output)
        return
    retired = output.with_name(f".{output.name}.replaced-{uuid.uuid4().hex[:8]}")
    output.rename(retired)
    try:
        staging.rename(output)
    except OSError:
        retired.rename(output)
        raise
    for name in kept:
        (retired / name).rename(output / name)
    shutil.rmtree(retired)


def prepare(
    examples: Iterable[Example | RowError],
    output: Path,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    embed_images: bool = True,
    on_error: str = "skip",
    report: Report,
    total: int | None = None,
    group_attributes: Sequence[str] = ("sex", "age"),
    age_bins: Sequence[float] = AGE_BINS,
    balance: bool = False,
    overwrite: bool = False,
    min_group_size: int = 30,
    inputs: Sequence[Path] = (),
    image_roots: Sequence[Path] = (),
) -> Report:
    """Check and split the examples into the folder ``output``, written whole: ``train.parquet``,
    ``val.parquet`` (when it has rows), ``train_balanced.parquet`` with ``balance`` (see :func:`balanced`)
    and ``summary.json``. ``inputs`` and ``image_roots`` are what replacing the folder must keep (see
    :func:`check_output`); a symbolic link as ``output`` stands for the folder it points to.

    ValueError, before reading, for ``val_fraction`` outside [0, 1) or an output folder that cannot be
    used (:func:`check_output`); after reading, when no row or no training row could be prepared
    (nothing is written then). :class:`RowError` at the first bad row with ``on_error="stop"``.
    """
    import pandas as pd
    from tqdm import tqdm

    if on_error not in ("skip", "stop"):
        raise ValueError(f"on_error={on_error!r}: expected 'skip' or 'stop'")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"--val-fraction {val_fraction}: must be in [0, 1) (0: no validation split)")
    output = output.resolve() if output.is_symlink() else _absolute(output)
    if not output.name:
        raise ValueError(
            f"--output {output}: the root folder cannot be replaced (a run writes a new folder beside the output "
            f"folder, then swaps it in); give a folder below it, e.g. {output / 'prepared'}"
        )
    kept = check_output(output, overwrite, inputs, image_roots)
    synonyms = synonym_table()
    rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
    seen_ids: Counter = Counter()
    labels_of: dict[str, int] = {}  # data source -> most labels in one example
    used_images: list[Path] = []
    for number, item in enumerate(tqdm(examples, total=total, desc="preparing", unit="row"), start=1):
        report.input_rows += 1
        try:
            if isinstance(item, RowError):
                raise item
            item.where = item.where or f"item {number}"
            images = check(item, embed_images)
        except RowError as error:
            if on_error == "stop":
                raise
            report.skip(error)
            continue
        split = "val" if in_validation(item, val_fraction, seed) else "train"
        row = to_row(item, len(rows[split]), split, images, report)
        rows[split].append(row)
        used_images += item.images
        report.written[split] += 1
        report.groups[(item.data_source, group_key(row["extra_info"], group_attributes, age_bins))] += 1
        key = (item.data_source, item.source_id)
        seen_ids[key] += 1
        if seen_ids[key] == 2:
            report.duplicate_ids.append(f"{item.data_source} / {_printable(item.source_id)}")
        report.duplicate_rows += int(seen_ids[key] > 1)
        gold = len({normalise_label(label, synonyms) for label in item.labels})
        labels_of[item.data_source] = max(labels_of.get(item.data_source, 0), gold)
    _check_written(report, rows, val_fraction)
    report.data_sources = {source: most > 1 for source, most in sorted(labels_of.items())}
    for split_rows in rows.values():
        for row in split_rows:
            row["extra_info"]["multi_label"] = report.data_sources[row["data_source"]]
    if overwrite:
        _refuse_deleting(output, kept, used_images, "the image")
    text_only = not any(row["images"] for split_rows in rows.values() for row in split_rows)
    if balance:
        rows["train_balanced"] = balanced(rows["train"], seed, group_attributes, age_bins)
        report.written["train_balanced"] = len(rows["train_balanced"])
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        for split, split_rows in rows.items():
            if split_rows:
                frame = pd.DataFrame(split_rows).drop(columns=["images"] if text_only else [])
                frame.to_parquet(staging / f"{split}.parquet", index=False)
        (staging / "summary.json").write_text(json.dumps(report.as_dict(min_group_size), indent=2))
        _replace(output, staging, kept)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for warning in report.warnings:
        logger.warning("%s", warning)
    return report


def _check_written(report: Report, rows: Mapping[str, list[dict]], val_fraction: float) -> None:
    """ValueError when nothing trainable was prepared; warnings for what is thin."""
    if report.input_rows == 0:
        raise ValueError("no input rows")
    if not any(rows.values()):
        first = "; ".join(report.skipped[:3])
        raise ValueError(f"no row could be prepared: all {report.input_rows} input rows are bad (first: {first})")
    if not rows["train"]:
        raise ValueError(
            f"all {len(rows['val'])} prepared rows fell in the validation split: lower --val-fraction ({val_fraction})"
        )
    if val_fraction > 0 and not rows["val"]:
        report.warnings.append(
            f"no row fell in the validation split (--val-fraction {val_fraction}, {len(rows['train'])} rows): "
            "val.parquet is not written"
        )
    if report.duplicate_rows:
        report.warnings.append(
            f"{report.duplicate_rows} rows share their id with an earlier row of the same data source "
            f"({len(report.duplicate_ids)} ids, e.g. {', '.join(report.duplicate_ids[:3])}): kept, each id's rows "
            "in one split"
        )


def summary_text(report: Report, threshold: int) -> str:
    """A printable summary of ``report`` (the same facts as ``summary.json``)."""
    lines = [
        f"input rows: {report.input_rows}; written: {dict(report.written)}; skipped rows: {len(report.skipped)}"
        + (f" ({', '.join(f'{f}: {n}' for f, n in sorted(report.skipped_by_field.items()))})" if report.skipped else "")
    ]
    lines += [f"  skipped {message}" for message in report.skipped[:20]]
    if len(report.skipped) > 20:
        lines.append(f"  ... and {len(report.skipped) - 20} more in summary.json")
    if report.unusable_demographics:
        lines.append(
            "unusable demographic values (kept as unknown): "
            + ", ".join(f"{a} {r}: {n}" for (a, r), n in sorted(report.unusable_demographics.items()))
        )
    if report.duplicate_rows:
        lines.append(
            f"rows sharing an id (kept, in one split): {report.duplicate_rows} in {len(report.duplicate_ids)} ids"
        )
    kinds = report.kinds()
    lines.append(
        "data sources: "
        + "; ".join(
            f"{len(names)} {kind.replace('_', '-')} ({', '.join(names) or '-'})" for kind, names in kinds.items()
        )
    )
    lines += [f"warning: {warning}" for warning in report.warnings]
    lines.append("prompts per (data source, group):")
    for (source, group), count in sorted(report.groups.items()):
        flag = f"   <-- below {threshold}" if count < threshold else ""
        lines.append(f"  {source:<20} {group:<12} {count:>8}{flag}")
    return "\n".join(lines)
