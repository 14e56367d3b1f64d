"""The registry as users call it: references, versions, aliases, pickle opt-in and lineage."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import (
    InvalidArgumentError,
    MissingDependencyError,
    NotFoundError,
    UnsafeModelError,
)
from loopwise.registry.flavours import FLAVOURS, get_flavour
from loopwise.registry.models import parse_ref

from .datasets import ACS_LABEL, acs_numeric, acs_sample


@cache
def fitted(c: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=1000).fit(acs_numeric(), acs_sample()[ACS_LABEL])


def log_versions(name: str, count: int) -> list[lw.ModelVersion]:
    with lw.start_run(name="train") as run:
        return [
            run.log_model(fitted(), name=name, input_example=acs_numeric()[:3])
            for _ in range(count)
        ]


class Threshold:
    """Any object with predict: Loopwise has no safe format for it."""

    def predict(self, X: Any) -> np.ndarray:
        return (np.asarray(X)[:, 0] > 40).astype(np.int64)


# -- references ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("employment", ("employment", None, None)),
        ("employment/3", ("employment", 3, None)),
        ("employment@production", ("employment", None, "production")),
        ("acs.v2-gbdt_x/12", ("acs.v2-gbdt_x", 12, None)),
        ("m@canary-2", ("m", None, "canary-2")),
    ],
)
def test_good_references_parse(ref: str, parsed: tuple[str, int | None, str | None]) -> None:
    assert parse_ref(ref) == parsed


@pytest.mark.parametrize(
    "ref",
    ["", "employment/", "employment@", "employment/x", "employment/1@prod", "/1", "@prod",
     "two words", "employment/-1", 3, None],
)  # fmt: skip
def test_bad_references_are_refused_with_the_expected_forms(ref: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="Expected a model reference like") as info:
        parse_ref(ref)
    assert "'employment@production'" in info.value.message
    assert info.value.details["parameter"] == "ref"


# -- getting versions ---------------------------------------------------------------------------


def test_get_latest_by_number_and_by_alias(lw_ctx: Context) -> None:
    first, second, third = log_versions("employment", 3)
    assert [first.version, second.version, third.version] == [1, 2, 3]
    assert lw.models.get("employment").version == 3
    assert lw.models.get("employment/2") == second
    lw.models.set_alias("employment", 1, "production")
    assert lw.models.get("employment@production").version == 1
    assert lw.models.get("employment@production").aliases == ["production"]
    assert [v.version for v in lw.models.versions("employment")] == [1, 2, 3]
    (model,) = lw.models.list_models()
    assert (model.name, model.latest_version, model.aliases) == ("employment", 3, {"production": 1})


def test_unknown_model_lists_the_existing_names(lw_ctx: Context) -> None:
    log_versions("employment", 1)
    log_versions("income", 1)
    with pytest.raises(NotFoundError, match="No model named 'employmnet'") as info:
        lw.models.get("employmnet")
    assert "'employment', 'income'" in info.value.message
    with pytest.raises(NotFoundError, match="'employment', 'income'"):
        lw.models.load("employmnet@production")


def test_unknown_version_lists_the_existing_ones(lw_ctx: Context) -> None:
    log_versions("employment", 2)
    with pytest.raises(NotFoundError, match=r"has no version 7; it has versions \[1, 2\]"):
        lw.models.get("employment/7")


def test_unknown_alias_lists_the_existing_aliases(lw_ctx: Context) -> None:
    log_versions("employment", 2)
    lw.models.set_alias("employment", 1, "production")
    lw.models.set_alias("employment", 2, "canary")
    with pytest.raises(NotFoundError, match="No alias of model 'employment' named 'prod'") as info:
        lw.models.get("employment@prod")
    assert "'canary', 'production'" in info.value.message


# -- aliases ------------------------------------------------------------------------------------


def test_set_alias_returns_the_version_it_left(lw_ctx: Context) -> None:
    log_versions("employment", 2)
    assert lw.models.set_alias("employment", 1, "production") is None
    assert lw.models.set_alias("employment", 2, "production") == 1
    assert lw.models.get("employment/1").aliases == []
    assert lw.models.get("employment/2").aliases == ["production"]
    assert lw.models.delete_alias("employment", "production") == 2
    with pytest.raises(NotFoundError):
        lw.models.get("employment@production")


def test_alias_to_a_missing_version_is_refused(lw_ctx: Context) -> None:
    log_versions("employment", 1)
    with pytest.raises(NotFoundError, match=r"it has versions \[1\]"):
        lw.models.set_alias("employment", 5, "production")
    with pytest.raises(InvalidArgumentError, match="version number"):
        lw.models.set_alias("employment", "1", "production")  # type: ignore[arg-type]


def test_aliases_move_atomically(lw_ctx: Context) -> None:
    """Concurrent moves form one chain: each move leaves exactly the version the one before set."""
    count = 6
    log_versions("employment", count)
    with ThreadPoolExecutor(max_workers=count) as pool:
        left = list(
            pool.map(
                lambda v: lw.models.set_alias("employment", v, "production"),
                range(1, count + 1),
            )
        )
    final = lw.models.get("employment@production").version
    # Every version was set once and left at most once; the one never left is the final one.
    never_left = sorted(set(range(1, count + 1)) - {final})
    assert sorted(left, key=lambda v: -1 if v is None else v) == [None, *never_left]


# -- logging ------------------------------------------------------------------------------------


def test_pickle_needs_allow_pickle(lw_ctx: Context) -> None:
    with lw.start_run(name="r") as run:
        with pytest.raises(UnsafeModelError, match="pass allow_pickle=True") as info:
            run.log_model(Threshold(), name="rule")
        assert "Threshold" in info.value.message
        mv = run.log_model(
            Threshold(), name="rule", allow_pickle=True, input_example=acs_numeric()[:3]
        )
    assert mv.flavour == "python"
    loaded = lw.models.load("rule", allow_pickle=True)
    np.testing.assert_array_equal(loaded.predict(acs_numeric()), Threshold().predict(acs_numeric()))
    assert not isinstance(loaded, lw.models.LoadedClassifier)


def test_object_without_predict_is_refused(lw_ctx: Context) -> None:
    with lw.start_run(name="r") as run, pytest.raises(InvalidArgumentError, match="predict"):
        run.log_model(object(), name="nothing")


def test_unknown_flavour_lists_the_known_ones(lw_ctx: Context) -> None:
    with lw.start_run(name="r") as run, pytest.raises(InvalidArgumentError, match="'xgboost'"):
        run.log_model(fitted(), name="m", flavour="tensorflow")


def test_flavours_are_tried_boosting_libraries_first() -> None:
    names = list(FLAVOURS)
    assert names.index("xgboost") < names.index("sklearn")
    assert names.index("lightgbm") < names.index("sklearn")
    assert names[-1] == "python"


def test_version_records_run_metrics_and_datasets(lw_ctx: Context) -> None:
    frame = acs_sample().head(100)
    train = lw.log_dataset(frame, name="acs-ma", split="train")
    with lw.start_run(name="train") as run:
        run.use(train)
        run.log_metrics({"auc": 0.9, "accuracy": 0.8})
        mv = run.log_model(fitted(), name="employment", description="first try")
        run.log_metrics({"auc": 0.95})  # after registration: not in the version's snapshot
    stored = lw.models.get("employment/1")
    for version in (mv, stored):
        assert version.run_id == run.id
        assert version.metrics == {"auc": 0.9, "accuracy": 0.8}
        assert version.datasets == [train.ref]
        assert version.description == "first try"


def test_loaded_model_checks_inputs_and_reaches_model_attributes(lw_ctx: Context) -> None:
    frame = pd.DataFrame(acs_numeric()[:, :2], columns=["AGEP", "SCHL"])
    model = LogisticRegression().fit(frame, acs_sample()[ACS_LABEL])
    with lw.start_run(name="r") as run:
        run.log_model(model, name="small", input_example=frame.head())
    loaded = lw.models.load("small")
    assert isinstance(loaded, lw.models.LoadedClassifier)
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    assert "small/1" in repr(loaded)
    with pytest.raises(lw.LoopwiseError, match="missing column"):
        loaded.predict(frame[["AGEP"]])


# -- optional dependencies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavour", "module", "extra"),
    [
        ("sklearn", "skops.io", "sklearn"),
        ("xgboost", "xgboost", "xgboost"),
        ("lightgbm", "lightgbm", "lightgbm"),
        ("onnx", "onnxruntime", "onnx"),
    ],
)
def test_missing_package_names_the_extra(
    flavour: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes ``import module`` fail
    with pytest.raises(MissingDependencyError, match=rf"pip install 'loopwise\[{extra}\]'") as info:
        get_flavour(flavour).load(tmp_path, {})
    assert info.value.details == {"module": module, "extra": extra}
    assert get_flavour(flavour).extra == extra


def test_loading_without_the_package_says_which_extra(
    lw_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_versions("employment", 1)
    monkeypatch.setitem(sys.modules, "skops.io", None)
    with pytest.raises(MissingDependencyError, match=r"loopwise\[sklearn\]"):
        lw.models.load("employment")


def test_bad_registration_input_is_explained(lw_ctx: object) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from loopwise.errors import InvalidArgumentError

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    fitted = LogisticRegression().fit(frame, [0, 0, 1, 1])
    with pytest.raises(InvalidArgumentError, match="could not predict its input_example"):
        lw.models.log_model(fitted, name="m", input_example=pd.DataFrame({"z": [1.0]}))
    with pytest.raises(InvalidArgumentError, match="Expected a fitted model"):
        lw.models.log_model(LogisticRegression(), name="m")
    with pytest.raises(InvalidArgumentError, match="model name"):
        lw.models.log_model(fitted, name="bad name")
    with pytest.raises(InvalidArgumentError, match="description"):
        lw.models.log_model(fitted, name="m", description=["not", "text"])  # type: ignore[arg-type]
    assert lw.models.list_models() == []


def test_the_store_knows_every_flavour_the_registry_loads() -> None:
    from loopwise.store.checks import MODEL_FLAVOURS, PICKLE_FLAVOURS

    assert set(FLAVOURS) == MODEL_FLAVOURS
    assert {name for name, f in FLAVOURS.items() if f.uses_pickle} == PICKLE_FLAVOURS
