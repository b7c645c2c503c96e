# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Packaging and repository tooling: the package list, the wheel installed beside verl, the pre-commit hooks."""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SHIPPED = [  # what a run on a cluster loads from the installed package, not from a checkout
    "verl_fair/configs/fair_grpo_trainer.yaml",
    "verl_fair/configs/fair_grpo.yaml",
    "verl_fair/reward_fns/clinical_diagnosis.py",
]


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300, **kwargs)


def _copy_worktree(target: Path) -> Path:
    """The checkout's files as a clone would have them: tracked and new, never ignored build output."""
    listed = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, check=True)
    for name in listed.stdout.splitlines():
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def test_every_python_folder_is_a_listed_package():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "verl_fair").rglob("__init__.py")}
    assert found | {"verl_fair.reward_fns"} == listed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `make wheel` builds, built from a copy so that no stale build/ folder can leak into it."""
    source = _copy_worktree(tmp_path_factory.mktemp("source"))
    dist = tmp_path_factory.mktemp("dist")
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, source])
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = dist.glob("verl_fair-*.whl")
    return found


def test_the_wheel_ships_configs_reward_function_entry_points_and_license(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert set(SHIPPED) <= set(names)
    dist_info = f"verl_fair-{PYPROJECT['project']['version']}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "[verl.plugins]\nverl_fair = verl_fair.plugin\n" in entry_points
    assert not [n for n in names if n.startswith(("tests/", "recipes/", "benchmarks/"))]


FRESH_CHECK = """
import importlib.metadata as md, json
from importlib import resources
import verl_fair, verl
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
from verl_fair.reward_fns.clinical_diagnosis import compute_score
estimator = ADV_ESTIMATOR_REGISTRY.get("fair_grpo")
print(json.dumps({
    "verl_fair": verl_fair.__file__,
    "verl": verl.__file__,
    "distribution": str(md.distribution("verl-fair").locate_file("")),
    "direct_url": json.loads(md.distribution("verl-fair").read_text("direct_url.json")),
    "estimator": estimator and estimator.__code__.co_filename,
    "reward": compute_score.__code__.co_filename,
    "configs": sorted(p.name for p in (resources.files("verl_fair") / "configs").iterdir()),
}))
"""


def test_the_wheel_installs_beside_verl_and_registers_fair_grpo(wheel, tmp_path):
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", venv]).returncode == 0
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # verl, torch and the rest come from this environment's site-packages; its editable verl_fair does not,
    # because a folder named in a .pth file is added without running the .pth files inside it
    (site / "beside_verl.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel]
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VERL_USE_EXTERNAL_PLUGINS")}
    fresh = _run([python, "-c", FRESH_CHECK], cwd=tmp_path, env=env)  # cwd: the checkout is not on sys.path
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    found = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert Path(found["verl_fair"]).is_relative_to(site) and Path(found["distribution"]) == site
    assert "archive_info" in found["direct_url"] and found["direct_url"]["url"].endswith(wheel.name)
    assert not Path(found["verl"]).is_relative_to(site)  # verl is the one already installed
    assert found["estimator"] and Path(found["estimator"]).is_relative_to(site / "verl_fair")
    assert Path(found["reward"]) == site / "verl_fair" / "reward_fns" / "clinical_diagnosis.py"
    assert {"fair_grpo.yaml", "fair_grpo_trainer.yaml"} <= set(found["configs"])
    config_dir = _run([venv / "bin" / "verl-fair", "config-dir"], cwd=tmp_path, env=env)
    assert config_dir.stdout.strip() == str(site / "verl_fair" / "configs"), config_dir.stderr[-3000:]


def _make_lint_folders() -> set[str]:
    (line,) = re.findall(r"ruff check (.+)", (ROOT / "Makefile").read_text())
    return set(line.split())


def test_pre_commit_hooks_are_local_and_run_what_make_lint_runs():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]  # CI cannot reach GitHub
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    (ruff,) = [r for r in PYPROJECT["project"]["optional-dependencies"]["test"] if r.startswith("ruff")]
    for name in ("ruff-check", "ruff-format"):
        assert hooks[name]["additional_dependencies"] == [ruff]
        assert (
            hooks[name]["files"] == "^(" + "|".join(sorted(_make_lint_folders(), key=hooks[name]["files"].find)) + ")/"
        )
    assert hooks["license-header"]["entry"] == "python tests/test_license_headers.py"
    names = ("a.py", "recipes/run.sh", ".ci/run", "config.yaml")  # the hook sees what `make headers` fixes
    assert [n for n in names if re.search(hooks["license-header"]["files"], n)] == ["a.py", "recipes/run.sh"]


def test_pre_commit_stops_a_lint_error_a_format_error_and_a_missing_header(tmp_path):
    for name in (".pre-commit-config.yaml", "pyproject.toml", "tests/test_license_headers.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    header = "# Copyright 2026 verl-fair developers\n# SPDX-License-Identifier: Apache-2.0\n"
    files = {
        "verl_fair/clean.py": header + "import os\n\nprint(os.sep)\n",
        "verl_fair/unused.py": header + "import os\n",
        "verl_fair/unformatted.py": header + "x=[1,2]\n",
        "recipes/run_tiny_fsdp.sh": "#!/usr/bin/env bash\necho hi\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert _run(["git", "init", "-q"], cwd=tmp_path).returncode == 0
    assert _run(["git", "add", "."], cwd=tmp_path).returncode == 0

    failed = _run([sys.executable, "-m", "pre_commit", "run", "--all-files"], cwd=tmp_path)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "F401" in failed.stdout and "verl_fair/unused.py:3:8" in failed.stdout
    assert "File would be reformatted\n --> verl_fair/unformatted.py" in failed.stdout
    assert "recipes/run_tiny_fsdp.sh: no license header" in failed.stdout
    assert "clean.py" not in failed.stdout
    assert all((tmp_path / name).read_text() == text for name, text in files.items()), "a hook rewrote a file"

    (tmp_path / "verl_fair/unused.py").write_text(header + "import os\n\nprint(os.sep)\n")
    (tmp_path / "verl_fair/unformatted.py").write_text(header + "x = [1, 2]\n")
    fixed = _run([sys.executable, "tests/test_license_headers.py", "--fix", "recipes/run_tiny_fsdp.sh"], cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    passed = _run([sys.executable, "-m", "pre_commit", "run", "--all-files"], cwd=tmp_path)
    assert passed.returncode == 0, passed.stdout + passed.stderr
