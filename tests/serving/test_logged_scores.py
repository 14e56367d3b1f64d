"""Every logged row of a classifier carries its scores, whichever route asked for what.

Monitoring reads ``output.predict_proba`` for score-based metrics and estimated performance;
a route that computed ``predict`` only (``/invocations``, a V2 request naming its outputs) once
logged rows without it. The client still gets only what it asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import loopwise as lw
from loopwise.registry import models
from loopwise.serving import create_serving_app
from loopwise.store import open_store
from loopwise.store.predictions import PredictionSpool, read_predictions

from ..server.harness import AppTransport, serve_in_thread

FRAME = pd.DataFrame({"age": [20.0, 25.0, 30.0, 45.0], "hours": [10, 20, 40, 45]})
LABELS = [0, 0, 1, 1]
V2_BODY = {
    "inputs": [
        {"name": "age", "shape": [4], "datatype": "FP64", "data": FRAME["age"].tolist()},
        {"name": "hours", "shape": [4], "datatype": "INT64", "data": FRAME["hours"].tolist()},
    ],
    "outputs": [{"name": "predict"}],
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[models.LoadedModel]:
    from sklearn.linear_model import LogisticRegression

    lw.init(project="scores", uri=tmp_path_factory.mktemp("scores") / "store")
    model = LogisticRegression().fit(FRAME, LABELS)
    with lw.start_run(name="fit", capture_env=False) as run:
        run.log_model(model, name="employment", input_example=FRAME.head(2))
    yield models.load("employment/1")
    lw.shutdown()


def _logged(tmp_path: Path, loaded: models.LoadedModel, processes: bool) -> pd.DataFrame:
    """Send /invocations and a V2 request for ``predict`` only; the log as read back."""
    store = open_store(tmp_path / "logstore")
    store.get_or_create_project("scores")
    spool = PredictionSpool(store, directory=tmp_path / "spool").open()
    app = create_serving_app(
        {"employment": loaded}, prediction_log=spool, project="scores", processes=processes
    )
    records = {"dataframe_records": FRAME.to_dict(orient="records")}
    if processes:  # the model process logs the rows it computes
        with serve_in_thread(app, lifespan="on") as base, httpx.Client(base_url=base) as client:
            mlflow = client.post("/invocations", json=records, headers={"X-Request-Id": "m"})
            v2 = client.post(
                "/v2/models/employment/infer", json=V2_BODY, headers={"X-Request-Id": "v"}
            )
    else:
        with httpx.Client(transport=AppTransport(app), base_url="http://serve") as client:
            mlflow = client.post("/invocations", json=records, headers={"X-Request-Id": "m"})
            v2 = client.post(
                "/v2/models/employment/infer", json=V2_BODY, headers={"X-Request-Id": "v"}
            )
    app.close()  # drains the spool into the store
    try:
        expected = [int(v) for v in loaded.predict(FRAME)]
        assert mlflow.status_code == 200 and mlflow.json() == {"predictions": expected}
        assert v2.status_code == 200, v2.text
        assert [o["name"] for o in v2.json()["outputs"]] == ["predict"]  # only what it asked
        return read_predictions(store, "scores", "employment")
    finally:
        store.close()


@pytest.mark.parametrize("processes", [False, True], ids=["in-server", "model-process"])
def test_rows_asked_for_predict_only_are_logged_with_their_scores(
    loaded: models.LoadedModel, tmp_path: Path, processes: bool
) -> None:
    log = _logged(tmp_path, loaded, processes)
    assert sorted(log["request_id"]) == sorted(
        [f"{prefix}:{i}" for prefix in "mv" for i in range(len(FRAME))]
    )
    assert log["output.predict_proba"].notna().all()
    for prefix in "mv":
        rows = log[log["request_id"].str.startswith(f"{prefix}:")].sort_values("request_id")
        proba = np.stack(rows["output.predict_proba"].to_list())
        np.testing.assert_allclose(proba, loaded.predict_proba(FRAME))
        assert rows["output.predict"].tolist() == [int(v) for v in loaded.predict(FRAME)]
