# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""``verl-fair doctor``: the installation in a fresh process, then what a run with these overrides will do."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata

from verl_fair.configs import folder as configs_folder
from verl_fair.cpu import vllm_rollout

SUPPORTED_VERL = ("0.9.1", "0.10")  # tested in CI with 0.9.1; README's "Which verl" lists the others
V1_ONLY_IMPORTS = ("transfer_queue", "verl_fair.integration.sampler")

# Runs in a fresh interpreter, as verl's Ray workers start: import verl, then what a run loads.
PROBE = """
import importlib, importlib.util, json, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
import verl
from verl_fair.patches import v1_trainer_available, wrap_problems
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY as registry
fn = registry.get("fair_grpo")
imports = {}
for name in ("ray", "transfer_queue", "verl_fair.integration.sampler", "verl_fair.integration.checkpoint"):
    try:
        importlib.import_module(name)
        imports[name] = None
    except Exception as error:
        imports[name] = repr(error)
with open(verl.__file__) as source:
    entry_points = "verl.plugins" in source.read()
try:
    platforms = importlib.util.find_spec("verl.plugin.platform") is not None
except ModuleNotFoundError:
    platforms = False
print(json.dumps({"verl": verl.__version__, "registered": fn is not None, "module": getattr(fn, "__module__", None),
                  "imports": imports, "wraps": wrap_problems(), "v1": v1_trainer_available(),
                  "entry_points": entry_points, "platforms": platforms}))
"""

# Connects to the GCS at sys.argv[1] as ``ray.init`` does first, once.
GCS_HANDSHAKE = "import sys; from ray._raylet import GcsClient; GcsClient(address=sys.argv[1])"


def check(config_path: str | None, config_name: str, overrides: list[str], cluster: str | None = None) -> int:
    """Check the installation in a fresh process, then what a run with these overrides will do; with
    ``cluster``, also every node of that running Ray cluster."""

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
    for line in verl_support(found["verl"], found["v1"], found["entry_points"], found["platforms"]):
        print(line)
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
        if error is not None and name in V1_ONLY_IMPORTS and not found["v1"]:
            print(f"[--] import {name} (the v1 trainer's only): {error}")
            continue
        ok &= error is None
        print(f"[ok] import {name}" if error is None else f"[FAIL] import {name}: {error}")
    if found["wraps"]:
        ok = False
        print(
            "[FAIL] this verl moved names verl-fair wraps, so FairGRPO would miss a trainer step; use the verl "
            f"versions >={low},<{high}:\n  " + "\n  ".join(found["wraps"])
        )
    else:
        trainers = "both trainers" if found["v1"] else "RayPPOTrainer"
        print(f"[ok] verl-fair's wraps reach every caller in this verl ({trainers})")
    seen, why = vllm_rollout.visibility()
    print(f"[{'ok' if seen else '--'}] {why}")  # needed only by actor_rollout_ref.rollout.name=vllm
    if not ok:
        return 1
    code = _plan(config_path, config_name, overrides)
    return code or (check_cluster(cluster) if cluster else 0)


def verl_support(version: str, v1: bool, entry_points: bool, platforms: bool = True) -> list[str]:
    """What verl-fair can and cannot do on this verl, one doctor line each: the version against the tested
    range, which trainers run FairGRPO, how the plugin is loaded, and whether the CPU backend can run."""
    from packaging.version import Version

    low, high = SUPPORTED_VERL
    trainers = "RayPPOTrainer (trainer.use_v1=False) and the v1 trainer" if v1 else "RayPPOTrainer only"
    lines = [
        f"[ok] verl {version}: FairGRPO on {trainers}"
        if Version(low) <= Version(Version(version).base_version) < Version(high)  # 0.10.0.dev is 0.10
        else f"[--] verl {version} is outside the range tested in CI (>={low},<{high}): FairGRPO on {trainers}; "
        "the wraps check below says whether verl-fair still reaches it"
    ]
    if not v1:
        lines.append(
            f"[--] verl {version} has no v1 trainer: labels, fair/* metrics and the checkpointed state come through "
            "RayPPOTrainer; the metadata sampler (trainer.v1.sampler) and FairStateCallback "
            "(trainer.checkpoint_callback_class) go unused. Run with trainer.use_v1=False where verl's config has "
            "the key (verl 0.8 has none and always runs RayPPOTrainer)"
        )
    if not entry_points:
        lines.append(
            f"[--] verl {version} loads no verl.plugins entry points: set VERL_USE_EXTERNAL_MODULES=verl_fair.plugin "
            + ("(add ,verl_fair.cpu.plugin for the CPU backend) " if platforms else "")
            + "for the driver and in ray_kwargs.ray_init.runtime_env.env_vars"
        )
    if not platforms:
        lines.append(
            f"[--] verl {version} has no device-platform plugins (verl.plugin.platform): the CPU backend "
            "(verl_fair.cpu, the demos) cannot run on it; FairGRPO runs on its accelerators as usual"
        )
    return lines


def node_report() -> dict:
    """What one node offers a run: verl's version, the verl.plugins entry points of verl-fair, whether
    ``import verl`` registered fair_grpo, and the modules a run imports. Runs inside a Ray task."""
    import importlib
    import socket

    entry_points = sorted(ep.name for ep in metadata.entry_points(group="verl.plugins") if "verl_fair" in ep.value)
    report = {"host": socket.gethostname(), "entry_points": entry_points, "imports": {}}
    try:
        import verl
        from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

        report["verl"], report["registered"] = verl.__version__, "fair_grpo" in ADV_ESTIMATOR_REGISTRY
    except Exception as error:
        report["verl"], report["registered"] = None, False
        report["imports"]["verl"] = repr(error)
    for name in ("verl_fair", "verl_fair.integration.sampler", "transfer_queue"):
        try:
            importlib.import_module(name)
        except Exception as error:
            report["imports"][name] = repr(error)
    return report


def node_problems(report: dict) -> list[str]:
    """What stops a run on a node with this :func:`node_report`, each with its fix."""
    from packaging.version import Version

    low, high = SUPPORTED_VERL
    problems = [f"cannot import {name}: {error}" for name, error in report["imports"].items()]
    if not report["entry_points"]:
        problems.append("no verl.plugins entry point of verl-fair: pip-install verl-fair on this node")
    if report["verl"] and not Version(low) <= Version(report["verl"]) < Version(high):
        problems.append(f"verl {report['verl']} is outside the supported range >={low},<{high}")
    if report["verl"] and not report["registered"]:
        problems.append("fair_grpo is not registered after `import verl`")
    return problems


def check_cluster(address: str, timeout: float = 120.0) -> int:
    """Run :func:`node_report` on every alive node of the Ray cluster at ``address`` and name the nodes
    that cannot run FairGRPO. A node whose workers cannot even load this module is named with the error."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    try:
        _reachable(address)
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        print(
            f"[FAIL] no Ray cluster reachable at {address!r}: {_first_line(error)}; start one (ray start --head) "
            "or give its address: --cluster <head-ip>:6379"
        )
        return 1
    try:
        nodes = [n for n in ray.nodes() if n["Alive"]]
        probe = ray.remote(num_cpus=0, max_retries=0)(node_report)
        pending = {
            node["NodeID"]: probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote()
            for node in nodes
        }
        failed = 0
        print(f"\nRay cluster at {address}: {len(nodes)} alive node(s)")
        for node in nodes:
            name = f"node {node['NodeManagerAddress']} ({node['NodeID'][:12]})"
            try:
                problems = node_problems(ray.get(pending[node["NodeID"]], timeout=timeout))
            except Exception as error:  # the task could not run there: its worker could not load verl_fair
                problems = [f"a Ray worker there could not run the check: {_first_line(error)}"]
            failed += bool(problems)
            print(f"[ok] {name}" if not problems else f"[FAIL] {name}: " + "; ".join(problems))
    finally:
        ray.shutdown()
    if failed:
        print(f"[FAIL] {failed} of {len(nodes)} node(s) cannot run FairGRPO: install verl-fair there (same version)")
    return 1 if failed else 0


def _reachable(address: str, timeout: float = 5.0) -> None:
    """ConnectionError within seconds when ``host:port`` does not answer, or answers but not as a Ray head (its
    GCS): ``ray.init`` would retry for 20 s or hang, printing a raw warning a second. The handshake runs in a
    child process, whose Ray logging stays out of the output."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" or a name Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConnectionError(f"{host}:{port} does not answer ({error})") from None
    if address.startswith("ray://"):
        return  # a Ray client server, which speaks no GCS
    try:
        handshake = subprocess.run(
            [sys.executable, "-c", GCS_HANDSHAKE, f"{host}:{port}"], capture_output=True, text=True, timeout=2 * timeout
        )  # the child's start and `import ray` take about a second of it
    except subprocess.TimeoutExpired:
        raise ConnectionError(f"{host}:{port} answers, but no Ray head replied within {2 * timeout:g} s") from None
    if handshake.returncode != 0:
        raise ConnectionError(f"{host}:{port} answers, but not as a Ray head ({_first_line(handshake.stderr)})")


def _first_line(error: Exception | str) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if "Error:" in line]
    return (named or lines or [repr(error)])[-1]


def _plan(config_path: str | None, config_name: str, overrides: list[str]) -> int:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationResolutionError

    from verl_fair.integration.preflight import plan_run

    if config_path is None:
        config_path = str(configs_folder()) if config_name != "ppo_trainer" else _verl_config_dir()
    try:
        with initialize_config_dir(config_dir=os.path.abspath(config_path), version_base=None):
            config = compose(config_name=config_name, overrides=overrides)
    except Exception as error:  # Hydra's errors name the bad override
        print(f"[FAIL] composing {config_name} with {overrides}: {error}")
        return 1
    try:
        OmegaConf.to_container(config, resolve=True)  # main_ppo resolves the whole config first
    except InterpolationResolutionError as error:
        print(f"[FAIL] {_unresolved(config, config_name, overrides, error)}")
        return 1
    plan = plan_run(config)
    print(f"\nA run of {config_name} {' '.join(overrides)}:")
    for fact in plan.facts:
        print(f"  - {fact}")
    for problem in plan.problems:
        print(f"[FAIL] {problem}")
    return 1 if plan.problems else 0


def _unresolved(config, config_name: str, overrides: list[str], error: Exception) -> str:
    """Which override (or key of ``config_name``) holds an interpolation that cannot be resolved, and the fix."""
    from omegaconf import OmegaConf

    key = str(error.full_key)
    given = next((o for o in overrides if o.lstrip("+~").partition("=")[0] == key), None)
    raw = OmegaConf.to_container(config, resolve=False)
    for part in re.findall(r"[^.\[\]]+", key):
        raw = raw[int(part)] if isinstance(raw, list) else raw[part]
    where = f"the override {given!r}" if given else f"{key} in {config_name}"
    reason = str(error.msg).splitlines()[0].removeprefix("KeyError raised while resolving interpolation: ").strip('"')
    env = "oc.env:" in str(raw)
    fix = (
        "set that environment variable, or give a default: ${oc.env:NAME,default}" if env else "name a key that exists"
    )
    return f"{where}: {raw} cannot be resolved ({reason}). Fix: {fix}; or give {key} a value itself."


def _verl_config_dir() -> str:
    import verl

    return os.path.join(verl.__path__[0], "trainer", "config")


def add_parser(commands) -> None:
    parser = commands.add_parser("doctor", help=check.__doc__)
    parser.add_argument("--config-path", default=None, help="folder of the run's config (default: the shipped one)")
    parser.add_argument("--config-name", default="fair_grpo_trainer", help="ppo_trainer for verl's own config")
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        nargs="?",
        const=os.environ.get("RAY_ADDRESS", "auto"),
        help="also check every node of this running Ray cluster (default: $RAY_ADDRESS, else 'auto')",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as given to verl.trainer.main_ppo")
    parser.set_defaults(run=lambda args: check(args.config_path, args.config_name, args.overrides, args.cluster))
