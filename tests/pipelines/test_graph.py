"""Pipeline definitions: what is rejected before any step runs, and what is accepted.

Every rejection must name the step and the port (or the param) in its message and details, and
leave the store without a single run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopwise as lw
import loopwise.pipelines
from loopwise.context import Context
from loopwise.errors import PipelineDefinitionError, PipelineFailedError
from loopwise.pipelines.graph import Constant, Upstream
from loopwise.store import DatasetVersion

from .support import step_runs

# -- steps and pipelines the definitions below are made of ------------------------------------


@lw.step
def inc(x: int) -> int:
    return x + 1


@lw.step
def half(value: float) -> float:
    return value / 2


@lw.step
def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n)})


@lw.step
def width(data: pd.DataFrame) -> int:
    return data.shape[1]


@lw.step
def version_id(version: DatasetVersion) -> int:
    assert isinstance(version, DatasetVersion)
    return version.num_rows


@lw.step
def as_version(data: pd.DataFrame) -> DatasetVersion:
    return lw.log_dataset(data, name="as-version")


@lw.step
def model() -> lw.Model:
    raise AssertionError("never runs")


@lw.step
def text() -> str:
    return "three"


@lw.step
def show(value) -> str:  # type: ignore[no-untyped-def]  # unannotated on purpose
    return repr(value)


@lw.step
def array() -> np.ndarray:
    return np.zeros(3)


class Widget:
    pass


@lw.step
def widget() -> Widget:
    return Widget()


@lw.step(outputs=("left", "right"))
def pair(n: int) -> tuple[int, int]:
    return n, n + 1, n + 2  # type: ignore[return-value]  # one too many, on purpose


@lw.step
def a_set(n: int):  # type: ignore[no-untyped-def]  # unannotated output decided at run time
    return {n}


@lw.pipeline
def cyclic() -> None:
    first = inc.named("first")(loopwise.pipelines.output("second", "output"))
    inc.named("second")(first)


@lw.pipeline
def missing_input() -> None:
    inc()


@lw.pipeline
def frame_into_int() -> None:
    inc(frame(3))


@lw.pipeline
def model_into_frame() -> None:
    width(model())


@lw.pipeline
def str_into_float() -> None:
    half(text())


@lw.pipeline
def array_output() -> None:
    inc(3)
    array()


@lw.pipeline
def class_output() -> None:
    widget()


@lw.pipeline
def set_constant() -> None:
    show({1, 2})


@lw.pipeline
def unknown_kwarg() -> None:
    inc(x=1, y=2)


@lw.pipeline
def counted(n: int = 3, scale: float = 1.0) -> None:
    inc(n)
    half(scale)


@lw.pipeline
def three_for_two() -> None:
    pair(1)


@lw.pipeline
def unserialisable() -> None:
    a_set(1)


@lw.pipeline
def conversions(n: int = 4) -> None:
    data = frame(n)
    version = as_version(data)
    width(version)  # DatasetVersion -> DataFrame
    version_id(data)  # DataFrame -> DatasetVersion
    half(inc(n))  # int -> float


def rejected(pipeline: Any, params: dict[str, Any] | None = None) -> PipelineDefinitionError:
    """The error running ``pipeline`` raises, after checking that nothing ran."""
    with pytest.raises(PipelineDefinitionError) as caught:
        pipeline.run(params, executor="inline")
    assert lw.search_runs() == []
    assert caught.value.code == "invalid_pipeline"
    return caught.value


# -- rejected before anything runs ------------------------------------------------------------


def test_a_cycle_through_a_forward_reference_names_its_steps_and_port(ctx: Context) -> None:
    error = rejected(cyclic)
    assert "cycle" in error.message
    assert "first" in error.message and "second" in error.message
    assert set(error.details["cycle"]) == {"first", "second"}
    assert error.details["step"] in {"first", "second"}
    assert error.details["port"] == "x"
    assert "'x'" in error.message


def test_a_required_input_nothing_was_passed_to(ctx: Context) -> None:
    error = rejected(missing_input)
    assert error.details == {"step": "inc", "port": "x"}
    assert "'x'" in error.message and "'inc'" in error.message and "missing" in error.message


@pytest.mark.parametrize(
    ("pipeline", "step", "port", "expected", "received"),
    [
        (frame_into_int, "inc", "x", "int", "pd.DataFrame"),
        (model_into_frame, "width", "data", "pd.DataFrame", "Model"),
        (str_into_float, "half", "value", "float", "str"),
    ],
    ids=["dataframe-into-int", "model-into-dataframe", "str-into-float"],
)
def test_connected_ports_of_different_types(
    ctx: Context, pipeline: Any, step: str, port: str, expected: str, received: str
) -> None:
    error = rejected(pipeline)
    assert error.details == {"step": step, "port": port, "expected": expected}
    assert f"Input {port!r} of step {step!r} expects {expected}" in error.message
    assert f"({received})" in error.message


@pytest.mark.parametrize(
    ("pipeline", "step", "annotation"),
    [(array_output, "array", "ndarray"), (class_output, "widget", "Widget")],
    ids=["ndarray", "class"],
)
def test_an_output_annotated_with_a_type_that_cannot_be_stored(
    ctx: Context, pipeline: Any, step: str, annotation: str
) -> None:
    error = rejected(pipeline)
    assert error.details == {"step": step, "port": "output"}
    assert f"Output 'output' of step {step!r} is annotated {annotation}" in error.message
    assert "pd.DataFrame" in error.message  # says what it could be instead


def test_a_constant_that_is_not_json(ctx: Context) -> None:
    error = rejected(set_constant)
    assert error.details == {"step": "show", "port": "value"}
    assert "'value'" in error.message and "'show'" in error.message and "set" in error.message


def test_a_keyword_the_step_does_not_take(ctx: Context) -> None:
    error = rejected(unknown_kwarg)
    assert error.details == {"step": "inc", "port": "y"}
    assert "no input 'y'" in error.message and "['x']" in error.message


def test_a_param_the_pipeline_does_not_declare_lists_the_declared_ones(ctx: Context) -> None:
    error = rejected(counted, {"nn": 3})
    assert error.details == {"pipeline": "counted", "param": "nn"}
    assert "'nn'" in error.message and "['n', 'scale']" in error.message


@pytest.mark.parametrize("value", ["three", 2.5, True, None])
def test_a_param_of_the_wrong_type(ctx: Context, value: Any) -> None:
    error = rejected(counted, {"n": value})
    assert error.details == {"pipeline": "counted", "param": "n", "expected": "int"}
    assert f"expects int, got {value!r}" in error.message


def test_an_int_param_is_accepted_for_a_float_one(ctx: Context) -> None:
    result = counted.run({"scale": 3}, executor="inline")
    assert result.output("half") == 1.5


# -- rejected when the step returns -----------------------------------------------------------


def test_returning_more_values_than_declared_outputs_fails_the_step(ctx: Context) -> None:
    with pytest.raises(PipelineFailedError) as caught:
        three_for_two.run(executor="inline")
    message = caught.value.message
    assert "'pair'" in message
    assert "declares 2 outputs ['left', 'right']" in message and "length 3" in message
    (run,) = step_runs("pair")
    assert run.status is lw.RunStatus.FAILED
    assert caught.value.details["failed"] == {"pair": run.id}


def test_an_unannotated_output_that_is_not_json_fails_the_step(ctx: Context) -> None:
    with pytest.raises(PipelineFailedError) as caught:
        unserialisable.run(executor="inline")
    message = caught.value.message
    assert "output 'output' of step 'a_set'" in message and "builtins.set" in message
    (run,) = step_runs("a_set")
    assert run.status is lw.RunStatus.FAILED
    assert "builtins.set" in run.tags["loopwise.error"]


# -- accepted ---------------------------------------------------------------------------------


def test_dataframes_and_dataset_versions_convert_and_int_feeds_float(ctx: Context) -> None:
    graph = conversions.build({"n": 4})
    assert graph.nodes["width"].inputs == {"data": Upstream("as_version", "output")}
    assert graph.nodes["version_id"].inputs == {"version": Upstream("frame", "output")}
    assert graph.nodes["inc"].inputs == {"x": Constant(4)}
    result = conversions.run({"n": 4}, executor="inline")
    assert result.output("width") == 1  # got the version's data as a DataFrame
    assert result.output("version_id") == 4  # got a DatasetVersion of the DataFrame
    assert result.output("half") == 2.5
    assert set(result.executed) == {"frame", "as_version", "width", "version_id", "inc", "half"}


# -- rendering ----------------------------------------------------------------------------------


@lw.step
def two_of(a: int, b: int) -> list[int]:
    return [a, b]


@lw.step
def add_all(values: list[int], offset: int = 0) -> int:
    return sum(values) + offset


@lw.pipeline
def fan_in(n: int = 1) -> None:
    first, second = inc(n), inc(2)
    add_all([first, second, 5])
    two_of(first, b=3)


def test_a_graph_renders_as_dict_text_mermaid_and_dot() -> None:
    graph = fan_in.build({"n": 2})
    shown = graph.to_dict()
    assert shown["params"] == {"n": 2} and [s["name"] for s in shown["steps"]] == graph.order()
    gathered = next(s for s in shown["steps"] if s["name"] == "add_all")["inputs"]["values"]
    assert gathered == {
        "type": "list[int]",
        "gather": [{"from": "inc.output"}, {"from": "inc-2.output"}, {"value": 5}],
    }
    assert ("inc", "two_of", "a") in graph.edges() and len(graph.edges()) == 3
    text = graph.to_text()
    assert text.startswith("fan-in  4 steps; params: n=2\n")
    assert "values: list[int] from [inc.output, inc-2.output, 5]" in text
    assert "\ninc-2  (step inc)\n" in text and "offset: int = 0" in text
    assert text == "".join(part for part, _ in graph.text_parts())
    assert graph.to_mermaid().count("-->") == 3
    assert graph.to_dot().startswith('digraph "fan-in" {') and graph.to_dot().endswith("}")
