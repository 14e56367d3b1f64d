# TEMPORARY re-exports (issue 17): delete once importers are moved
"""Moved to ``loopwise.data.drift.stattests``."""

from loopwise.data.drift.stattests import STAT_TESTS, Sample, StatTest, get_stat_test

__all__ = ["STAT_TESTS", "Sample", "StatTest", "get_stat_test"]
