"""Served-model slots: warm-up, alias moves and hot swaps, failures, LRU eviction, remote stores."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from loopwise.context import Context
from loopwise.errors import (
    ArtifactCorruptedError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from loopwise.registry import models
from loopwise.registry.signature import check_input, infer_signature
from loopwise.serving import models as served_models
from loopwise.serving.models import ModelEvent, ServedModels, warm_up_input
from loopwise.store import ModelVersion, Store
from loopwise.store.artifacts import LocalArtifactStore

FRAME = pd.DataFrame(
    {"age": [20.0, 25.0, 30.0, 45.0, 50.0, 60.0], "hours": [10, 20, 40, 40, 45, 50]}
)
LABELS = [0, 0, 1, 1, 1, 1]
POLL_S = 0.02


class FailsOnZeros:
    """A custom model that predicts real rows but rejects the all-zero warm-up row."""

    def predict(self, X: Any) -> Any:
        values = np.asarray(X, dtype=float)
        if (values == 0).all():
            raise ValueError("an all-zero row is not a person")
        return np.ones(len(values), dtype=int)


def register(
    name: str = "employment",
    *,
    labels: list[int] = LABELS,
    store: Store | None = None,
    project: str | None = None,
) -> ModelVersion:
    model = LogisticRegression().fit(FRAME, labels)
    return models.log_model(model, name, input_example=FRAME.head(2), store=store, project=project)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


class Events:
    def __init__(self) -> None:
        self.seen: list[ModelEvent] = []

    def __call__(self, event: ModelEvent) -> None:
        self.seen.append(event)

    def kinds(self, name: str | None = None) -> list[str]:
        return [e.kind for e in self.seen if name is None or e.name == name]


@pytest.fixture
def events() -> Events:
    return Events()


def served(ctx: Context, refs: list[str], events: Events, **options: Any) -> ServedModels:
    options.setdefault("poll_interval_s", POLL_S)
    return ServedModels(refs, store=ctx.store, project=ctx.project, on_event=events, **options)


# -- fixed models and names ------------------------------------------------------------------------
def test_fixed_models_serve_without_a_store(ctx: Context) -> None:
    register()
    loaded = models.load("employment/1")
    slots = ServedModels.fixed({"jobs": loaded})
    assert slots.names == ("jobs",)
    assert slots.current("jobs") is loaded and slots.get("jobs") is loaded
    slots.start()  # nothing to load, nothing to poll
    state = slots.state("jobs")
    assert (state.ref, state.version, state.ready, state.loaded) == ("employment/1", 1, True, True)
    assert state.error is None and state.last_used is not None
    assert slots.ready() and slots.ready("jobs")
    with slots.using("jobs") as model:
        assert model.predict(FRAME).tolist() == loaded.predict(FRAME).tolist()
    slots.close()


def test_unknown_names_and_duplicate_refs(ctx: Context) -> None:
    slots = ServedModels(["employment@production"], store=ctx.store, project=ctx.project)
    for call in (slots.state, slots.current, slots.get, slots.ready):
        with pytest.raises(NotFoundError, match="'employment'"):
            call("nope")
    with pytest.raises(InvalidArgumentError, match="named twice"):
        ServedModels(["employment@production", "employment/2"], store=ctx.store, project="p")
    with pytest.raises(InvalidArgumentError, match="model reference"):
        ServedModels(["no spaces"], store=ctx.store, project="p")


# -- loading and warm-up ---------------------------------------------------------------------------
def test_start_loads_and_warms_each_ref_kind(ctx: Context, events: Events) -> None:
    register("employment")
    register("employment", labels=[1, 0, 1, 0, 1, 0])
    models.set_alias("employment", 1, "production")
    register("other")
    slots = served(ctx, ["employment@production", "other"], events)
    assert not slots.ready() and slots.current("other") is None  # nothing loads before start()
    with slots:
        assert slots.ready()
        production, other = slots.state("employment"), slots.state("other")
        assert (production.version, other.version) == (1, 1)
        for state in (production, other):
            assert state.loaded and state.ready and state.error is None
            assert state.load_seconds is not None and state.load_seconds > 0
            assert state.nbytes is not None and state.nbytes > 0
        assert sorted(events.kinds()) == ["loaded", "loaded"]
        current = slots.current("employment")
        assert current is not None and current.version.version == 1


def test_a_pinned_ref_serves_its_version_from_the_start(ctx: Context, events: Events) -> None:
    register("employment")
    register("employment", labels=[1, 0, 1, 0, 1, 0])
    with served(ctx, ["employment/1"], events, poll_interval_s=60) as slots:
        current = slots.current("employment")
        assert current is not None and current.version.version == 1  # not the latest
        assert [(e.kind, e.version) for e in events.seen] == [("loaded", 1)]


def test_a_deployment_version_is_held_until_released(ctx: Context, events: Events) -> None:
    register("employment")
    register("employment", labels=[1, 0, 1, 0, 1, 0])
    with served(ctx, ["employment"], events) as slots:
        model = slots.add_version("prod", "employment", 1).result(timeout=30)
        key = ServedModels.version_key("prod", "employment", 1)
        assert model.version.version == 1 and slots.current(key) is model
        assert slots.add_version("prod", "employment", 1).result() is model  # held once
        latest = slots.current("employment")
        assert latest is not None and latest.version.version == 2  # the ref is its own slot
        loaded = [e for e in events.seen if e.deployment == "prod"]
        assert [(e.kind, e.name, e.version) for e in loaded] == [("loaded", "employment", 1)]
        missing = slots.add_version("prod", "employment", 9)
        with pytest.raises(NotFoundError):
            missing.result(timeout=30)
        with pytest.raises(UnavailableError, match="tried again"):  # backs off, at once
            slots.add_version("prod", "employment", 9).result(timeout=1)
        assert slots.ready()  # a deployment's versions do not make the models unready
        slots.release("prod", "employment", 1)
        with pytest.raises(NotFoundError):
            slots.current(key)


def test_warm_up_failure_means_not_ready(ctx: Context, events: Events) -> None:
    models.log_model(FailsOnZeros(), "picky", input_example=FRAME.head(2), allow_pickle=True)
    with served(ctx, ["picky"], events, allow_pickle=True) as slots:
        state = slots.state("picky")
        assert not state.ready and not state.loaded and not slots.ready()
        assert state.error is not None and "warm-up" in state.error
        assert "all-zero row" in state.error
        assert events.kinds() == ["load_failed"]


def test_a_model_that_cannot_load_is_not_ready_and_is_not_hammered(
    ctx: Context, events: Events
) -> None:
    version = register("broken")
    (file_digest, _), *_ = ctx.store.artifacts.read_manifest(version.artifact_digest).values()
    artifacts = ctx.store.artifacts
    assert isinstance(artifacts, LocalArtifactStore)
    blob = artifacts.root / "sha256" / file_digest[7:9] / file_digest[9:]
    blob.write_bytes(b"not a model")
    with served(ctx, ["broken/1"], events, poll_interval_s=60) as slots:
        assert not slots.ready("broken")
        assert "corrupted" in (slots.state("broken").error or "")
        with pytest.raises(UnavailableError, match="corrupted") as raised:
            slots.get("broken")  # within the back-off: the recorded error, no new attempt
        assert raised.value.details["cause"] == ArtifactCorruptedError.code
        assert 0 < raised.value.retry_after_s <= 60
        assert events.kinds() == ["load_failed"]


def test_warm_up_input_for_a_dataframe_with_categories() -> None:
    frame = pd.DataFrame(
        {
            "state": pd.Categorical(["MA", "NY", "MA"], categories=["MA", "NY"]),
            "age": [20.0, 30.0, 40.0],
            "hours": pd.array([10, 20, 30], dtype="Int64"),
            "citizen": [True, False, True],
            "born": pd.to_datetime(["1990-01-01", "1980-05-05", "1970-02-02"]),
        }
    )
    signature = infer_signature(frame)
    X, guessed = warm_up_input(signature)
    assert not guessed
    checked = check_input(signature, X)  # valid input for the model's own signature check
    assert checked["state"].tolist() == ["MA"] and checked["age"].tolist() == [0.0]
    assert str(checked["hours"].dtype) == "Int64" and checked["citizen"].tolist() == [False]
    X, guessed = warm_up_input(infer_signature(frame.assign(note=["a", "b", "c"])))
    assert guessed and X["note"].tolist() == [""]
    assert warm_up_input(None) == (None, False)


def test_warm_up_serves_a_categorical_model(ctx: Context, events: Events) -> None:
    frame = pd.DataFrame(
        {
            "state": pd.Categorical(["MA", "NY", "CT", "MA", "NY", "CT"] * 5),
            "age": np.linspace(20, 70, 30),
        }
    )
    model = HistGradientBoostingClassifier(max_iter=5, categorical_features="from_dtype")
    model.fit(frame, [0, 1] * 15)
    models.log_model(model, "by-state", input_example=frame.head(3))
    with served(ctx, ["by-state"], events) as slots:
        assert slots.ready("by-state"), slots.state("by-state").error


def test_warm_up_input_for_an_ndarray_signature(ctx: Context, events: Events) -> None:
    X = FRAME.to_numpy()
    models.log_model(LogisticRegression().fit(X, LABELS), "plain", input_example=X[:2])
    signature = models.get("plain").signature
    assert signature is not None and signature["inputs"]["type"] == "ndarray"
    warm, guessed = warm_up_input(signature, rows=3)
    assert not guessed and warm.shape == (3, 2) and warm.dtype == np.float64
    assert not warm.any()
    with served(ctx, ["plain"], events) as slots:
        assert slots.ready("plain")


# -- alias moves and hot swaps ---------------------------------------------------------------------
def test_alias_move_swaps_only_after_warm_up_and_no_request_fails(
    ctx: Context, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    register()
    register(labels=[1, 0, 1, 0, 1, 0])
    models.set_alias("employment", 1, "production")
    warmed: set[int] = set()
    real_warm_up = served_models.warm_up

    def slow_warm_up(model: models.LoadedModel, reference: Any = None) -> None:
        time.sleep(0.1)  # a swap that takes a while, so that requests run during it
        real_warm_up(model, reference)
        warmed.add(id(model))

    monkeypatch.setattr(served_models, "warm_up", slow_warm_up)
    seen: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def steady_load(slots: ServedModels) -> None:
        while not stop.is_set():
            try:
                model = slots.current("employment")
                assert model is not None and id(model) in warmed
                model.predict(FRAME)
                seen.append(model.version.version)
            except BaseException as exc:
                failures.append(exc)
                return

    with served(ctx, ["employment@production"], events) as slots:
        client = threading.Thread(target=steady_load, args=(slots,))
        client.start()
        wait_for(lambda: len(seen) > 10)
        models.set_alias("employment", 2, "production")
        wait_for(lambda: slots.state("employment").version == 2)
        count = len(seen)
        wait_for(lambda: len(seen) > count + 10)
        stop.set()
        client.join()
    assert failures == []
    switches = [v for i, v in enumerate(seen) if i == 0 or seen[i - 1] != v]
    assert switches == [1, 2]
    assert events.kinds() == ["loaded", "swapped"]
    assert events.seen[1].previous_version == 1 and events.seen[1].version == 2


def test_a_failing_new_version_keeps_the_old_one_serving(ctx: Context, events: Events) -> None:
    register()
    models.log_model(FailsOnZeros(), "employment", input_example=FRAME.head(2), allow_pickle=True)
    register(labels=[1, 0, 1, 0, 1, 0])
    models.set_alias("employment", 1, "production")
    with served(ctx, ["employment@production"], events, allow_pickle=True) as slots:
        models.set_alias("employment", 2, "production")
        wait_for(lambda: "load_failed" in events.kinds())
        state = slots.state("employment")
        assert state.ready and state.loaded and state.version == 1
        assert state.error is not None and "all-zero row" in state.error
        current = slots.current("employment")
        assert current is not None and current.version.version == 1
        wait_for(lambda: events.kinds().count("load_failed") >= 2)  # retried on a later poll
        time.sleep(0.5)  # ~25 polls; the back-off allows at most a handful of attempts
        assert events.kinds().count("load_failed") <= 6
        models.set_alias("employment", 3, "production")  # a fixed version replaces it
        wait_for(lambda: slots.state("employment").version == 3)
        assert slots.state("employment").error is None
    assert events.kinds()[-1] == "swapped"


def test_close_cancels_queued_loads_and_wakes_their_waiters(
    ctx: Context, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    register("a")
    register("b")
    release = threading.Event()
    monkeypatch.setattr(served_models, "warm_up", lambda model, reference: release.wait(10))
    # A memory budget loads one model at a time: b waits in the queue behind a.
    slots = served(ctx, ["a", "b"], events, memory_budget_bytes=10**9)
    slots.poll()
    with ThreadPoolExecutor(2) as pool:
        waiter = pool.submit(slots.get, "b")
        closing = pool.submit(slots.close)
        with pytest.raises(UnavailableError, match="shut"):
            waiter.result(timeout=10)
        release.set()
        closing.result(timeout=10)
    assert slots.ready("a") and not slots.ready("b")


# -- memory budget ---------------------------------------------------------------------------------
def test_least_recently_used_model_is_evicted_and_reloaded(ctx: Context, events: Events) -> None:
    for name in ("a", "b", "c"):
        register(name)
    with served(ctx, ["c"], Events()) as probe:
        nbytes = probe.state("c").nbytes  # the three models have the same size (give or take)
    assert nbytes is not None
    slots = served(ctx, ["a", "b", "c"], events, memory_budget_bytes=int(nbytes * 2.5))
    with slots:
        # Loaded in order: c's load evicted a, the least recently used.
        assert events.kinds() == ["loaded", "loaded", "evicted", "loaded"]
        assert [slots.state(n).loaded for n in "abc"] == [False, True, True]
        assert slots.state("a").ready and slots.current("a") is None
        assert slots.current("b") is not None  # b is now used more recently than c
        events.seen.clear()
        with ThreadPoolExecutor(4) as pool:  # concurrent callers share one load
            reloaded = list(pool.map(lambda _: slots.get("a"), range(4)))
        assert all(m is reloaded[0] for m in reloaded)
        assert [(e.kind, e.name) for e in events.seen] == [("evicted", "c"), ("loaded", "a")]
        assert events.seen[1].seconds is not None and events.seen[1].seconds > 0
        assert slots.state("a").loaded and not slots.state("c").loaded
        # A model in use is never evicted: holding b (the LRU now) makes c's reload evict a.
        events.seen.clear()
        with slots.using("b"):
            slots.current("a")
            slots.get("c")
        assert [(e.kind, e.name) for e in events.seen] == [("evicted", "a"), ("loaded", "c")]


# -- remote mode -----------------------------------------------------------------------------------
@pytest.fixture
def remote(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    from loopwise.server import create_app
    from loopwise.store import open_store
    from loopwise.store.remote import RemoteStore

    from ..server.harness import AppTransport

    backend = open_store(tmp_path / "store")
    backend.get_or_create_project("remote")
    _, secret = backend.create_token("admin")
    transport = AppTransport(create_app(backend))
    client = RemoteStore("http://t", secret, transport=transport, spool_dir=tmp_path / "sp").open()
    yield backend, client
    client.close()
    transport.close()
    backend.close()


def test_alias_moves_are_followed_through_a_remote_store(
    remote: tuple[Store, Store], events: Events
) -> None:
    backend, client = remote
    for labels in (LABELS, [1, 0, 1, 0, 1, 0]):
        register(store=backend, project="remote", labels=labels)
    backend.set_alias("remote", "employment", "production", 1)
    slots = ServedModels(
        ["employment@production"],
        store=client,
        project="remote",
        poll_interval_s=POLL_S,
        on_event=events,
    )
    with slots:
        assert slots.state("employment").version == 1
        backend.set_alias("remote", "employment", "production", 2)
        wait_for(lambda: slots.state("employment").version == 2)
    assert events.kinds() == ["loaded", "swapped"]
