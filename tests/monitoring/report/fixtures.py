"""Monitoring reports built by hand for the report tests: a realistic one (six daily windows,
five ACS-like features, two slice columns, a drifted column, labels that stop arriving, alerts),
a nearly empty one, and one whose names try to inject HTML."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from loopwise.monitoring.results import TABLES, ColumnDistribution, MonitorReport

__all__ = ["HOSTILE", "empty_report", "hostile_report", "realistic_report"]

START = pd.Timestamp("2016-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)
FEATURES = {"AGEP": "numeric", "SCHL": "numeric", "MAR": "categorical", "SEX": "categorical",
            "RAC1P": "categorical"}  # fmt: skip
HOSTILE = "<script>document.title='pwned'</script>"
HOSTILE_IMG = "<img src=x onerror=\"document.title='pwned'\">"


def _windows(n: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    return [(START + i * DAY, START + (i + 1) * DAY) for i in range(n)]


def realistic_report(features: dict[str, str] | None = None) -> MonitorReport:
    features = features or FEATURES
    names = list(features)
    rng = np.random.default_rng(7)
    windows = _windows(6)
    rows = [1180, 1243, 1207, 1311, 1269, 1302]
    labelled = [1180, 1243, 1100, 640, 35, 0]  # labels arrive late: the last days have few
    traffic = pd.DataFrame(
        [(s, e, r, lab, "2") for (s, e), r, lab in zip(windows, rows, labelled, strict=True)],
        columns=list(TABLES["traffic"]),
    )
    drift_rows = []
    for w, (s, e) in enumerate(windows):
        for name in names:
            kind = features[name]
            if kind == "numeric":
                statistic = 0.03 + 0.01 * rng.random()
                if name == names[0]:
                    statistic = [0.04, 0.05, 0.09, 0.16, 0.22, 0.27][w]  # AGEP drifts from day 4
                drift_rows.append(
                    (s, e, name, kind, "wasserstein", statistic, 0.1, math.nan, statistic >= 0.1)
                )
            else:
                p = float(rng.uniform(0.2, 0.9)) if not (name == "MAR" and w == 5) else 0.004
                drift_rows.append((s, e, name, kind, "chisquare", 3.1, 0.05, p, p < 0.05))
    drift = pd.DataFrame(drift_rows, columns=list(TABLES["drift"]))
    s_last, e_last = windows[-1]
    skew = pd.DataFrame(
        [
            (s_last, e_last, "2", name, kind, "wasserstein" if kind == "numeric" else "jensenshannon",
             0.31 if i == 0 else 0.02 + 0.015 * i, 0.1, i == 0)
            for i, (name, kind) in enumerate(features.items())
        ],
        columns=list(TABLES["skew"]),
    )  # fmt: skip
    validation = pd.DataFrame(
        [
            (windows[3][0], windows[3][1], names[0], "range", "error", "between 16 and 99",
             "min 3", 4),
            (windows[5][0], windows[5][1], names[2], "in_set", "warning", "one of 1, 2, 3, 4, 5",
             "unseen value 9", 12),
        ],
        columns=list(TABLES["validation"]),
    )  # fmt: skip
    performance = pd.DataFrame(_performance_rows(windows, rows, labelled, names))
    estimated = pd.DataFrame(
        [
            (s, e, metric, v, v - 0.02, v + 0.02, r)
            for (s, e), r, base in zip(windows, rows, [0.81, 0.80, 0.80, 0.77, 0.75, 0.74],
                                       strict=True)
            for metric, v in (("accuracy", base), ("roc_auc", base + 0.07))
        ],
        columns=list(TABLES["estimated"]),
    )  # fmt: skip
    distributions = {
        name: _distribution(name, kind, drifted=(i == 0)) for i, (name, kind) in
        enumerate(features.items())
    }  # fmt: skip
    alerts: list[dict[str, Any]] = [
        {"rule": "drift", "severity": "warning", "message": f"{names[0]} drifted (wasserstein "
         "0.27 >= 0.1) in 3 of 6 windows", "window_start": windows[5][0],
         "window_end": windows[5][1], "details": {"column": names[0]}},
        {"rule": "performance", "severity": "critical", "message": "estimated accuracy 0.74 "
         "is below the minimum 0.76", "window_start": windows[5][0],
         "window_end": windows[5][1], "details": {}},
        {"rule": "validation", "severity": "info", "message": "12 rows with unseen MAR values",
         "window_start": windows[5][0], "window_end": windows[5][1], "details": {}},
    ]  # fmt: skip
    return MonitorReport(
        project="census",
        deployment="employment",
        start_ms=int(windows[0][0].value // 1_000_000),
        end_ms=int(windows[-1][1].value // 1_000_000),
        window="1D",
        generated_ms=int(pd.Timestamp("2016-01-08 09:30", tz="UTC").value // 1_000_000),
        reference="acs-ma-2015/1, the training data of employment/2",
        traffic=traffic,
        drift=drift,
        skew=skew,
        validation=validation,
        performance=performance,
        estimated=estimated,
        distributions=distributions,
        alerts=alerts,
    )


def _performance_rows(
    windows: list[tuple[pd.Timestamp, pd.Timestamp]],
    rows: list[int],
    labelled: list[int],
    names: list[str],
) -> list[dict[str, Any]]:
    """Slice "all" plus SEX (two values) and an age band with one tiny value, per window."""
    out = []
    slices = [("all", "all", 1.0), ("SEX", "1", 0.49), ("SEX", "2", 0.51),
              (names[0], "[16, 30)", 0.3), (names[0], "[30, 99]", 0.68), (names[0], "[0, 16)", 0.02)]  # fmt: skip
    for (s, e), r, lab, base in zip(windows, rows, labelled, [0.82, 0.81, 0.80, 0.77, 0.7, 0.7],
                                    strict=True):  # fmt: skip
        for metric, shift in (("accuracy", 0.0), ("roc_auc", 0.07)):
            for k, (slice_, value, share) in enumerate(slices):
                n = int(lab * share)
                cell_rows = int(r * share)
                if n < 50:
                    v = lo = hi = math.nan
                    reason = (
                        f"{n} labelled rows, fewer than min_slice_rows=50"
                        if n
                        else (f"none of {cell_rows} rows is labelled yet")
                    )
                else:
                    v = base + shift + (0.03 * (k % 3) - 0.03)
                    half = 1.96 * math.sqrt(v * (1 - v) / n)
                    lo, hi, reason = v - half, min(v + half, 1.0), None
                out.append(
                    {
                        "window_start": s,
                        "window_end": e,
                        "slice": slice_,
                        "slice_value": value,
                        "metric": metric,
                        "value": v,
                        "lower": lo,
                        "upper": hi,
                        "rows": cell_rows,
                        "labelled": n,
                        "reason": reason,
                    }
                )
    return out  # fmt: skip


def _distribution(name: str, kind: str, *, drifted: bool) -> ColumnDistribution:
    if kind == "numeric":
        labels = ["[16, 25)", "[25, 35)", "[35, 45)", "[45, 55)", "[55, 65)", "[65, 99]"]
        reference = [0.16, 0.19, 0.18, 0.2, 0.17, 0.1]
        current = [0.08, 0.14, 0.17, 0.22, 0.23, 0.16] if drifted else [0.15, 0.2, 0.18, 0.2,
                                                                        0.16, 0.11]  # fmt: skip
    else:
        labels = ["1", "2", "5", "other"]
        reference = [0.48, 0.12, 0.35, 0.05]
        current = [0.46, 0.13, 0.36, 0.05]
    return ColumnDistribution(name, kind, labels, reference, current)


def empty_report() -> MonitorReport:
    """A deployment that served nothing yet: every table empty, no alerts."""
    empty: dict[str, Any] = {name: pd.DataFrame(columns=list(c)) for name, c in TABLES.items()}
    return MonitorReport(
        project="census", deployment="employment", start_ms=1_451_606_400_000,
        end_ms=1_451_692_800_000, window="1D", generated_ms=1_451_700_000_000,
        reference="acs-ma-2015/1", **empty,
    )  # fmt: skip


def hostile_report() -> MonitorReport:
    """Column names, slice values, categories and messages that try to inject HTML."""
    report = realistic_report(
        {HOSTILE: "numeric", HOSTILE_IMG: "categorical", "SEX": "categorical"}
    )
    performance = report.performance.copy()
    performance.loc[performance["slice"] == "SEX", "slice_value"] = HOSTILE_IMG
    distributions = dict(report.distributions)
    d = distributions[HOSTILE_IMG]
    distributions[HOSTILE_IMG] = ColumnDistribution(
        d.column, d.kind, [HOSTILE, *d.labels[1:]], d.reference, d.current
    )
    alerts = [{**a, "message": HOSTILE_IMG + a["message"], "rule": HOSTILE} for a in report.alerts]
    return MonitorReport(
        **{**report.__dict__, "deployment": HOSTILE, "reference": HOSTILE_IMG,
           "performance": performance, "distributions": distributions, "alerts": alerts}
    )  # fmt: skip
