"""LightGBM models (scikit-learn wrappers and raw Boosters) through the conformance suite."""

from __future__ import annotations

from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import InvalidArgumentError, SignatureMismatchError

from ..datasets import ACS_FEATURES, ACS_LABEL, acs_numeric, acs_sample
from ..flavour_checks import Check, FlavourCase, native_predict_proba, parametrize_checks

TREES = 20
PARAMS: dict[str, Any] = {"n_estimators": TREES, "num_leaves": 15, "verbose": -1, "random_state": 0}


def features() -> pd.DataFrame:
    return acs_sample()[ACS_FEATURES]


def classifier() -> lightgbm.LGBMClassifier:
    return lightgbm.LGBMClassifier(**PARAMS).fit(features(), acs_sample()[ACS_LABEL])


def marital_status() -> lightgbm.LGBMClassifier:
    """Five classes with string labels: the labels' dtype must survive the round trip."""
    X = features().drop(columns="MAR")
    y = acs_sample()["MAR"].astype(str).map({"1": "married", "5": "never"}).fillna("other")
    return lightgbm.LGBMClassifier(**PARAMS).fit(X, np.asarray(y, dtype=str))


def regressor() -> lightgbm.LGBMRegressor:
    return lightgbm.LGBMRegressor(**PARAMS).fit(acs_numeric()[:, 1:], acs_numeric()[:, 0])


def booster() -> lightgbm.Booster:
    data = lightgbm.Dataset(features(), acs_sample()[ACS_LABEL])
    params = {"objective": "binary", "num_leaves": 7, "verbose": -1}
    return lightgbm.train(params, data, num_boost_round=TREES)


CASES = [
    FlavourCase(
        "lightgbm-classifier-categorical",
        "lightgbm",
        classifier,
        features,
        predict_proba=native_predict_proba,
    ),
    FlavourCase(
        "lightgbm-multiclass-labels",
        "lightgbm",
        marital_status,
        lambda: features().drop(columns="MAR"),
        predict_proba=native_predict_proba,
    ),
    FlavourCase("lightgbm-regressor", "lightgbm", regressor, lambda: acs_numeric()[:, 1:]),
    FlavourCase("lightgbm-booster", "lightgbm", booster, features),
]


@parametrize_checks(CASES)
def test_conformance(case: FlavourCase, check: Check, lw_ctx: Context) -> None:
    check(case, lw_ctx)


def test_categories_are_read_from_the_model_file(lw_ctx: Context) -> None:
    model = CASES[0].model()
    loaded = lw.models.load(CASES[0].log().ref)
    assert loaded.model.booster.pandas_categorical == model.booster_.pandas_categorical


def test_category_columns_with_other_codes_predict_the_same(lw_ctx: Context) -> None:
    """Categories in another order, or only those present, mean other codes for the same values."""
    model = CASES[0].model()
    loaded = lw.models.load(CASES[0].log().ref)
    X = features().iloc[:200]
    expected = model.predict_proba(X)

    reordered = X.assign(SCHL=X["SCHL"].cat.reorder_categories(X["SCHL"].cat.categories[::-1]))
    observed_only = X.assign(**{c: X[c].cat.remove_unused_categories() for c in ACS_FEATURES[1:]})
    as_strings = X.assign(**{c: X[c].astype(str) for c in ACS_FEATURES[1:]})
    for variant in (reordered, observed_only, as_strings):
        np.testing.assert_array_equal(loaded.predict_proba(variant), expected)


def test_unknown_category_is_refused_before_the_model_sees_it(lw_ctx: Context) -> None:
    loaded = lw.models.load(CASES[0].log().ref)
    X = features().iloc[:3].assign(SEX=["1", "2", "X"])
    with pytest.raises(SignatureMismatchError, match=r"'SEX'.*'X'"):
        loaded.predict(X)


def test_regressor_has_no_predict_proba(lw_ctx: Context) -> None:
    loaded = lw.models.load(CASES[2].log().ref)
    assert not isinstance(loaded, lw.models.LoadedClassifier)
    assert not hasattr(loaded.model, "predict_proba")


def test_unfitted_model_is_refused(lw_ctx: Context) -> None:
    with (
        lw.start_run(name="r") as run,
        pytest.raises(InvalidArgumentError, match="Expected a fitted model"),
    ):
        run.log_model(lightgbm.LGBMRegressor(), name="unfitted")
