# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""``verl-fair prepare``: clinical datasets to verl parquet files with demographics in extra_info."""

from __future__ import annotations

import argparse
import sys

from verl_fair.cli.args import pairs
from verl_fair.groups.labels import AGE_BINS


def run(args: argparse.Namespace) -> int:
    """Convert a clinical dataset into verl parquet files (train, val) with demographics in extra_info."""
    from pathlib import Path

    from verl_fair.data import prepare as data

    report = data.Report()
    source = Path(args.input)
    image_roots = [Path(r) for r in args.image_root or []]
    if args.format == "jsonl":
        examples = data.read_jsonl(source, args.attribute or [], image_roots)
        inputs, image_roots = [source], [source.parent, *image_roots]
    else:
        spec = data.TableSpec(
            data_source=args.data_source,
            data_source_column=args.data_source_column,
            label_column=args.label_column,
            label_columns=args.label_columns or (),
            positive_values=args.positive_values,
            label_map=pairs(args.label_map, "--label-map"),
            image_column=args.image_column,
            image_template=args.image_template,
            image_roots=image_roots,
            image_suffix=args.image_suffix,
            sex_column=args.sex_column,
            age_column=args.age_column,
            attribute_columns=pairs(args.attribute_column, "--attribute-column"),
            question=args.question,
            id_column=args.id_column,
            joins=[_join(item) for item in args.join or []],
        )
        examples = data.read_table(source, spec)
        inputs, image_roots = [source, *(table for table, _, _ in spec.joins)], spec.roots(source)
    try:
        data.prepare(
            examples,
            Path(args.output),
            val_fraction=args.val_fraction,
            seed=args.seed,
            embed_images=args.images == "embed",
            on_error=args.on_error,
            report=report,
            balance=args.balance,
            group_attributes=args.group_attributes,
            age_bins=args.age_bins,
            overwrite=args.overwrite,
            min_group_size=args.min_group_size,
            inputs=inputs,
            image_roots=image_roots,
        )
    except (ValueError, OSError) as error:
        print(f"verl-fair prepare: {error}", file=sys.stderr)
        return 2
    print(data.summary_text(report, args.min_group_size))
    return 0


class AgeBins(argparse.Action):
    """``--age-bins``: checked as the estimator checks ``algorithm.fair_grpo.age_bins``, at parse time."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from verl_fair.config import CORE_KNOBS
        from verl_fair.settings import Invalid

        check = next(knob.check for knob in CORE_KNOBS if knob.key == "age_bins")
        try:
            setattr(namespace, self.dest, check(values))
        except Invalid as error:
            parser.error(f"{option_string} {' '.join(f'{v:g}' for v in values)}: expected {error}")


def _join(item: str) -> tuple:
    from pathlib import Path

    path, sep, columns = item.rpartition(":")
    here, _, there = columns.partition("=")
    if not sep or not path or not here:
        raise SystemExit(f"--join {item!r}: expected FILE:COLUMN or FILE:COLUMN_HERE=COLUMN_THERE")
    return Path(path), here, there or here


def add_parser(commands) -> None:
    parser = commands.add_parser("prepare", help=run.__doc__)
    parser.add_argument(
        "format",
        choices=["jsonl", "table"],
        help="jsonl: the FairGRPO authors' layout; table: a .csv, .tsv, .jsonl, .json, .parquet or .xlsx (with "
        "openpyxl) table, read by its suffix",
    )
    parser.add_argument("input", help="the authors' .jsonl file, or the table")
    parser.add_argument(
        "--output",
        required=True,
        help="folder for train.parquet, val.parquet, summary.json; must be new or empty (see --overwrite)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --output folder whole (image folders this run reads from inside it are kept)",
    )
    parser.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of ids in val.parquet, in [0, 1) (default 0.1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the deterministic split")
    parser.add_argument(
        "--images",
        choices=["embed", "path"],
        default="embed",
        help="embed image bytes in the parquet, or keep absolute paths",
    )
    parser.add_argument(
        "--on-error",
        choices=["skip", "stop"],
        default="skip",
        help="skip bad rows (each reported, counted in summary.json) or stop at the first",
    )
    parser.add_argument("--min-group-size", type=int, default=30, help="flag (data source, group)s below this")
    parser.add_argument(
        "--balance",
        action="store_true",
        help="also write train_balanced.parquet: every group oversampled to its data source's largest",
    )
    parser.add_argument(
        "--image-root",
        nargs="+",
        help="folders searched in order for each image, which must lie inside them (default: the input's folder; "
        "jsonl: its folder, then these)",
    )
    parser.add_argument("--attribute", action="append", help="jsonl: another demographic key of the demo string")
    parser.add_argument(
        "--group-attributes",
        nargs="+",
        default=["sex", "age"],
        help="attributes whose combination is a group (for the group counts and --balance)",
    )
    parser.add_argument(
        "--age-bins",
        nargs="+",
        type=float,
        action=AgeBins,
        default=AGE_BINS,
        help="upper edges of the age bins A1.. for the group counts, checked as the estimator's "
        "algorithm.fair_grpo.age_bins",
    )
    table = parser.add_argument_group("table")
    table.add_argument("--data-source", help="the data source (domain) of every row")
    table.add_argument("--data-source-column")
    table.add_argument(
        "--label-column",
        help="column holding the diagnosis (several labels separated by ',', ';' or '|'; never split on 'and'); "
        "NaN, None, n/a and other missing markers are no label (the row is skipped)",
    )
    table.add_argument("--label-columns", nargs="+", help="one-hot columns; a row's labels are those set positive")
    table.add_argument("--positive-values", nargs="+", default=["1", "1.0", "true", "yes"])
    table.add_argument(
        "--label-map",
        action="append",
        help="CODE=NAME, e.g. mel=melanoma (repeatable); codes match labels ignoring case and punctuation, as the "
        "reward compares labels (MEL, mel and Mel. are one code)",
    )
    table.add_argument("--image-column")
    table.add_argument(
        "--image-template", help="image path from columns, e.g. 'ct/{PatientNumber:0>3}/{SliceNumber}.jpg'"
    )
    table.add_argument("--image-suffix", default="", help="appended to the image column, e.g. .jpg")
    table.add_argument("--sex-column")
    table.add_argument("--age-column")
    table.add_argument("--attribute-column", action="append", help="NAME=COLUMN, e.g. race=Race (repeatable)")
    table.add_argument(
        "--question",
        default="What is the diagnosis?",
        help="question text; {column} placeholders are filled from the row",
    )
    table.add_argument("--id-column", help="stable row id for the split (default: the image path)")
    table.add_argument(
        "--join",
        action="append",
        help="FILE:COLUMN or FILE:COLUMN_HERE=COLUMN_THERE, a left join (e.g. patient demographics); FILE needs "
        "one row per key (identical rows count once)",
    )
    parser.set_defaults(run=run)
