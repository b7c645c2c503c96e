"""``verl-fair convert-state``: a verl-fair 0.1 state pickle to the current state file, knowingly."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    """Convert a verl-fair 0.1 FairGRPO state (verl_fair_state.pkl) into the current format, beside it."""
    from pathlib import Path

    from verl_fair.algorithm.state import StateError
    from verl_fair.integration.checkpoint import convert_pickle_state

    try:
        written = convert_pickle_state(Path(args.path), trust_pickle=args.trust_pickle)
    except (PermissionError, StateError, OSError, KeyError, ValueError) as error:
        print(f"verl-fair convert-state: {error}", file=sys.stderr)
        return 2
    print(f"wrote {written}")
    return 0


def add_parser(commands) -> None:
    convert = commands.add_parser("convert-state", help=run.__doc__)
    convert.add_argument("path", help="a verl_fair_state.pkl in a global_step_N checkpoint folder")
    convert.add_argument(
        "--trust-pickle", action="store_true", help="load the pickle (it can run code: only for a file you wrote)"
    )
    convert.set_defaults(run=run)
