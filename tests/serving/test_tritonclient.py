"""The real ``tritonclient`` (HTTP) talks to the inference server, in JSON and binary modes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

import loopwise as lw
from loopwise.registry import models
from loopwise.serving import create_serving_app

from ..server.harness import serve_in_thread

FRAME = pd.DataFrame({"age": [20.0, 25.0, 30.0, 45.0, 60.0], "hours": [10, 20, 40, 40, 50]})


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[models.LoadedModel]:
    from sklearn.linear_model import LogisticRegression

    lw.init(project="triton", uri=tmp_path_factory.mktemp("triton") / "store")
    with lw.start_run(name="fit", capture_env=False) as run:
        model = LogisticRegression().fit(FRAME, [0, 0, 1, 1, 1])
        run.log_model(model, name="employment", input_example=FRAME.head(2))
    yield models.load("employment/1")
    lw.shutdown()


@pytest.fixture(scope="module")
def client(loaded: models.LoadedModel) -> Iterator[triton.InferenceServerClient]:
    with serve_in_thread(create_serving_app({"employment": loaded})) as url:
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        yield client
        client.close()


def _inputs(binary: bool, frame: pd.DataFrame = FRAME) -> list[triton.InferInput]:
    age = triton.InferInput("age", [len(frame)], "FP64")
    age.set_data_from_numpy(frame["age"].to_numpy(), binary_data=binary)
    hours = triton.InferInput("hours", [len(frame)], "INT64")
    hours.set_data_from_numpy(frame["hours"].to_numpy(), binary_data=binary)
    return [age, hours]


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("employment")
    meta = client.get_model_metadata("employment")
    assert [i["name"] for i in meta["inputs"]] == ["age", "hours"]
    assert client.get_server_metadata()["name"] == "loopwise"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_matches_the_sdk(
    client: triton.InferenceServerClient, loaded: models.LoadedModel, binary: bool
) -> None:
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=binary),
        triton.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    result = client.infer("employment", _inputs(binary), outputs=outputs, request_id="r1")
    np.testing.assert_array_equal(result.as_numpy("predict"), loaded.predict(FRAME))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), loaded.predict_proba(FRAME))
    assert result.get_response()["id"] == "r1"


def test_a_mistyped_column_is_refused_by_name(client: triton.InferenceServerClient) -> None:
    age = triton.InferInput("age", [1], "BYTES")
    age.set_data_from_numpy(np.array([b"old"], dtype=np.object_), binary_data=True)
    hours = triton.InferInput("hours", [1], "INT64")
    hours.set_data_from_numpy(np.array([3], dtype=np.int64))
    with pytest.raises(InferenceServerException) as info:
        client.infer("employment", [age, hours])
    assert "age" in str(info.value.message())
    assert info.value.status() == "422"
