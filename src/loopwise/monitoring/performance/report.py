"""The result of ``performance``: one row per window x slice value x metric, with its interval,
row counts and the reason for any missing value; and ``slice_minimums``, the gate on it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopwise.errors import InvalidArgumentError
from loopwise.monitoring.performance.metrics import INTERVAL_METHODS, METRICS
from loopwise.monitoring.performance.slices import ALL

__all__ = ["COLUMNS", "PerformanceReport", "slice_minimums"]

COLUMNS = [
    "window", "window_start", "window_end", "slice", "slice_value", "metric",
    "value", "lower", "upper", "rows", "labelled", "reason",
]  # fmt: skip


@dataclass(frozen=True)
class PerformanceReport:
    """Realised performance by window and slice. ``results`` has ``COLUMNS``; slice ``"all"``
    (value ``"all"``) holds each window's every row. ``methods`` names each metric's interval."""

    results: pd.DataFrame
    task: str
    metrics: list[str]
    confidence: float
    min_slice_rows: int
    classes: list[Any] | None = None
    positive: Any = None
    methods: dict[str, str] = field(default_factory=dict)
    unscored: int = 0
    """Labelled rows without scores (None or NaN: e.g. logged by a route that computed
    ``predict`` only), left out of the score-based metrics; their ``labelled`` counts the rest."""

    def to_frame(self) -> pd.DataFrame:
        """The long table: window, window_start, window_end, slice, slice_value, metric, value,
        lower, upper, rows, labelled, reason."""
        return self.results.copy()

    def value(
        self, metric: str, *, slice: str = ALL, slice_value: str = ALL, window: int = -1
    ) -> float:
        """One number, e.g. ``report.value("accuracy", slice="SEX", slice_value="2")``;
        ``window=-1`` is the last window."""
        rows = self._rows(metric, window)
        hit = rows[(rows["slice"] == slice) & (rows["slice_value"] == slice_value)]
        if hit.empty:
            known = sorted(set(zip(rows["slice"], rows["slice_value"], strict=True)))
            raise InvalidArgumentError(
                f"No slice {slice!r} = {slice_value!r} in this report; expected one of "
                f"{known[:30]}.",
                parameter="slice",
            )
        return float(hit["value"].iloc[0])

    def worst_slices(self, metric: str, k: int = 5, *, window: int | None = None) -> pd.DataFrame:
        """The ``k`` slice values with the worst ``metric`` (lowest, or highest for losses), in
        every window or only ``window``; slices without a value (too small) are left out."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidArgumentError(f"k: expected a positive integer, got {k!r}.", parameter="k")
        rows = self._rows(metric, window)
        rows = rows[(rows["slice"] != ALL) & rows["value"].notna()]
        ascending = METRICS[metric].higher_is_better
        return rows.sort_values("value", ascending=ascending, kind="stable").head(k)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: settings, interval methods, and the results as records (NaN as None,
        times as ISO 8601 strings)."""
        records = []
        for record in self.results.to_dict(orient="records"):
            records.append({key: _plain(value) for key, value in record.items()})
        return {
            "task": self.task,
            "metrics": list(self.metrics),
            "classes": None if self.classes is None else [_plain(c) for c in self.classes],
            "positive": _plain(self.positive),
            "confidence": self.confidence,
            "min_slice_rows": self.min_slice_rows,
            "unscored": self.unscored,
            "methods": {m: INTERVAL_METHODS[method] for m, method in self.methods.items()},
            "results": records,
        }

    def _rows(self, metric: str, window: int | None) -> pd.DataFrame:
        if metric not in self.metrics:
            raise InvalidArgumentError(
                f"metric={metric!r} is not in this report; it has {self.metrics}.",
                parameter="metric",
            )
        rows = self.results[self.results["metric"] == metric]
        if window is None:
            return rows
        windows = sorted(self.results["window"].unique())
        if not isinstance(window, int) or not -len(windows) <= window < len(windows):
            raise InvalidArgumentError(
                f"window={window!r}: this report has windows 0 to {len(windows) - 1} "
                "(negative numbers count from the end).",
                parameter="window",
            )
        chosen: pd.DataFrame = rows[rows["window"] == windows[window]]
        return chosen


def slice_minimums(
    report: PerformanceReport,
    thresholds: Mapping[str, float],
    *,
    confident: bool = False,
    window: int | None = None,
) -> pd.DataFrame:
    """The cells (window x slice value, ``"all"`` included) that miss a threshold: below it for
    scores, above it for losses (log_loss, brier, rmse, mae, mape). With ``confident=True`` a
    cell misses only when its whole confidence interval does, so that small slices are not
    failed on noise. Empty when every cell passes; cells without a value never fail here (see
    their ``reason`` in ``report.to_frame()``). Adds columns ``threshold`` and ``shortfall``."""
    if not isinstance(thresholds, Mapping) or not thresholds:
        raise InvalidArgumentError(
            f"thresholds: expected a dict of metric -> minimum, e.g. {{'accuracy': 0.8}}, "
            f"got {thresholds!r}.",
            parameter="thresholds",
        )
    found = []
    for metric, threshold in thresholds.items():
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise InvalidArgumentError(
                f"thresholds[{metric!r}]: expected a number, got {threshold!r}.",
                parameter="thresholds",
            )
        if not math.isfinite(threshold):
            raise InvalidArgumentError(
                f"thresholds[{metric!r}]: expected a finite number, got {threshold}.",
                parameter="thresholds",
            )
        rows = report._rows(metric, window).copy()
        if METRICS[metric].higher_is_better:
            shortfall = threshold - (rows["upper"] if confident else rows["value"])
        else:
            shortfall = (rows["lower"] if confident else rows["value"]) - threshold
        rows["threshold"] = float(threshold)
        rows["shortfall"] = shortfall
        found.append(rows[shortfall > 0])
    out = pd.concat(found, ignore_index=True)
    out = out.sort_values(["window", "metric", "shortfall"], ascending=[True, True, False])
    return out.reset_index(drop=True)


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
