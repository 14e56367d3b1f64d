"""Estimated performance beside realised performance, window by window, once labels arrive: how
far the label-free estimate was off, and whether the realised value fell inside its band."""

from __future__ import annotations

from typing import Any

import pandas as pd

from loopwise.errors import InvalidArgumentError
from loopwise.monitoring.performance.estimation import EstimatedPerformance
from loopwise.monitoring.performance.slices import ALL

__all__ = ["compare_estimated_realised"]

REQUIRED = ("window", "window_start", "metric", "value")


def _realised_frame(realised: Any) -> pd.DataFrame:
    frame = realised.to_frame() if hasattr(realised, "to_frame") else realised
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgumentError(
            "realised must be a PerformanceReport (from loopwise.monitoring.performance) or a "
            f"DataFrame with columns {list(REQUIRED)}; got {type(realised).__name__}.",
            parameter="realised",
        )
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InvalidArgumentError(
            f"realised lacks the column(s) {missing}; expected at least {list(REQUIRED)} "
            f"(got {list(frame.columns)}).",
            parameter="realised",
        )
    if "slice" in frame.columns:  # only whole windows compare with the estimate
        frame = frame[frame["slice"] == ALL]
    optional = [c for c in ("lower", "upper", "labelled") if c in frame.columns]
    keep = [*REQUIRED, *optional]
    return frame[keep].rename(
        columns={"value": "realised", "lower": "realised_lower", "upper": "realised_upper"}
    )


def _utc(column: pd.Series) -> pd.Series:
    """Window starts as UTC timestamps, whichever side wrote them (naive means UTC)."""
    if column.isna().all():
        return column
    return pd.to_datetime(column, utc=True)


def compare_estimated_realised(estimated: EstimatedPerformance, realised: Any) -> pd.DataFrame:
    """One row per estimated window x metric: ``estimated`` (with its band
    ``estimated_lower``/``estimated_upper``), ``realised`` (NaN until labels arrive; with its
    confidence interval where the report has one), ``difference`` = estimated - realised and
    ``realised_in_band``. Windows must be cut the same way on both sides (same ``window``)."""
    if not isinstance(estimated, EstimatedPerformance):
        raise InvalidArgumentError(
            "estimated must be the EstimatedPerformance that PerformanceEstimator.estimate "
            f"returns; got {type(estimated).__name__}.",
            parameter="estimated",
        )
    columns = ["window", "window_start", "window_end", "metric", "value", "lower", "upper"]
    left = estimated.to_frame()[[*columns, "rows", "alert"]].rename(
        columns={"value": "estimated", "lower": "estimated_lower", "upper": "estimated_upper"}
    )
    right = _realised_frame(realised).copy()
    left["window_start"] = _utc(left["window_start"])
    right["window_start"] = _utc(right["window_start"])
    # Time windows match by start (robust to a window one side has no rows in); windows by
    # row count (no time) by their index.
    by_time = left["window_start"].notna().all() and right["window_start"].notna().all()
    keys = ["window_start", "metric"] if by_time else ["window", "metric"]
    right = right.drop(columns=["window"] if by_time else ["window_start"])
    out = left.merge(right, on=keys, how="left", validate="one_to_one")
    out["difference"] = out["estimated"] - out["realised"]
    inside = (out["realised"] >= out["estimated_lower"]) & (
        out["realised"] <= out["estimated_upper"]
    )
    out["realised_in_band"] = inside.where(out["realised"].notna() & out["estimated"].notna())
    out["realised_in_band"] = out["realised_in_band"].astype("boolean")
    return out
