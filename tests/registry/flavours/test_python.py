"""Custom PythonModel subclasses (pickle, opted into) through the conformance suite."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import UnsafeModelError

from ..datasets import ACS_FEATURES, acs_sample
from ..flavour_checks import Check, FlavourCase, native_predict_proba, parametrize_checks


class AgeRule(lw.PythonModel):
    """Employed when of working age and not disabled: a rule, not a fitted model."""

    def __init__(self, low: float, high: float) -> None:
        self.low = low
        self.high = high

    def predict_proba(self, X: Any) -> np.ndarray:
        frame = pd.DataFrame(X)
        working_age = frame["AGEP"].between(self.low, self.high).to_numpy()
        able = (frame["DIS"].astype(str) == "2").to_numpy()
        p = np.where(working_age & able, 0.8, 0.2)
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(np.int64)


class AgeScore(lw.PythonModel):
    """A regressor-like model: no predict_proba."""

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(pd.DataFrame(X)["AGEP"], dtype=np.float64) / 100.0


def features() -> pd.DataFrame:
    return acs_sample()[ACS_FEATURES]


CASES = [
    FlavourCase(
        "python-rule",
        "python",
        lambda: AgeRule(18, 64),
        features,
        predict_proba=native_predict_proba,
        log_kwargs={"allow_pickle": True},
        load_kwargs={"allow_pickle": True},
    ),
    FlavourCase(
        "python-score",
        "python",
        AgeScore,
        features,
        log_kwargs={"allow_pickle": True},
        load_kwargs={"allow_pickle": True},
    ),
]


@parametrize_checks(CASES)
def test_conformance(case: FlavourCase, check: Check, lw_ctx: Context) -> None:
    check(case, lw_ctx)


def test_pickle_needs_opting_in(lw_ctx: Context) -> None:
    with lw.start_run(name="r") as run, pytest.raises(UnsafeModelError, match="allow_pickle=True"):
        run.log_model(AgeRule(18, 64), name="rule")
    with lw.start_run(name="r") as run, pytest.raises(UnsafeModelError, match="allow_pickle=True"):
        run.log_model(AgeRule(18, 64), name="rule", flavour="python")
    assert lw.models.list_models() == []
