# TEMPORARY re-exports (issue 17): delete once importers are moved
"""Moved to ``loopwise.data.profiles.column``."""

from loopwise.data.profiles.column import ColumnProfile

__all__ = ["ColumnProfile"]
