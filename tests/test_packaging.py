"""pyproject lists every package (the list is explicit because reward_fns/ is mapped into verl_fair)."""

from pathlib import Path

import tomllib

ROOT = Path(__file__).parents[1]


def test_every_python_folder_is_a_listed_package():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "verl_fair").rglob("__init__.py")}
    assert found | {"verl_fair.reward_fns"} == listed
