"""``reproduce``: a recorded run executed again in a fresh process, compared, and explained.

Pipelines come from tests/pipelines/repro_flows.py; code that a test edits or a package it
upgrades lives in files under tmp_path, imported from there as a user's would be.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import InvalidArgumentError
from loopwise.pipelines import Reproduction, reproduce
from loopwise.tracking.environment import installed_packages
from tests.cli.harness import cli
from tests.pipelines import repro_flows as flows
from tests.pipelines.support import install_fakepkg


def explained(result: Reproduction, *words: str) -> list[str]:
    """The explanations that contain every one of ``words``."""
    return [line for line in result.explanations if all(w in line for w in words)]


def test_a_deterministic_pipeline_is_identical_model_digest_included(ctx: Context) -> None:
    original = flows.deterministic.run({"C": 0.5}, executor="inline")
    result = reproduce(original.run_id)

    assert result.verdict == "identical", result.explanations
    assert result.kind == "pipeline"
    assert [s.node for s in result.steps] == ["make_data", "split", "fit", "evaluate"]
    assert all(s.verdict == "identical" for s in result.steps)
    (model,) = next(s for s in result.steps if s.node == "fit").outputs
    assert model.kind == "model"
    assert model.same and model.old_digest is not None
    assert next(s for s in result.steps if s.node == "evaluate").numbers  # metrics were compared
    # A new pipeline run, made without the cache, with the recorded params, linked to the old.
    again = lw.get_run(result.new_run_id)
    assert result.new_run_id != original.run_id
    assert again.tags["loopwise.reproduces"] == original.run_id
    assert again.params["C"] == "0.5"
    new_fit = lw.get_run(result.steps[2].new_run_id or "")
    assert new_fit.tags["loopwise.parent"] == result.new_run_id
    assert result.to_dict()["steps"][2]["outputs"][0]["same"] is True


def test_a_step_run_is_reproduced_from_its_stored_inputs(ctx: Context) -> None:
    original = flows.deterministic.run(executor="inline")
    step_run = original.steps["evaluate"].run_id
    assert step_run is not None
    result = reproduce(step_run)

    assert result.kind == "step"
    assert result.verdict == "identical", result.explanations
    (evaluate,) = result.steps
    assert evaluate.node == "evaluate"
    assert {n.name for n in evaluate.numbers} == {"mean_probability", "output.accuracy"}
    again = lw.get_run(result.new_run_id)
    assert again.tags["loopwise.reproduces"] == step_run
    assert again.tags["loopwise.node"] == "evaluate"


def test_the_recorded_seed_is_reused(ctx: Context) -> None:
    original = flows.seeded.run({"n": 50}, executor="inline", seed=7)
    unseeded = flows.seeded.run({"n": 50}, executor="inline", cache=False)
    assert original.output("draw") != unseeded.output("draw")  # the seed does matter here

    result = reproduce(original.run_id)
    assert result.verdict == "identical", result.explanations
    assert lw.get_run(result.new_run_id).tags["loopwise.seed"] == "7"


def test_unseeded_noise_is_within_a_large_tolerance_and_said_to_be_nondeterministic(
    ctx: Context,
) -> None:
    original = flows.jittery.run(executor="inline")
    result = reproduce(original.run_id, rtol=1e-3)

    assert result.verdict == "within_tolerance", result.explanations
    noisy, report = result.steps
    assert (noisy.node, noisy.verdict, report.verdict) == (
        "noisy",
        "within_tolerance",
        "within_tolerance",
    )
    assert not noisy.outputs[0].same
    largest = noisy.largest_difference
    assert largest is not None and 0 < largest.relative_difference < 1e-5
    assert explained(result, "Step 'noisy'", "not deterministic", "within the tolerance")
    assert explained(result, "Step 'report'", "input 'value'", "step 'noisy'")


def test_unseeded_noise_differs_under_a_tiny_tolerance_and_a_tolerance_is_suggested(
    ctx: Context,
) -> None:
    original = flows.jittery.run(executor="inline")
    result = reproduce(original.run_id, rtol=1e-12, atol=0)

    assert result.verdict == "differs"
    assert [s.verdict for s in result.steps] == ["differs", "differs"]
    (line,) = explained(result, "Step 'noisy'", "not deterministic")
    largest = result.steps[0].largest_difference
    assert largest is not None
    suggested = re.search(r"pass rtol=(\S+) to accept that", line)
    assert suggested is not None, line
    # The smallest power of ten that covers the difference.
    assert largest.relative_difference <= float(suggested[1]) < 10 * largest.relative_difference


def test_a_dataset_picked_by_name_that_moved_on_is_named_with_both_versions(
    ctx: Context,
) -> None:
    lw.log_dataset(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), name="points")
    original = flows.by_name.run(executor="inline")
    lw.log_dataset(pd.DataFrame({"x": [1.0, 2.0, 4.0]}), name="points")
    result = reproduce(original.run_id)

    assert result.verdict == "differs"
    assert explained(result, "Step 'pick'", "dataset 'points' version 1 then", "version 2 now")
    assert explained(result, "Step 'total'", "input 'data'", "step 'pick'")
    assert not explained(result, "not deterministic")


def test_an_edited_file_behind_a_path_input_is_named(ctx: Context, tmp_path: Path) -> None:
    table = tmp_path / "points.csv"
    table.write_text("x\n1\n2\n")
    original = flows.from_file.run({"table": str(table)}, executor="inline")
    table.write_text("x\n1\n3\n")

    for run_id in (original.run_id, original.steps["file_total"].run_id or ""):
        result = reproduce(run_id)
        assert result.verdict == "differs"
        (line,) = result.explanations
        assert f"the file at {table} (input 'table') changed" in line, line


class Folder:
    """User code in tmp_path, on sys.path, re-imported after each edit."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, name: str, source: str) -> Path:
        path = self.root / name
        previous_ns = path.stat().st_mtime_ns if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        if previous_ns is not None:  # an edit a second later, as a person would make it
            os.utime(path, ns=(previous_ns + 1_000_000_000,) * 2)
        importlib.invalidate_caches()
        return path

    def load(self, module: str) -> Any:
        sys.modules.pop(module, None)
        return importlib.import_module(module)

    def install_fakepkg(self, version: str) -> None:
        install_fakepkg(self.root, version)
        installed_packages.cache_clear()  # what a new process would see


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Folder]:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    yield Folder(tmp_path)
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]
    installed_packages.cache_clear()


SCALED = """\
    import loopwise as lw


    @lw.step
    def base(n: int) -> list[int]:
        return list(range(n))


    @lw.step
    def scale(values: list[int], factor: float) -> float:
        return factor * sum(values)


    @lw.pipeline
    def scaled(n: int = 5, factor: float = 2.0) -> None:
        scale(base(n), factor)
    """


def test_a_step_run_after_its_code_changed_names_the_changed_function(
    ctx: Context, folder: Folder
) -> None:
    folder.write("codeflow.py", SCALED)
    pipeline: lw.Pipeline = folder.load("codeflow").scaled
    original = pipeline.run({"factor": 1.5}, executor="inline")
    step_run = original.steps["scale"].run_id
    assert reproduce(step_run).verdict == "identical"  # the param 1.5 came back from the run

    folder.write("codeflow.py", SCALED.replace("factor * sum(values)", "factor * sum(values) + 1"))
    result = reproduce(step_run)

    assert result.verdict == "differs"
    (line,) = result.explanations
    assert "Step 'scale' differs" in line
    assert "the source of scale (codeflow) changed" in line
    assert "not deterministic" not in line


PACKAGED = """\
    import fakepkg

    import loopwise as lw


    @lw.step
    def doubled(x: int) -> int:
        return fakepkg.double(x)


    @lw.pipeline
    def uses_fakepkg(x: int = 21) -> None:
        doubled(x)
    """


def test_a_package_upgrade_is_named_with_both_versions(ctx: Context, folder: Folder) -> None:
    folder.install_fakepkg("1.0")
    folder.write("pkgflow.py", PACKAGED)
    pipeline: lw.Pipeline = folder.load("pkgflow").uses_fakepkg
    original = pipeline.run(executor="inline")
    assert (lw.get_run(original.run_id).environment or {})["packages"]["fakepkg"] == "1.0"
    folder.install_fakepkg("1.1")
    result = reproduce(original.run_id)

    # The upgrade leaves the output alone: identical, with the change noted.
    assert result.verdict == "identical"
    assert explained(result, "Step 'doubled'", "identical outputs", "fakepkg 1.0 -> 1.1")
    assert [n for n in result.notes if "Packages:" in n and "fakepkg 1.0 -> 1.1" in n]


def test_a_run_not_made_by_a_pipeline_cannot_be_reproduced(ctx: Context) -> None:
    with lw.start_run(name="by-hand") as run:
        run.log_params({"alpha": 0.1})
    with pytest.raises(InvalidArgumentError, match="not made by a pipeline") as raised:
        reproduce(run.id)
    assert "1 params" in raised.value.message
    with pytest.raises(InvalidArgumentError, match="rtol"):
        reproduce(run.id, rtol=-1)


@pytest.mark.e2e  # reproduce runs the pipeline again in a fresh process
def test_the_cli_prints_a_table_and_exits_1_when_the_run_differs(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lw.init(project="cli", uri=store)
    same = flows.seeded.run({"n": 5}, executor="inline", seed=3).run_id
    noisy = flows.jittery.run(executor="inline").run_id
    lw.shutdown()

    shown = cli(store, "reproduce", same[:10]).stdout
    assert "draw" in shown and "identical" in shown

    differs = cli(store, "reproduce", noisy, "--rtol", "1e-12", "--atol", "0", ok=False).stdout
    assert "differs" in differs and "not deterministic" in differs

    answer = json.loads(cli(store, "reproduce", noisy, "--rtol", "0.01", "--json").stdout)
    assert answer["verdict"] == "within_tolerance"
    assert [s["node"] for s in answer["steps"]] == ["noisy", "report"]
    assert answer["steps"][0]["largest_difference"]["relative_difference"] > 0
