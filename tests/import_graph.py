"""Reading a package's imports from its source, for the tests that pin its import layers."""

from __future__ import annotations

import ast
from pathlib import Path


def package_modules(package: str, folder: Path) -> dict[str, ast.Module]:
    """Each module of the package (not ``__init__``), parsed, by its dotted name."""
    return {
        f"{package}.{path.stem}": ast.parse(path.read_text(), filename=str(path))
        for path in sorted(folder.glob("*.py"))
        if path.stem != "__init__"
    }


def imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The module names one import statement names."""
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return [alias.name for alias in node.names]


def function_imports(modules: dict[str, ast.Module]) -> set[tuple[str, str]]:
    """``(module, imported)`` for every ``loopwise`` import inside a function."""
    return {
        (module, name)
        for module, tree in modules.items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(node)
        if isinstance(inner, (ast.Import, ast.ImportFrom))
        for name in imported(inner)
        if name.startswith("loopwise")
    }


def assert_acyclic(graph: dict[str, set[str]]) -> None:
    """Fails naming the first import cycle found in ``graph`` (module -> modules it imports)."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, f"import cycle: {' -> '.join([*path, module])}"
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in graph:
        visit(module, [])
