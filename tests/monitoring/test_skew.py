"""Training-serving skew from profiles: agrees with drift on raw data, catches unit bugs."""

from __future__ import annotations

import math
from typing import cast

import pandas as pd
import pytest

from loopwise.data.drift import drift
from loopwise.data.profiles import Profile, profile
from loopwise.errors import InvalidArgumentError
from loopwise.examples import ACS_FEATURES, load_acs
from loopwise.monitoring.skew import skew


@pytest.fixture(scope="module")
def acs() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = load_acs([2015, 2018])
    train = data[data["year"] == 2015][ACS_FEATURES].reset_index(drop=True)
    served = data[data["year"] == 2018][ACS_FEATURES].sample(5000, random_state=0)
    return train, served.reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(acs: tuple[pd.DataFrame, pd.DataFrame]) -> Profile:
    return profile(acs[0])


def test_profile_distances_match_the_drift_tests_on_the_raw_rows(
    acs: tuple[pd.DataFrame, pd.DataFrame], trained: Profile
) -> None:
    train, served = acs
    report = skew(trained, served.add_prefix("input."))
    raw = drift(train, served, tests={c: "wasserstein" if c == "AGEP" else "jensenshannon"
                                      for c in ACS_FEATURES})  # fmt: skip
    assert report.skewed_columns == [] and not raw.drifted
    for column in ACS_FEATURES:
        sketched, exact = report.columns[column].statistic, raw.columns[column].statistic
        # Categories are counted exactly; a quantile sketch is off by at most its rank error
        # (measured: within 0.008 over 40 random sketches of AGEP).
        tolerance = 0.02 if column == "AGEP" else 1e-9
        assert abs(sketched - exact) < tolerance, (column, sketched, exact)


def test_age_in_months_and_an_unseen_category_are_skew(
    acs: tuple[pd.DataFrame, pd.DataFrame], trained: Profile
) -> None:
    served = acs[1].assign(
        AGEP=acs[1]["AGEP"] * 12, SEX=acs[1]["SEX"].astype(str).replace({"1": "M"})
    )
    report = skew(trained, served)
    assert report.skewed_columns == ["AGEP", "SEX"]
    assert report.columns["AGEP"].statistic > 5  # a distance in training standard deviations
    note = report.columns["SEX"].note
    assert note is not None and "never seen in training: 'M'" in note


def test_a_missing_column_or_a_changed_type_is_skew_with_a_note(
    acs: tuple[pd.DataFrame, pd.DataFrame], trained: Profile
) -> None:
    served = acs[1].drop(columns=["MAR"]).assign(AGEP=acs[1]["AGEP"].astype(str))
    frame = skew(trained, served).to_frame().set_index("column")
    assert frame.loc["MAR", "skewed"] and "no served values" in cast(str, frame.loc["MAR", "note"])
    assert frame.loc["AGEP", "skewed"] and "type changed" in cast(str, frame.loc["AGEP", "note"])
    assert math.isnan(cast(float, frame.loc["AGEP", "statistic"]))
    assert not frame.loc["SEX", "skewed"]


def test_thresholds_and_columns_can_be_chosen(
    acs: tuple[pd.DataFrame, pd.DataFrame], trained: Profile
) -> None:
    report = skew(trained, acs[1], columns=["AGEP", "SEX"], thresholds={"AGEP": 0.001})
    assert list(report.columns) == ["AGEP", "SEX"] and report.skewed_columns == ["AGEP"]
    assert report.columns["AGEP"].threshold == 0.001


def test_bad_input_is_refused_clearly(
    acs: tuple[pd.DataFrame, pd.DataFrame], trained: Profile
) -> None:
    with pytest.raises(InvalidArgumentError, match="expected a Profile"):
        skew(acs[0], acs[1])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="some of the training columns"):
        skew(trained, pd.DataFrame({"other": [1, 2]}))
    with pytest.raises(InvalidArgumentError, match="some of the training columns"):
        skew(trained, acs[1].head(0))
    with pytest.raises(InvalidArgumentError, match="not in the training profile"):
        skew(trained, acs[1], columns=["AGEP", "nope"])
    with pytest.raises(InvalidArgumentError, match="DataFrame of served rows or a Profile"):
        skew(trained, [1, 2, 3])  # type: ignore[arg-type]
