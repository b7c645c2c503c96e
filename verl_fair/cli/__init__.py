"""The ``verl-fair`` command line: ``doctor``, ``prepare``, ``discover``, ``report``, ``config-dir`` and
``cpu-overrides``, one module per command."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from verl_fair.cli import discover, doctor, prepare, report


def config_dir(args: argparse.Namespace) -> int:
    """Print the folder of the shipped YAML configurations (for Hydra's --config-path)."""
    from verl_fair.configs import folder as configs_folder

    print(configs_folder())
    return 0


def cpu_overrides(args: argparse.Namespace) -> int:
    """Print the Hydra overrides that run verl on the host (with VERL_PLATFORM=cpu), one per line."""
    from verl_fair.cpu import HYDRA_OVERRIDES

    print("\n".join(HYDRA_OVERRIDES))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verl-fair", description="Fairness-aware RL for verl.")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (doctor, prepare, report, discover):
        module.add_parser(commands)
    for name, command in (("config-dir", config_dir), ("cpu-overrides", cpu_overrides)):
        commands.add_parser(name, help=command.__doc__).set_defaults(run=command)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():  # restores the default display when the command returns
        warnings.showwarning = show_warning
        return args.run(args)


def show_warning(message, category: type[Warning], filename: str, lineno: int, file=None, line=None) -> None:
    """A Python warning (numpy overflow, Pillow's DecompressionBombWarning, ...) as one line, without source."""
    text = " ".join(str(message).split())
    print(f"{Path(filename).name}:{lineno}: {category.__name__}: {text}", file=file or sys.stderr)
