"""What one monitoring pass found: plain tables, window by window, that reports and alerts read.

``monitor.py`` fills a ``MonitorReport`` from the prediction log, outcomes and the reference
data; ``report.py`` draws it as a standalone HTML page; the CLI prints or dumps it as JSON.
Every table is long-form (one row per window and column, metric or rule), so that one chart
or one filter works on any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

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
"""The columns each table has at least (window_start/window_end: pandas Timestamps, UTC)."""


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

    def table(self, name: str) -> pd.DataFrame:
        """One of ``TABLES`` by name."""
        frame: pd.DataFrame = getattr(self, name)
        return frame

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
