"""Windows over a monitoring frame: by time (a pandas offset alias such as ``"1D"``), by row
count (every N rows), or one window for everything. Each row gets the index of its window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopwise.errors import InvalidArgumentError

__all__ = ["Windows", "split_windows", "timestamps"]


@dataclass(frozen=True)
class Windows:
    """``code[i]`` is row i's window; ``start``/``end`` bound each window (NaT without time).

    Time windows are half-open, ``[start, end)``; count windows and the single window report the
    first and last row's time, both included."""

    code: npt.NDArray[np.int64]
    start: list[pd.Timestamp]
    end: list[pd.Timestamp]


def timestamps(frame: pd.DataFrame, time: str) -> pd.Series | None:
    """The ``time`` column as datetimes: milliseconds since the epoch (UTC) or datetimes as
    they are; None when the frame has no such column."""
    if time not in frame.columns:
        return None
    column = frame[time]
    if pd.api.types.is_datetime64_any_dtype(column):
        values = column
    elif pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        if not np.isfinite(column.to_numpy(dtype=np.float64, na_value=np.nan)).all():
            raise InvalidArgumentError(
                f"time={time!r}: the column has null, NaN or infinite values; expected "
                "milliseconds since the epoch in every row. Drop or fill those rows first.",
                parameter="time",
            )
        values = pd.to_datetime(column, unit="ms", utc=True)
    else:
        raise InvalidArgumentError(
            f"time={time!r}: expected datetimes or milliseconds since the epoch (numbers), got "
            f"a column of dtype {column.dtype}. Convert it, e.g. with pd.to_datetime.",
            parameter="time",
        )
    if values.isna().any():
        raise InvalidArgumentError(
            f"time={time!r}: the column has missing times; every row needs one to fall into "
            "a window. Drop or fill those rows first.",
            parameter="time",
        )
    return values


def split_windows(frame: pd.DataFrame, window: str | int | None, time: str) -> Windows:
    """Assign each row to a window; only windows that hold rows are listed."""
    stamps = timestamps(frame, time)
    rows = len(frame)
    if window is None:
        code = np.zeros(rows, dtype=np.int64)
        return Windows(code, *_first_last(stamps, code, 1))
    if isinstance(window, bool) or not isinstance(window, int | str):
        raise InvalidArgumentError(
            f"window: expected a pandas offset alias such as '1D' or '1h', a number of rows, "
            f"or None, got {window!r}.",
            parameter="window",
        )
    if isinstance(window, int):
        if window < 1:
            raise InvalidArgumentError(
                f"window={window}: a window by row count needs at least 1 row per window.",
                parameter="window",
            )
        code = np.arange(rows, dtype=np.int64) // window
        return Windows(code, *_first_last(stamps, code, int(code[-1]) + 1 if rows else 0))
    return _time_windows(stamps, window, time)


def _time_windows(stamps: pd.Series | None, window: str, time: str) -> Windows:
    if stamps is None:
        raise InvalidArgumentError(
            f"window={window!r} needs a time column, but the frame has no column {time!r}. "
            "Pass time=<your column>, or window=<number of rows>.",
            parameter="time",
        )
    try:
        offset = pd.tseries.frequencies.to_offset(window)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"window={window!r} is not a pandas offset alias; expected e.g. '1h', '1D', '7D', "
            "'MS' (month start).",
            parameter="window",
        ) from exc
    nanos = _nanos(stamps)
    fixed = isinstance(offset, pd.offsets.Tick | pd.offsets.Day)
    if fixed:
        # Fixed lengths (days included) are anchored at the Unix epoch in UTC, so that a
        # window never depends on which rows happen to be in the frame.
        length_ns = _length_ns(offset)
        starts = nanos // length_ns * length_ns
    else:
        # Calendar offsets (months, weeks) start on their own boundaries, in the data's zone.
        first = offset.rollback(stamps.min().normalize())
        edges = _nanos(pd.Series(pd.date_range(first, stamps.max(), freq=offset)))
        starts = edges[np.searchsorted(edges, nanos, side="right") - 1]
    unique, code = np.unique(starts, return_inverse=True)
    start = _as_stamps(unique, stamps.dt.tz)
    if fixed:  # a day is 24 hours here, also across a change of daylight saving time
        end = [s + pd.Timedelta(_length_ns(offset), unit="ns") for s in start]
    else:
        end = [s + offset for s in start]
    return Windows(code.astype(np.int64), start, end)


def _length_ns(offset: pd.offsets.BaseOffset) -> int:
    if isinstance(offset, pd.offsets.Day):  # not a Tick since pandas 3
        return int(offset.n) * 86_400 * 10**9
    return int(offset.nanos)


def _nanos(stamps: pd.Series) -> npt.NDArray[np.int64]:
    """Nanoseconds since the epoch (UTC for zoned times), whatever the column's resolution."""
    return np.asarray(pd.DatetimeIndex(stamps).as_unit("ns").asi8, dtype=np.int64)


def _first_last(
    stamps: pd.Series | None, code: npt.NDArray[np.int64], n_windows: int
) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    if stamps is None or n_windows == 0:
        missing: list[pd.Timestamp] = [pd.Timestamp("NaT")] * n_windows
        return missing, list(missing)
    nanos = _nanos(stamps)
    lows = np.full(n_windows, np.iinfo(np.int64).max)
    highs = np.full(n_windows, np.iinfo(np.int64).min)
    np.minimum.at(lows, code, nanos)
    np.maximum.at(highs, code, nanos)
    return _as_stamps(lows, stamps.dt.tz), _as_stamps(highs, stamps.dt.tz)


def _as_stamps(nanos: npt.NDArray[np.int64], tz: Any) -> list[pd.Timestamp]:
    if tz is None:
        return [pd.Timestamp(int(n), unit="ns") for n in nanos]
    return [pd.Timestamp(int(n), unit="ns", tz="UTC").tz_convert(tz) for n in nanos]
