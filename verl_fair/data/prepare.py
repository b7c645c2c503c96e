"""Clinical datasets to verl's parquet format, with demographics in ``extra_info``.

Two readers feed one writer:

- :func:`read_jsonl`: the JSONL layout the FairGRPO authors trained on (``problem``, ``answer``,
  ``images`` relative to the file, ``dataset``, ``data_source``, ``demo`` = "sex: Male, age: 68");
- :func:`read_table`: any CSV or Parquet table with a label column (or one-hot label columns), an
  optional image-path column and demographic columns named by the caller.

Each output row has ``data_source`` (the FairGRPO domain), ``prompt`` (one user message: an
``<image>`` marker per image, the question, the paper's think-then-box instruction), ``images``
(``{"bytes": ...}`` dicts or absolute paths), ``ability``, ``reward_model.ground_truth`` (labels
joined by ", ") and ``extra_info`` (``index``, ``split``, ``source_id``, ``modality`` and
``demographics``: ``sex`` as M/F, ``age`` in years, plus any extra attributes, None when unknown).

Every row is checked. A bad row (no question, no label, a missing image, ...) is reported with its
row number and field and skipped, or stops the run (``on_error="stop"``); nothing is dropped
silently. Unusable demographic values do not drop a row: they become None and are counted by
attribute and reason.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verl_fair.groups.labels import UNK, group_key
from verl_fair.normalise import demographics as normalise
from verl_fair.normalise.diagnosis import LABEL_SEPARATORS

INSTRUCTION = (
    " You FIRST think about the reasoning process as an internal monologue and then provide the final "
    "answer. The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST "
    "BE put in \\boxed{}."
)
ABILITY = "medical_diagnosis"


class RowError(ValueError):
    """A row that cannot become a training example; names the row and the field."""

    def __init__(self, row: int, field_name: str, message: str) -> None:
        super().__init__(f"row {row}: {field_name}: {message}")
        self.row, self.field_name = row, field_name


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


@dataclass
class Report:
    """What happened to the input: rows written and skipped, demographic values that were unusable."""

    written: Counter = field(default_factory=Counter)  # split -> rows
    skipped: list[str] = field(default_factory=list)
    unusable_demographics: Counter = field(default_factory=Counter)  # (attribute, reason) -> rows
    groups: Counter = field(default_factory=Counter)  # (data source, group key) -> rows

    def small_groups(self, threshold: int) -> list[tuple[str, str, int]]:
        return [(d, g, n) for (d, g), n in sorted(self.groups.items()) if n < threshold]

    def as_dict(self, threshold: int) -> dict[str, Any]:
        return {
            "written": dict(self.written),
            "skipped_rows": len(self.skipped),
            "skipped": self.skipped[:1000],
            "unusable_demographics": {f"{a}: {r}": n for (a, r), n in sorted(self.unusable_demographics.items())},
            "groups": {f"{d} / {g}": n for (d, g), n in sorted(self.groups.items())},
            "small_groups": [{"data_source": d, "group": g, "rows": n} for d, g, n in self.small_groups(threshold)],
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
    if normalise.is_missing(value):
        report.unusable_demographics[(name, "missing")] += 1
        return None
    return str(value).strip()


def demographics(raw: Mapping[str, Any], report: Report) -> dict[str, Any]:
    """Normalised demographics: sex, age and the extra attributes, each None when unusable (and counted)."""
    out = {"sex": normalise_sex(raw.get("sex"), report), "age": normalise_age(raw.get("age"), report)}
    for name in raw:
        if name not in out:
            out[name] = normalise_attribute(name, raw[name], report)
    return out


def read_jsonl(path: Path, attributes: Sequence[str] = ()) -> Iterator[Example | RowError]:
    """Examples from the authors' JSONL layout; images are relative to the file's folder."""
    base = path.parent
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                yield RowError(number, "json", str(error))
                continue
            if not isinstance(row, dict):
                yield RowError(number, "json", "a line must hold one JSON object")
                continue
            source = row.get("dataset") or row.get("data_source")
            if not isinstance(source, str) or not source.strip():
                yield RowError(number, "dataset", "missing data source ('dataset' or 'data_source')")
                continue
            demo = row.get("demo")
            parsed = normalise.parse_demo_string(demo) if isinstance(demo, str) else {}
            images = row.get("images") or []
            if isinstance(images, str):
                images = [images]
            yield Example(
                data_source=source.strip(),
                question=str(row.get("problem") or "").replace("<image>", "").strip(),
                labels=_labels(row.get("answer", row.get("ground_truth"))),
                images=[base / str(p) for p in images],
                demographics={name: parsed.get(name) for name in ("sex", "age", *attributes)},
                source_id=str(row.get("id", number)),
                modality=str(row["data_source"]) if row.get("dataset") and row.get("data_source") else None,
            )


@dataclass
class TableSpec:
    """How to read a CSV/Parquet table: which columns hold what."""

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
    joins: Sequence[tuple[Path, str, str]] = ()  # (table, column here, column there): left joins, in order

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


def read_table(path: Path, spec: TableSpec) -> Iterator[Example | RowError]:
    """Examples from a CSV or Parquet table described by ``spec``."""

    frame = _read(path)
    for other, here, there in spec.joins:
        extra = _read(other)
        for name, columns, key in (("this table", frame.columns, here), (str(other), extra.columns, there)):
            if key not in columns:
                raise ValueError(f"join column {key!r} is not in {name}; it has {sorted(columns)}")
        extra = extra.drop_duplicates(subset=[there])
        frame = frame.merge(extra, how="left", left_on=here, right_on=there, suffixes=("", f" ({other.stem})"))
        frame = frame.fillna("")
    spec.validate(frame.columns)
    roots = list(spec.image_roots) or [path.parent]
    positive = {v.lower() for v in spec.positive_values}
    for number, row in enumerate(frame.to_dict(orient="records"), start=2 if path.suffix != ".parquet" else 1):
        if spec.label_column:
            labels = _labels(row[spec.label_column])
        else:
            labels = [c for c in spec.label_columns if str(row[c]).strip().lower() in positive]
        labels = [spec.label_map.get(label, label) for label in labels]
        raw = {
            "sex": row.get(spec.sex_column) if spec.sex_column else None,
            "age": row.get(spec.age_column) if spec.age_column else None,
            **{name: row.get(column) for name, column in spec.attribute_columns.items()},
        }
        try:
            question = spec.question.format_map(row)
        except (KeyError, ValueError) as error:
            yield RowError(number, "question", f"the template cannot be filled: {error}")
            continue
        try:
            image = _image_name(row, spec)
        except (KeyError, ValueError) as error:
            yield RowError(number, "image", f"the image template cannot be filled: {error}")
            continue
        yield Example(
            data_source=spec.data_source or str(row[spec.data_source_column]).strip(),
            question=question,
            labels=labels,
            images=[_find(image, roots)] if image else [],
            demographics=raw,
            source_id=str(row[spec.id_column]) if spec.id_column else image or str(number),
        )


def _image_name(row: Mapping[str, Any], spec: TableSpec) -> str:
    if spec.image_template:
        return spec.image_template.format_map(row)
    return f"{str(row[spec.image_column]).strip()}{spec.image_suffix}" if spec.image_column else ""


def _find(name: str, roots: Sequence[Path]) -> Path:
    """The first root holding ``name`` (the first root when none does, so the check names a path)."""
    for root in roots:
        if (root / name).is_file():
            return root / name
    return roots[0] / name


def _read(path: Path):
    """A table with string cells and headers whose whitespace (even new lines) is collapsed."""
    import pandas as pd

    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep="\t" if path.suffix == ".tsv" else ",")
    return frame.rename(columns=lambda c: " ".join(str(c).split()))


def _labels(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in LABEL_SEPARATORS.split(str(value)) if part.strip()]


def in_validation(example: Example, fraction: float, seed: int) -> bool:
    """Deterministic split from a hash of (seed, data source, source id): stable under reordering."""
    digest = hashlib.sha256(f"{seed}|{example.data_source}|{example.source_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def to_row(example: Example, number: int, split: str, embed_images: bool, report: Report) -> dict[str, Any]:
    """The verl parquet row of a checked example."""
    images = (
        [{"bytes": p.read_bytes()} for p in example.images]
        if embed_images
        else [str(p.resolve()) for p in example.images]
    )
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


def check(example: Example, number: int) -> None:
    """Raise :class:`RowError` for an example that cannot be trained on."""
    if not example.question.strip():
        raise RowError(number, "question", "empty")
    if not example.labels:
        raise RowError(number, "label", "no diagnosis label")
    for image in example.images:
        if not image.is_file():
            raise RowError(number, "image", f"{image} does not exist")


def balanced(rows: list[dict], seed: int, group_attributes: Sequence[str]) -> list[dict]:
    """Oversample every labelled (data source, group) to its data source's largest group (the resampling
    baseline, GRPO+RS); UNK rows are kept once. Deterministic for a seed."""
    import random

    by_group: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        key = (row["data_source"], group_key(row["extra_info"], group_attributes))
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
    balance: bool = False,
) -> Report:
    """Check, split and write ``train.parquet`` / ``val.parquet`` under ``output``; with ``balance`` also
    ``train_balanced.parquet`` (see :func:`balanced`)."""
    import pandas as pd
    from tqdm import tqdm

    if on_error not in ("skip", "stop"):
        raise ValueError(f"on_error={on_error!r}: expected 'skip' or 'stop'")
    rows: dict[str, list[dict]] = {"train": [], "val": []}
    for number, item in enumerate(tqdm(examples, total=total, desc="preparing", unit="row"), start=1):
        try:
            if isinstance(item, RowError):
                raise item
            check(item, number)
            split = "val" if in_validation(item, val_fraction, seed) else "train"
            row = to_row(item, len(rows[split]), split, embed_images, report)
        except (RowError, OSError) as error:
            if on_error == "stop":
                raise
            report.skipped.append(str(error))
            continue
        rows[split].append(row)
        report.written[split] += 1
        report.groups[(item.data_source, group_key(row["extra_info"], group_attributes))] += 1
    output.mkdir(parents=True, exist_ok=True)
    text_only = not any(row["images"] for split_rows in rows.values() for row in split_rows)
    if balance:
        rows["train_balanced"] = balanced(rows["train"], seed, group_attributes)
        report.written["train_balanced"] = len(rows["train_balanced"])
    for split, split_rows in rows.items():
        if split_rows:
            frame = pd.DataFrame(split_rows)
            frame.drop(columns=["images"] if text_only else []).to_parquet(output / f"{split}.parquet", index=False)
    return report


def write_summary(report: Report, output: Path, threshold: int) -> str:
    """Write ``summary.json`` and return a printable summary."""
    summary = report.as_dict(threshold)
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    lines = [f"written: {dict(report.written)}; skipped rows: {len(report.skipped)}"]
    lines += [f"  skipped {message}" for message in report.skipped[:20]]
    if len(report.skipped) > 20:
        lines.append(f"  ... and {len(report.skipped) - 20} more in summary.json")
    if report.unusable_demographics:
        lines.append(
            "unusable demographic values (kept as unknown): "
            + ", ".join(f"{a} {r}: {n}" for (a, r), n in sorted(report.unusable_demographics.items()))
        )
    lines.append("prompts per (data source, group):")
    for (source, group), count in sorted(report.groups.items()):
        flag = f"   <-- below {threshold}" if count < threshold else ""
        lines.append(f"  {source:<20} {group:<12} {count:>8}{flag}")
    return "\n".join(lines)
