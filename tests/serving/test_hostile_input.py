"""Hostile requests to the inference server: refused early, with short messages, and none of
them holds the event loop (issue 16, finding 6 and the low items on headers and tensors)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest

import loopwise as lw
from loopwise.registry import models
from loopwise.serving import create_serving_app, protocols

from ..server.harness import AppTransport
from .live import live_serve

FRAME = pd.DataFrame({"age": [20.0, 25.0, 30.0, 45.0], "hours": [10, 20, 40, 45]})
WIDE = 50_000


def wide_csv(columns: int = WIDE) -> bytes:
    """A 0.44 MB CSV body with ``columns`` columns and one row (the issue's probe)."""
    header = ",".join(f"c{i}" for i in range(columns))
    return f"{header}\n{','.join('1' for _ in range(columns))}\n".encode()


def wide_record(columns: int = WIDE) -> dict[str, Any]:
    return {f"c{i}": 1 for i in range(columns)}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[models.LoadedModel]:
    from sklearn.linear_model import LogisticRegression

    lw.init(project="hostile", uri=tmp_path_factory.mktemp("hostile") / "store")
    model = LogisticRegression().fit(FRAME, [0, 0, 1, 1])
    with lw.start_run(name="fit", capture_env=False) as run:
        run.log_model(model, name="employment", input_example=FRAME.head(2))
    yield models.load("employment/1")
    lw.shutdown()


@pytest.fixture(scope="module")
def client(loaded: models.LoadedModel) -> Iterator[httpx.Client]:
    app = create_serving_app({"employment": loaded})
    with httpx.Client(transport=AppTransport(app), base_url="http://serve") as client:
        yield client
    app.close()


def message_of(response: httpx.Response) -> str:
    body = response.json()
    error = body["error"]
    return error if isinstance(error, str) else str(error["message"])


# -- finding 6: wide bodies ------------------------------------------------------------------
def test_a_50000_column_csv_is_refused_from_its_header_without_parsing_it(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = pd.read_csv

    def counting_read_csv(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(pd, "read_csv", counting_read_csv)
    response = client.post("/invocations", content=wide_csv(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 422, response.text[:500]
    assert calls == []  # counted from the header; pandas never saw it
    assert len(response.content) < 2_000
    message = message_of(response)
    assert "50000 columns" in message and "at most" in message, message


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_a_csv_header_with_quotes_is_counted_exactly(client: httpx.Client, newline: str) -> None:
    """A quoted header is counted with the csv module (a comma inside quotes is no column)."""
    body = newline.join(['"age","hours","note, with a comma"', '30.0,40,"x"', ""]).encode()
    response = client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert protocols.csv_columns(body) == 3


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", [wide_record()]),
        ("/invocations", {"dataframe_records": [wide_record()]}),
        ("/invocations", {"dataframe_split": {"columns": list(wide_record()), "data": [[1] * WIDE]}}),
        ("/invocations", {"inputs": {k: [1] for k in wide_record()}}),
        ("/v2/models/employment/infer", {"inputs": [{"name": k, "shape": [1], "datatype": "INT64", "data": [1]} for k in wide_record()]}),
    ],
)  # fmt: skip
def test_a_50000_key_request_is_refused_with_a_short_message(
    client: httpx.Client, path: str, body: object
) -> None:
    response = client.post(path, content=orjson.dumps(body))
    assert response.status_code == 422, response.text[:500]
    assert len(response.content) < 2_000
    assert "50000" in message_of(response)


def test_without_a_signature_a_request_takes_at_most_4096_columns() -> None:
    from loopwise.errors import InvalidArgumentError, SignatureMismatchError

    assert len(protocols.parse_records([wide_record(4_096)])) == 4_096
    with pytest.raises(InvalidArgumentError, match="4097 columns") as refused:
        protocols.parse_records([wide_record(4_097)])
    assert not isinstance(refused.value, SignatureMismatchError)  # a 400: no signature to miss
    many = [{f"r{r}_{i}": 1 for i in range(100)} for r in range(50)]  # 5,000 keys in all
    with pytest.raises(InvalidArgumentError, match="4100 or more columns"):
        protocols.parse_invocations(orjson.dumps({"dataframe_records": many}), "application/json")


def test_a_missing_column_message_lists_at_most_a_few_columns(client: httpx.Client) -> None:
    record = {"age": 1.0, **{f"extra_{i}": 1 for i in range(200)}}
    response = client.post("/predict", json=[record])
    assert response.status_code == 422
    message = message_of(response)
    assert "'hours'" in message and "and 191 more" in message, message
    assert len(response.content) < 2_000


def test_an_unknown_format_key_list_is_truncated(client: httpx.Client) -> None:
    response = client.post("/invocations", json=wide_record(5_000))
    assert response.status_code == 400
    assert len(response.content) < 2_000 and "more" in message_of(response)


def test_large_bodies_are_parsed_off_the_event_loop_small_ones_on_it(
    loaded: models.LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real = protocols.parse_invocations

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr("loopwise.serving.handlers.mlflow.parse_invocations", spy)
    app = create_serving_app({"employment": loaded})
    transport = AppTransport(app)
    loop_thread = transport.thread.name
    rows = FRAME.values.tolist() * 2_000  # about 100 KB of JSON
    try:
        with httpx.Client(transport=transport, base_url="http://serve") as client:
            small = {"dataframe_split": {"columns": ["age", "hours"], "data": rows[:2]}}
            large = {"dataframe_split": {"columns": ["age", "hours"], "data": rows}}
            assert client.post("/invocations", json=small).status_code == 200
            response = client.post("/invocations", json=large)
            assert response.status_code == 200, response.text
            assert len(response.json()["predictions"]) == len(rows)
    finally:
        app.close()
    assert threads[0] == loop_thread  # the fast path: no thread hop for a small body
    assert threads[1] != loop_thread


# -- low items: headers ----------------------------------------------------------------------
@pytest.mark.parametrize("value", [b"\xb2", "9" * 5_000, "-1", " 1", "1e3", "\uff11"])
def test_inference_header_content_length_must_be_ascii_decimal(
    client: httpx.Client, value: bytes | str
) -> None:
    raw = value if isinstance(value, bytes) else value.encode()
    body = orjson.dumps(
        {"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    )
    response = client.post(
        "/v2/models/employment/infer",
        content=body,
        headers=[(b"inference-header-content-length", raw)],
    )
    assert response.status_code == 400, response.text[:300]
    assert "Inference-Header-Content-Length" in message_of(response)
    assert len(response.content) < 1_000


def test_an_over_long_request_id_gets_its_real_length_in_the_message(
    client: httpx.Client,
) -> None:
    response = client.post(
        "/predict", json=[{"age": 1.0, "hours": 2}], headers={"X-Request-Id": "x" * 300}
    )
    assert response.status_code == 400
    message = message_of(response)
    assert "300 characters" in message and "256" in message, message
    assert "x" * 300 not in response.text


@pytest.mark.parametrize("value", ["é-id".encode("latin-1"), "é-id".encode(), b"id\x01"])
def test_a_request_id_that_is_not_printable_ascii_is_refused(
    client: httpx.Client, value: bytes
) -> None:
    response = client.post(
        "/predict", json=[{"age": 1.0, "hours": 2}], headers=[(b"x-request-id", value)]
    )
    assert response.status_code == 400, response.text
    assert "printable ASCII" in message_of(response)
    assert "x-request-id" not in response.headers


def test_a_printable_request_id_comes_back_unchanged(client: httpx.Client) -> None:
    response = client.post(
        "/predict", json=[{"age": 1.0, "hours": 2}], headers={"X-Request-Id": "req 7/a:b"}
    )
    assert response.status_code == 200 and response.headers["x-request-id"] == "req 7/a:b"


# -- low items: V2 tensors -------------------------------------------------------------------
def _infer(client: httpx.Client, tensor: dict[str, Any]) -> httpx.Response:
    other = {"name": "hours", "shape": [1], "datatype": "INT64", "data": [40]}
    return client.post("/v2/models/employment/infer", json={"inputs": [tensor, other]})


@pytest.mark.parametrize(
    ("tensor", "needle"),
    [
        ({"name": "age", "shape": [1], "datatype": "INT8", "data": [1000]}, "INT8"),
        ({"name": "age", "shape": [1], "datatype": "INT8", "data": [-129]}, "INT8"),
        ({"name": "age", "shape": [1], "datatype": "UINT8", "data": [-1]}, "UINT8"),
        ({"name": "age", "shape": [1], "datatype": "UINT64", "data": [-1]}, "UINT64"),
        ({"name": "age", "shape": [1], "datatype": "INT64", "data": [2**64 - 1]}, "INT64"),
        ({"name": "age", "shape": [1], "datatype": "INT32", "data": [1.5]}, "INT32"),
        ({"name": "age", "shape": [1], "datatype": "FP16", "data": [1e6]}, "FP16"),
        ({"name": "age", "shape": [1], "datatype": "FP32", "data": [1e300]}, "FP32"),
        ({"name": "age", "shape": [1], "datatype": "BOOL", "data": [2]}, "BOOL"),
        ({"name": "age", "shape": [1], "datatype": "BYTES", "data": [5]}, "BYTES"),
        ({"name": "age", "shape": [1, 1], "datatype": "INT8", "data": [[1000]]}, "INT8"),
        ({"name": "age", "shape": [2.0], "datatype": "FP64", "data": [1.0, 2.0]}, "shape"),
        ({"name": "age", "shape": [True], "datatype": "FP64", "data": [1.0]}, "shape"),
        ({"name": "age", "shape": [-1], "datatype": "FP64", "data": [1.0]}, "shape"),
        ({"name": "age", "shape": [1] * 100, "datatype": "FP64", "data": [1.0]}, "shape"),
        ({"name": "age", "shape": [10**30], "datatype": "FP64", "data": [1.0]}, "shape"),
        ({"name": "a" * 10_000, "shape": [1], "datatype": "X" * 10_000, "data": [1.0]}, "datatype"),
    ],
)  # fmt: skip
def test_v2_tensors_are_checked_against_their_datatype_and_shape(
    client: httpx.Client, tensor: dict[str, Any], needle: str
) -> None:
    response = _infer(client, tensor)
    assert response.status_code == 400, response.text[:300]
    assert needle in message_of(response)
    assert len(response.content) < 2_000


@pytest.mark.parametrize(
    ("datatype", "data"),
    [("INT8", [-128, 127]), ("UINT8", [0, 255]), ("FP16", [65504.0, -1.5]), ("BOOL", [True, False]),
     ("FP32", [1, 2.5]), ("INT64", [-(2**63), 2**63 - 1]), ("UINT64", [0, 2**64 - 1])],
)  # fmt: skip
def test_v2_values_at_the_edges_of_their_datatype_are_accepted(
    datatype: str, data: list[Any]
) -> None:
    inputs = protocols.decode_oip_inputs(
        {"inputs": [{"name": "x", "shape": [2], "datatype": datatype, "data": data}]}
    )
    assert isinstance(inputs, dict) and list(inputs["x"]) == data


# -- the real server: a wide body does not stall a small request -----------------------------
@pytest.mark.slow
def test_a_wide_csv_does_not_stall_a_concurrent_small_request(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    store = tmp_path / "store"
    lw.init(project="p", uri=store)
    with lw.start_run(name="fit", capture_env=False) as run:
        model = LogisticRegression().fit(FRAME, [0, 0, 1, 1])
        run.log_model(model, name="toy", input_example=FRAME.head(2))
    lw.shutdown()
    wide = wide_csv()
    with live_serve(store, ["toy", "--compute", "thread"], tmp_path / "serve.log") as url:

        def big() -> int:
            headers = {"Content-Type": "text/csv"}
            return httpx.post(
                url + "/invocations", content=wide, headers=headers, timeout=60
            ).status_code

        def small() -> float:
            time.sleep(0.05)  # the big bodies are in flight by now
            started = time.perf_counter()
            answer = httpx.post(url + "/predict", json=[{"age": 30.0, "hours": 40}], timeout=60)
            assert answer.status_code == 200, answer.text
            return time.perf_counter() - started

        with ThreadPoolExecutor(5) as pool:
            bigs = [pool.submit(big) for _ in range(4)]
            latency = pool.submit(small).result()
            statuses = [b.result() for b in bigs]
    assert statuses == [422] * 4
    # Normally a few milliseconds; before the fix each wide body held the event loop for
    # seconds, and the small request waited behind them.
    assert latency < 1.5, latency
