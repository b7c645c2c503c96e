# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""``verl-fair discover``: offline groups from per-sample feature vectors."""

from __future__ import annotations

import argparse
import sys

from verl_fair.cli.args import at_least


def run(args: argparse.Namespace) -> int:
    """Cluster per-sample feature vectors (e.g. image embeddings) into extra_info.fair_group, per data source."""
    from pathlib import Path

    from verl_fair.groups.discover import discover as run

    try:
        report = run(
            Path(args.input),
            Path(args.output),
            args.feature_column,
            k=args.k,
            k_max=args.k_max,
            seed=args.seed,
            prefix=args.prefix,
            data_source_key=args.data_source_key,
            attributes=args.group_attributes,
            overwrite=args.overwrite,
        )
    except (ValueError, OSError) as error:
        print(f"verl-fair discover: {error}", file=sys.stderr)
        return 2
    for source, entry in report["data_sources"].items():
        alignment = f"; against labels ARI {entry['ari']:.3f}, NMI {entry['nmi']:.3f}" if "ari" in entry else ""
        print(f"{source}: {entry['clustered']}/{entry['rows']} rows in {entry['sizes']}{alignment}")
    if report["rows_without_features"]:
        print(f"{report['rows_without_features']} rows had no usable feature vector and stay UNK")
    return 0


def add_parser(commands) -> None:
    found = commands.add_parser("discover", help=run.__doc__)
    found.add_argument("input", help="a verl parquet file with a feature column")
    found.add_argument("--output", required=True, help="the parquet to write (with extra_info.fair_group)")
    found.add_argument("--feature-column", required=True, help="column holding one vector per row")
    found.add_argument("--k", type=at_least(1), default=None, help="clusters per data source (default: elbow rule)")
    found.add_argument("--k-max", type=at_least(1), default=8, help="largest k the elbow rule may choose")
    found.add_argument("--seed", type=int, default=0)
    found.add_argument("--prefix", default="cluster", help="group names are <prefix><id>")
    found.add_argument("--data-source-key", default="data_source")
    found.add_argument(
        "--group-attributes",
        nargs="+",
        default=["sex", "age"],
        help="labels to measure the clusters against (ARI, NMI) when rows have them",
    )
    found.add_argument("--overwrite", action="store_true", help="replace existing extra_info.fair_group values")
    found.set_defaults(run=run)
