"""Fixtures for the registry tests: a fresh store per test, and a small slice of the ACS data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import loopwise as lw
from loopwise.context import Context

from .datasets import acs_sample


@pytest.fixture
def lw_ctx(tmp_path: Path) -> Iterator[Context]:
    """The SDK pointed at a new store in ``tmp_path``, project 'registry'."""
    context = lw.init(project="registry", uri=tmp_path / "store")
    yield context
    lw.shutdown()


@pytest.fixture
def acs() -> pd.DataFrame:
    """2,000 people from the 2015 ACS table (a copy: tests may change it)."""
    return acs_sample().copy()
