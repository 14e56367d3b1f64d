"""``loopwise data …`` commands, run as a fresh process would run them (in this process, see
``harness.py``) against a real store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loopwise as lw

from .harness import cli


# -- loopwise data profile ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def profiled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a dataset logged with a profile, and one logged (as before) without."""
    path = tmp_path_factory.mktemp("data-cli") / "store"
    ctx = lw.init(project="cli", uri=path)
    frame = pd.DataFrame(
        {
            "age": [31.0, 45.0, np.nan, 22.0, np.inf],
            "state": pd.Categorical(["MA", "NY", "MA", None, "MA"]),
        }
    )
    data = lw.log_dataset(frame, name="people")
    ctx.store.create_dataset_version(
        "cli",
        "legacy",
        content_hash="h",
        artifact_digest=data.artifact_digest,
        num_rows=5,
        schema=data.schema,
    )
    lw.shutdown()
    return path


def test_data_profile_json(profiled_store: Path) -> None:
    out = json.loads(cli(profiled_store, "data", "profile", "people", "--json").stdout)
    assert out["dataset"] == "people/1" and out["num_rows"] == 5
    age, state = out["columns"]["age"], out["columns"]["state"]
    assert (age["nulls"], age["infinite"], age["min"], age["max"]) == (1, 1, 22.0, 45.0)
    assert age["mean"] == pytest.approx(98 / 3)
    assert state["kind"] == "categorical" and state["top"][0] == ["MA", 3]


def test_data_profile_table(profiled_store: Path) -> None:
    out = cli(profiled_store, "data", "profile", "people/1").stdout
    assert "people/1: 5 rows" in out
    assert "20.0%" in out and "MA (3)" in out  # nulls of age; top value of state


def test_data_profile_backfills_an_old_version(profiled_store: Path) -> None:
    assert "profile none yet" in cli(profiled_store, "data", "show", "legacy").stdout
    out = json.loads(cli(profiled_store, "data", "profile", "legacy", "--json").stdout)
    assert out["columns"]["state"]["top"][0] == ["MA", 3]
    assert "profile sha256:" in cli(profiled_store, "data", "show", "legacy").stdout


def test_data_profile_of_unknown_dataset(profiled_store: Path) -> None:
    result = cli(profiled_store, "data", "profile", "nope", ok=False)
    assert "No dataset named 'nope'" in result.stdout + result.stderr
