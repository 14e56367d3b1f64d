"""Property-based fuzz of the inference server's parsers, through the real ASGI app in-process.

Bodies mix valid structure with hostile values (huge, negative and float shapes, wrong
datatypes, out-of-range numbers, NaN and Infinity tokens, deep nesting, non-UTF-8 bytes,
missing, extra and duplicate keys, absurd header lengths). Whatever comes, the server answers
below 500, every 4xx is the one JSON error envelope with a bounded message, and no request
holds the event loop past its budget (a heartbeat task on the same loop measures the longest
gap between its ticks).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import hypothesis
import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import strategies as st

import loopwise as lw
from loopwise.registry import models
from loopwise.serving import create_serving_app

FRAME = pd.DataFrame({"age": [20.0, 25.0, 30.0, 45.0], "hours": [10, 20, 40, 45]})
LOOP_BUDGET_S = 2.0
"""Longest the event loop may be held by one request; a few milliseconds is normal."""
MAX_ERROR_BYTES = 8_192
SETTINGS = hypothesis.settings(
    max_examples=60,
    derandomize=True,  # the same cases on every run; widen max_examples locally to explore
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
)
DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"]
DATATYPES += ["FP16", "FP32", "FP64", "BYTES"]


# -- the app, driven on one event loop -------------------------------------------------------
class Harness:
    """The serving app (a model with a table signature, and one without) on an event loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        loop_budget_s: float = LOOP_BUDGET_S,
    ) -> tuple[int, bytes]:
        status, content, gap_s = self.loop.run_until_complete(
            self._exchange(method, path, body, headers or [])
        )
        assert gap_s < loop_budget_s, f"{path} held the event loop for {gap_s:.2f} s"
        return status, content

    async def _exchange(
        self, method: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, bytes, float]:
        path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": query.encode(),
            "headers": [(k.lower(), v) for k, v in headers],
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        ticks = [time.perf_counter(), 0.0]  # the last tick, the longest gap between ticks

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(0.002)
                now = time.perf_counter()
                ticks[:] = [now, max(ticks[1], now - ticks[0])]

        beat = asyncio.ensure_future(heartbeat())
        await asyncio.sleep(0)  # the heartbeat ticks from here on
        try:
            await asyncio.wait_for(self.app(scope, receive, send), timeout=30)
        finally:
            beat.cancel()
        longest = max(ticks[1], time.perf_counter() - ticks[0])  # (a hold at the very end too)
        start = next(m for m in sent if m["type"] == "http.response.start")
        content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        for key, value in start["headers"]:  # binary outputs: the JSON part comes first
            if key == b"inference-header-content-length":
                content = content[: int(value)]
        return int(start["status"]), content, longest

    def close(self) -> None:
        self.app.close()
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    from sklearn.linear_model import LogisticRegression

    lw.init(project="fuzz", uri=tmp_path_factory.mktemp("fuzz") / "store")
    model = LogisticRegression().fit(FRAME, [0, 0, 1, 1])
    with lw.start_run(name="fit", capture_env=False) as run:
        run.log_model(model, name="employment", input_example=FRAME.head(2))
    loaded = models.load("employment/1")
    lw.shutdown()
    bare = dataclasses.replace(loaded.version, signature=None)  # the model decides alone
    raw = models.LoadedClassifier(bare, loaded.model)
    harness = Harness(create_serving_app({"employment": loaded, "raw": raw}))
    yield harness
    harness.close()


def check(status: int, content: bytes, oip: bool) -> None:
    """No 5xx; an error is the one envelope, with a bounded message."""
    hypothesis.event(f"HTTP {status}")  # (pytest --hypothesis-show-statistics)
    assert status < 500, content[:2_000]
    body = orjson.loads(content)
    if status < 400:
        assert isinstance(body, dict)
        return
    assert len(content) < MAX_ERROR_BYTES, content[:2_000]
    if oip:  # the Open Inference Protocol's shape, our code and details beside it
        assert isinstance(body["error"], str) and isinstance(body["code"], str), body
        assert isinstance(body["details"], dict), body
    else:
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message", "details"}, body
        assert isinstance(body["error"]["message"], str), body


# -- hostile values ----------------------------------------------------------------------------
NAMES = st.sampled_from(["age", "hours", "input", "x", ""]) | st.text(max_size=8)
NUMBERS = (
    st.integers(-(2**70), 2**70)
    | st.sampled_from([0, 1, -1, 127, 128, 255, 256, -129, 65_504, 2**63 - 1, 2**63, 2**64 - 1])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e300, -1e300, 5e-324, -0.0, 65_520.0, 3.5e38, 0.5])
)
SCALARS = NUMBERS | st.booleans() | st.none() | st.text(max_size=6)
AGES = st.floats(0, 120) | st.integers(0, 120)  # what the model was trained on
HOURS = st.integers(0, 80)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=12,
)
DEEP = st.integers(1, 3_000).map(lambda depth: b"[" * depth + b"1" + b"]" * depth)
TOKENS = st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"\xff\xfe", b"\x00"])


@st.composite
def dumped(draw: st.DrawFn, value: Any) -> bytes:
    """``value`` as JSON bytes, sometimes damaged: a NaN token, a cut, stray bytes, a
    duplicated key."""
    raw = json.dumps(value).encode()  # (not orjson: integers past 64 bits are sent too)
    how = draw(st.sampled_from(["as is"] * 4 + ["token", "cut", "bytes", "duplicate"]))
    if how == "token" and b"1" in raw:
        return raw.replace(b"1", draw(TOKENS), 1)
    if how == "cut" and raw:
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if how == "bytes":
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.binary(max_size=6)) + raw[at:]
    if how == "duplicate" and raw.startswith(b"{") and raw != b"{}":
        return raw[:-1] + b"," + raw[1:]  # every key twice: the last one wins
    return raw


def shapes(length: int) -> st.SearchStrategy[Any]:
    return (
        st.sampled_from([[length], [length, 1], [1, length]])
        | st.lists(
            st.integers(-3, 10**20) | st.floats(-5, 5) | st.booleans() | st.text(max_size=2),
            max_size=4,
        )
        | st.sampled_from([[float(length)], [True], [-1], [1] * 80, [10**30], "2", None, {}])
    )


@st.composite
def tensors(draw: st.DrawFn) -> dict[str, Any]:
    data = draw(st.lists(SCALARS, min_size=0, max_size=5) | VALUES)
    length = len(data) if isinstance(data, list) else 1
    datatype = draw(st.sampled_from(DATATYPES) | st.sampled_from(["FP99", "", "int8"]) | VALUES)
    tensor: dict[str, Any] = {
        "name": draw(NAMES | VALUES),
        "shape": draw(shapes(length)),
        "datatype": datatype,
        "data": data,
    }
    for key in draw(st.sets(st.sampled_from(["name", "shape", "datatype", "data"]), max_size=1)):
        del tensor[key]
    return tensor


def valid_columns(rows: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    ages = st.lists(NUMBERS, min_size=rows, max_size=rows)
    hours = st.lists(st.integers(-(2**40), 2**40), min_size=rows, max_size=rows)
    return st.tuples(ages, hours, st.sampled_from(["FP64", "FP32", "FP16"])).map(
        lambda t: [
            {"name": "age", "shape": [rows], "datatype": t[2], "data": t[0]},
            {"name": "hours", "shape": [rows, 1], "datatype": "INT64", "data": t[1]},
        ]
    )


V2_BODIES = st.one_of(
    st.integers(1, 4).flatmap(valid_columns).map(lambda inputs: {"inputs": inputs}),
    st.lists(tensors(), max_size=3).map(lambda inputs: {"inputs": inputs}),
    st.builds(
        lambda inputs, outputs, extra: {"inputs": inputs, "outputs": outputs, **extra},
        st.integers(1, 3).flatmap(valid_columns),
        st.lists(st.fixed_dictionaries({"name": NAMES | VALUES}), max_size=3) | VALUES,
        st.dictionaries(st.sampled_from(["id", "parameters"]), VALUES, max_size=2),
    ),
    VALUES,
)


# -- the properties ----------------------------------------------------------------------------
@SETTINGS
@hypothesis.given(body=V2_BODIES.flatmap(dumped) | DEEP, pinned=st.booleans())
def test_v2_json_infer(server: Harness, body: bytes, pinned: bool) -> None:
    path = "/v2/models/employment" + ("/versions/1" if pinned else "") + "/infer"
    check(*server.request("POST", path, body), oip=True)


@st.composite
def binary_requests(draw: st.DrawFn) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """A binary-extension request: a JSON header whose tensors declare binary_data_size, raw
    bytes after it, and an Inference-Header-Content-Length that may lie."""
    if draw(st.integers(0, 3)) == 0:  # a well-formed one, as tritonclient sends it
        ages = draw(st.lists(AGES.map(float), min_size=1, max_size=4))
        age = np.asarray(ages, dtype="<f8").tobytes()
        hours = np.asarray(draw(st.lists(HOURS, min_size=len(ages), max_size=len(ages))), "<i8")
        header = orjson.dumps(
            {
                "inputs": [
                    {"name": "age", "shape": [len(ages)], "datatype": "FP64",
                     "parameters": {"binary_data_size": len(age)}},
                    {"name": "hours", "shape": [len(ages), 1], "datatype": "INT64",
                     "parameters": {"binary_data_size": hours.nbytes}},
                ],
                "parameters": {"binary_data_output": draw(st.booleans())},
            }
        )  # fmt: skip
        length = str(len(header)).encode()
        return header + age + hours.tobytes(), [(b"inference-header-content-length", length)]
    specs = []
    for name in draw(st.lists(st.sampled_from(["age", "hours", "input"]), min_size=1, max_size=3)):
        size = draw(st.integers(-8, 64) | st.sampled_from([True, 1.5, "8", 2**70]))
        specs.append(
            {
                "name": name,
                "shape": draw(shapes(draw(st.integers(0, 8)))),
                "datatype": draw(st.sampled_from(DATATYPES)),
                "parameters": {"binary_data_size": size},
            }
        )
    header = json.dumps(
        {"inputs": specs, "parameters": {"binary_data_output": draw(st.booleans())}}
    ).encode()
    payload = draw(st.binary(max_size=96))
    length = draw(
        st.sampled_from([str(len(header)).encode()] * 3)
        | st.integers(-5, 10**25).map(lambda n: str(n).encode())
        | st.sampled_from([b"\xb2", b"\xef\xbc\x91", b"", b" 1", b"1e3", b"9" * 5_000])
        | st.binary(max_size=8)
    )
    return header + payload, [(b"inference-header-content-length", length)]


@SETTINGS
@hypothesis.given(request=binary_requests())
def test_v2_binary_infer(server: Harness, request: tuple[bytes, list[tuple[bytes, bytes]]]) -> None:
    body, headers = request
    check(*server.request("POST", "/v2/models/employment/infer", body, headers), oip=True)


def records(keys: st.SearchStrategy[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(st.dictionaries(keys, SCALARS | VALUES, max_size=4), min_size=0, max_size=4)


RECORD_KEYS = st.sampled_from(["age", "hours", "extra"]) | st.text(max_size=5)
INVOCATIONS = st.one_of(
    st.lists(st.tuples(AGES, HOURS).map(list), min_size=1, max_size=4).map(
        lambda rows: {"dataframe_split": {"columns": ["age", "hours"], "data": rows}}
    ),
    st.builds(
        lambda columns, data: {"dataframe_split": {"columns": columns, "data": data}},
        st.sampled_from([["age", "hours"], ["hours", "age"], ["age"], []]) | VALUES,
        st.lists(st.lists(SCALARS, max_size=3), max_size=4) | VALUES,
    ),
    records(RECORD_KEYS).map(lambda r: {"dataframe_records": r}),
    records(RECORD_KEYS).map(lambda r: {"instances": r}),
    st.dictionaries(RECORD_KEYS, st.lists(SCALARS, max_size=3) | VALUES, max_size=3).map(
        lambda columns: {"inputs": columns}
    ),
    st.sampled_from(["instances", "inputs"]).flatmap(
        lambda key: VALUES.map(lambda value: {key: value})
    ),
    st.dictionaries(
        st.sampled_from(["dataframe_split", "instances", "inputs", "records"]), VALUES, max_size=3
    ),
)


@SETTINGS
@hypothesis.given(
    body=INVOCATIONS.flatmap(dumped) | DEEP,
    model=st.sampled_from(["employment", "raw"]),
    content_type=st.one_of(
        st.just(b"application/json"),
        st.just(b"application/json; charset=utf-8"),
        st.just(b"Application/JSON"),
        st.binary(max_size=12),
    ),
)
def test_invocations_json(server: Harness, body: bytes, model: str, content_type: bytes) -> None:
    headers = [(b"content-type", content_type)]
    check(*server.request("POST", f"/invocations?model={model}", body, headers), oip=False)


CELLS = st.one_of(
    NUMBERS.map(str),
    st.sampled_from(["", "nan", "inf", "-inf", "NaN", "1e999", "True", '"a,b"', '"', "'"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
)


@st.composite
def csv_bodies(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 3)) == 0:  # a well-formed one
        rows: list[Any] = draw(st.lists(st.tuples(AGES, HOURS), min_size=1, max_size=4))
        return ("age,hours\n" + "".join(f"{a},{h}\n" for a, h in rows)).encode()
    header = draw(
        st.sampled_from([["age", "hours"], ["hours", "age"], ["age"], ["age", "hours", "age"]])
        | st.lists(RECORD_KEYS, min_size=1, max_size=4)
    )
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=5), max_size=4))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(",".join(cells) for cells in [header, *rows]) + newline
    raw = text.encode()
    if draw(st.booleans()):  # non-UTF-8 bytes, or a quote left open, somewhere
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b'"', b"\x00"])) + raw[at:]
    return raw


@SETTINGS
@hypothesis.given(body=csv_bodies(), model=st.sampled_from(["employment", "raw"]))
def test_invocations_csv(server: Harness, body: bytes, model: str) -> None:
    headers = [(b"content-type", b"text/csv")]
    check(*server.request("POST", f"/invocations?model={model}", body, headers), oip=False)


PREDICT = st.one_of(
    records(RECORD_KEYS),
    records(RECORD_KEYS).map(lambda r: {"records": r}),
    st.lists(st.fixed_dictionaries({"age": AGES, "hours": HOURS}), min_size=1, max_size=4),
    st.lists(
        st.fixed_dictionaries({"age": NUMBERS | SCALARS, "hours": NUMBERS | SCALARS}), max_size=4
    ),
    VALUES,
)


@SETTINGS
@hypothesis.given(
    body=PREDICT.flatmap(dumped) | DEEP,
    model=st.sampled_from(["employment", "raw"]),
    request_id=st.one_of(st.none(), st.none(), st.just(b"id-1"), st.binary(max_size=300)),
    deadline=st.one_of(
        st.none(), st.none(), st.binary(max_size=8), st.sampled_from([b"5", b"1e9", b"nan"])
    ),
)
def test_predict(
    server: Harness, body: bytes, model: str, request_id: bytes | None, deadline: bytes | None
) -> None:
    headers = [(b"content-type", b"application/json")]
    if request_id is not None:
        headers.append((b"x-request-id", request_id))
    if deadline is not None:
        headers.append((b"x-deadline-ms", deadline))
    check(*server.request("POST", f"/predict?model={model}", body, headers), oip=False)


def test_the_harness_sees_a_request_that_holds_the_loop(server: Harness) -> None:
    """The heartbeat does measure the event loop: a handler that blocks it is caught (against
    a budget of its own, so that the handler need not block for the whole of LOOP_BUDGET_S)."""
    real = server.app._route
    budget_s = 0.2

    async def blocking(*args: Any) -> Any:
        time.sleep(budget_s * 1.2)
        return await real(*args)

    server.app._route = blocking
    try:
        with pytest.raises(AssertionError, match="held the event loop"):
            server.request("GET", "/ping", loop_budget_s=budget_s)
    finally:
        del server.app._route
    assert server.request("GET", "/ping")[0] == 200
