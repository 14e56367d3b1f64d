"""Data files that cannot be read: one clear error naming the file, what was expected and the
fix, from every reader (``read_table``, drift's column-by-column Parquet), never pandas' or
pyarrow's own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from loopwise.data.drift import drift
from loopwise.data.tables import read_table
from loopwise.errors import InvalidArgumentError

BAD_FILES: dict[str, tuple[str, bytes, str]] = {
    "empty-csv": ("empty.csv", b"", r"as CSV: it is empty \(0 bytes\)"),
    "ragged-csv": ("ragged.csv", b"a,b\n1,2\n3,4,5\n", "Expected 2 fields in line 3"),
    "garbage-parquet": ("garbage.parquet", b"this is not parquet at all", "as Parquet"),
    "empty-parquet": ("empty.parquet", b"", r"as Parquet: it is empty \(0 bytes\)"),
    "garbage-feather": ("garbage.feather", b"not an arrow file", "as Arrow"),
}


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.parquet"
    pd.DataFrame({"a": [1.0, 2.0, 3.0]}).to_parquet(path)
    return path


@pytest.mark.parametrize("case", sorted(BAD_FILES))
@pytest.mark.parametrize(
    "reader",
    [
        pytest.param(read_table, id="read_table"),
        pytest.param(lambda bad, good: drift(bad, good), id="drift-reference"),
        pytest.param(lambda bad, good: drift(good, bad), id="drift-current"),
    ],
)
def test_unreadable_files_are_a_clear_error(
    case: str, reader: Callable[..., object], tmp_path: Path, good: Path
) -> None:
    name, content, problem = BAD_FILES[case]
    bad = tmp_path / name
    bad.write_bytes(content)
    arguments = (bad,) if reader is read_table else (bad, good)
    with pytest.raises(InvalidArgumentError, match=problem) as caught:
        reader(*arguments)
    message = caught.value.message
    assert str(bad) in message and "Expected a" in message
    assert "re-write it" in message or "fix or re-export" in message
