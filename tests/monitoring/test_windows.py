"""Windows: calendar offsets, zones, naive datetimes, and bad time columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopwise.errors import InvalidArgumentError
from loopwise.monitoring.windows import split_windows


def test_calendar_offsets_start_on_their_boundaries() -> None:
    stamps = pd.to_datetime(["2024-01-15", "2024-01-31", "2024-02-01", "2024-03-20"])
    windows = split_windows(pd.DataFrame({"t": stamps}), "MS", "t")
    assert windows.code.tolist() == [0, 0, 1, 2]
    assert windows.start == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01"),
                             pd.Timestamp("2024-03-01")]  # fmt: skip
    assert windows.end[0] == pd.Timestamp("2024-02-01")


def test_zoned_times_keep_their_zone() -> None:
    stamps = pd.Series(pd.date_range("2024-05-01 22:00", periods=4, freq="2h", tz="Europe/Paris"))
    windows = split_windows(pd.DataFrame({"t": stamps}), "1D", "t")
    assert all(str(s.tz) == "Europe/Paris" for s in windows.start)
    # fixed lengths are anchored at the epoch in UTC: a day starts at 02:00 Paris time in May
    assert windows.start[0].hour == 2 and windows.code.tolist() == [0, 0, 1, 1]
    assert windows.end[0] - windows.start[0] == pd.Timedelta("1D")
    week = split_windows(pd.DataFrame({"t": stamps}), "7D", "t")
    assert week.start[0] == pd.Timestamp("2024-04-25", tz="UTC")  # epoch + 2,808 weeks


def test_milliseconds_and_row_counts() -> None:
    frame = pd.DataFrame({"timestamp_ms": np.arange(10) * 3_600_000})
    windows = split_windows(frame, "4h", "timestamp_ms")
    assert windows.code.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    by_rows = split_windows(frame, 4, "timestamp_ms")
    assert by_rows.code.tolist() == windows.code.tolist()
    assert by_rows.end[1] == pd.Timestamp(7 * 3_600_000, unit="ms", tz="UTC")
    assert pd.isna(split_windows(frame.rename(columns={"timestamp_ms": "x"}), 4, "t").start[0])


def test_bad_time_columns_fail_clearly() -> None:
    with pytest.raises(InvalidArgumentError, match="null, NaN or infinite"):
        split_windows(pd.DataFrame({"t": [1.0, np.nan]}), "1D", "t")
    with pytest.raises(InvalidArgumentError, match="expected datetimes or milliseconds"):
        split_windows(pd.DataFrame({"t": ["monday", "tuesday"]}), "1D", "t")
    with pytest.raises(InvalidArgumentError, match="missing times"):
        split_windows(pd.DataFrame({"t": pd.to_datetime(["2024-01-01", None])}), "1D", "t")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="offset alias"):
        split_windows(pd.DataFrame({"t": [1, 2]}), 1.5, "t")  # type: ignore[arg-type]
