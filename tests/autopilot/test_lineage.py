"""Lineage through retraining: whatever the pipeline records, a candidate the autopilot gates
names the data it was trained on, so that drift, validation and estimated performance keep
watching it once it serves, with the training data's validation suite carried over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import loopwise as lw
from loopwise.autopilot.lineage import with_training_data
from loopwise.context import Context
from loopwise.data import attach_suite, attached_suite, infer_suite
from loopwise.data.datasets import get_dataset

from .world import DEPLOYMENT, FEATURES, World, policy_text, window_rows

PLAIN = f"{Path(__file__).with_name('plain_pipeline.py')}:retraining"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Context]:
    context = lw.init(project="auto", uri=tmp_path / "store")
    yield context
    lw.shutdown()


def _training_dataset(ref: str) -> lw.DatasetVersion:
    version = lw.models.get(ref)
    found = [get_dataset(d) for d in version.datasets]
    (train,) = [d for d in found if d.split == "train"]
    return train


def test_a_candidate_of_a_pipeline_that_records_no_data_is_watched_once_it_serves(
    store: Context,
) -> None:
    # Window 4 brings x1 a thousand times too large: only a check that still knows the
    # training data (and its suite) of the promoted candidate can see it.
    world = World(change=1, bug=4)
    retrain = {"pipeline": PLAIN, "window": "3D", "min_rows": 300, "cooldown": "1D"}
    world.setup(policy_text(retrain=retrain))
    world.play(range(0, 5))
    production = lw.deployments.get(DEPLOYMENT).plan.spec
    state = lw.autopilot.state(DEPLOYMENT)
    assert state is not None and state.production != 1, production
    train = _training_dataset(f"synthetic/{state.production}")
    assert train.name == f"{DEPLOYMENT}-retrain"
    assert attached_suite(train.name) is not None
    history = lw.autopilot.history(DEPLOYMENT)
    promoted = next(d for d in history if d.kind == "promote")
    checks = [d for d in history if d.seq > promoted.seq and "check" in d.evidence]
    assert checks, [d.kind for d in history]
    for check in checks:
        assert not any("not checked" in f for f in check.evidence["check"]["findings"])
    escalation = next(d for d in history if d.kind == "escalate")
    assert escalation.seq > promoted.seq and "x1" in escalation.summary


def _registered_without_data() -> lw.ModelVersion:
    # scikit-learn is an optional extra ([sklearn]): only the tests that train need it.
    from sklearn.linear_model import LogisticRegression

    frame = window_rows(0, 200, change=100, task="classification")
    model = LogisticRegression().fit(frame[FEATURES], frame["y"])
    return lw.models.log_model(model, "synthetic", input_example=frame[FEATURES].head(3))


def test_the_data_handed_to_the_pipeline_is_named_once_and_only_where_missing(
    store: Context,
) -> None:
    frame = window_rows(0, 200, change=100, task="classification")
    train = lw.log_dataset(frame.iloc[:150], name="p-retrain", split="train")
    holdout = lw.log_dataset(frame.iloc[150:], name="p-retrain-holdout", split="holdout")
    candidate = _registered_without_data()
    named = with_training_data(candidate, train.ref, holdout.ref)
    assert named.version == candidate.version + 1
    assert named.artifact_digest == candidate.artifact_digest
    assert sorted(named.datasets) == sorted([train.ref, holdout.ref])
    assert named.run_id is not None and "autopilot" in (named.description or "")
    # Again (a tick interrupted before judging it): the same version, no third one.
    assert with_training_data(candidate, train.ref, holdout.ref).version == named.version
    assert with_training_data(named, train.ref).version == named.version
    assert len(lw.models.versions("synthetic")) == 2


def test_a_pipeline_that_names_its_own_training_data_gets_the_suite_carried_over(
    store: Context,
) -> None:
    # scikit-learn is an optional extra ([sklearn]): only the tests that train need it.
    from sklearn.linear_model import LogisticRegression

    frame = window_rows(0, 200, change=100, task="classification")
    suite = infer_suite(frame[FEATURES])
    attach_suite("p-retrain", suite, on_failure="warn")
    handed = lw.log_dataset(frame, name="p-retrain", split="train")
    with lw.start_run(name="fit") as run:
        own = lw.log_dataset(frame[[*FEATURES, "y"]].copy(), name="p-features", split="train")
        run.use(own)
        model = LogisticRegression().fit(frame[FEATURES], frame["y"])
        candidate = run.log_model(model, "synthetic", input_example=frame[FEATURES].head(3))
    assert with_training_data(candidate, handed.ref).version == candidate.version
    carried = attached_suite("p-features")
    assert carried is not None and carried[0].to_yaml() == suite.to_yaml()
