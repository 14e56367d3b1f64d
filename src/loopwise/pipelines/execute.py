"""One step execution, wherever it runs: in this process, a worker process, or a Ray worker.

``execute_step`` takes a picklable ``StepTask`` (references to stored inputs, never the
objects themselves), opens the store, runs the step as a tracked run, stores each output
(datasets, model files, artifact trees, JSON) and answers with the step's record: what went
in, what came out, and under which cache key. It never raises: a failing step comes back
with its error and traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loopwise.context as context
from loopwise.data.datasets import log_dataset
from loopwise.errors import InvalidArgumentError, LoopwiseError
from loopwise.pipelines.loading import import_module_at
from loopwise.pipelines.materialise import materialise
from loopwise.pipelines.ports import Port, PortKind, canonical_json, value_hash
from loopwise.pipelines.records import KEY_TAG, RECORD_TAG, read_record
from loopwise.pipelines.steps import Step
from loopwise.registry.flavours import detect_flavour
from loopwise.store import DatasetVersion, ModelVersion, Store
from loopwise.tracking.run import start_run

__all__ = ["StepOutcome", "StepTask", "execute_step", "read_record"]

_INLINE_JSON_CHARS = 4000


@dataclass(frozen=True)
class StepTask:
    uri: str
    project: str
    pipeline: str
    node: str
    module: str
    qualname: str
    file: str | None
    output_names: tuple[str, ...] | None
    allow_pickle: bool
    inputs: dict[str, Any]
    """Per input port: ``("stored", record, target_kind)`` (a record of kind ``path`` for a path
    given to a ``Path`` input), ``("constant", value)`` or
    ``("gather", as_dict, [(key, item), …])`` with items of the first two forms."""
    seed: int
    cache_key: str
    key_parts: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    fn: Any = None
    """The function itself, for the inline executor only (workers import it by name)."""
    load_pickles: bool = False
    """Model inputs stored with pickle may be loaded: a step that feeds this one declared
    ``allow_pickle=True`` in the pipeline's code (this step's own ``allow_pickle`` counts too).
    Never set from a stored record."""


@dataclass(frozen=True)
class StepOutcome:
    node: str
    run_id: str | None
    ok: bool
    record: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None
    duration_s: float = 0.0


def _resolve(task: StepTask) -> Any:
    if task.fn is not None:
        fn = task.fn
    else:
        target: Any = import_module_at(task.module, task.file)
        for part in task.qualname.split("."):
            target = getattr(target, part)
        fn = target.fn if isinstance(target, Step) else target
    return Step(fn, name=task.node, outputs=task.output_names, allow_pickle=task.allow_pickle)


# -- inputs ------------------------------------------------------------------------------------


def _input_value(
    spec: Any, store: Store, project: str, scratch: Path, allow_pickle: bool = False
) -> Any:
    form = spec[0]
    if form == "constant":
        return spec[1]
    if form == "stored":
        return materialise(spec[1], PortKind(spec[2]), store, project, scratch, allow_pickle)
    items = [
        (key, _input_value(item, store, project, scratch, allow_pickle)) for key, item in spec[2]
    ]
    return {str(k): v for k, v in items} if spec[1] else [v for _, v in items]


# -- outputs -----------------------------------------------------------------------------------


def _store_output(
    value: Any, port: Port, step_name: str, task: StepTask, run: Any, allow_pickle: bool
) -> dict[str, Any]:
    kind = port.kind
    where = f"output {port.name!r} of step {step_name!r}"
    if kind is PortKind.ANY:
        kind = _kind_of(value, where)
    if kind in (PortKind.DATAFRAME, PortKind.DATASET):
        if not isinstance(value, DatasetVersion):
            _expect_frame(value, where)
            value = log_dataset(value, name=f"{task.pipeline}.{task.node}.{port.name}")
        run.use(value, role=f"output.{port.name}")
        return {
            "kind": "dataset",
            "hash": value.content_hash,
            "name": value.name,
            "version": value.version,
            "rows": value.num_rows,
        }
    if kind is PortKind.MODEL_VERSION:
        if not isinstance(value, ModelVersion):
            raise _wrong_type(where, "a ModelVersion (what run.log_model returns)", value)
        return {
            "kind": "model_version",
            "hash": value.artifact_digest,
            "name": value.name,
            "version": value.version,
        }
    if kind is PortKind.MODEL:
        flavour = detect_flavour(value, allow_pickle)
        with tempfile.TemporaryDirectory(prefix="loopwise-step-") as tmp:
            folder = Path(tmp)
            metadata = flavour.save(value, folder)
            digest = run.store.artifacts.put_tree(folder)
            run.log_artifact(folder, f"outputs/{port.name}")
        return {"kind": "model", "hash": digest, "flavour": flavour.name, "metadata": metadata}
    if kind is PortKind.ARTIFACT:
        path = Path(value) if isinstance(value, str | os.PathLike) else None
        if path is None or not path.exists():
            raise _wrong_type(where, "the path of a file or folder the step wrote", value)
        with tempfile.TemporaryDirectory(prefix="loopwise-step-") as tmp:
            folder = path if path.is_dir() else Path(tmp)
            if path.is_file():
                shutil.copy2(path, folder / path.name)
            digest = run.store.artifacts.put_tree(folder)
            run.log_artifact(folder, f"outputs/{port.name}")
        return {"kind": "artifact", "hash": digest, "file": None if path.is_dir() else path.name}
    text = canonical_json(value, where)
    record: dict[str, Any] = {"kind": "value", "hash": value_hash(value, where)}
    if len(text) <= _INLINE_JSON_CHARS:
        record["json"] = text
    else:
        record["blob"], _ = run.store.artifacts.put_bytes(text.encode())
    return record


def _kind_of(value: Any, where: str) -> PortKind:
    if isinstance(value, DatasetVersion):
        return PortKind.DATASET
    if isinstance(value, ModelVersion):
        return PortKind.MODEL_VERSION
    if isinstance(value, Path):
        return PortKind.ARTIFACT
    if type(value).__name__ == "DataFrame" and type(value).__module__.startswith("pandas"):
        return PortKind.DATAFRAME
    if hasattr(value, "predict"):
        return PortKind.MODEL
    canonical_json(value, where)  # raises with a clear message when it is not JSON
    return PortKind.VALUE


def _expect_frame(value: Any, where: str) -> None:
    if not (type(value).__name__ in ("DataFrame", "Table") and hasattr(value, "columns")):
        raise _wrong_type(where, "a pandas DataFrame", value)


def _wrong_type(where: str, expected: str, value: Any) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"Expected {where} to be {expected}, got {type(value).__module__}."
        f"{type(value).__qualname__}. Return what the annotation declares.",
        parameter=where,
    )


def _outputs(result: Any, ports: tuple[Port, ...], step_name: str) -> dict[str, Any]:
    if not ports:
        return {}
    if len(ports) == 1:
        return {ports[0].name: result}
    if not isinstance(result, tuple | list) or len(result) != len(ports):
        raise InvalidArgumentError(
            f"Step {step_name!r} declares {len(ports)} outputs {[p.name for p in ports]} but "
            f"returned {type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, tuple | list) else "")
            + ". Return a tuple with one value per output.",
            parameter="outputs",
        )
    return {p.name: v for p, v in zip(ports, result, strict=True)}


# -- the step itself ---------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed the generators a step may use without saying so (``random``, NumPy's global)."""
    random.seed(seed)
    with contextlib.suppress(ImportError):
        import numpy as np  # optional: seeded only where it is installed

        np.random.seed(seed % 2**32)


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="loopwise-inputs-") as tmp:
        yield Path(tmp)


def _log_constants(run: Any, task: StepTask) -> None:
    params: dict[str, Any] = {}
    for port, spec in task.inputs.items():
        if spec[0] == "constant":
            value = spec[1]
            text = value if isinstance(value, str) else canonical_json(value, port)
            if len(text) <= 500:
                params[port] = text
    if params:
        run.log_params(params)


def execute_step(task: StepTask) -> StepOutcome:
    """Run one step as a tracked run and store its outputs; never raises."""
    started = time.perf_counter()
    run_id: str | None = None
    try:
        step = _resolve(task)  # first: loading a script may call lw.init with its own store
        ctx = context.init(project=task.project, uri=task.uri)
        tags = {**task.tags, KEY_TAG: task.cache_key, "loopwise.seed": str(task.seed)}
        with start_run(name=task.node, tags=tags, capture_env=False) as run:
            run_id = run.id
            _log_constants(run, task)
            with _scratch() as scratch:
                kwargs = {
                    port: _input_value(
                        spec,
                        ctx.store,
                        task.project,
                        scratch,
                        task.allow_pickle or task.load_pickles,
                    )
                    for port, spec in task.inputs.items()
                }
                for port, spec in task.inputs.items():
                    if spec[0] == "stored" and spec[1]["kind"] == "dataset":
                        version = ctx.store.get_dataset_version(
                            task.project, spec[1]["name"], spec[1]["version"]
                        )
                        run.use(version, role=port)
                seed_everything(task.seed)
                result = step.fn(**kwargs)
            values = _outputs(result, step.outputs, task.node)
            outputs = {
                port.name: _store_output(
                    values[port.name], port, task.node, task, run, task.allow_pickle
                )
                for port in step.outputs
            }
            for port in step.outputs:  # how the step declared it, to hand it back the same way
                outputs[port.name]["declared"] = port.kind.value
            record = {
                "pipeline": task.pipeline,
                "node": task.node,
                "step": f"{task.module}:{task.qualname}",
                "file": task.file,
                "cache_key": task.cache_key,
                "key": task.key_parts,
                "seed": task.seed,
                "inputs": {port: _input_record(spec) for port, spec in task.inputs.items()},
                "outputs": outputs,
            }
            digest, _ = ctx.store.artifacts.put_bytes(json.dumps(record, sort_keys=True).encode())
            run.set_tag(RECORD_TAG, digest)
            record["run_id"] = run.id
        ctx.store.flush()  # the step's metrics are in the store before anyone reads them
        return StepOutcome(task.node, run_id, True, record, duration_s=_since(started))
    except BaseException as exc:  # a step may raise anything; the pipeline decides what follows
        if isinstance(exc, KeyboardInterrupt | SystemExit) and run_id is None:
            raise
        text = "".join(traceback.format_exception(exc))
        if run_id is not None:
            _note_failure(run_id, exc)
        return StepOutcome(
            task.node,
            run_id,
            False,
            error=_one_line(exc),
            traceback=text,
            duration_s=_since(started),
        )


def _input_record(spec: Any) -> Any:
    form = spec[0]
    if form == "constant":
        return {"kind": "constant", "hash": value_hash(spec[1])}
    if form == "stored":
        return {k: v for k, v in spec[1].items() if k != "metadata"}
    return {"kind": "gather", "items": [[key, _input_record(item)] for key, item in spec[2]]}


def _note_failure(run_id: str, exc: BaseException) -> None:
    with contextlib.suppress(Exception):
        context.current().store.set_tags(run_id, {"loopwise.error": _one_line(exc)[:2000]})


def _one_line(exc: BaseException) -> str:
    message = exc.message if isinstance(exc, LoopwiseError) else str(exc)
    return f"{type(exc).__name__}: {message}".strip().rstrip(":")


def _since(started: float) -> float:
    return time.perf_counter() - started
