"""Profiles: per-column summaries of a dataset from mergeable sketches, computed in one pass.

``column`` holds one column's summary (``ColumnProfile``: counts, moments, quantile, frequent-item
and distinct-count sketches); ``table`` a table's (``Profile``, ``profile``), read through
``loopwise.data.chunks`` so that memory stays bounded; ``stored`` the profiles kept with dataset
versions in the store (``dataset_profile``).
"""

from loopwise.data.profiles.column import QUANTILE_RANK_ERROR, ColumnProfile
from loopwise.data.profiles.stored import dataset_profile, save_profile
from loopwise.data.profiles.table import Profile, profile, table_profile

__all__ = [
    "QUANTILE_RANK_ERROR",
    "ColumnProfile",
    "Profile",
    "dataset_profile",
    "profile",
    "save_profile",
    "table_profile",
]
