"""Each feature's reference and served distribution on shared bins: served values outside the
reference's range get bins of their own instead of joining the end bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopwise.monitoring.distributions import distributions


def _ages(n: int, seed: int) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).integers(16, 100, n), name="AGEP")


def test_values_beyond_the_reference_are_counted_apart_from_its_end_bins() -> None:
    reference = pd.DataFrame({"AGEP": _ages(1000, 0)})
    months = _ages(250, 1) * 12  # the upstream bug: ages in months
    served = pd.DataFrame({"AGEP": pd.concat([_ages(750, 2), months, pd.Series([3])])})
    found = distributions(reference, served)["AGEP"]
    assert found.labels[0] == "< 16" and found.labels[-1] == "> 99"
    assert found.labels[-2].endswith("99]")  # the reference's last bin, closed
    assert found.reference[0] == 0 and found.reference[-1] == 0
    assert found.current[-1] == pytest.approx((months > 99).sum() / len(served))
    assert found.current[0] == pytest.approx(1 / len(served))
    assert sum(found.current) == pytest.approx(1.0) and sum(found.reference) == pytest.approx(1.0)


def test_served_values_inside_the_range_add_no_bins() -> None:
    reference = pd.DataFrame({"AGEP": _ages(1000, 0)})
    found = distributions(reference, pd.DataFrame({"AGEP": _ages(500, 3)}))["AGEP"]
    assert len(found.labels) == 10 and not any(label[0] in "<>" for label in found.labels)
