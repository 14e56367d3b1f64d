"""``loopwise.data`` imports in layers: no cycle between its modules, none hidden in a function."""

from __future__ import annotations

import ast
from pathlib import Path

import loopwise.data

from ..import_graph import assert_acyclic, function_imports, imported, package_modules

PACKAGE = Path(loopwise.data.__file__).parent


def _modules() -> dict[str, ast.Module]:
    """Every module of ``loopwise.data`` and of its sub-packages, whose ``__init__`` counts as a
    module of its own (``datasets`` imports ``loopwise.data.profiles``, not its modules)."""
    modules = package_modules("loopwise.data", PACKAGE)
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        package = f"loopwise.data.{init.parent.name}"
        modules[package] = ast.parse(init.read_text(), filename=str(init))
        modules |= package_modules(package, init.parent)
    return modules


def test_no_loopwise_import_inside_a_function() -> None:
    """Imports inside functions are left for optional heavy libraries only, not to dodge cycles."""
    hidden = [f"{module} imports {name}" for module, name in sorted(function_imports(_modules()))]
    assert hidden == []


def test_modules_import_each_other_without_a_cycle() -> None:
    modules = _modules()
    graph = {
        module: {
            name
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for name in imported(node)
            if name in modules
        }
        for module, tree in modules.items()
    }
    assert graph["loopwise.data.datasets"]  # the graph is really read: datasets builds on others
    assert_acyclic(graph)
