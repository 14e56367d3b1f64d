"""``loopwise data drift`` on arguments that are not what they should be: an unreadable file,
a mistyped file name, a dataset name without a store. One line of error, exit 1, nothing
created."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import loopwise as lw
from tests.cli.harness import cli


@pytest.fixture
def ref(tmp_path: Path) -> Path:
    path = tmp_path / "ref.parquet"
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"]}).to_parquet(path)
    return path


def _one_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    assert stderr.startswith("Error: "), stderr
    return " ".join(stderr.split())  # the console wraps long lines


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "as CSV: it is empty (0 bytes)"),
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n", "Expected 2 fields in line 3"),
        ("garbage.parquet", b"PAR1 not really", "as Parquet"),
    ],
)
def test_an_unreadable_file_is_one_error_naming_it(
    tmp_path: Path, ref: Path, name: str, content: bytes, expected: str
) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    result = cli(tmp_path / "store", "data", "drift", str(ref), str(bad), ok=False)
    message = _one_error(result.stderr)
    assert name in message and expected in message


@pytest.mark.parametrize("typo", ["nosuch.parquet", "./nosuch", "data/2024/nosuch"])
def test_a_missing_file_is_no_such_file(tmp_path: Path, ref: Path, typo: str) -> None:
    store = tmp_path / "store"
    result = cli(store, "data", "drift", typo, str(ref), ok=False)
    message = _one_error(result.stderr)
    assert f"No such file: {typo!r} (for REFERENCE)" in message, message
    assert not store.exists()


def test_a_dataset_name_without_a_store_creates_none(
    tmp_path: Path, ref: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare word may be a dataset: without a store it is an error that says both readings,
    and no store appears (before: ./.loopwise was created, then the dataset was not found)."""
    store = tmp_path / "store"
    monkeypatch.chdir(tmp_path)
    result = cli(store, "data", "drift", "nosuch", str(ref), ok=False)
    message = _one_error(result.stderr)
    assert "'nosuch' (for REFERENCE) is not a file here, and there is no Loopwise store" in message
    assert "--uri" in message
    assert not store.exists() and not (tmp_path / ".loopwise").exists()


def test_an_unknown_dataset_of_a_store_says_it_is_no_file_either(tmp_path: Path, ref: Path) -> None:
    store = tmp_path / "store"
    cli(store, "data", "drift", str(ref), str(ref))  # a file needs no store
    assert not store.exists()
    lw.init(project="cli", uri=store)
    lw.log_dataset(pd.read_parquet(ref), name="acs")
    lw.shutdown()
    result = cli(store, "data", "drift", "acss", str(ref), ok=False)
    message = _one_error(result.stderr)
    assert "'acss' (for REFERENCE) is not a file here, nor a dataset: No dataset named" in message
    assert cli(store, "data", "drift", "acs", str(ref)).returncode == 0
