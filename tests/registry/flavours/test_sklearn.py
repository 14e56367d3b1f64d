"""scikit-learn models through the conformance suite, plus skops' recorded trust."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import UnsafeModelError
from loopwise.registry.flavours import get_flavour

from ..datasets import ACS_FEATURES, ACS_LABEL, acs_numeric, acs_sample
from ..flavour_checks import Check, FlavourCase, native_predict_proba, parametrize_checks


def logistic_regression() -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(acs_numeric(), acs_sample()[ACS_LABEL])


def gradient_boosting() -> HistGradientBoostingClassifier:
    model = HistGradientBoostingClassifier(
        max_iter=20, categorical_features="from_dtype", random_state=0
    )
    return model.fit(acs_sample()[ACS_FEATURES], acs_sample()[ACS_LABEL])


def age_regression() -> object:
    """Age from the category columns: one-hot encoding and a ridge regression."""
    features = acs_sample()[ACS_FEATURES[1:]]
    encode = make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ACS_FEATURES[1:]))
    return make_pipeline(encode, Ridge()).fit(features, acs_sample()["AGEP"])


CASES = [
    FlavourCase(
        "sklearn-logreg",
        "sklearn",
        logistic_regression,
        acs_numeric,
        predict_proba=native_predict_proba,
    ),
    FlavourCase(
        "sklearn-hgb-categorical",
        "sklearn",
        gradient_boosting,
        lambda: acs_sample()[ACS_FEATURES],
        predict_proba=native_predict_proba,
    ),
    FlavourCase(
        "sklearn-ridge-pipeline", "sklearn", age_regression, lambda: acs_sample()[ACS_FEATURES[1:]]
    ),
]


@parametrize_checks(CASES)
def test_conformance(case: FlavourCase, check: Check, lw_ctx: Context) -> None:
    check(case, lw_ctx)


def test_file_with_a_type_not_recorded_at_save_is_refused(lw_ctx: Context, tmp_path: Path) -> None:
    case = CASES[1]
    mv = case.log()
    trusted = mv.metadata["trusted_types"]
    assert trusted, "the gradient boosting file holds types skops does not trust by default"
    folder = lw_ctx.store.artifacts.get_tree(mv.artifact_digest, tmp_path / "model")
    flavour = get_flavour("sklearn")
    flavour.load(folder, mv.metadata)  # as recorded: loads

    narrowed = replace(mv, metadata={**mv.metadata, "trusted_types": trusted[1:]})
    with pytest.raises(UnsafeModelError, match="not recorded when it was saved") as info:
        flavour.load(folder, narrowed.metadata)
    assert info.value.details["unexpected_types"] == [trusted[0]]
    with pytest.raises(UnsafeModelError):
        lw.models.load(narrowed)
