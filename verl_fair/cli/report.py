# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""``verl-fair report``: fairness audits of verl validation dumps or prediction tables."""

from __future__ import annotations

import argparse
import sys

from verl_fair.cli.args import at_least, pairs

SIDES = ("BEFORE", "AFTER")


def run(args: argparse.Namespace) -> int:
    """Fairness audit of verl validation dumps or a predictions file: JSON, Markdown and PNG plots."""
    from pathlib import Path

    from verl_fair.metrics import report as audit

    output = Path(args.output)
    try:
        columns = audit.Columns(
            label=args.label_column,
            prediction=args.prediction_column,
            groups=_group_columns(args.group_column),
            data_source=args.data_source_column,
            step=args.step_column,
            synonyms=pairs(args.synonym, "--synonym"),
            positive=args.positive_label,
        )
        if args.compare and args.inputs:
            raise ValueError("give the predictions or --compare BEFORE AFTER, not both")
        audit.check_output(output)
        if args.compare:
            before, after = (
                _load_side(audit, side, Path(p), columns) for side, p in zip(SIDES, args.compare, strict=True)
            )
            delta = audit.compare(before, after, n_boot=args.bootstrap or 200, min_group_size=args.min_group_size)
            output.mkdir(parents=True, exist_ok=True)
            (output / "delta.json").write_text(audit.to_json(delta))
            (output / "delta.md").write_text(audit.compare_markdown(delta))
            for note in delta["notes"]:
                print(f"note: {note}", file=sys.stderr)
            print(f"wrote {output / 'delta.json'} and {output / 'delta.md'}")
            return 0
        if not args.inputs:
            raise ValueError("give the predictions (a dump folder or files), or --compare BEFORE AFTER")
        frame = audit.load([Path(p) for p in args.inputs], columns)
        result = audit.evaluate(
            frame, min_group_size=args.min_group_size, n_boot=args.bootstrap or None, worst_k=args.worst_k
        )
        written = audit.write(result, output)
        for note in result["notes"]:
            print(f"note: {note}", file=sys.stderr)
    except (ValueError, OSError) as error:
        print(f"verl-fair report: {error}", file=sys.stderr)
        return 2
    gaps = result["gaps"]
    print(
        f"{result['n']} predictions ({result['classes']['convention']}): equal opportunity difference "
        f"{gaps['equal_opportunity_difference']:.3f}, predictive parity difference "
        f"{gaps['predictive_parity_difference']:.3f}, PP {gaps['PP']:.2f}, EOD {gaps['EOD']:.2f}, "
        f"F1_ES {gaps['F1_ES']:.3f}"
    )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _group_columns(items: list[str] | None) -> dict[str, str]:
    """--group-column ATTRIBUTE=COLUMN pairs; an attribute given twice is refused."""
    attributes = [item.partition("=")[0] for item in items or []]
    twice = sorted({a for a in attributes if attributes.count(a) > 1})
    if twice:
        given = ", ".join(i for i in items if i.partition("=")[0] in twice)
        raise ValueError(f"--group-column {', '.join(twice)} is given twice ({given}); give each attribute once")
    return pairs(items, "--group-column")


def _load_side(audit, side: str, path, columns):
    """One side of --compare; an error names the side (and, as every load error does, the file)."""
    try:
        return audit.load([path], columns)
    except ValueError as error:
        raise ValueError(f"{side}: {error}") from None


def add_parser(commands) -> None:
    parser = commands.add_parser("report", help=run.__doc__)
    parser.add_argument("inputs", nargs="*", help="verl validation_data_dir folders or .jsonl/.csv/.parquet files")
    parser.add_argument("--output", required=True, help="folder for report.json, report.md and the plots")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="a fairness delta report instead")
    parser.add_argument("--label-column", default="gts")
    parser.add_argument("--prediction-column", default="pred")
    parser.add_argument(
        "--group-column", action="append", help="ATTRIBUTE=COLUMN (repeatable; default: every group_<attribute> column)"
    )
    parser.add_argument("--data-source-column", default="data_source")
    parser.add_argument("--step-column", default="step")
    parser.add_argument("--bootstrap", type=at_least(0), default=0, help="resamples for 95 %% intervals (0: none)")
    parser.add_argument(
        "--min-group-size", type=at_least(1), default=30, help="smaller groups are left out, with a warning"
    )
    parser.add_argument("--worst-k", type=at_least(1), default=2, help="k of the worst-k group accuracy")
    parser.add_argument(
        "--positive-label",
        help="the positive class of a binary task (default: 1, true or yes when every gold label is one of a "
        "pair 1/0, true/false, yes/no; otherwise rates are one-vs-rest per class, macro-averaged)",
    )
    parser.add_argument(
        "--synonym",
        action="append",
        help="ALIAS=NAME, as given to the reward's synonyms (the reward's defaults always apply)",
    )
    parser.set_defaults(run=run)
