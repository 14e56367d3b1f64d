"""ONNX graphs (skl2onnx conversions) through the conformance suite."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from skl2onnx import convert_sklearn, to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import InvalidArgumentError

from ..datasets import ACS_LABEL, acs_numeric, acs_sample
from ..flavour_checks import Check, FlavourCase, parametrize_checks

CATEGORIES = ["SCHL", "MAR", "SEX", "DIS", "CIT"]
OPSET = 17


def numeric_X() -> np.ndarray:
    return acs_numeric()


def columns_X() -> pd.DataFrame:
    return acs_sample()[["AGEP", *CATEGORIES]]


def logistic_regression(zipmap: bool, labels: Any = None) -> onnx.ModelProto:
    y = acs_sample()[ACS_LABEL] if labels is None else labels
    model = LogisticRegression(max_iter=1000).fit(numeric_X(), y)
    options = {id(model): {"zipmap": zipmap}}
    return cast(
        onnx.ModelProto,
        to_onnx(model, numeric_X()[:1].astype(np.float32), options=options, target_opset=OPSET),
    )


def age_regression() -> onnx.ModelProto:
    model = LinearRegression().fit(numeric_X()[:, 1:], numeric_X()[:, 0])
    return cast(
        onnx.ModelProto, to_onnx(model, numeric_X()[:1, 1:].astype(np.float32), target_opset=OPSET)
    )


def per_column_pipeline() -> onnx.ModelProto:
    """One input per column, strings for the categories, as skl2onnx converts a DataFrame model."""
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), CATEGORIES), remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=1000))
    model.fit(columns_X(), acs_sample()[ACS_LABEL])
    types = [("AGEP", FloatTensorType([None, 1]))] + [
        (c, StringTensorType([None, 1])) for c in CATEGORIES
    ]
    return cast(
        onnx.ModelProto,
        convert_sklearn(
            model, initial_types=types, options={id(model): {"zipmap": False}}, target_opset=OPSET
        ),
    )


# The reference: ONNX Runtime run directly, with inputs prepared here rather than by the flavour.
def run_graph(model: onnx.ModelProto, X: Any) -> list[Any]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    if isinstance(X, pd.DataFrame):
        feed = {"AGEP": X[["AGEP"]].to_numpy(np.float32)} | {
            c: X[[c]].astype(str).to_numpy(dtype=object) for c in CATEGORIES
        }
    else:
        feed = {session.get_inputs()[0].name: np.asarray(X, dtype=np.float32)}
    outputs: list[Any] = session.run(None, feed)
    return outputs


def graph_label(model: onnx.ModelProto, X: Any) -> Any:
    return run_graph(model, X)[0]


def graph_proba(model: onnx.ModelProto, X: Any) -> Any:
    probabilities = run_graph(model, X)[1]
    if isinstance(probabilities, list):  # ZipMap: {class: probability} per row
        return np.array([[row[k] for k in sorted(row)] for row in probabilities], np.float32)
    return probabilities


CASES = [
    FlavourCase(
        "onnx-logreg-zipmap",
        "onnx",
        lambda: logistic_regression(zipmap=True),
        numeric_X,
        predict=graph_label,
        predict_proba=graph_proba,
    ),
    FlavourCase(
        "onnx-logreg-tensor",
        "onnx",
        lambda: logistic_regression(zipmap=False),
        numeric_X,
        predict=graph_label,
        predict_proba=graph_proba,
    ),
    FlavourCase(
        "onnx-per-column-pipeline",
        "onnx",
        per_column_pipeline,
        columns_X,
        predict=graph_label,
        predict_proba=graph_proba,
    ),
    FlavourCase(
        "onnx-regression-bytes",
        "onnx",
        lambda: age_regression().SerializeToString(),
        lambda: numeric_X()[:, 1:],
        predict=lambda model, X: graph_label(onnx.load_model_from_string(model), X),
        log_kwargs={"flavour": "onnx"},
    ),
]


@parametrize_checks(CASES)
def test_conformance(case: FlavourCase, check: Check, lw_ctx: Context) -> None:
    check(case, lw_ctx)


def test_metadata_describes_inputs_outputs_and_classes(lw_ctx: Context) -> None:
    metadata = CASES[0].log().metadata
    assert metadata["inputs"] == [{"name": "X", "type": "tensor(float)", "shape": [None, 16]}]
    assert [o["name"] for o in metadata["outputs"]] == ["output_label", "output_probability"]
    assert metadata["outputs"][1]["type"] == "seq(map(int64,tensor(float)))"
    assert metadata["classes"] == [0, 1]
    assert metadata["opsets"]["ai.onnx"] == OPSET


def test_zipmap_probabilities_follow_the_class_order(lw_ctx: Context) -> None:
    labels = np.where(acs_sample()[ACS_LABEL] == 1, "works", "idle")
    with lw.start_run(name="r") as run:
        mv = run.log_model(logistic_regression(zipmap=True, labels=labels), name="labels")
    loaded = lw.models.load(mv.ref)
    assert list(loaded.classes_) == ["idle", "works"]
    proba = loaded.predict_proba(numeric_X()[:50])
    assert proba.shape == (50, 2)
    assert proba.dtype == np.float32  # the graph's probability type, as without ZipMap
    np.testing.assert_array_equal(
        loaded.classes_[proba.argmax(axis=1)], loaded.predict(numeric_X()[:50])
    )


def test_onnx_file_path_is_accepted(lw_ctx: Context, tmp_path: Any) -> None:
    path = tmp_path / "model.onnx"
    onnx.save_model(age_regression(), path)
    with lw.start_run(name="r") as run:
        mv = run.log_model(str(path), name="from-path", flavour="onnx")
    assert lw.models.load(mv.ref).predict(numeric_X()[:3, 1:]).shape == (3, 1)


def test_not_an_onnx_model_is_refused(lw_ctx: Context) -> None:
    with lw.start_run(name="r") as run:
        with pytest.raises(InvalidArgumentError, match="valid ONNX model"):
            run.log_model(b"not a model", name="junk", flavour="onnx")
        with pytest.raises(InvalidArgumentError, match="is not a file"):
            run.log_model("missing.onnx", name="junk", flavour="onnx")


def test_per_column_graph_refuses_a_frame_without_its_columns(lw_ctx: Context) -> None:
    loaded = lw.models.load(CASES[2].log(input_example=None).ref)  # no signature to check first
    with pytest.raises(InvalidArgumentError, match=r"lacks \['CIT'\]"):
        loaded.predict(columns_X().drop(columns="CIT"))
