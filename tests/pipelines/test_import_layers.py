"""``loopwise.pipelines`` imports in layers: no cycle between its modules, none hidden in a function
except the few listed here, each waiting for a heavy module that defining a pipeline never needs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import loopwise.pipelines

from ..import_graph import assert_acyclic, function_imports, imported, package_modules

PACKAGE = Path(loopwise.pipelines.__file__).parent

# (module, imported module) -> why it is imported where it is used, not at the top.
DEFERRED = {
    # Pipeline.run / Pipeline.sweep call up into the layer that runs pipelines.
    ("loopwise.pipelines.graph", "loopwise.pipelines.runner"): "the store, when a run starts",
    ("loopwise.pipelines.graph", "loopwise.pipelines.sweeps"): "pandas, when a sweep starts",
    # StepResult.output loads a stored output; `import loopwise.pipelines` reaches results.py.
    ("loopwise.pipelines.results", "loopwise.context"): "the store, on first load",
    ("loopwise.pipelines.materialise", "loopwise.data.datasets"): "pyarrow, for a dataset",
    ("loopwise.pipelines.materialise", "loopwise.registry.flavours"): "the flavours, for a model",
}


def _modules() -> dict[str, ast.Module]:
    return package_modules("loopwise.pipelines", PACKAGE)


def test_only_the_listed_loopwise_imports_wait_inside_a_function() -> None:
    assert function_imports(_modules()) == set(DEFERRED)


def test_modules_import_each_other_without_a_cycle() -> None:
    """Every import counts, in functions too, except the two upward calls of ``Pipeline``."""
    modules = _modules()
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for module, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module].update(
                    name
                    for name in imported(node)
                    if name in modules and (module, name) not in DEFERRED
                )
    assert "loopwise.pipelines.graph" in graph["loopwise.pipelines.runner"]  # really read
    assert_acyclic(graph)


def test_defining_a_pipeline_loads_nothing_that_runs_one() -> None:
    """Why the listed imports wait: ``import loopwise.pipelines`` stays on the definition side."""
    waiting = sorted({target for _, target in DEFERRED})
    probe = (
        "import json, sys\nimport loopwise.pipelines\n"
        f"print(json.dumps([m for m in {waiting!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
