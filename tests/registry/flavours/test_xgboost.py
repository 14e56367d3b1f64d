"""XGBoost models (scikit-learn wrappers and raw Boosters) through the conformance suite."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import InvalidArgumentError, UnsafeModelError
from loopwise.registry.flavours import get_flavour

from ..datasets import ACS_FEATURES, ACS_LABEL, acs_numeric, acs_sample
from ..flavour_checks import Check, FlavourCase, native_predict_proba, parametrize_checks

TREES = 20


def features() -> pd.DataFrame:
    return acs_sample()[ACS_FEATURES]


def classifier() -> xgboost.XGBClassifier:
    model = xgboost.XGBClassifier(n_estimators=TREES, max_depth=4, enable_categorical=True)
    return model.fit(features(), acs_sample()[ACS_LABEL])


def regressor() -> xgboost.XGBRegressor:
    # ``missing`` is not stored in XGBoost's file: the flavour records it beside it.
    model = xgboost.XGBRegressor(n_estimators=TREES, max_depth=4, missing=-1.0)
    return model.fit(acs_numeric()[:, 1:], acs_numeric()[:, 0])


def booster() -> xgboost.Booster:
    data = xgboost.DMatrix(features(), acs_sample()[ACS_LABEL], enable_categorical=True)
    return xgboost.train({"objective": "binary:logistic", "max_depth": 3}, data, TREES)


def booster_predict(model: xgboost.Booster, X: Any) -> Any:
    return model.predict(xgboost.DMatrix(X, enable_categorical=True))


CASES = [
    FlavourCase(
        "xgboost-classifier-categorical",
        "xgboost",
        classifier,
        features,
        predict_proba=native_predict_proba,
    ),
    FlavourCase("xgboost-regressor", "xgboost", regressor, lambda: acs_numeric()[:, 1:]),
    FlavourCase("xgboost-booster", "xgboost", booster, features, predict=booster_predict),
]


@parametrize_checks(CASES)
def test_conformance(case: FlavourCase, check: Check, lw_ctx: Context) -> None:
    check(case, lw_ctx)


def test_wrapper_is_rebuilt_as_its_class_with_its_parameters(lw_ctx: Context) -> None:
    mv = CASES[1].log()
    assert mv.metadata["class"] == "XGBRegressor"
    assert mv.metadata["params"]["missing"] == -1.0
    loaded = lw.models.load(mv.ref)
    assert type(loaded.model) is xgboost.XGBRegressor
    assert loaded.model.missing == -1.0


def test_class_outside_the_allowed_wrappers_is_refused(lw_ctx: Context, tmp_path: Any) -> None:
    mv = CASES[1].log()
    folder = lw_ctx.store.artifacts.get_tree(mv.artifact_digest, tmp_path / "model")
    with pytest.raises(UnsafeModelError, match="XGBClassifier"):
        get_flavour("xgboost").load(folder, {**mv.metadata, "class": "DMatrix"})


def test_unfitted_wrapper_is_refused(lw_ctx: Context) -> None:
    with (
        lw.start_run(name="r") as run,
        pytest.raises(InvalidArgumentError, match="Expected a fitted model"),
    ):
        run.log_model(xgboost.XGBClassifier(), name="unfitted")


def test_loaded_booster_predicts_arrays(lw_ctx: Context) -> None:
    data = xgboost.DMatrix(acs_numeric(), acs_sample()[ACS_LABEL])
    model = xgboost.train({"objective": "binary:logistic"}, data, 5)
    with lw.start_run(name="r") as run:
        mv = run.log_model(model, name="array-booster", input_example=acs_numeric()[:5])
    loaded = lw.models.load(mv.ref)
    np.testing.assert_array_equal(loaded.predict(acs_numeric()), model.predict(data))
