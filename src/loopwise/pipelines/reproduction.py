"""Reproducing a run: execute a pipeline or step run again in a fresh process and compare.

``reproduce(run_id)`` re-runs what the run recorded (pipeline, params and seed; or one step with
its stored inputs) and compares each step with the original: identical outputs (a model by the
content of its files), numbers within a tolerance, or different, with the reasons in plain words
(comparison.py judges and explains; this module loads what was recorded and executes it again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import loopwise.context as context
from loopwise.errors import (
    InvalidArgumentError,
    LoopwiseError,
    NotFoundError,
    PipelineFailedError,
    error_from_dict,
)
from loopwise.pipelines.cache import cache_key, path_hash
from loopwise.pipelines.comparison import (
    NumberComparison,
    OutputComparison,
    Side,
    StepComparison,
    Verdict,
    children_of,
    code_causes,
    compare_step,
    downstream_has_numbers,
    environment_causes,
    git_now,
    in_order,
    input_causes,
    output_producers,
    step_explanation,
    worst,
)
from loopwise.pipelines.execute import StepTask, execute_step
from loopwise.pipelines.fingerprint import fingerprint
from loopwise.pipelines.loading import import_module_at
from loopwise.pipelines.ports import PortKind, from_json, port_kind, value_hash
from loopwise.pipelines.records import RECORD_TAG, read_record
from loopwise.pipelines.refs import load_pipeline
from loopwise.pipelines.runner import run as run_pipeline
from loopwise.pipelines.steps import Step
from loopwise.store import Run, Store
from loopwise.tracking.environment import installed_packages

__all__ = ["NumberComparison", "OutputComparison", "Reproduction", "StepComparison", "reproduce"]

REPRODUCES_TAG = "loopwise.reproduces"
_ENTRY = "from loopwise.pipelines.reproduction import main_in_subprocess; main_in_subprocess()"


@dataclass(frozen=True)
class Reproduction:
    """What ``reproduce`` found: the verdict, each step's comparison, and why things differ."""

    run_id: str
    new_run_id: str
    kind: Literal["pipeline", "step"]
    verdict: Verdict
    rtol: float
    atol: float
    steps: list[StepComparison]
    explanations: list[str]
    """Why steps differ: their code, inputs, params or seed, or that they are not deterministic."""
    notes: list[str] = dataclasses.field(default_factory=list)
    """What changed around the code since the run (installed packages, Python, the git state):
    context, listed whatever the verdict, since not every change reaches the steps."""

    @property
    def reproduced(self) -> bool:
        """Identical, or within the tolerance."""
        return self.verdict != "differs"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for step, compared in zip(data["steps"], self.steps, strict=True):
            largest = compared.largest_difference
            step["largest_difference"] = None if largest is None else dataclasses.asdict(largest)
            for output, original in zip(step["outputs"], compared.outputs, strict=True):
                output["same"] = original.same
        return data


# -- what a run recorded -----------------------------------------------------------------------


@dataclass
class _Execution:
    """A pipeline run (or a lone step run) and its steps in order."""

    run: Run
    kind: Literal["pipeline", "step"]
    record: dict[str, Any]
    steps: dict[str, Side]
    environment: dict[str, Any]


def _side(store: Store, node: str, state: str, run_id: str | None, error: str | None) -> Side:
    side = Side(node, state, run_id, error=error)
    if run_id is None:
        return side
    run = store.get_run(run_id)
    digest = run.tags.get(RECORD_TAG)
    if digest is not None and store.artifacts.exists(digest):
        side.record = read_record(store, digest)
    side.metrics = dict(run.metrics)
    side.start_ms = run.start_ms
    side.params = dict(run.params)
    # Output datasets a step named itself are what it produced, not what it read.
    produced = {f"{(side.record or {}).get('pipeline')}.{node}.{port}" for port in side.outputs}
    for version in store.run_datasets(run_id):
        if version.name not in produced:
            side.datasets.setdefault(version.name, set()).add(version.version)
    return side


def _load(store: Store, run_id: str) -> _Execution:
    store.flush()
    run = store.get_run(run_id)
    kind = run.tags.get("loopwise.kind")
    if kind not in ("pipeline", "step"):
        raise _not_reproducible(run)
    digest = run.tags.get(RECORD_TAG)
    if digest is None:
        raise InvalidArgumentError(
            f"Run {run_id!r} is a {kind} run without a record (status {run.status.value}): it "
            "has not finished, or was killed before it could write one. Reproduce a finished "
            "or failed run instead.",
            parameter="run_id",
        )
    record = read_record(store, digest)
    if kind == "step":
        side = _side(store, record["node"], "finished", run.id, None)
        parent = run.tags.get("loopwise.parent")
        environment = _environment_of(store, parent) if parent else {}
        return _Execution(run, "step", record, {side.node: side}, environment)
    steps = {
        node: _side(store, node, info["state"], info.get("run_id"), info.get("error"))
        for node, info in record["steps"].items()
    }
    return _Execution(run, "pipeline", record, steps, dict(run.environment or {}))


def _environment_of(store: Store, run_id: str) -> dict[str, Any]:
    with contextlib.suppress(NotFoundError):
        return dict(store.get_run(run_id).environment or {})
    return {}


def _not_reproducible(run: Run) -> InvalidArgumentError:
    env = run.environment or {}
    git = env.get("git") or {}
    recorded = (
        f"git commit {str(git.get('commit'))[:12]}"
        + (
            f" with uncommitted changes (diff sha256 {str(git.get('diff_sha256'))[:12]})"
            if git.get("dirty")
            else ""
        )
        if git
        else "no git state"
    )
    return InvalidArgumentError(
        f"Run {run.id!r} ({run.name!r}) was not made by a pipeline, so Loopwise cannot execute "
        "it again: only pipeline runs and step runs (tag loopwise.kind = pipeline or step) "
        "record the code, inputs and seed needed. It recorded "
        f"{recorded}, {len(env.get('packages') or {})} packages and {len(run.params)} params "
        "(`loopwise runs show` lists them): re-run its script at that commit by hand, or turn "
        "it into an @lw.pipeline to reproduce it with one command.",
        parameter="run_id",
        run_id=run.id,
    )


# -- executing again, in a fresh process ------------------------------------------------------


def _pipeline_spec(original: _Execution, executor: str) -> dict[str, Any]:
    return {
        "kind": "pipeline",
        "ref": original.record["ref"],
        "params": original.record["params"],
        "seed": original.record["seed"],
        "executor": executor,
        "tags": {REPRODUCES_TAG: original.run.id},
    }


def _step_spec(store: Store, original: _Execution) -> dict[str, Any]:
    record = original.record
    node = record["node"]
    (side,) = original.steps.values()
    # A step's record keeps its inputs' references without the model metadata needed to load
    # them: the outputs of the steps of the same pipeline run carry it.
    stored: dict[str, dict[str, Any]] = {}
    parent = original.run.tags.get("loopwise.parent")
    if parent:
        with contextlib.suppress(LoopwiseError):
            digest = store.get_run(parent).tags.get(RECORD_TAG)
            steps = read_record(store, digest)["steps"] if digest else {}
            for info in steps.values():
                producer_digest = (
                    store.get_run(info["run_id"]).tags.get(RECORD_TAG)
                    if info.get("run_id")
                    else None
                )
                if producer_digest:
                    for output in read_record(store, producer_digest)["outputs"].values():
                        stored.setdefault(output["hash"], output)

    def task_input(port: str, item: Mapping[str, Any], top: bool) -> list[Any]:
        kind = item.get("kind")
        if kind == "constant":
            return ["constant", _constant(side, port, item["hash"], node, top)]
        if kind == "gather":
            items = item.get("items", [])
            as_dict = bool(items) and items[0][0] is not None
            return ["gather", as_dict, [[k, task_input(port, sub, False)] for k, sub in items]]
        full = stored.get(item["hash"], dict(item))
        if kind == "model" and "metadata" not in full:
            raise InvalidArgumentError(
                f"Input {port!r} of step {node!r} is a model whose loading details were not "
                f"found with the steps of its pipeline run ({parent or 'none recorded'}). "
                "Reproduce that pipeline run instead.",
                parameter="run_id",
            )
        return ["stored", full, None]

    module, _, qualname = str(record["step"]).partition(":")
    return {
        "kind": "step",
        "pipeline": record["pipeline"],
        "node": node,
        "module": module,
        "qualname": qualname,
        "file": record.get("file"),
        "inputs": {port: task_input(port, item, True) for port, item in record["inputs"].items()},
        "seed": record["seed"],
        "tags": {
            "loopwise.kind": "step",
            "loopwise.pipeline": record["pipeline"],
            "loopwise.node": node,
            "loopwise.step": record["step"],
            REPRODUCES_TAG: original.run.id,
        },
    }


def _constant(side: Side, port: str, recorded_hash: str, node: str, top: bool) -> Any:
    text = side.params.get(port) if top else None
    if text is not None:
        candidates: list[Any] = []
        with contextlib.suppress(ValueError):
            candidates.append(from_json(text))
        candidates.append(text)  # strings are logged as they are, everything else as JSON
        for candidate in candidates:
            with contextlib.suppress(InvalidArgumentError):
                if value_hash(candidate) == recorded_hash:
                    return candidate
    raise InvalidArgumentError(
        f"Input {port!r} of step {node!r} was a constant that the step run did not record in "
        "full (only values up to 500 characters are logged as params, and none inside lists). "
        "Reproduce its pipeline run instead (tag loopwise.parent).",
        parameter="run_id",
    )


def _execute(
    spec: dict[str, Any], uri: str, project: str, timeout_s: float | None
) -> dict[str, Any]:
    if "://" not in uri:
        uri = os.path.abspath(uri)  # the same store, whatever folder the child starts in
    # The child must not open another store or project than the run's, whatever the shell says.
    env = {**os.environ, "LOOPWISE_URI": uri, "LOOPWISE_PROJECT": project}
    with tempfile.TemporaryDirectory(prefix="loopwise-reproduce-") as tmp:
        answer_file = Path(tmp) / "answer.json"
        payload = json.dumps({**spec, "uri": uri, "project": project, "answer": str(answer_file)})
        try:
            done = subprocess.run(
                [sys.executable, "-c", _ENTRY],
                input=payload,
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PipelineFailedError(
                f"The reproduction did not finish within {timeout_s} s and was stopped. Pass a "
                "larger timeout_s (--timeout), or reproduce one step run of it.",
                timeout_s=timeout_s,
            ) from None
        if not answer_file.exists():
            tail = (done.stderr or done.stdout or "")[-3000:]
            raise PipelineFailedError(
                f"The process that re-executed the run exited with code {done.returncode} "
                f"without an answer. Its last output:\n{tail}",
                exit_code=done.returncode,
            )
        answer: dict[str, Any] = json.loads(answer_file.read_text())
    if "error" in answer:
        raise error_from_dict(answer)
    return answer


def main_in_subprocess() -> None:
    """The fresh process: read the spec on stdin, run it, write the answer to a file."""
    spec = json.loads(sys.stdin.read())
    try:
        context.init(project=spec["project"], uri=spec["uri"])
        answer = _rerun_pipeline(spec) if spec["kind"] == "pipeline" else _rerun_step(spec)
        # After the step's code was imported, so that its folder is on sys.path.
        answer["environment"] = {
            "python": platform.python_version(),
            "packages": installed_packages(),
        }
    except LoopwiseError as exc:
        answer = exc.to_dict()
    except Exception as exc:  # the user's code may raise anything while it is imported
        text = "".join(traceback.format_exception(exc))
        answer = {"error": {"code": "error", "message": f"{type(exc).__name__}: {exc}\n{text}"}}
    Path(spec["answer"]).write_text(json.dumps(answer, default=str))
    context.shutdown()


def _rerun_pipeline(spec: Mapping[str, Any]) -> dict[str, Any]:
    result = run_pipeline(
        load_pipeline(spec["ref"]),
        spec["params"],
        executor=spec["executor"],
        cache=False,
        seed=spec["seed"],
        tags=spec["tags"],
        raise_on_failure=False,
    )
    return {"run_id": result.run_id}


def _rerun_step(spec: Mapping[str, Any]) -> dict[str, Any]:
    target: Any = import_module_at(spec["module"], spec["file"])
    for part in spec["qualname"].split("."):
        target = getattr(target, part)
    step = target if isinstance(target, Step) else Step(target, name=spec["node"])
    inputs = {
        port: _with_target(item, step.inputs[port].port.annotation if port in step.inputs else Any)
        for port, item in spec["inputs"].items()
    }
    key, parts = cache_key(
        f"{step.module}:{step.qualname}", fingerprint(step.fn).as_dict(), inputs, spec["seed"]
    )
    ctx = context.current()
    outcome = execute_step(
        StepTask(
            uri=ctx.uri,
            project=ctx.project,
            pipeline=spec["pipeline"],
            node=spec["node"],
            module=spec["module"],
            qualname=spec["qualname"],
            file=spec["file"],
            output_names=step.output_names,
            allow_pickle=step.allow_pickle,
            inputs=inputs,
            seed=spec["seed"],
            cache_key=key,
            key_parts=parts,
            tags=spec["tags"],
        )
    )
    if outcome.run_id is None:
        raise PipelineFailedError(
            f"Step {spec['node']!r} could not start: {outcome.error}\n\n{outcome.traceback}",
            step=spec["node"],
        )
    return {"run_id": outcome.run_id, "step_error": outcome.error}


def _with_target(item: list[Any], annotation: Any) -> Any:
    """The task's input with the kind the step's annotation asks for (as the scheduler does)."""
    if item[0] == "constant":
        return ("constant", item[1])
    if item[0] == "stored":
        stored = item[1]
        if stored.get("kind") == "path" and os.path.exists(stored["path"]):
            # A file the step reads where it is: keyed by its content now, as a run would be.
            stored = {**stored, "hash": path_hash(stored["path"])}
        target = port_kind(annotation) or PortKind.ANY
        if target is PortKind.ANY:
            target = PortKind(stored.get("declared", "any"))
        return ("stored", stored, target.value)
    args = getattr(annotation, "__args__", ())
    element = args[-1] if args else Any
    return ("gather", item[1], [(key, _with_target(sub, element)) for key, sub in item[2]])


# -- the whole -------------------------------------------------------------------------------


def reproduce(
    run_id: str,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    executor: str = "inline",
    timeout_s: float | None = None,
) -> Reproduction:
    """Execute a pipeline or step run again in a fresh process and compare it with the original.

    A pipeline run is run again from its recorded file, params and seed, without the cache; a
    step run is run again with its recorded inputs and seed. Each step is ``identical`` (every
    output the same; models compared by the content of their files), ``within_tolerance``
    (metrics and numeric outputs equal within ``rtol``/``atol``) or ``differs``;
    ``explanations`` say in plain words what changed since: code, data, params, seed,
    packages, Python or git state, or that a step is not deterministic.
    """
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
            raise InvalidArgumentError(
                f"Expected {name} to be a number >= 0, got {value!r}.", parameter=name
            )
    ctx = context.current()
    store = ctx.store
    original = _load(store, run_id)
    spec = (
        _pipeline_spec(original, executor)
        if original.kind == "pipeline"
        else _step_spec(store, original)
    )
    answer = _execute(spec, ctx.uri, original.run.project, timeout_s)
    store.flush()
    if original.kind == "pipeline":
        again = _load(store, answer["run_id"])
        new_steps = again.steps
    else:
        node = original.record["node"]
        new_steps = {node: _side(store, node, "finished", answer["run_id"], None)}
        if answer.get("step_error"):
            new_steps[node].state, new_steps[node].error = "failed", answer["step_error"]
    old_steps = original.steps
    children = children_of(old_steps)
    downstream = downstream_has_numbers(store, old_steps, children)
    comparisons: list[StepComparison] = []
    for node in in_order(old_steps, children):
        old = old_steps[node]
        new = new_steps.get(node, Side(node, "missing"))
        comparisons.append(
            compare_step(store, old, new, float(rtol), float(atol), downstream[node])
        )
    same_output = {(c.node, o.port): o.same for c in comparisons for o in c.outputs}
    producers = output_producers(old_steps)
    environment = environment_causes(
        original.environment,
        answer.get("environment") or {},
        git_now(original.kind, original.record),
    )
    packages_changed = any(line.startswith("packages:") for line in environment)
    explanations = []
    for compared in comparisons:
        old = old_steps[compared.node]
        new = new_steps.get(compared.node, Side(compared.node, "missing"))
        causes = code_causes(old, new) + input_causes(old, new, producers, same_output)
        line = step_explanation(compared, old, new, causes, packages_changed)
        if line is not None:
            explanations.append(line)
    added = [n for n in new_steps if n not in old_steps]
    if added:
        explanations.append(f"The pipeline now has steps it did not have: {', '.join(added)}.")
    notes = [line[0].upper() + line[1:] + "." for line in environment]
    verdict = worst([c.verdict for c in comparisons] + (["differs"] if added else []))
    return Reproduction(
        original.run.id,
        answer["run_id"],
        original.kind,
        verdict,
        float(rtol),
        float(atol),
        comparisons,
        explanations,
        notes,
    )
