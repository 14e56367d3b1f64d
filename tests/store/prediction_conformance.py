"""The prediction log's behaviour on every ``Store`` backend: the segment index and read-back.

A backend's test class mixes ``PredictionLogConformance`` in beside ``StoreConformance`` and
provides the same ``store`` fixture (a fresh, empty store).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from loopwise.errors import InvalidArgumentError, NotFoundError
from loopwise.store import PredictionSegment, Store
from loopwise.store.predictions import (
    COLUMNS,
    PredictionRecord,
    read_predictions,
    write_predictions,
)

HOUR_MS = 3_600_000
T0_MS = 1_700_002_800_000  # the start of an hour
DIGEST = "sha256:" + "ab" * 32


def record(i: int, **changes: object) -> PredictionRecord:
    fields: dict[str, object] = {
        "project": "proj",
        "deployment": "churn",
        "request_id": f"req-{i}",
        "model": "churn",
        "version": 1,
        "timestamp_ms": T0_MS + i * 1000,
        "latency_ms": 2.5,
        "inputs": {"age": 30 + i, "income": i * 1.5, "state": "MA"},
        "outputs": {"predict": i % 2, "predict_proba": [0.25, 0.75]},
    }
    fields.update(changes)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


def segment(hour_ms: int = T0_MS, **changes: object) -> PredictionSegment:
    fields: dict[str, object] = {
        "project": "proj",
        "deployment": "churn",
        "hour_ms": hour_ms,
        "digest": DIGEST,
        "num_rows": 10,
        "min_timestamp_ms": hour_ms + 5,
        "max_timestamp_ms": hour_ms + 500,
        "size_bytes": 100,
    }
    fields.update(changes)
    return PredictionSegment(**fields)  # type: ignore[arg-type]


def _index(segments: list[PredictionSegment]) -> list[tuple[str, int, int]]:
    return [(s.deployment, s.hour_ms, s.num_rows) for s in segments]


def _fields(obj: PredictionSegment | PredictionRecord) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _described(s: PredictionSegment) -> dict[str, Any]:
    """What a writer says about a segment (without when the store registered it)."""
    return {k: v for k, v in _fields(s).items() if k != "created_ms"}


class PredictionLogConformance:
    """Generic checks of the prediction log; subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("A backend's test class must override the `store` fixture.")

    @pytest.fixture
    def project(self, store: Store) -> str:
        return store.get_or_create_project("proj").name

    # -- the segment index ------------------------------------------------------------------------
    def test_segments_round_trip(self, store: Store, project: str) -> None:
        store.add_prediction_segments([segment(), segment(T0_MS + HOUR_MS, num_rows=3)])
        got = store.list_prediction_segments(project, "churn")
        assert [_described(s) for s in got] == [
            _described(segment()),
            _described(segment(T0_MS + HOUR_MS, num_rows=3)),
        ]
        assert all(s.created_ms > 0 for s in got)

    def test_segments_are_listed_by_deployment_and_time(self, store: Store, project: str) -> None:
        store.add_prediction_segments(
            [
                segment(T0_MS + 2 * HOUR_MS),
                segment(T0_MS),
                segment(T0_MS + HOUR_MS, deployment="other"),
            ]
        )
        assert _index(store.list_prediction_segments(project)) == [
            ("churn", T0_MS, 10),
            ("other", T0_MS + HOUR_MS, 10),
            ("churn", T0_MS + 2 * HOUR_MS, 10),
        ]
        by_time = store.list_prediction_segments(project, "churn", T0_MS + 501, None)
        assert _index(by_time) == [("churn", T0_MS + 2 * HOUR_MS, 10)]
        # The range is [start, end): a segment whose first row is at end_ms is outside it.
        before = store.list_prediction_segments(project, "churn", None, T0_MS + 2 * HOUR_MS + 5)
        assert _index(before) == [("churn", T0_MS, 10)]
        assert store.list_prediction_segments(project, "nothing-here") == []

    def test_spooled_batches_are_indexed_once(self, store: Store, project: str) -> None:
        store.add_prediction_segments([segment()], "spool-1", 10)
        store.add_prediction_segments([segment()], "spool-1", 10)  # a replay
        store.add_prediction_segments([segment()], "spool-1", 7)  # an older batch, replayed
        assert store.spool_progress("spool-1") == 10
        store.add_prediction_segments([segment(T0_MS + HOUR_MS)], "spool-1", 12)
        assert store.spool_progress("spool-1") == 12
        assert len(store.list_prediction_segments(project)) == 2
        store.forget_spool("spool-1")
        assert store.spool_progress("spool-1") == 0

    def test_each_indexed_batch_is_one_audit_record(self, store: Store, project: str) -> None:
        since = store.audit_log(limit=10_000)[-1].seq
        batch = [segment(), segment(T0_MS + HOUR_MS, num_rows=3)]
        store.add_prediction_segments(batch, "spool-3", 4)
        store.add_prediction_segments(batch, "spool-3", 4)  # a replay: nothing changes
        [entry] = store.audit_log(after_seq=since)
        assert (entry.action, entry.project, entry.target) == (
            "predictions.log",
            "proj",
            "deployment:proj/churn",
        )
        assert entry.after == {
            "deployments": ["proj/churn"],
            "segments": 2,
            "rows": 13,
            "digests": [DIGEST, DIGEST],
            "spool_id": "spool-3",  # the spool's progress is recorded with its batch
            "upto_seq": 4,
        }

    def test_segments_of_a_refused_batch_are_not_indexed(self, store: Store, project: str) -> None:
        with pytest.raises(NotFoundError, match="nope"):
            store.add_prediction_segments([segment(), segment(project="nope")], "spool-2", 5)
        assert store.list_prediction_segments(project) == []
        assert store.spool_progress("spool-2") == 0

    @pytest.mark.parametrize(
        ("changes", "parameter"),
        [
            ({"hour_ms": T0_MS + 1}, "hour_ms"),
            ({"min_timestamp_ms": T0_MS - 1}, "min_timestamp_ms"),
            ({"max_timestamp_ms": T0_MS + HOUR_MS}, "min_timestamp_ms"),
            ({"min_timestamp_ms": T0_MS + 9, "max_timestamp_ms": T0_MS + 8}, "min_timestamp_ms"),
            ({"num_rows": 0}, "num_rows"),
            ({"digest": "md5:abc"}, "digest"),
            ({"deployment": "bad name!"}, "name"),
            ({"hour_ms": "now"}, "hour_ms"),
        ],
    )
    def test_invalid_segments_are_refused(
        self, store: Store, project: str, changes: dict[str, Any], parameter: str
    ) -> None:
        fields = _described(segment())
        fields.update(changes)
        with pytest.raises(InvalidArgumentError) as info:
            store.add_prediction_segments([PredictionSegment(**fields)])
        assert info.value.details.get("parameter", "digest") == parameter
        assert store.list_prediction_segments(project) == []

    def test_invalid_listing_arguments(self, store: Store, project: str) -> None:
        with pytest.raises(InvalidArgumentError, match="start_ms <= end_ms"):
            store.list_prediction_segments(project, "churn", T0_MS + 1, T0_MS)
        with pytest.raises(InvalidArgumentError, match="deployment"):
            store.list_prediction_segments(project, "no/slashes")
        with pytest.raises(NotFoundError, match="'ghost'"):
            store.list_prediction_segments("ghost")

    # -- write and read back ----------------------------------------------------------------------
    def test_predictions_round_trip(self, store: Store, project: str) -> None:
        records = [record(i) for i in range(5)]
        segments = write_predictions(store, records)
        assert _index(segments) == [("churn", T0_MS, 5)]
        frame = read_predictions(store, project, "churn")
        assert list(frame.columns) == [
            *COLUMNS,
            "input.age",
            "input.income",
            "input.state",
            "output.predict",
            "output.predict_proba",
        ]
        assert frame["request_id"].tolist() == [r.request_id for r in records]
        assert frame["timestamp_ms"].tolist() == [r.timestamp_ms for r in records]
        assert frame["input.age"].tolist() == [30, 31, 32, 33, 34]
        assert frame["input.income"].tolist() == [0.0, 1.5, 3.0, 4.5, 6.0]
        assert frame["output.predict"].tolist() == [0, 1, 0, 1, 0]
        assert [list(p) for p in frame["output.predict_proba"]] == [[0.25, 0.75]] * 5
        assert set(frame["version"]) == {1} and set(frame["latency_ms"]) == {2.5}

    def test_nan_and_infinity_survive(self, store: Store, project: str) -> None:
        inputs = {"x": math.nan, "y": -math.inf}
        outputs = {"predict": math.nan, "scores": [math.inf, math.nan]}
        write_predictions(store, [record(0, inputs=inputs, outputs=outputs)])
        row = read_predictions(store, project, "churn").iloc[0]
        assert math.isnan(row["input.x"]) and row["input.y"] == -math.inf
        assert math.isnan(row["output.predict"])
        scores = list(row["output.scores"])
        assert scores[0] == math.inf and math.isnan(scores[1])

    def test_numpy_values_are_logged_as_their_python_values(
        self, store: Store, project: str
    ) -> None:
        inputs = {"n": np.int64(7), "f": np.float32(0.5), "b": np.bool_(True)}
        outputs = {"predict_proba": np.array([0.1, 0.9])}
        write_predictions(store, [record(0, inputs=inputs, outputs=outputs, version=np.int64(2))])
        row = read_predictions(store, project, "churn").iloc[0]
        assert (row["input.n"], row["input.f"], row["input.b"]) == (7, 0.5, True)
        assert list(row["output.predict_proba"]) == [0.1, 0.9]
        assert row["version"] == 2

    def test_columns_of_mixed_types_come_back_as_logged(self, store: Store, project: str) -> None:
        records = [
            record(0, inputs={"code": 7, "meta": {"a": 1}}),
            record(1, inputs={"code": "x7", "meta": {"b": [1, 2]}}),
            record(2, inputs={"code": None}),
        ]
        write_predictions(store, records)
        frame = read_predictions(store, project, "churn")
        assert frame["input.code"].tolist() == [7, "x7", None]
        assert frame["input.meta"].tolist() == [{"a": 1}, {"b": [1, 2]}, None]

    def test_reading_by_time_range_and_across_hours(self, store: Store, project: str) -> None:
        # Rows in two hours and two deployments, logged in two calls.
        first = [record(i, timestamp_ms=T0_MS + i * 1_200_000) for i in range(4)]
        second = [record(9, deployment="other"), record(10, timestamp_ms=T0_MS + 10)]
        write_predictions(store, first)
        segments = write_predictions(store, second)
        assert sorted(_index(segments)) == [("churn", T0_MS, 1), ("other", T0_MS, 1)]
        everything = read_predictions(store, project, "churn")
        assert everything["request_id"].tolist() == ["req-0", "req-10", "req-1", "req-2", "req-3"]
        window = read_predictions(store, project, "churn", T0_MS + 10, T0_MS + 2_400_000)
        assert window["request_id"].tolist() == ["req-10", "req-1"]
        later = read_predictions(store, project, "churn", T0_MS + HOUR_MS)
        assert later["request_id"].tolist() == ["req-3"]
        assert read_predictions(store, project, "other")["request_id"].tolist() == ["req-9"]

    def test_reading_an_empty_log(self, store: Store, project: str) -> None:
        frame = read_predictions(store, project, "churn")
        assert list(frame.columns) == list(COLUMNS)
        assert len(frame) == 0

    def test_predictions_batch_equals_loop(self, store: Store, project: str) -> None:
        records = [record(i) for i in range(6)]
        write_predictions(store, records)
        for r in records:
            write_predictions(store, [PredictionRecord(**{**_fields(r), "deployment": "loop"})])
        batch = read_predictions(store, project, "churn").drop(columns="deployment")
        loop = read_predictions(store, project, "loop").drop(columns="deployment")
        assert batch.astype(str).equals(loop.astype(str))
