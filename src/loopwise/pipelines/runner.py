"""Running pipelines: the scheduler that reuses cached steps and runs the rest in parallel.

Each pipeline run is a run (tagged ``loopwise.kind=pipeline``) that records the params, seed,
environment and, when it ends, which run produced each step's outputs. Each executed step is
a run of its own. Several graphs (the points of a sweep) run as one merged DAG: a step whose
inputs are the same for two points runs once.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from loopwise.context import current
from loopwise.errors import InvalidArgumentError, PipelineFailedError
from loopwise.pipelines.cache import cache_key, lookup, path_hash
from loopwise.pipelines.execute import StepOutcome, StepTask
from loopwise.pipelines.executors import Executor, make_executor
from loopwise.pipelines.fingerprint import fingerprint, module_label
from loopwise.pipelines.graph import Constant, Gather, Graph, Node, Pipeline, Upstream
from loopwise.pipelines.loading import stop_if_loading_script
from loopwise.pipelines.ports import PortKind, canonical_json, port_kind, value_hash
from loopwise.pipelines.records import RECORD_TAG, read_record
from loopwise.pipelines.refs import pipeline_file, pipeline_ref
from loopwise.pipelines.results import PipelineResult, StepEvent, StepResult, StepState
from loopwise.pipelines.steps import Step
from loopwise.store import MetricEntry, RunStatus, Store
from loopwise.store.checks import check_key
from loopwise.tracking.environment import capture_environment

__all__ = ["PIPELINE_KIND", "execute_graphs", "run", "step_seed"]

PIPELINE_KIND = "pipeline"
EventHandler = Callable[[StepEvent], None]


def step_seed(seed: int, node: str) -> int:
    """Each step's seed: fixed by the pipeline's seed and the step's name."""
    return int(hashlib.sha256(f"{seed}:{node}".encode()).hexdigest()[:8], 16)


@dataclass
class _PlanNode:
    sid: str
    node: Node
    label: str
    upstream: dict[str, str]
    """Node name in its graph -> structural id of that node."""
    points: list[int] = field(default_factory=list)
    state: StepState = StepState.WAITING
    result: StepResult | None = None


def _structural_ids(graph: Graph) -> dict[str, str]:
    """An id per node that two graphs share exactly when the node would run the same way."""
    ids: dict[str, str] = {}

    def ident(binding: Any) -> Any:
        if isinstance(binding, Constant):
            return ["constant", value_hash(binding.value)]
        if isinstance(binding, Upstream):
            return ["upstream", ids[binding.node], binding.port]
        return ["gather", [[key, ident(item)] for key, item in binding.items]]

    for name in graph.order():
        node = graph.nodes[name]
        described = {
            "node": name,
            "step": f"{node.step.module}:{node.step.qualname}",
            "inputs": {port: ident(b) for port, b in sorted(node.inputs.items())},
        }
        ids[name] = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
    return ids


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else canonical_json(value)


class _Scheduler:
    def __init__(
        self,
        pipeline: Pipeline,
        graphs: Sequence[Graph],
        *,
        executor: Executor,
        cache: bool,
        seed: int,
        run_ids: list[str],
        resume_from: str | None,
        on_event: EventHandler | None,
    ) -> None:
        ctx = current()
        self.store: Store = ctx.store
        self.project = ctx.project
        # Workers may start elsewhere (a Ray node, another working folder): a folder store
        # travels as an absolute path.
        self.uri = ctx.uri if "://" in ctx.uri else os.path.abspath(ctx.uri)
        self.pipeline = pipeline
        self.executor = executor
        self.cache = cache
        self.seed = seed
        self.run_ids = run_ids
        self.resume_from = resume_from
        # Cache key -> the step run the resumed pipeline run used (it may have reused it too).
        self._resumable: dict[str, str] = {}
        if resume_from is not None:
            for info in _previous(resume_from)["steps"].values():
                if info.get("state") in ("finished", "cached") and info.get("run_id"):
                    self._resumable[str(info.get("cache_key"))] = str(info["run_id"])
        self.on_event = on_event
        self.plan: dict[str, _PlanNode] = {}
        self.point_ids: list[dict[str, str]] = []
        self._fingerprints: dict[str, dict[str, Any]] = {}
        self._merge(graphs)

    def _merge(self, graphs: Sequence[Graph]) -> None:
        names_per_sid: dict[str, str] = {}
        for index, graph in enumerate(graphs):
            ids = _structural_ids(graph)
            self.point_ids.append(ids)
            for name in graph.order():
                sid = ids[name]
                planned = self.plan.get(sid)
                if planned is None:
                    node = graph.nodes[name]
                    upstream = {u.node: ids[u.node] for u in node.upstream()}
                    label = name if index == 0 else f"{name} (point {index + 1})"
                    planned = _PlanNode(sid, node, label, upstream)
                    self.plan[sid] = planned
                    names_per_sid[sid] = name
                planned.points.append(index)
        # A node every point shares keeps its plain name.
        for planned in self.plan.values():
            if len(planned.points) == len(graphs) or planned.points[0] == 0:
                planned.label = planned.node.name

    # -- events ------------------------------------------------------------------------------
    def _emit(self, planned: _PlanNode, state: StepState, result: StepResult | None = None) -> None:
        planned.state = state
        if self.on_event is not None:
            self.on_event(
                StepEvent(
                    planned.node.name,
                    planned.label,
                    state,
                    None if result is None else result.run_id,
                    None if result is None else result.duration_s,
                    None if result is None else result.error,
                )
            )

    # -- tasks -------------------------------------------------------------------------------
    def _code(self, planned: _PlanNode) -> dict[str, Any]:
        step = planned.node.step
        where = f"{step.module}:{step.qualname}"
        if where not in self._fingerprints:
            self._fingerprints[where] = fingerprint(step.fn).as_dict()
        return self._fingerprints[where]

    def _input_spec(self, planned: _PlanNode, binding: Any, annotation: Any) -> Any:
        if isinstance(binding, Constant):
            if port_kind(annotation) is PortKind.ARTIFACT:
                # A path the step reads: keyed by the content there now, so an edited file
                # re-runs the step.
                path = os.path.abspath(binding.value)
                stored = {"kind": "path", "path": path, "hash": path_hash(path)}
                return ("stored", stored, PortKind.ARTIFACT.value)
            return ("constant", binding.value)
        if isinstance(binding, Upstream):
            upstream = self.plan[planned.upstream[binding.node]]
            assert upstream.result is not None and upstream.result.record is not None
            stored = upstream.result.record["outputs"][binding.port]
            target = port_kind(annotation) or PortKind.ANY
            if target is PortKind.ANY:
                target = PortKind(stored.get("declared", "any"))
            return ("stored", stored, target.value)
        assert isinstance(binding, Gather)
        args = getattr(annotation, "__args__", ())
        element = args[-1] if args else Any
        items = [(key, self._input_spec(planned, item, element)) for key, item in binding.items]
        return ("gather", binding.as_dict, items)

    def _task(self, planned: _PlanNode) -> StepTask:
        node = planned.node
        specs = node.step.inputs
        inputs = {
            port: self._input_spec(planned, binding, specs[port].port.annotation)
            for port, binding in node.inputs.items()
        }
        seed = step_seed(self.seed, node.name)
        step_id = f"{module_label(node.step.module)}:{node.step.qualname}"
        key, parts = cache_key(step_id, self._code(planned), inputs, seed)
        try:
            file: str | None = os.path.abspath(inspect.getfile(node.step.fn))
        except TypeError:
            file = None
        parent = self.run_ids[planned.points[0]]
        return StepTask(
            uri=self.uri,
            project=self.project,
            pipeline=self.pipeline.name,
            node=node.name,
            module=node.step.module,
            qualname=node.step.qualname,
            file=file,
            output_names=node.step.output_names,
            allow_pickle=node.step.allow_pickle,
            inputs=inputs,
            seed=seed,
            cache_key=key,
            key_parts=parts,
            tags={
                "loopwise.kind": "step",
                "loopwise.pipeline": self.pipeline.name,
                "loopwise.node": node.name,
                "loopwise.parent": parent,
                "loopwise.step": step_id,
            },
            fn=node.step.fn if self.executor.name == "inline" else None,
            load_pickles=any(
                step.allow_pickle
                for binding in node.inputs.values()
                for step in self._feeding_steps(planned, binding)
            ),
        )

    def _feeding_steps(self, planned: _PlanNode, binding: Any) -> Iterator[Step]:
        """The steps, in this pipeline's code, whose outputs ``binding`` passes on."""
        if isinstance(binding, Upstream):
            yield self.plan[planned.upstream[binding.node]].node.step
        elif isinstance(binding, Gather):
            for _, item in binding.items:
                yield from self._feeding_steps(planned, item)

    def _cached(self, planned: _PlanNode, task: StepTask) -> dict[str, Any] | None:
        if self.cache and planned.node.step.cache:
            hit = lookup(self.store, self.project, task.cache_key)
            if hit is not None:
                return hit
        if self.resume_from is not None and task.cache_key in self._resumable:
            return lookup(
                self.store, self.project, task.cache_key, runs=[self._resumable[task.cache_key]]
            )
        return None

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        running: dict[Future[StepOutcome], _PlanNode] = {}
        while True:
            progressed = True
            while progressed:
                progressed = False
                for planned in self.plan.values():
                    if planned.state is not StepState.WAITING:
                        continue
                    ups = [self.plan[sid] for sid in planned.upstream.values()]
                    if any(u.state in (StepState.FAILED, StepState.SKIPPED) for u in ups):
                        planned.result = StepResult(planned.node.name, StepState.SKIPPED)
                        self._emit(planned, StepState.SKIPPED)
                        progressed = True
                        continue
                    if not all(u.state.done for u in ups):
                        continue
                    task = self._task(planned)
                    hit = self._cached(planned, task)
                    progressed = True
                    if hit is not None:
                        planned.result = StepResult(
                            planned.node.name, StepState.CACHED, hit["run_id"], 0.0, hit
                        )
                        self._emit(planned, StepState.CACHED, planned.result)
                        continue
                    self._emit(planned, StepState.RUNNING)
                    running[self.executor.submit(task)] = planned
            if not running:
                return
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                planned = running.pop(future)
                self._finish(planned, future)

    def _finish(self, planned: _PlanNode, future: Future[StepOutcome]) -> None:
        try:
            outcome = future.result()
        except Exception as exc:  # the worker itself died (killed, out of memory, Ray lost it)
            outcome = StepOutcome(
                planned.node.name,
                None,
                False,
                error=f"The worker process running step {planned.node.name!r} died before it "
                f"could answer ({type(exc).__name__}: {str(exc).rstrip('.')}). It was killed, ran "
                "out of memory, or could not start (see its output above)",
            )
        state = StepState.FINISHED if outcome.ok else StepState.FAILED
        planned.result = StepResult(
            planned.node.name,
            state,
            outcome.run_id,
            outcome.duration_s,
            outcome.record,
            outcome.error,
            outcome.traceback,
        )
        self._emit(planned, state, planned.result)

    def results(self, index: int) -> dict[str, StepResult]:
        out = {}
        for name, sid in self.point_ids[index].items():
            result = self.plan[sid].result
            out[name] = result if result is not None else StepResult(name, StepState.SKIPPED)
        return out


# -- pipeline runs ---------------------------------------------------------------------------


def _start_pipeline_run(
    store: Store,
    project: str,
    pipeline: Pipeline,
    graph: Graph,
    seed: int,
    environment: dict[str, Any],
    tags: Mapping[str, str],
) -> str:
    run = store.create_run(
        project,
        pipeline.name,
        tags={
            "loopwise.kind": PIPELINE_KIND,
            "loopwise.pipeline": pipeline.name,
            "loopwise.pipeline_ref": pipeline_ref(pipeline),
            "loopwise.seed": str(seed),
            **tags,
        },
        environment=environment,
    )
    if graph.params:
        store.log_params(run.id, {k: _param_text(v) for k, v in graph.params.items()})
    return run.id


def _summary_metrics(store: Store, steps: Mapping[str, StepResult]) -> dict[str, float]:
    """Every step's metrics and numeric outputs as ``step.name``, for ``runs compare``."""
    metrics: dict[str, float] = {}
    for node, result in steps.items():
        if result.run_id is None or not result.state.done:
            continue
        for key, value in store.get_run(result.run_id).metrics.items():
            metrics[f"{node}.{key}"] = value
        for port, stored in (result.record or {}).get("outputs", {}).items():
            if stored.get("kind") != "value" or "json" not in stored:
                continue
            value = json.loads(stored["json"])
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[f"{node}.{port}"] = float(value)
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, int | float) and not isinstance(item, bool):
                        metrics[f"{node}.{key}"] = float(item)
    return metrics


def _end_pipeline_run(
    store: Store,
    run_id: str,
    pipeline: Pipeline,
    graph: Graph,
    seed: int,
    steps: Mapping[str, StepResult],
) -> str:
    record = {
        "pipeline": pipeline.name,
        "ref": pipeline_ref(pipeline),
        "params": graph.params,
        "seed": seed,
        "steps": {
            node: {
                "state": r.state.value,
                "run_id": r.run_id,
                "cache_key": (r.record or {}).get("cache_key"),
                "error": r.error,
            }
            for node, r in steps.items()
        },
    }
    digest, _ = store.artifacts.put_bytes(json.dumps(record, sort_keys=True).encode())
    store.set_tags(run_id, {RECORD_TAG: digest})
    entries = []
    for key, value in _summary_metrics(store, steps).items():
        try:
            check_key(key, "metric")
        except InvalidArgumentError:
            continue
        entries.append(MetricEntry(run_id, key, value, 0, 0))
    if entries:
        store.log_metrics(entries)
    failed = any(r.state in (StepState.FAILED, StepState.SKIPPED) for r in steps.values())
    status = RunStatus.FAILED if failed else RunStatus.FINISHED
    store.end_run(run_id, status)
    return status.value


def execute_graphs(
    pipeline: Pipeline,
    graphs: Sequence[Graph],
    *,
    executor: str = "local",
    workers: int | None = None,
    cache: bool = True,
    seed: int = 0,
    tags: Sequence[Mapping[str, str]] | None = None,
    resume_from: str | None = None,
    on_event: EventHandler | None = None,
) -> list[PipelineResult]:
    """Run several built graphs of one pipeline as one merged DAG; one pipeline run each."""
    stop_if_loading_script()
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidArgumentError(f"Expected an integer seed, got {seed!r}.", parameter="seed")
    chosen = make_executor(executor, workers)
    ctx = current()
    environment = capture_environment(pipeline_file(pipeline))
    point_tags = list(tags) if tags is not None else [{} for _ in graphs]
    run_ids = [
        _start_pipeline_run(ctx.store, ctx.project, pipeline, graph, seed, environment, t)
        for graph, t in zip(graphs, point_tags, strict=True)
    ]
    scheduler = _Scheduler(
        pipeline,
        graphs,
        executor=chosen,
        cache=cache,
        seed=seed,
        run_ids=run_ids,
        resume_from=resume_from,
        on_event=on_event,
    )
    try:
        scheduler.run()
    except BaseException:
        chosen.close(cancel=True)
        for run_id in run_ids:
            ctx.store.end_run(run_id, RunStatus.KILLED)
        raise
    chosen.close()
    results = []
    for index, (graph, run_id) in enumerate(zip(graphs, run_ids, strict=True)):
        steps = scheduler.results(index)
        status = _end_pipeline_run(ctx.store, run_id, pipeline, graph, seed, steps)
        results.append(PipelineResult(pipeline.name, run_id, dict(graph.params), status, steps))
    return results


def _failure(result: PipelineResult) -> PipelineFailedError:
    failed = [result.steps[n] for n in result.failed]
    first = failed[0]
    names = ", ".join(repr(s.node) for s in failed)
    skipped = f" Not run because of it: {', '.join(result.skipped)}." if result.skipped else ""
    finished = [n for n, s in result.steps.items() if s.state.done]
    reason = (first.error or "").rstrip(".")
    return PipelineFailedError(
        f"Pipeline {result.pipeline!r} failed in step {names}: {reason}.{skipped} "
        f"Finished steps ({len(finished)}) stay cached: fix the step and run again, or "
        f"`loopwise pipeline resume {result.run_id}`.\n\n{first.traceback or ''}".rstrip(),
        pipeline=result.pipeline,
        run_id=result.run_id,
        failed={s.node: s.run_id for s in failed},
        skipped=result.skipped,
    )


def _previous(run_id: str) -> dict[str, Any]:
    ctx = current()
    ctx.store.flush()
    previous = ctx.store.get_run(run_id)
    digest = previous.tags.get(RECORD_TAG)
    if previous.tags.get("loopwise.kind") != PIPELINE_KIND or digest is None:
        raise InvalidArgumentError(
            f"Run {run_id!r} is not a finished pipeline run, so there is nothing to resume. "
            "Pass the id `loopwise pipeline run` printed.",
            parameter="resume",
        )
    return read_record(ctx.store, digest)


def run(
    pipeline: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str = "local",
    workers: int | None = None,
    cache: bool = True,
    seed: int | None = None,
    tags: Mapping[str, str] | None = None,
    resume: str | None = None,
    on_event: EventHandler | None = None,
    raise_on_failure: bool = True,
) -> PipelineResult:
    """Run ``pipeline`` with ``params``; steps whose cache key matches a finished run are reused.

    ``executor`` is ``"local"`` (independent steps in parallel processes), ``"ray"`` or
    ``"inline"`` (one at a time in this process). ``resume`` takes the id of an earlier run of
    the same pipeline: its params and seed are reused, and so are its finished steps, even
    those with ``cache=False``. A failing step raises ``PipelineFailedError`` once every
    independent branch has finished (``raise_on_failure=False`` returns the result instead).
    """
    if not isinstance(pipeline, Pipeline):
        raise InvalidArgumentError(
            f"Expected a pipeline (a function decorated with @lw.pipeline), got "
            f"{type(pipeline).__name__}.",
            parameter="pipeline",
        )
    if resume is not None:
        previous = _previous(resume)
        params = {**previous["params"], **(params or {})}
        seed = previous["seed"] if seed is None else seed
    graph = pipeline.build(params)
    (result,) = execute_graphs(
        pipeline,
        [graph],
        executor=executor,
        workers=workers,
        cache=cache,
        seed=0 if seed is None else seed,
        tags=[dict(tags or {})],
        resume_from=resume,
        on_event=on_event,
    )
    if result.failed and raise_on_failure:
        raise _failure(result)
    return result
