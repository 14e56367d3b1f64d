"""The inference app's protocols, driven in-process through the real ASGI app."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest

import loopwise as lw
from loopwise.registry import models
from loopwise.serving import create_serving_app

from ..server.harness import AppTransport

FRAME = pd.DataFrame(
    {"age": [20.0, 25.0, 30.0, 45.0, 50.0, 60.0], "hours": [10, 20, 40, 40, 45, 50]}
)
LABELS = [0, 0, 1, 1, 1, 1]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[models.LoadedModel]:
    from sklearn.linear_model import LogisticRegression

    lw.init(project="serve", uri=tmp_path_factory.mktemp("serve") / "store")
    model = LogisticRegression().fit(FRAME, LABELS)
    with lw.start_run(name="fit", capture_env=False) as run:
        run.log_model(model, name="employment", input_example=FRAME.head(2))
    yield models.load("employment/1")
    lw.shutdown()


@pytest.fixture
def client(loaded: models.LoadedModel) -> Iterator[httpx.Client]:
    app = create_serving_app({"employment": loaded})
    with httpx.Client(transport=AppTransport(app), base_url="http://serve") as client:
        yield client


def expected(loaded: models.LoadedModel, rows: pd.DataFrame) -> list[int]:
    return [int(v) for v in loaded.predict(rows)]


def test_health_and_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "loopwise"
    meta = client.get("/v2/models/employment").json()
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [
        {"name": "age", "datatype": "FP64", "shape": [-1]},
        {"name": "hours", "datatype": "INT64", "shape": [-1]},
    ]
    assert client.get("/v2/models/employment/ready").json()["ready"] is True
    assert client.get("/v2/models/employment/versions/1").status_code == 200


def test_oip_infer_matches_the_sdk(client: httpx.Client, loaded: models.LoadedModel) -> None:
    body = {
        "id": "req-1",
        "inputs": [
            {"name": "age", "shape": [6], "datatype": "FP64", "data": FRAME["age"].tolist()},
            {
                "name": "hours",
                "shape": [6, 1],
                "datatype": "INT64",
                "data": FRAME["hours"].tolist(),
            },
        ],
    }
    response = client.post("/v2/models/employment/infer", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["id"] == "req-1" and result["model_version"] == "1"
    outputs = {o["name"]: o for o in result["outputs"]}
    assert outputs["predict"]["data"] == expected(loaded, FRAME)
    assert outputs["predict_proba"]["shape"] == [6, 2]
    proba = np.asarray(outputs["predict_proba"]["data"]).reshape(6, 2)
    np.testing.assert_allclose(proba, loaded.predict_proba(FRAME))
    only = client.post(
        "/v2/models/employment/versions/1/infer", json={**body, "outputs": [{"name": "predict"}]}
    ).json()
    assert [o["name"] for o in only["outputs"]] == ["predict"]


def test_batch_equals_loop(client: httpx.Client) -> None:
    """Scoring rows together gives what scoring each alone gives."""
    records = FRAME.to_dict(orient="records")
    together = client.post("/predict", json=records).json()["predictions"]
    alone = [client.post("/predict", json=[r]).json()["predictions"][0] for r in records]
    assert together == alone


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", {"dataframe_split": {"columns": ["age", "hours"], "data": FRAME.values.tolist()}}),
        ("application/json", {"dataframe_records": FRAME.to_dict(orient="records")}),
        ("application/json", {"instances": FRAME.to_dict(orient="records")}),
        ("application/json", {"inputs": {"age": FRAME["age"].tolist(), "hours": FRAME["hours"].tolist()}}),
        ("text/csv", FRAME.to_csv(index=False)),
    ],
)  # fmt: skip
def test_mlflow_invocations_formats(
    client: httpx.Client, loaded: models.LoadedModel, content_type: str, body: object
) -> None:
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    response = client.post("/invocations", headers={"Content-Type": content_type}, **kwargs)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected(loaded, FRAME)


def test_predict_gives_probabilities(client: httpx.Client, loaded: models.LoadedModel) -> None:
    result = client.post("/predict", json={"records": FRAME.head(2).to_dict(orient="records")})
    body = result.json()
    assert body["model"] == "employment" and body["version"] == 1
    np.testing.assert_allclose(body["probabilities"], loaded.predict_proba(FRAME.head(2)))


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "needle"),
    [
        ("post", "/predict", {"json": [{"age": 30.0}]}, 422, "hours"),
        ("post", "/predict", {"json": [{"age": "old", "hours": 3}]}, 422, "age"),
        ("post", "/predict", {"json": []}, 400, "records"),
        ("post", "/predict", {"content": b"{nope"}, 400, "JSON"),
        ("post", "/v2/models/employment/infer", {"json": {"inputs": [{"name": "age"}]}}, 400, "missing"),
        ("post", "/v2/models/employment/infer", {"json": {"inputs": [{"name": "age", "shape": [3], "datatype": "FP64", "data": [1, 2]}]}}, 400, "shape"),
        ("post", "/v2/models/employment/infer", {"json": {"inputs": [{"name": "age", "shape": [1], "datatype": "FP99", "data": [1]}]}}, 400, "datatype"),
        ("post", "/v2/models/nope/infer", {"json": {"inputs": []}}, 404, "employment"),
        ("get", "/v2/models/employment/versions/7", {}, 404, "7"),
        ("post", "/invocations", {"json": {"dataframe_split": {}, "instances": []}}, 400, "exactly one"),
        ("post", "/invocations", {"content": b"x", "headers": {"Content-Type": "text/plain"}}, 400, "text/csv"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_4xx(
    client: httpx.Client,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    needle: str,
) -> None:
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    if path.startswith("/v2"):  # the Open Inference Protocol's shape: the message as a string
        message, code = body["error"], body["code"]
    else:
        message, code = body["error"]["message"], body["error"]["code"]
    assert needle in message, body
    assert code in ("invalid_argument", "signature_mismatch", "not_found"), body
