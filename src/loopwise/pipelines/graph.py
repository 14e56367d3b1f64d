"""``lw.Pipeline``: the DAG that steps' data dependencies form, checked before anything runs.

A pipeline is a function decorated with ``@lw.pipeline`` whose parameters are the pipeline's
params. Building it calls the function with concrete param values; each step call inside adds
a node and returns handles to its outputs. The graph is then checked as a whole: cycles,
missing inputs, ports of different types, values that cannot be stored.
"""

from __future__ import annotations

import graphlib
import inspect
import json
import os
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from loopwise.errors import PipelineDefinitionError
from loopwise.pipelines.ports import (
    Port,
    PortKind,
    assignable,
    canonical_json,
    describe,
    port_kind,
    storable_hint,
    value_matches,
)
from loopwise.pipelines.steps import Step, StepOutput, building, current_builder
from loopwise.store.checks import check_name

__all__ = [
    "Constant",
    "Gather",
    "Graph",
    "Node",
    "Pipeline",
    "Upstream",
    "current_builder",
    "output",
    "params_text",
    "pipeline",
]


@dataclass(frozen=True)
class Upstream:
    node: str
    port: str


@dataclass(frozen=True)
class Constant:
    value: Any


@dataclass(frozen=True)
class Gather:
    """Several outputs passed to one input as a list (``items`` keys are None) or a dict."""

    items: tuple[tuple[str | None, Upstream | Constant], ...]

    @property
    def as_dict(self) -> bool:
        return bool(self.items) and self.items[0][0] is not None


Binding = Upstream | Constant | Gather


@dataclass
class Node:
    name: str
    step: Step
    inputs: dict[str, Binding]

    def upstream(self) -> list[Upstream]:
        found: list[Upstream] = []
        for binding in self.inputs.values():
            if isinstance(binding, Upstream):
                found.append(binding)
            elif isinstance(binding, Gather):
                found.extend(b for _, b in binding.items if isinstance(b, Upstream))
        return found


@dataclass
class Graph:
    """The nodes of one pipeline built with concrete params, in the order they were added."""

    pipeline: str
    params: dict[str, Any]
    nodes: dict[str, Node] = field(default_factory=dict)

    def order(self) -> list[str]:
        """Node names in an order where every node comes after those it reads from."""
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for node in self.nodes.values():
            sorter.add(node.name, *(u.node for u in node.upstream()))
        try:
            return list(sorter.static_order())
        except graphlib.CycleError as exc:
            # graphlib lists each node before the node that reads it: cycle[1] reads cycle[0].
            cycle = list(exc.args[1])
            reader, source = cycle[1], cycle[0]
            port = next(
                (p for p, b in self.nodes[reader].inputs.items() if _reads(b, source)), None
            )
            raise PipelineDefinitionError(
                f"Pipeline {self.pipeline!r} has a cycle: {' -> '.join(cycle)} (input {port!r} "
                f"of step {reader!r} reads step {source!r}). A step cannot read, directly or "
                "through others, an output of its own; break the loop.",
                pipeline=self.pipeline,
                step=reader,
                port=port,
                cycle=cycle,
            ) from None

    def downstream(self, name: str) -> set[str]:
        """Every node that reads, directly or not, from ``name``."""
        readers: dict[str, set[str]] = {n: set() for n in self.nodes}
        for node in self.nodes.values():
            for up in node.upstream():
                readers.setdefault(up.node, set()).add(node.name)
        found: set[str] = set()
        todo = [name]
        while todo:
            for reader in readers.get(todo.pop(), ()):
                if reader not in found:
                    found.add(reader)
                    todo.append(reader)
        return found

    def output_port(self, ref: Upstream) -> Port:
        for port in self.nodes[ref.node].step.outputs:
            if port.name == ref.port:
                return port
        raise KeyError(ref)

    # -- rendering (``loopwise pipeline show``) ------------------------------------------------

    def edges(self) -> list[tuple[str, str, str]]:
        """(from node, to node, label) for every output read by an input."""
        edges = []
        for name in self.order():
            for port, binding in self.nodes[name].inputs.items():
                items = binding.items if isinstance(binding, Gather) else ((None, binding),)
                for _, item in items:
                    if isinstance(item, Upstream):
                        same = item.port in ("output", port)
                        edges.append((item.node, name, port if same else f"{item.port} → {port}"))
        return edges

    def to_dict(self) -> dict[str, Any]:
        """The steps in run order, each input's type and source, each output's type, the edges."""
        steps = []
        for name in self.order():
            node = self.nodes[name]
            specs = node.step.inputs
            steps.append(
                {
                    "name": name,
                    "step": f"{node.step.module}:{node.step.qualname}",
                    "inputs": {
                        port: {
                            "type": describe(specs[port].port.annotation),
                            **_binding_dict(binding),
                        }
                        for port, binding in node.inputs.items()
                    },
                    "outputs": {p.name: describe(p.annotation) for p in node.step.outputs},
                }
            )
        edges = [{"from": a, "to": b, "label": label} for a, b, label in self.edges()]
        return {"pipeline": self.pipeline, "params": self.params, "steps": steps, "edges": edges}

    def text_parts(self) -> list[tuple[str, TextRole]]:
        """:meth:`to_text` in pieces, each with the role a terminal may colour it by."""
        parts: list[tuple[str, TextRole]] = [
            (self.pipeline, "pipeline"),
            (
                f"  {len(self.nodes)} steps; params: {params_text(self.params, 200) or 'none'}\n",
                "plain",
            ),
        ]
        for name in self.order():
            node = self.nodes[name]
            parts.append((f"\n{name}", "step"))
            if node.step.qualname != name:
                parts.append((f"  (step {node.step.qualname})", "note"))
            parts.append(("\n", "plain"))
            specs = node.step.inputs
            for i, (port, binding) in enumerate(node.inputs.items()):
                parts.append(("    in   " if i == 0 else "         ", "note"))
                parts.append((f"{port}: {describe(specs[port].port.annotation)} ", "plain"))
                role: TextRole = "constant" if isinstance(binding, Constant) else "upstream"
                parts.append((_binding_text(binding), role))
                parts.append(("\n", "plain"))
            for i, produced in enumerate(node.step.outputs):
                parts.append(("    out  " if i == 0 else "         ", "note"))
                parts.append((f"{produced.name}: {describe(produced.annotation)}\n", "plain"))
        return parts

    def to_text(self) -> str:
        """Each step in run order: its inputs (where from, with types) and its outputs."""
        return "".join(text for text, _ in self.text_parts())

    def to_mermaid(self) -> str:
        """A Mermaid flowchart, to paste into Markdown."""
        ids = {name: f"s{i}" for i, name in enumerate(self.order())}
        lines = ["flowchart LR"]
        lines += [f'    {ids[name]}["{name}"]' for name in ids]
        lines += [f'    {ids[a]} -->|"{label}"| {ids[b]}' for a, b, label in self.edges()]
        return "\n".join(lines)

    def to_dot(self) -> str:
        """A Graphviz digraph."""
        lines = [
            f"digraph {json.dumps(self.pipeline)} {{",
            "    rankdir=LR;",
            "    node [shape=box];",
        ]
        lines += [f"    {json.dumps(name)};" for name in self.order()]
        lines += [
            f"    {json.dumps(a)} -> {json.dumps(b)} [label={json.dumps(label)}];"
            for a, b, label in self.edges()
        ]
        return "\n".join([*lines, "}"])

    def check(self) -> None:
        """Every problem a run would meet before its first step, each naming step and port."""
        for node in self.nodes.values():
            node.step.check()
        for node in self.nodes.values():
            specs = node.step.inputs
            for port_name, binding in node.inputs.items():
                annotation = specs[port_name].port.annotation
                self._check_binding(node, port_name, binding, annotation)
        self.order()

    def _check_binding(self, node: Node, port: str, binding: Binding, annotation: Any) -> None:
        if isinstance(binding, Gather):
            origin = typing.get_origin(annotation)
            args = typing.get_args(annotation)
            wanted_origin = dict if binding.as_dict else list
            if annotation is not Any and origin not in (wanted_origin, None):
                raise _mismatch(node, port, annotation, f"a {wanted_origin.__name__} of outputs")
            element = (args[-1] if args else Any) if annotation is not Any else Any
            for _, item in binding.items:
                self._check_binding(node, port, item, element)
            return
        if isinstance(binding, Constant):
            kind = port_kind(annotation)
            if kind is PortKind.ARTIFACT:
                _check_path(node, port, binding.value)
                return
            try:
                canonical_json(binding.value, f"{node.name}.{port}")
            except PipelineDefinitionError:
                raise
            except Exception as exc:
                raise PipelineDefinitionError(
                    f"Input {port!r} of step {node.name!r} got a constant "
                    f"{type(binding.value).__name__} that cannot be stored: {exc}",
                    step=node.name,
                    port=port,
                ) from None
            if kind not in (PortKind.VALUE, PortKind.ANY) or not value_matches(
                binding.value, annotation
            ):
                raise _mismatch(node, port, annotation, f"the value {binding.value!r}")
            return
        upstream = self.nodes.get(binding.node)
        if upstream is None:
            raise PipelineDefinitionError(
                f"Input {port!r} of step {node.name!r} reads output {binding.port!r} of step "
                f"{binding.node!r}, but the pipeline has no such step. Steps: "
                f"{sorted(self.nodes)}.",
                step=node.name,
                port=port,
            )
        try:
            source = self.output_port(binding)
        except KeyError:
            raise PipelineDefinitionError(
                f"Input {port!r} of step {node.name!r} reads output {binding.port!r} of step "
                f"{binding.node!r}, which has outputs "
                f"{[p.name for p in upstream.step.outputs]}.",
                step=node.name,
                port=port,
            ) from None
        if not assignable(source, annotation):
            raise _mismatch(
                node,
                port,
                annotation,
                f"output {source.name!r} of step {binding.node!r} ({describe(source.annotation)})",
            )


TextRole = Literal["pipeline", "step", "note", "constant", "upstream", "plain"]


def params_text(params: Mapping[str, Any], width: int = 60) -> str:
    """``key=value, …`` with JSON values, cut to ``width`` characters."""
    text = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in params.items())
    return text if len(text) <= width else text[: width - 1] + "…"


def _source(binding: Upstream | Constant) -> str:
    if isinstance(binding, Upstream):
        return f"{binding.node}.{binding.port}"
    return json.dumps(binding.value, default=str)


def _binding_dict(binding: Binding) -> dict[str, Any]:
    if isinstance(binding, Upstream):
        return {"from": _source(binding)}
    if isinstance(binding, Constant):
        return {"value": binding.value}
    items = [_binding_dict(b) for _, b in binding.items]
    if binding.as_dict:
        return {"gather": {str(k): item for (k, _), item in zip(binding.items, items, strict=True)}}
    return {"gather": items}


def _binding_text(binding: Binding) -> str:
    if isinstance(binding, Upstream):
        return f"from {_source(binding)}"
    if isinstance(binding, Constant):
        return f"= {_source(binding)}"
    if binding.as_dict:
        return "from {" + ", ".join(f"{k}: {_source(b)}" for k, b in binding.items) + "}"
    return "from [" + ", ".join(_source(b) for _, b in binding.items) + "]"


def _check_path(node: Node, port: str, value: Any) -> None:
    """A ``pathlib.Path`` input given a path (a param): its content goes into the cache key."""
    if not isinstance(value, str) or not os.path.exists(value):
        raise PipelineDefinitionError(
            f"Input {port!r} of step {node.name!r} expects the path of an existing file or "
            f"folder, got {value!r}"
            + (", which does not exist" if isinstance(value, str) else "")
            + f" (relative paths start at {os.getcwd()!r}). Pass a path that exists, or connect "
            "a step's Path output.",
            step=node.name,
            port=port,
            expected="Path",
        )


def _reads(binding: Binding, node: str) -> bool:
    if isinstance(binding, Upstream):
        return binding.node == node
    if isinstance(binding, Gather):
        return any(isinstance(b, Upstream) and b.node == node for _, b in binding.items)
    return False


def _mismatch(node: Node, port: str, annotation: Any, received: str) -> PipelineDefinitionError:
    return PipelineDefinitionError(
        f"Input {port!r} of step {node.name!r} expects {describe(annotation)} but is connected "
        f"to {received}. Connect an output of that type, or change the annotation.",
        step=node.name,
        port=port,
        expected=describe(annotation),
    )


# -- building ------------------------------------------------------------------------------


class _Builder:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        name = step.name
        if name in self.graph.nodes:
            count = 2
            while f"{name}-{count}" in self.graph.nodes:
                count += 1
            name = f"{name}-{count}"
        specs = step.inputs
        names = list(specs)
        if len(args) > len(names):
            raise PipelineDefinitionError(
                f"Step {step.name!r} takes {len(names)} inputs {names}, got {len(args)} "
                "positional values.",
                step=step.name,
            )
        given = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in specs:
                raise PipelineDefinitionError(
                    f"Step {step.name!r} has no input {key!r}. Its inputs: {names}.",
                    step=step.name,
                    port=key,
                )
            if key in given:
                raise PipelineDefinitionError(
                    f"Input {key!r} of step {step.name!r} was given twice.",
                    step=step.name,
                    port=key,
                )
            given[key] = value
        inputs: dict[str, Binding] = {}
        for port, spec in specs.items():
            if port in given:
                inputs[port] = _binding(given[port])
            elif spec.required:
                raise PipelineDefinitionError(
                    f"Input {port!r} of step {step.name!r} is missing: it has no default and "
                    "nothing was connected to it. Pass an output of an earlier step or a "
                    "value.",
                    step=step.name,
                    port=port,
                )
            else:
                inputs[port] = Constant(spec.default)
        self.graph.nodes[name] = Node(name, step, inputs)
        handles = [StepOutput(name, p.name) for p in step.outputs]
        if not handles:
            return None
        return handles[0] if len(handles) == 1 else tuple(handles)


def _binding(value: Any) -> Binding:
    if isinstance(value, StepOutput):
        return Upstream(value.node, value.port)
    if isinstance(value, os.PathLike):
        return Constant(os.fspath(value))  # kept as JSON text; a Path input gets a Path back
    if isinstance(value, list | tuple) and any(isinstance(v, StepOutput) for v in value):
        return Gather(tuple((None, _leaf(v)) for v in value))
    if isinstance(value, dict) and any(isinstance(v, StepOutput) for v in value.values()):
        return Gather(tuple((str(k), _leaf(v)) for k, v in value.items()))
    return Constant(value)


def _leaf(value: Any) -> Upstream | Constant:
    binding = _binding(value)
    if isinstance(binding, Gather):
        raise PipelineDefinitionError(
            "Step outputs can be passed in a list or a dict, one level deep, not nested further.",
        )
    return binding


@contextmanager
def _building(graph: Graph) -> Iterator[_Builder]:
    if current_builder() is not None:
        raise PipelineDefinitionError("A pipeline cannot be built inside another one's definition.")
    builder = _Builder(graph)
    with building(builder):
        yield builder


def output(step: str, port: str = "output") -> StepOutput:
    """A handle to an output of a step declared later in the definition (checked at build)."""
    return StepOutput(step, port)


# -- the pipeline --------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    name: str
    annotation: Any
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


class Pipeline:
    """A pipeline definition: ``build(params)`` turns it into a checked ``Graph``."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__.replace("_", "-")

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r})"

    @property
    def params(self) -> dict[str, ParamSpec]:
        hints = typing.get_type_hints(self.fn)
        specs = {}
        for param in inspect.signature(self.fn).parameters.values():
            annotation = hints.get(param.name, Any)
            if port_kind(annotation) not in (PortKind.VALUE, PortKind.ANY):
                raise PipelineDefinitionError(
                    f"Param {param.name!r} of pipeline {self.name!r} is annotated "
                    f"{describe(annotation)}; params are JSON values (int, float, str, bool, "
                    "lists and dicts of them).",
                    pipeline=self.name,
                    param=param.name,
                )
            specs[param.name] = ParamSpec(param.name, annotation, param.default)
        return specs

    def resolve_params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every declared param's value: those given, checked, and the defaults."""
        params = dict(params or {})
        specs = self.params
        for key in params:
            if key not in specs:
                raise PipelineDefinitionError(
                    f"Pipeline {self.name!r} does not declare a param {key!r}. Its params: "
                    f"{sorted(specs) or 'none'}. Add it to the pipeline function's signature "
                    "or fix the name.",
                    pipeline=self.name,
                    param=key,
                )
        resolved = {}
        for name, spec in specs.items():
            if name in params:
                value = params[name]
                if not value_matches(value, spec.annotation):
                    raise PipelineDefinitionError(
                        f"Param {name!r} of pipeline {self.name!r} expects "
                        f"{describe(spec.annotation)}, got {value!r} ({type(value).__name__}).",
                        pipeline=self.name,
                        param=name,
                        expected=describe(spec.annotation),
                    )
                # 2 and 2.0 are one float param: one text, one cache key.
                if spec.annotation is float and isinstance(value, int):
                    value = float(value)
                resolved[name] = value
            elif spec.required:
                raise PipelineDefinitionError(
                    f"Pipeline {self.name!r} needs a value for param {name!r} "
                    f"({describe(spec.annotation)}). Pass it, e.g. --param {name}=…",
                    pipeline=self.name,
                    param=name,
                )
            else:
                resolved[name] = spec.default
        return resolved

    def parse_params(self, pairs: Sequence[str]) -> dict[str, Any]:
        """``key=value`` strings (the CLI's ``--param``) read by each param's annotation."""
        specs = self.params
        parsed: dict[str, Any] = {}
        for pair in pairs:
            key, sep, text = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                raise PipelineDefinitionError(
                    f"Expected --param key=value, got {pair!r}.", pipeline=self.name
                )
            spec = specs.get(key)
            parsed[key] = parse_value(text, spec.annotation if spec else Any)
        return parsed

    def build(self, params: Mapping[str, Any] | None = None) -> Graph:
        resolved = self.resolve_params(params)
        check_name(self.name, "pipeline")
        graph = Graph(self.name, resolved)
        with _building(graph):
            self.fn(**resolved)
        if not graph.nodes:
            raise PipelineDefinitionError(
                f"Pipeline {self.name!r} has no steps: its function called no @lw.step.",
                pipeline=self.name,
            )
        graph.check()
        return graph

    def run(self, params: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """Build and run; see :func:`loopwise.pipelines.run` for the options."""
        # Upward on purpose: the runner (store, executors, tracking) loads when a run starts,
        # not where a pipeline is defined (see the note in pipelines/__init__.py).
        from loopwise.pipelines.runner import run

        return run(self, params, **options)

    def sweep(self, **options: Any) -> Any:
        """Run once per point of a grid or random space; see :func:`loopwise.pipelines.sweep`."""
        from loopwise.pipelines.sweeps import sweep  # upward on purpose, as in run(); loads pandas

        return sweep(self, **options)


def parse_value(text: str, annotation: Any) -> Any:
    """A CLI string as the annotation wants it: ``3`` is an int, ``0.1`` a float, ``[1,2]`` JSON."""
    if annotation is str:
        return text
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def pipeline(fn: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Make ``fn`` a pipeline: its parameters are the params, its step calls the graph."""

    def wrap(function: Callable[..., Any]) -> Pipeline:
        made = Pipeline(function, name=name)
        check_name(made.name, "pipeline")
        return made

    return wrap(fn) if fn is not None else wrap


_ = storable_hint  # re-exported for messages built elsewhere
