"""Example data shipped with Loopwise: the ACS employment table for Massachusetts, 2015-2018.

See ``NOTICE.md`` beside this file for its source and licence (public domain ACS microdata,
prepared by the folktables benchmark and shipped in NannyML's Apache-2.0 package).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

__all__ = ["ACS_FEATURES", "ACS_LABEL", "acs_file", "load_acs"]

ACS_LABEL = "employed"
ACS_FEATURES = [
    "AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC",
    "NATIVITY", "DEAR", "DEYE", "DREM", "SEX", "RAC1P",
]  # fmt: skip


def acs_file() -> Path:
    """The bundled Parquet file itself, for code that reads files (it ships inside the package)."""
    return Path(str(resources.files(__name__) / "acs_employment_ma.parquet"))


def load_acs(years: list[int] | None = None) -> pd.DataFrame:
    """The ACS employment table (277,677 people), optionally only some survey years."""
    with resources.as_file(resources.files(__name__) / "acs_employment_ma.parquet") as path:
        frame = pd.read_parquet(path)
    if years is not None:
        frame = frame[frame["year"].isin(years)].reset_index(drop=True)
    return frame
