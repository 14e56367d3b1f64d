"""What the inference server loads: pickles and extra skops types only when its operator says
so, and no version replaces a working one without answering a request first."""

from __future__ import annotations

import logging
import pickle
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import LoopwiseError, UnsafeModelError
from loopwise.registry import models

from ..cli.harness import cli
from .live import live_serve
from .test_models import FRAME, LABELS, Events, register, served, wait_for


@pytest.fixture
def events() -> Events:
    return Events()


class Rule:
    """A custom model, stored with pickle."""

    def predict(self, X: Any) -> np.ndarray:
        return (np.asarray(pd.DataFrame(X)["age"]) > 28).astype(np.int64)


class Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (str(self.marker), "w"))


def plant(ctx: Context, marker: Path) -> int:
    """A pickle that creates ``marker`` when loaded, registered as any editor could; the
    ``production`` alias moved to it."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model.pkl").write_bytes(pickle.dumps(Planted(marker)))
        digest = ctx.store.artifacts.put_tree(Path(tmp))
    version = ctx.store.create_model_version(
        ctx.project, "employment", flavour="python", artifact_digest=digest
    )
    models.set_alias("employment", version.version, "production")
    return version.version


def test_a_pickle_behind_the_alias_is_not_loaded_without_allow_pickle(
    ctx: Context, events: Events, tmp_path: Path
) -> None:
    register()
    models.set_alias("employment", 1, "production")
    marker = tmp_path / "pwned"
    with served(ctx, ["employment@production"], events) as slots:
        assert slots.state("employment").version == 1
        plant(ctx, marker)
        wait_for(lambda: "load_failed" in events.kinds())
        state = slots.state("employment")
        assert state.ready and state.version == 1  # the working version keeps serving
        assert state.error is not None and "--allow-pickle" in state.error
    assert not marker.exists()
    with served(ctx, ["employment@production"], Events()) as slots:  # nor at start
        assert not slots.ready() and "allow_pickle" in (slots.state("employment").error or "")
    assert not marker.exists()


def test_the_operator_allows_pickles_for_models_and_deployment_versions(ctx: Context) -> None:
    models.log_model(Rule(), "rule", input_example=FRAME.head(2), allow_pickle=True)
    with served(ctx, ["rule"], Events()) as slots:
        assert not slots.ready()
        with pytest.raises(UnsafeModelError, match="allow-pickle"):
            slots.add_version("prod", "rule", 1).result(timeout=30)
    with served(ctx, ["rule"], Events(), allow_pickle=True) as slots:
        assert slots.ready()
        assert slots.get("rule").predict(FRAME).tolist() == Rule().predict(FRAME).tolist()
        held = slots.add_version("prod", "rule", 1).result(timeout=30)
        assert held.version.flavour == "python"


def test_the_operator_extends_skops_trust(ctx: Context) -> None:
    pipeline = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression())
    pipeline.fit(FRAME, LABELS)
    pipeline.steps[0][1].func = subprocess.list2cmdline  # a function outside the allow-list
    models.log_model(pipeline, "shell")
    with served(ctx, ["shell"], Events(), warm_up=False) as slots:
        assert "subprocess.list2cmdline" in (slots.state("shell").error or "")
    trusted = ["subprocess.list2cmdline"]
    with served(ctx, ["shell"], Events(), warm_up=False, trusted_types=trusted) as slots:
        assert slots.ready()


# -- a version that cannot be warmed from its own signature ---------------------------------------
def test_a_version_without_a_signature_is_warmed_with_the_one_it_replaces(
    ctx: Context, events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    register()  # 1: with a signature
    wide = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0], "c": [0.0, 0.0, 1.0]})
    models.log_model(LogisticRegression().fit(wide, [0, 1, 1]), "employment")  # 2: 3 columns
    models.log_model(LogisticRegression().fit(FRAME, LABELS), "employment")  # 3: no signature
    models.set_alias("employment", 1, "production")
    with served(ctx, ["employment@production"], events) as slots:
        models.set_alias("employment", 2, "production")
        wait_for(lambda: "load_failed" in events.kinds())
        state = slots.state("employment")
        assert state.version == 1 and state.ready  # refused: it cannot answer what v1 answered
        assert state.error is not None and "warm-up" in state.error
        models.set_alias("employment", 3, "production")
        wait_for(lambda: slots.state("employment").version == 3)
    assert events.kinds()[-1] == "swapped"


def test_a_deployments_new_version_without_a_signature_must_answer_like_the_held_one(
    ctx: Context,
) -> None:
    register()  # 1: with a signature
    wide = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0], "c": [0.0, 0.0, 1.0]})
    models.log_model(LogisticRegression().fit(wide, [0, 1, 1]), "employment")  # 2
    models.log_model(LogisticRegression().fit(FRAME, LABELS), "employment")  # 3
    with served(ctx, [], Events(), poll_interval_s=60) as slots:
        slots.add_version("prod", "employment", 1).result(timeout=30)
        with pytest.raises(LoopwiseError, match="a version serving already"):
            slots.add_version("prod", "employment", 2).result(timeout=30)
        assert slots.add_version("prod", "employment", 3).result(timeout=30).version.version == 3


def test_a_first_version_without_a_signature_loads_with_a_warning(
    ctx: Context, events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    models.log_model(LogisticRegression().fit(FRAME, LABELS), "employment")
    with caplog.at_level(logging.WARNING), served(ctx, ["employment"], events) as slots:
        assert slots.ready()
    assert any("no input signature" in r.getMessage() for r in caplog.records)


# -- loopwise serve --------------------------------------------------------------------------------
@pytest.mark.slow
def test_loopwise_serve_needs_allow_pickle_for_a_pickled_model(tmp_path: Path) -> None:
    class LocalRule:  # local: pickled by value, so the serve process needs no test module
        def predict(self, X: Any) -> Any:
            return (pd.DataFrame(X)["age"] > 28).astype("int64").to_numpy()

    store = tmp_path / "store"
    lw.init(project="p", uri=store)
    models.log_model(LocalRule(), "rule", input_example=FRAME.head(2), allow_pickle=True)
    lw.shutdown()
    refused = cli(store, "serve", "rule", "--port", "0", ok=False, project="p")
    assert "--allow-pickle" in refused.stdout + refused.stderr
    with live_serve(
        store, ["rule", "--allow-pickle", "--compute", "thread"], tmp_path / "serve.log"
    ) as url:
        rows = [{"age": 20.0, "hours": 1}, {"age": 40.0, "hours": 1}]
        assert httpx.post(url + "/predict", json=rows).json()["predictions"] == [0, 1]
