"""``loopwise data drift``: files and dataset refs, table and JSON, exit code 0 either way."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import loopwise as lw
from loopwise.cli import app
from loopwise.examples import acs_file

ACS = acs_file()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """ref.parquet (800 people of 2015), months.parquet (the same with ages in months), and a
    store with both logged as versions 1 and 2 of dataset 'acs'."""
    acs = pd.read_parquet(ACS).drop(columns=["id", "year"])
    ref = acs.sample(800, random_state=3).reset_index(drop=True)
    ref.to_parquet(tmp_path / "ref.parquet")
    months = ref.assign(AGEP=ref["AGEP"] * 12)
    months.to_parquet(tmp_path / "months.parquet")
    lw.init(project="cli", uri=tmp_path / "store")
    lw.log_dataset(ref, name="acs")
    lw.log_dataset(months, name="acs")
    lw.shutdown()
    return tmp_path


def run(files: Path, *args: str) -> str:
    result = CliRunner().invoke(
        app,
        ["--uri", str(files / "store"), "--project", "cli", "data", "drift", *args],
        catch_exceptions=True,
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_files_give_a_table_and_the_verdict(files: Path) -> None:
    out = run(files, str(files / "ref.parquet"), str(files / "months.parquet"))
    assert "AGEP" in out and "ks" in out
    assert "1 of 17 columns drifted" in out and "no drift" in out


def test_dataset_refs_and_json(files: Path) -> None:
    out = run(files, "acs/1", "acs/2", "--columns", "AGEP,SEX", "--json")
    report = json.loads(out)
    assert [c["column"] for c in report["columns"]] == ["AGEP", "SEX"]
    assert report["drifted"] and report["share_drifted"] == 0.5
    assert [c["drifted"] for c in report["columns"]] == [True, False]


def test_bad_columns_are_a_clear_error(files: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["--uri", str(files / "store"), "--project", "cli", "data", "drift", "acs/1", "acs/2",
         "--columns", "nope"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "not in reference" in result.output + str(result.exception)
