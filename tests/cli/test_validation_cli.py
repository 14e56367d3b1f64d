"""``loopwise data validate`` and ``loopwise data suite``: in-process, plus one run through the
entry point's ``main`` as a fresh process would run it (``harness.py``), for its exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import loopwise as lw
from loopwise.cli import app
from loopwise.errors import InvalidArgumentError, NotFoundError
from loopwise.examples import load_acs

from .harness import run_in_process


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """ref.parquet (500 people), months.parquet (the same, ages in months), a store with the
    months data logged as dataset 'acs'."""
    ref = load_acs().sample(500, random_state=5).reset_index(drop=True)
    ref.to_parquet(tmp_path / "ref.parquet")
    months = ref.assign(AGEP=ref["AGEP"] * 12)
    months.to_parquet(tmp_path / "months.parquet")
    lw.init(project="cli", uri=tmp_path / "store")
    lw.log_dataset(months, name="acs")
    lw.shutdown()
    return tmp_path


def run(files: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(
        app, ["--uri", str(files / "store"), "--project", "cli", *args], catch_exceptions=True
    )
    assert result.exit_code == code, result.output + repr(result.exception)
    return result.output


def test_infer_then_validate_files(files: Path) -> None:
    text = run(files, "data", "suite", "infer", str(files / "ref.parquet"))
    assert yaml.safe_load(text)["version"] == 1
    run(files, "data", "suite", "infer", str(files / "ref.parquet"), "-o", str(files / "s.yaml"))
    assert (files / "s.yaml").read_text() == text
    passed = run(
        files, "data", "validate", str(files / "ref.parquet"), "--suite", str(files / "s.yaml")
    )
    assert "passed" in passed and "500 rows" in passed
    out = run(files, "data", "validate", str(files / "months.parquet"), "--suite", str(files / "s.yaml"),
              "--json", code=1)  # fmt: skip
    report = json.loads(out)
    assert report["ok"] is False
    assert [(f["column"], f["rule"]) for f in report["findings"]] == [("AGEP", "range")]
    table = run(files, "data", "validate", str(files / "months.parquet"), "--suite",
                str(files / "s.yaml"), code=1)  # fmt: skip
    assert "AGEP" in table and "error finding" in table


def test_slack_option_reaches_the_inference(files: Path) -> None:
    text = run(files, "data", "suite", "infer", str(files / "ref.parquet"), "--range-slack", "0")
    expectations = yaml.safe_load(text)["expectations"]
    ranges = [e for e in expectations if e["rule"] == "range" and e.get("column") == "AGEP"]
    ref = pd.read_parquet(files / "ref.parquet")
    assert ranges == [
        {"rule": "range", "column": "AGEP", "min": ref["AGEP"].min(), "max": ref["AGEP"].max()}
    ]


def test_attach_show_validate_detach(files: Path) -> None:
    run(files, "data", "suite", "infer", str(files / "ref.parquet"), "-o", str(files / "s.yaml"))
    out = run(
        files, "data", "suite", "attach", "acs", str(files / "s.yaml"), "--on-failure", "fail"
    )
    assert "on failure: fail" in out
    shown = json.loads(run(files, "data", "suite", "show", "acs", "--json"))
    assert shown["on_failure"] == "fail" and shown["suite"] == (files / "s.yaml").read_text()
    assert "on failure: fail" in run(files, "data", "suite", "show", "acs")
    report = json.loads(run(files, "data", "validate", "acs", "--json", code=1))
    assert report["findings"][0]["column"] == "AGEP"
    run(files, "data", "suite", "detach", "acs")
    result = CliRunner().invoke(
        app, ["--uri", str(files / "store"), "--project", "cli", "data", "validate", "acs"]
    )
    assert isinstance(result.exception, NotFoundError)
    assert "no validation suite attached" in result.exception.message


def test_a_file_needs_a_suite(files: Path) -> None:
    result = CliRunner().invoke(
        app, ["--uri", str(files / "store"), "data", "validate", str(files / "ref.parquet")]
    )
    assert isinstance(result.exception, InvalidArgumentError)
    assert "--suite FILE" in result.exception.message


def test_exit_status_of_the_real_command(files: Path) -> None:
    suite = files / "s.yaml"
    run(files, "data", "suite", "infer", str(files / "ref.parquet"), "-o", str(suite))
    result = run_in_process(
        ["data", "validate", str(files / "months.parquet"), "--suite", str(suite)]
    )
    assert result.returncode == 1, result.stderr
    assert "AGEP" in result.stdout and "range" in result.stdout
