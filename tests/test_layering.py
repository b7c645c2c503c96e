# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The pure math stays apart from verl: ``algorithm/``, ``groups/`` and ``normalise/`` import no verl glue."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "verl_fair"
REWARD_FNS = PACKAGE.parent / "reward_fns"  # installed as verl_fair.reward_fns
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Every verl_fair module and the verl_fair modules it imports anywhere: top level, in functions or under
    ``TYPE_CHECKING``. ``from package import name`` counts as the submodule when ``name`` is one."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    paths |= {f"verl_fair.reward_fns.{p.stem}": p for p in REWARD_FNS.glob("*.py") if p.stem != "__init__"}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                module = ".".join(p for p in (base, node.module or "") if p)
                targets.update(f"{module}.{a.name}" if f"{module}.{a.name}" in paths else module for a in node.names)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_of_verl_fair_has_no_cycles():
    graph = _import_graph()
    assert "verl_fair.config" in graph["verl_fair.algorithm.core"]
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
