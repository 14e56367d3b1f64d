"""The codec between entities and the API's JSON (``store/codec.py``)."""

from __future__ import annotations

import math

import pytest

from loopwise.store.codec import decode, encode, json_float
from loopwise.store.entities import (
    Deployment,
    Metric,
    ModelVersion,
    Outcome,
    PredictionSegment,
    Role,
    Run,
    RunStatus,
    Token,
    TrafficPlan,
)


def test_non_finite_floats_travel_by_name() -> None:
    assert [json_float(v) for v in (1.5, math.nan, math.inf, -math.inf)] == [
        1.5,
        "NaN",
        "Infinity",
        "-Infinity",
    ]
    metric = decode(Metric, {"key": "loss", "value": "NaN", "step": 0, "timestamp_ms": 1})
    assert math.isnan(metric.value)


def test_decode_follows_the_field_types() -> None:
    run = decode(
        Run,
        {
            "id": "r1",
            "project": "p",
            "name": "n",
            "status": "FINISHED",
            "start_ms": 1,
            "end_ms": None,
            "params": {},
            "tags": {},
            "metrics": {"auc": 1, "loss": "Infinity"},
            "environment": None,
        },
    )
    assert run.status is RunStatus.FINISHED
    assert run.metrics == {"auc": 1.0, "loss": math.inf}
    token = decode(
        Token,
        {
            "id": "tok_1",
            "name": "",
            "role": "viewer",
            "project": None,
            "created_ms": 1,
            "created_by": "x",
        },
    )
    assert token.role is Role.VIEWER
    plan = TrafficPlan({3: 90, 4: 10}, [5])
    deployment = Deployment("p", "d", "m", plan, 2, 1, 2)
    assert decode(Deployment, encode(deployment)) == deployment
    version = ModelVersion(1, "p", "m", 1, "sklearn", "sha256:" + "ab" * 32, 1, metrics={"a": 0.5})
    assert decode(ModelVersion, encode(version)) == version


def test_outcome_values_keep_their_type() -> None:
    for value in (True, 1, 0.5, "yes"):
        assert decode(Outcome, {"request_id": "r", "value": value}).value == value
        assert type(decode(Outcome, {"request_id": "r", "value": value}).value) is type(value)


def test_encode_leaves_out_what_it_is_told_and_decode_refuses_unknown_keys() -> None:
    segment = PredictionSegment("p", "d", 0, "sha256:" + "ab" * 32, 1, 0, 0, 10, created_ms=5)
    assert "created_ms" not in encode(segment, exclude=("created_ms",))
    with pytest.raises(TypeError):
        decode(Metric, {"key": "k", "value": 1, "step": 0, "timestamp_ms": 1, "extra": 1})
