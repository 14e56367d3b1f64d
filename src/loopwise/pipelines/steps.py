"""``@lw.step``: a function with declared, typed inputs and outputs.

Called inside a pipeline definition, a step does not run: it adds a node to the graph and
returns handles to its outputs, which later steps take as inputs. Called anywhere else it is
the plain function, so steps stay easy to test.
"""

from __future__ import annotations

import functools
import inspect
import threading
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, overload

from loopwise.errors import PipelineDefinitionError
from loopwise.pipelines.ports import (
    Port,
    PortKind,
    collection_of,
    describe,
    port_kind,
    storable_hint,
)
from loopwise.store.checks import check_name

__all__ = ["Builder", "InputSpec", "Step", "StepOutput", "building", "current_builder", "step"]


@dataclass(frozen=True)
class InputSpec:
    port: Port
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclass(frozen=True)
class StepOutput:
    """A handle to one output of a node, passed to later steps as an input."""

    node: str
    port: str

    def __repr__(self) -> str:
        return f"<output {self.port!r} of step {self.node!r}>"


class Step:
    """A step: the function, its ports, and whether its results may be reused (``cache``)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        outputs: Sequence[str] | None = None,
        cache: bool = True,
        allow_pickle: bool = False,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.output_names = tuple(outputs) if outputs is not None else None
        self.cache = cache
        self.allow_pickle = allow_pickle
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"Step({self.name!r})"

    @property
    def module(self) -> str:
        return str(self.fn.__module__)

    @property
    def qualname(self) -> str:
        return str(self.fn.__qualname__)

    # -- ports, read from the annotations once ------------------------------------------------
    @functools.cached_property
    def _hints(self) -> dict[str, Any]:
        try:
            return typing.get_type_hints(self.fn)
        except Exception as exc:  # NameError for names imported only under TYPE_CHECKING
            raise PipelineDefinitionError(
                f"The annotations of step {self.name!r} cannot be read ({type(exc).__name__}: "
                f"{exc}). Import every type its signature names at module level.",
                step=self.name,
            ) from exc

    @functools.cached_property
    def inputs(self) -> dict[str, InputSpec]:
        specs: dict[str, InputSpec] = {}
        for param in inspect.signature(self.fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise PipelineDefinitionError(
                    f"Step {self.name!r} takes *{param.name}: steps need named inputs so that "
                    "each can be connected, checked and cached. List the inputs one by one.",
                    step=self.name,
                    port=param.name,
                )
            annotation = self._hints.get(param.name, Any)
            kind = port_kind(annotation)
            if kind is None and collection_of(annotation) is not None:
                kind = PortKind.ANY  # a list or dict of outputs: each checked on its own
            if kind is None:
                raise PipelineDefinitionError(
                    f"Input {param.name!r} of step {self.name!r} is annotated "
                    f"{describe(annotation)}, which Loopwise cannot pass between steps. "
                    f"Annotate it as {storable_hint()}.",
                    step=self.name,
                    port=param.name,
                )
            specs[param.name] = InputSpec(Port(param.name, kind, annotation), param.default)
        return specs

    @functools.cached_property
    def outputs(self) -> tuple[Port, ...]:
        returns = self._hints.get("return", Any) if "return" in self._hints else Any
        annotated = "return" in self._hints
        if annotated and returns in (None, type(None)):
            if self.output_names:
                raise self._output_error("is annotated -> None but names outputs", returns)
            return ()
        members: tuple[Any, ...] | None = None
        if typing.get_origin(returns) is tuple:
            args = typing.get_args(returns)
            if args and args[-1] is not Ellipsis:
                members = args
        if self.output_names is not None:
            if members is None and annotated:
                raise self._output_error(
                    f"names {len(self.output_names)} outputs but is annotated "
                    f"{describe(returns)}; annotate it as tuple[...] with one type per output",
                    returns,
                )
            members = members or tuple(Any for _ in self.output_names)
            if len(members) != len(self.output_names):
                raise self._output_error(
                    f"names {len(self.output_names)} outputs {list(self.output_names)} but its "
                    f"annotation has {len(members)}",
                    returns,
                )
            names: Sequence[str] = self.output_names
        elif members is not None and any(port_kind(m) is not PortKind.VALUE for m in members):
            names = [f"output_{i}" for i in range(len(members))]
        else:
            members, names = (returns,), ["output"]
        ports = []
        for name, member in zip(names, members, strict=True):
            kind = port_kind(member)
            if kind is None:
                raise PipelineDefinitionError(
                    f"Output {name!r} of step {self.name!r} is annotated {describe(member)}, "
                    f"which Loopwise cannot store between steps. Annotate it as "
                    f"{storable_hint()}.",
                    step=self.name,
                    port=name,
                )
            ports.append(Port(name, kind, member))
        return tuple(ports)

    def _output_error(self, problem: str, returns: Any) -> PipelineDefinitionError:
        return PipelineDefinitionError(
            f"Step {self.name!r} {problem}. Make the outputs= names and the return annotation "
            "agree, e.g. @lw.step(outputs=('train', 'valid')) with -> tuple[pd.DataFrame, "
            "pd.DataFrame].",
            step=self.name,
            annotation=describe(returns),
        )

    def check(self) -> None:
        """Read the ports now, so that a badly declared step fails where it is defined."""
        check_name(self.name, "step")
        _ = self.inputs, self.outputs

    # -- calling --------------------------------------------------------------------------------
    def named(self, name: str) -> Step:
        """The same step under another node name, e.g. to train two candidates side by side."""
        twin = Step(
            self.fn,
            name=name,
            outputs=self.output_names,
            cache=self.cache,
            allow_pickle=self.allow_pickle,
        )
        check_name(name, "step")
        return twin

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = current_builder()
        if builder is None:
            return self.fn(*args, **kwargs)
        return builder.add(self, args, kwargs)


# -- the pipeline being built on this thread ---------------------------------------------------


class Builder(Protocol):
    """What a step call adds itself to while a pipeline is built (``graph._Builder``)."""

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...


_local = threading.local()


def current_builder() -> Builder | None:
    """The builder of the pipeline whose definition runs on this thread, if any."""
    builder: Builder | None = getattr(_local, "builder", None)
    return builder


@contextmanager
def building(builder: Builder) -> Iterator[None]:
    """Step calls on this thread add nodes to ``builder`` until the block ends."""
    _local.builder = builder
    try:
        yield
    finally:
        _local.builder = None


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    outputs: Sequence[str] | None = None,
    cache: bool = True,
    allow_pickle: bool = False,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    outputs: Sequence[str] | None = None,
    cache: bool = True,
    allow_pickle: bool = False,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make ``fn`` a pipeline step.

    ``outputs`` names the members of a ``tuple[...]`` return; ``cache=False`` runs the step
    every time; ``allow_pickle`` lets a ``Model`` output with no safe format be pickled.
    """

    def wrap(function: Callable[..., Any]) -> Step:
        if not callable(function):
            raise PipelineDefinitionError(
                f"Expected @lw.step on a function, got {type(function).__name__}.",
            )
        made = Step(function, name=name, outputs=outputs, cache=cache, allow_pickle=allow_pickle)
        check_name(made.name, "step")  # the ports are read when a pipeline is built
        return made

    return wrap(fn) if fn is not None else wrap
