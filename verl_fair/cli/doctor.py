"""``verl-fair doctor``: the installation in a fresh process, then what a run with these overrides will do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

from verl_fair.configs import folder as configs_folder

SUPPORTED_VERL = ("0.9.1", "0.10")

# Runs in a fresh interpreter, as verl's Ray workers start: import verl, then what a run loads.
PROBE = """
import importlib, json, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
import verl
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY as registry
fn = registry.get("fair_grpo")
imports = {}
for name in ("ray", "transfer_queue", "verl_fair.integration.sampler", "verl_fair.integration.checkpoint"):
    try:
        importlib.import_module(name)
        imports[name] = None
    except Exception as error:
        imports[name] = repr(error)
print(json.dumps({"verl": verl.__version__, "registered": fn is not None,
                  "module": getattr(fn, "__module__", None), "imports": imports}))
"""


def check(config_path: str | None, config_name: str, overrides: list[str]) -> int:
    """Check the installation in a fresh process, then what a run with these overrides will do."""
    from packaging.version import Version

    ok = True
    entry_points = [ep for ep in metadata.entry_points(group="verl.plugins") if ep.value.startswith("verl_fair")]
    if entry_points:
        names = ", ".join(f"{ep.name} = {ep.value}" for ep in entry_points)
        print(f"[ok] verl-fair {metadata.version('verl-fair')}, entry points {names}")
    else:
        ok = False
        print("[FAIL] verl-fair has no verl.plugins entry point: pip-install it (PYTHONPATH is not enough).")
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    if probe.returncode != 0:
        print("[FAIL] `import verl` failed in a fresh process:\n" + probe.stderr[-3000:])
        return 1
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    low, high = SUPPORTED_VERL
    if Version(low) <= Version(found["verl"]) < Version(high):
        print(f"[ok] verl {found['verl']} (supported: >={low},<{high})")
    else:
        ok = False
        print(f"[FAIL] verl {found['verl']} is outside the supported range >={low},<{high}")
    if found["registered"]:
        print(f"[ok] fair_grpo registered by {found['module']} in a fresh process")
    else:
        ok = False
        failures = [line for line in probe.stderr.splitlines() if "plugin" in line.lower()]
        print(
            "[FAIL] fair_grpo is NOT registered after `import verl`.\n"
            + ("\n".join(failures[-10:]) or "No plugin error was logged; is VERL_USE_EXTERNAL_PLUGINS set to 'none'?")
        )
    for name, error in found["imports"].items():
        ok &= error is None
        print(f"[ok] import {name}" if error is None else f"[FAIL] import {name}: {error}")
    return _plan(config_path, config_name, overrides) if ok else 1


def _plan(config_path: str | None, config_name: str, overrides: list[str]) -> int:
    from hydra import compose, initialize_config_dir

    from verl_fair.integration.preflight import plan_run

    if config_path is None:
        config_path = str(configs_folder()) if config_name != "ppo_trainer" else _verl_config_dir()
    try:
        with initialize_config_dir(config_dir=os.path.abspath(config_path), version_base=None):
            config = compose(config_name=config_name, overrides=overrides)
    except Exception as error:  # Hydra's errors name the bad override
        print(f"[FAIL] composing {config_name} with {overrides}: {error}")
        return 1
    plan = plan_run(config)
    print(f"\nA run of {config_name} {' '.join(overrides)}:")
    for fact in plan.facts:
        print(f"  - {fact}")
    for problem in plan.problems:
        print(f"[FAIL] {problem}")
    return 1 if plan.problems else 0


def _verl_config_dir() -> str:
    import verl

    return os.path.join(verl.__path__[0], "trainer", "config")


def add_parser(commands) -> None:
    parser = commands.add_parser("doctor", help=check.__doc__)
    parser.add_argument("--config-path", default=None, help="folder of the run's config (default: the shipped one)")
    parser.add_argument("--config-name", default="fair_grpo_trainer", help="ppo_trainer for verl's own config")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as given to verl.trainer.main_ppo")
    parser.set_defaults(run=lambda args: check(args.config_path, args.config_name, args.overrides))
