"""The ``verl-fair`` command line: ``doctor`` and ``config-dir``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib import metadata, resources

PROBE = """
import json, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
import verl
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY as registry
fn = registry.get("fair_grpo")
print(json.dumps({"verl": verl.__version__, "registered": fn is not None,
                  "module": getattr(fn, "__module__", None)}))
"""


def doctor() -> int:
    """Check, in a fresh process as verl's workers start, that ``fair_grpo`` gets registered."""
    entry_points = [ep for ep in metadata.entry_points(group="verl.plugins") if ep.value.startswith("verl_fair")]
    print(f"verl-fair {metadata.version('verl-fair')}; entry point: "
          f"{entry_points[0].name} = {entry_points[0].value}" if entry_points else
          "verl-fair entry point missing: reinstall with `pip install verl-fair` (not just PYTHONPATH).")
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    if probe.returncode != 0:
        print("`import verl` failed in a fresh process:\n" + probe.stderr[-3000:])
        return 1
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    print(f"verl {found['verl']}: fair_grpo {'registered by ' + found['module'] if found['registered'] else 'NOT registered'}")
    if not found["registered"]:
        failures = [line for line in probe.stderr.splitlines() if "plugin" in line.lower()]
        print("\n".join(failures[-10:]) or "No plugin error was logged; is VERL_USE_EXTERNAL_PLUGINS set to 'none'?")
        return 1
    return 0


def config_dir() -> int:
    """Print the folder of the shipped YAML configurations (for Hydra's --config-path)."""
    print(resources.files("verl_fair").joinpath("configs"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verl-fair", description="Fairness-aware RL for verl.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help=doctor.__doc__)
    commands.add_parser("config-dir", help=config_dir.__doc__)
    args = parser.parse_args(argv)
    return {"doctor": doctor, "config-dir": config_dir}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
