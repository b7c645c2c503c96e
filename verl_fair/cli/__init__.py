# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The ``verl-fair`` command line: ``doctor``, ``prepare``, ``discover``, ``report``, ``config-dir`` and
``cpu-overrides``, one module per command."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from verl_fair.cli import discover, doctor, prepare, report
from verl_fair.cpu import ROLLOUTS


def config_dir(args: argparse.Namespace) -> int:
    """Print the folder of the shipped YAML configurations (for Hydra's --config-path)."""
    from verl_fair.configs import folder as configs_folder

    print(configs_folder())
    return 0


def cpu_overrides(args: argparse.Namespace) -> int:
    """Print the Hydra overrides that run verl on the host (with VERL_PLATFORM=cpu), one per line."""
    from verl_fair import cpu

    print("\n".join(cpu.overrides(args.rollout)))
    if args.rollout == "vllm":
        from verl_fair.cpu import vllm_rollout

        kv_cache = vllm_rollout.rollout_env()[vllm_rollout.KV_CACHE_ENV]
        print(
            f"# vLLM's KV cache: {kv_cache} GiB ({vllm_rollout.KV_CACHE_ENV}, which the CPU platform passes to verl's "
            f"vLLM server); verl must see vLLM: {vllm_rollout.visibility()[1]}",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verl-fair", description="Fairness-aware RL for verl.")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (doctor, prepare, report, discover):
        module.add_parser(commands)
    commands.add_parser("config-dir", help=config_dir.__doc__).set_defaults(run=config_dir)
    overrides = commands.add_parser("cpu-overrides", help=cpu_overrides.__doc__)
    overrides.add_argument(
        "--rollout", choices=ROLLOUTS, default=ROLLOUTS[0], help="the CPU backend's rollout or verl's vLLM"
    )
    overrides.set_defaults(run=cpu_overrides)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():  # restores the default display when the command returns
        warnings.showwarning = show_warning
        return args.run(args)


def show_warning(message, category: type[Warning], filename: str, lineno: int, file=None, line=None) -> None:
    """A Python warning (numpy overflow, Pillow's DecompressionBombWarning, ...) as one line, without source."""
    text = " ".join(str(message).split())
    print(f"{Path(filename).name}:{lineno}: {category.__name__}: {text}", file=file or sys.stderr)
