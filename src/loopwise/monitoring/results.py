"""What one monitoring pass found: plain tables, window by window, that reports and alerts read.

``monitor/`` fills a ``MonitorReport`` from the prediction log, outcomes and the reference
data; ``report/`` draws it as a standalone HTML page; the CLI prints its ``summary_rows`` or
dumps it as JSON.
Every table is long-form (one row per window and column, metric or rule), so that one chart
or one filter works on any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from loopwise.monitoring.performance.slices import ALL

__all__ = ["TABLES", "ColumnDistribution", "MonitorReport"]

TABLES: dict[str, tuple[str, ...]] = {
    "traffic": ("window_start", "window_end", "rows", "labelled", "versions"),
    "drift": (
        "window_start",
        "window_end",
        "column",
        "kind",
        "test",
        "statistic",
        "threshold",
        "p_value",
        "drifted",
    ),
    "skew": (
        "window_start",
        "window_end",
        "version",
        "column",
        "kind",
        "test",
        "statistic",
        "threshold",
        "skewed",
    ),
    "validation": (
        "window_start",
        "window_end",
        "column",
        "rule",
        "severity",
        "expected",
        "observed",
        "failing_rows",
    ),
    "performance": (
        "window_start",
        "window_end",
        "slice",
        "slice_value",
        "metric",
        "value",
        "lower",
        "upper",
        "rows",
        "labelled",
    ),
    "estimated": ("window_start", "window_end", "metric", "value", "lower", "upper", "rows"),
}
"""The columns each table has at least (window_start/window_end: pandas Timestamps, UTC). The
monitor's ``traffic`` also has ``unscored``: rows without class probabilities (see
``MonitorReport.unscored``)."""
SUMMARY_COLUMNS = (
    "window", "rows", "labelled", "drifted", "skewed", "errors", "accuracy", "est. acc.",
)  # fmt: skip


@dataclass(frozen=True)
class ColumnDistribution:
    """One feature's distribution in the reference and over the whole monitored range.

    ``labels`` name the bins (numeric: ``"[20, 30)"``, in order) or the categories (the most
    frequent first, the rest as ``"other"``); ``reference``/``current`` are shares that sum to 1
    over the labels (NaN where a side has no rows).
    """

    column: str
    kind: str  # "numeric" or "categorical"
    labels: list[str]
    reference: list[float]
    current: list[float]


@dataclass(frozen=True)
class MonitorReport:
    """One deployment over ``[start_ms, end_ms)``, cut into windows of ``window``."""

    project: str
    deployment: str
    start_ms: int
    end_ms: int
    window: str
    generated_ms: int
    reference: str
    """What the served inputs were compared with, in words (e.g. "acs-ma-2015/1, the training
    data of employment/2")."""
    traffic: pd.DataFrame
    drift: pd.DataFrame
    skew: pd.DataFrame
    validation: pd.DataFrame
    performance: pd.DataFrame
    estimated: pd.DataFrame
    distributions: dict[str, ColumnDistribution] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    """Alerts this pass raised: rule, severity, message, window_start, window_end, details."""

    @property
    def summary_columns(self) -> tuple[str, ...]:
        """The columns of ``summary_rows``; ``unscored`` only when some rows hold no scores."""
        return SUMMARY_COLUMNS + (("unscored",) if self.unscored else ())

    @property
    def unscored(self) -> int:
        """Rows without class probabilities, left out of score-based metrics and estimates
        (``traffic["unscored"]`` per window)."""
        if "unscored" not in self.traffic.columns or self.traffic.empty:
            return 0
        return int(self.traffic["unscored"].sum())

    def table(self, name: str) -> pd.DataFrame:
        """One of ``TABLES`` by name."""
        frame: pd.DataFrame = getattr(self, name)
        return frame

    def summary_rows(self) -> list[list[Any]]:
        """One row per window, as ``summary_columns``: its start, rows and labelled rows, the
        drifted and skewed columns ("-" for none), the number of validation errors, the
        realised (whole window) and estimated accuracy (None where unknown) and, when some rows
        hold no class probabilities, how many in the window."""

        def per_window(frame: pd.DataFrame, key: str) -> dict[Any, list[Any]]:
            return {} if frame.empty else frame.groupby("window_start")[key].apply(list).to_dict()

        drifted = per_window(self.drift[self.drift["drifted"].astype(bool)], "column")
        skewed = per_window(self.skew[self.skew["skewed"].astype(bool)], "column")
        findings = per_window(self.validation[self.validation["severity"] == "error"], "rule")
        realised: Any = self.performance
        if not realised.empty:
            realised = realised[
                (realised["slice"] == ALL) & (realised["metric"] == "accuracy")
            ].set_index("window_start")["value"]
        estimated: Any = self.estimated
        if not estimated.empty:
            estimated = estimated[estimated["metric"] == "accuracy"]
            estimated = estimated.set_index("window_start")["value"]
        rows = []
        unscored = self.unscored > 0
        for _, row in self.traffic.iterrows():
            start = row["window_start"]
            rows.append(
                [
                    str(start),
                    row["rows"],
                    row["labelled"],
                    ", ".join(map(str, drifted.get(start, []))) or "-",
                    ", ".join(map(str, skewed.get(start, []))) or "-",
                    len(findings.get(start, [])),
                    realised.get(start) if len(realised) else None,
                    estimated.get(start) if len(estimated) else None,
                    *([int(row["unscored"])] if unscored else []),
                ]
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tables as lists of records, times as ISO 8601, NaN as None."""
        return {
            "project": self.project,
            "deployment": self.deployment,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "window": self.window,
            "generated_ms": self.generated_ms,
            "reference": self.reference,
            **{name: _records(self.table(name)) for name in TABLES},
            "distributions": {
                name: {
                    "kind": d.kind,
                    "labels": d.labels,
                    "reference": [_plain(v) for v in d.reference],
                    "current": [_plain(v) for v in d.current],
                }
                for name, d in self.distributions.items()
            },
            "alerts": [{k: _plain(v) for k, v in a.items()} for a in self.alerts],
        }


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()  # a NumPy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NaT or value is pd.NA:
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
