"""Alert rules: which findings of a monitoring pass open an alert, evaluated window by window.

Each rule reads one table of a ``MonitorReport`` and yields alerts with a fingerprint (rule,
deployment and what broke: the column or metric), so that the store keeps one open alert per
problem while it lasts (``Store.raise_alert`` counts the repeats) instead of one per window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

from loopwise.errors import InvalidArgumentError
from loopwise.monitoring.performance.slices import ALL
from loopwise.monitoring.results import MonitorReport

__all__ = ["AlertRules", "evaluate_rules"]


@dataclass(frozen=True)
class AlertRules:
    """What opens an alert (see docs/monitoring.md, "Alerts"); every rule can be turned off.

    ``drift_share``: a window whose share of drifted input columns reaches it (warning; None:
    off). ``skew``: a feature served unlike its training data (warning). ``validation``: error
    findings of the training data's suite on served inputs (critical). ``min_performance`` /
    ``min_estimated``: floors per metric for realised (critical) and estimated (warning)
    performance, e.g. ``{"accuracy": 0.8}``; an estimate outside the band learned on the
    reference also warns. ``min_rows`` / ``max_rows``: predictions per window (warning).
    """

    drift_share: float | None = 0.5
    skew: bool = True
    validation: bool = True
    min_performance: Mapping[str, float] = field(default_factory=dict)
    min_estimated: Mapping[str, float] = field(default_factory=dict)
    min_rows: int | None = None
    max_rows: int | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> AlertRules:
        """Rules from a mapping (e.g. a parsed YAML file), every key checked."""
        if not isinstance(doc, Mapping):
            raise InvalidArgumentError(
                f"Expected alert rules as a mapping, got {type(doc).__name__}.", parameter="rules"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise InvalidArgumentError(
                f"Unknown alert rule(s) {unknown}; the rules are {sorted(known)}.",
                parameter="rules",
            )
        rules = cls(**dict(doc))
        rules.check()
        return rules

    def check(self) -> None:
        share = self.drift_share
        if share is not None and (
            isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1
        ):
            raise InvalidArgumentError(
                f"drift_share: expected a share in (0, 1] or None, got {share!r}.",
                parameter="drift_share",
            )
        for name in ("skew", "validation"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgumentError(
                    f"{name}: expected true or false, got {getattr(self, name)!r}.",
                    parameter=name,
                )
        for name in ("min_performance", "min_estimated"):
            floors = getattr(self, name)
            if not isinstance(floors, Mapping) or not all(
                isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
                for k, v in floors.items()
            ):
                raise InvalidArgumentError(
                    f"{name}: expected metric names with numbers, e.g. {{accuracy: 0.8}}, got "
                    f"{floors!r}.",
                    parameter=name,
                )
        for name in ("min_rows", "max_rows"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise InvalidArgumentError(
                    f"{name}: expected a number of rows (0 or more) or None, got {value!r}.",
                    parameter=name,
                )


def _ms(stamp: Any) -> int | None:
    return None if pd.isna(stamp) else int(pd.Timestamp(stamp).value // 1_000_000)


def _day(stamp: Any) -> str:
    return "the whole range" if pd.isna(stamp) else str(pd.Timestamp(stamp))


def _alert(
    rule: str, severity: str, key: str, message: str, row: Any, **details: Any
) -> dict[str, Any]:
    return {
        "rule": rule,
        "severity": severity,
        "key": key,
        "message": message,
        "window_start": row["window_start"],
        "window_end": row["window_end"],
        "window_start_ms": _ms(row["window_start"]),
        "window_end_ms": _ms(row["window_end"]),
        "details": details,
    }


def _by_window(table: pd.DataFrame) -> Iterator[tuple[Any, pd.DataFrame]]:
    if table.empty:
        return
    yield from table.groupby("window_start", sort=True, dropna=False)


def evaluate_rules(
    report: MonitorReport, rules: AlertRules, estimated_alerts: pd.DataFrame | None = None
) -> list[dict[str, Any]]:
    """The alerts ``report`` calls for under ``rules``, oldest window first.

    ``estimated_alerts``: rows of the estimated performance whose value left the reference
    band (``EstimatedPerformance.to_frame()`` rows with ``alert`` true).
    """
    alerts: list[dict[str, Any]] = []
    if rules.drift_share is not None:
        for _, rows in _by_window(report.drift):
            drifted = rows[rows["drifted"].astype(bool)]
            share = len(drifted) / len(rows)
            if share >= rules.drift_share:
                names = ", ".join(drifted["column"].astype(str).head(8))
                alerts.append(
                    _alert(
                        "drift", "warning", "inputs",
                        f"{len(drifted)} of {len(rows)} input columns drifted ({names}) in the "
                        f"window from {_day(rows['window_start'].iloc[0])}",
                        rows.iloc[0], columns=drifted["column"].astype(str).tolist(), share=share,
                    )
                )  # fmt: skip
    if rules.skew:
        for _, row in report.skew[report.skew["skewed"].astype(bool)].iterrows():
            alerts.append(
                _alert(
                    "skew", "warning", str(row["column"]),
                    f"{row['column']} is served unlike the training data of version "
                    f"{row['version']} ({row['test']} {row['statistic']:.3g} >= "
                    f"{row['threshold']:.3g})" + _note(row),
                    row, column=str(row["column"]), version=int(row["version"]),
                    statistic=_finite(row["statistic"]),
                )
            )  # fmt: skip
    if rules.validation:
        errors = report.validation[report.validation["severity"] == "error"]
        for _, row in errors.iterrows():
            alerts.append(
                _alert(
                    "validation", "critical", f"{row['column']}:{row['rule']}",
                    f"{row['failing_rows']} served rows break {row['rule']} on {row['column']}: "
                    f"expected {row['expected']}, got {row['observed']}",
                    row, column=row["column"], check=row["rule"],
                )
            )  # fmt: skip
    whole = report.performance
    if not whole.empty:
        whole = whole[(whole["slice"] == ALL) & (whole["slice_value"] == ALL)]
    alerts += _floors(whole, rules.min_performance, "performance", "critical", "realised")
    alerts += _floors(report.estimated, rules.min_estimated, "estimated", "warning", "estimated")
    if estimated_alerts is not None:
        for _, row in estimated_alerts.iterrows():
            alerts.append(
                _alert(
                    "estimated", "warning", f"{row['metric']}:band",
                    f"estimated {row['metric']} {row['value']:.3f} left the range seen on the "
                    f"reference ({row['lower_threshold']:.3f} to {row['upper_threshold']:.3f})",
                    row, metric=row["metric"], value=_finite(row["value"]),
                )
            )  # fmt: skip
    for _, row in report.traffic.iterrows():
        low, high = rules.min_rows, rules.max_rows
        if (low is not None and row["rows"] < low) or (high is not None and row["rows"] > high):
            alerts.append(
                _alert(
                    "traffic", "warning", "rows",
                    f"{row['rows']} predictions in the window from {_day(row['window_start'])}; "
                    f"expected between {low if low is not None else 0} and "
                    f"{high if high is not None else 'any number'}",
                    row, rows=int(row["rows"]),
                )
            )  # fmt: skip
    alerts.sort(key=lambda a: (a["window_start_ms"] or 0, a["rule"]))
    return alerts


def _floors(
    table: pd.DataFrame, floors: Mapping[str, float], rule: str, severity: str, what: str
) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    if table.empty:
        return alerts
    for _, row in table[table["metric"].isin(list(floors))].iterrows():
        value = row["value"]
        floor = floors[row["metric"]]
        if isinstance(value, float) and math.isfinite(value) and value < floor:
            alerts.append(
                _alert(
                    rule, severity, str(row["metric"]),
                    f"{what} {row['metric']} {value:.3f} is below the minimum {floor:.3f} in the "
                    f"window from {_day(row['window_start'])}",
                    row, metric=str(row["metric"]), value=value, minimum=floor,
                )
            )  # fmt: skip
    return alerts


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _note(row: Any) -> str:
    note = row.get("note")
    return f": {note}" if isinstance(note, str) and note else ""
