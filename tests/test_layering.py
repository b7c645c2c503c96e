"""The pure math stays apart from verl: ``algorithm/``, ``groups/`` and ``normalise/`` import no verl glue."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "verl_fair"
PURE = ("algorithm", "groups", "normalise")
FORBIDDEN = ("verl", "ray", "transfer_queue", "verl_fair.integration", "verl_fair.cpu", "verl_fair.patches")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_pure_packages_import_nothing_from_verl_ray_or_the_glue():
    offending = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for folder in PURE
        for path in (PACKAGE / folder).rglob("*.py")
        for name in _imports(path)
        if _forbidden(name)
    }
    assert not offending


PROBE = """
import sys
import verl_fair.algorithm.core, verl_fair.groups.discover, verl_fair.normalise.diagnosis, verl_fair.config
print(sorted({m.split(".")[0] for m in sys.modules} & {"verl", "ray", "transfer_queue"}),
      sorted(m for m in sys.modules if m.startswith(("verl_fair.integration", "verl_fair.cpu"))))
"""


def test_the_math_loads_without_verl_or_ray_in_a_fresh_process():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[] []"
