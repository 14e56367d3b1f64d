"""``loopwise.data`` imports in layers: no cycle between its modules, none hidden in a function."""

from __future__ import annotations

import ast
from pathlib import Path

import loopwise.data

PACKAGE = Path(loopwise.data.__file__).parent


def _modules() -> dict[str, ast.Module]:
    return {
        f"loopwise.data.{path.stem}": ast.parse(path.read_text(), filename=str(path))
        for path in sorted(PACKAGE.glob("*.py"))
        if path.stem != "__init__"
    }


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return [alias.name for alias in node.names]


def test_no_loopwise_import_inside_a_function() -> None:
    """Imports inside functions are left for optional heavy libraries only, not to dodge cycles."""
    hidden = [
        f"{module}:{inner.lineno} imports {name}"
        for module, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(node)
        if isinstance(inner, (ast.Import, ast.ImportFrom))
        for name in _imported(inner)
        if name.startswith("loopwise")
    ]
    assert hidden == []


def test_modules_import_each_other_without_a_cycle() -> None:
    modules = _modules()
    graph = {
        module: {
            name
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for name in _imported(node)
            if name in modules
        }
        for module, tree in modules.items()
    }
    assert graph["loopwise.data.datasets"]  # the graph is really read: datasets builds on others
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, f"import cycle: {' -> '.join([*path, module])}"
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*path, module])
        done.add(module)

    for module in graph:
        visit(module, [])
