"""Small, cached slices of the ACS employment data that Loopwise ships as example data."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from loopwise.examples import ACS_FEATURES, ACS_LABEL, load_acs

__all__ = ["ACS_FEATURES", "ACS_LABEL", "acs_numeric", "acs_sample"]

SAMPLE_ROWS = 2000
SEED = 7


@cache
def acs_sample() -> pd.DataFrame:
    """A fixed random sample of 2015 rows: float ``AGEP``, category columns, label ``employed``."""
    frame = load_acs(years=[2015])
    return frame.sample(SAMPLE_ROWS, random_state=SEED).reset_index(drop=True)


@cache
def acs_numeric() -> np.ndarray:
    """The sample's features as a float array (category codes as numbers), for array models."""
    features = acs_sample()[ACS_FEATURES]
    columns = [features["AGEP"].to_numpy()] + [
        features[c].astype(str).astype(int).to_numpy() for c in ACS_FEATURES[1:]
    ]
    return np.column_stack(columns).astype(np.float64)
