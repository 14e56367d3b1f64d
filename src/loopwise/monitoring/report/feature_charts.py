"""Per-feature and per-slice chart specs for the monitoring report: the drift heatmap, skew
bars, the slice dot plot and reference-vs-current distributions (plain Plotly JSON)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from loopwise.monitoring.report.charts import (
    BLUE,
    GREY,
    Spec,
    WindowAxis,
    base_layout,
    exceedance,
    flags,
)
from loopwise.monitoring.report.html import chart_text, fmt
from loopwise.monitoring.results import ColumnDistribution

__all__ = [
    "OUTSIDE",
    "distribution_chart",
    "drift_heatmap",
    "drift_order",
    "outside_bins",
    "outside_share",
    "skew_chart",
    "slice_chart",
]

RED = "#c62828"
EXCEEDANCE_MAX = 2.0  # the colour scale saturates at twice the threshold
# Below the threshold (0 to 0.5 of the scale): white to pale blue; past it: orange to dark red,
# so that the threshold is a visible step rather than a shade.
DRIFT_COLOURS = [
    [0.0, "#f7fbff"], [0.4999, "#c6dbef"], [0.5, "#fdd49e"], [0.75, "#ef6548"], [1.0, "#990000"],
]  # fmt: skip


def drift_order(drift: pd.DataFrame) -> list[str]:
    """Columns by how much they drifted: most drifted windows first, then the largest
    exceedance, then by name."""
    scored = drift.assign(
        _drifted=flags(drift["drifted"]),
        _exceed=_exceedances(drift),
        _column=drift["column"].astype(str),
    )
    summary = scored.groupby("_column", sort=False).agg(
        drifted=("_drifted", "sum"), exceed=("_exceed", "max")
    )
    summary = summary.fillna({"exceed": -1.0}).reset_index()
    summary = summary.sort_values(
        ["drifted", "exceed", "_column"], ascending=[False, False, True], kind="stable"
    )
    return [str(c) for c in summary["_column"]]


def gap_label(gap_ms: float) -> str:
    """A heatmap column for time without windows, e.g. ``"⋯ 151 days ⋯"``."""
    days = gap_ms / 86_400_000
    text = f"{days:.3g} days" if days >= 1 else f"{gap_ms / 3_600_000:.3g} hours"
    return f"⋯ {text} ⋯"


def _with_gaps(
    windows: WindowAxis, z: np.ndarray, marks: list[list[str]], hover: list[list[str]]
) -> tuple[list[str], np.ndarray, list[list[str]], list[list[str]]]:
    """The heatmap's columns with an empty one wherever time passed without windows, so that
    windows months apart do not sit side by side as if they were neighbours."""
    gaps = windows.gaps_after()
    columns: list[tuple[str, int | None]] = []  # a column's label and window (None: a gap)
    for j, label in enumerate(windows.labels):
        columns.append((label, j))
        if j in gaps:
            columns.append((gap_label(gaps[j]), None))
    if not gaps:
        return list(windows.labels), z, marks, hover
    grid = np.array([[z[r, j] if j is not None else np.nan for _, j in columns]
                     for r in range(z.shape[0])]).reshape(z.shape[0], len(columns))  # fmt: skip
    return (
        [label for label, _ in columns],
        grid,
        [[row[j] if j is not None else "" for _, j in columns] for row in marks],
        [
            [
                row[j] if j is not None else f"no windows: {label.strip(' ⋯')}"
                for label, j in columns
            ]
            for row in hover
        ],
    )


def drift_heatmap(drift: pd.DataFrame, windows: WindowAxis) -> tuple[Spec, int]:
    """Columns x windows, coloured by exceedance (1 = the threshold), drifted cells marked
    with a cross; untested cells stay grey. Returns the spec and its height in pixels."""
    columns = drift_order(drift)
    row_of = {c: i for i, c in enumerate(columns)}
    z = np.full((len(columns), len(windows)), np.nan)
    marks = [[""] * len(windows) for _ in columns]
    hover = [["not tested"] * len(windows) for _ in columns]
    positions = windows.positions(drift["window_start"])
    for j, (_, row) in zip(positions, drift.iterrows(), strict=True):
        i = row_of[str(row["column"])]
        exceed = exceedance(row["test"], row["statistic"], row["threshold"], row["p_value"])
        z[i, j] = min(exceed, EXCEEDANCE_MAX) if math.isfinite(exceed) else np.nan
        drifted = bool(row["drifted"]) if pd.notna(row["drifted"]) else False
        marks[i][j] = "✕" if drifted else ""
        hover[i][j] = (
            f"test: {chart_text(row['test'])} ({chart_text(row['kind'])})<br>statistic: {fmt(row['statistic'])}"
            f"<br>p-value: {fmt(row['p_value'])}<br>threshold: {fmt(row['threshold'])}"
            f"<br>vs threshold: {fmt(exceed, 3)}<br><b>{'drifted' if drifted else 'no drift'}</b>"
        )
    x, z, marks, hover = _with_gaps(windows, z, marks, hover)
    gapped = len(x) > len(windows)
    hover = [[f"{label}<br>{text}" for label, text in zip(x, row, strict=True)] for row in hover]
    data = [
        {
            "type": "heatmap",
            # Gap columns may share a label ("⋯ 364 days ⋯" twice), and a category axis would
            # merge them: with gaps, columns are numbered and the axis names them.
            "x": list(range(len(x))) if gapped else x,
            "y": [chart_text(c) for c in columns],
            "z": [[None if not math.isfinite(v) else float(v) for v in r] for r in z],
            "zmin": 0,
            "zmax": EXCEEDANCE_MAX,
            "colorscale": DRIFT_COLOURS,
            "xgap": 2,
            "ygap": 2,
            "text": marks,
            "texttemplate": "%{text}",
            "textfont": {"color": "#ffffff", "size": 14},
            "customdata": hover,
            "hovertemplate": "<b>%{y}</b> · %{customdata}<extra></extra>",
            "colorbar": {
                "title": {"text": "vs threshold", "side": "right"},
                "tickvals": [0, 1, EXCEEDANCE_MAX],
                "ticktext": ["0", "1 = threshold", f"≥ {EXCEEDANCE_MAX:g}"],
                "thickness": 12,
            },
        }
    ]
    height = int(min(1400, max(220, 90 + 28 * len(columns))))
    layout = base_layout(
        xaxis={"type": "category", "automargin": True, "tickangle": -30 if len(x) > 8 else 0}
        | (
            {
                "type": "linear",
                "tickmode": "array",
                "tickvals": list(range(len(x))),
                "ticktext": x,
                "showgrid": False,
                "zeroline": False,
            }
            if gapped
            else {}
        ),
        yaxis={"type": "category", "autorange": "reversed", "automargin": True},
        plot_bgcolor="#e4e7ec",
        margin={"l": 20, "r": 20, "t": 30, "b": 40},
        shapes=[  # time without windows is blank, not the grey of an untested cell
            {"type": "rect", "xref": "x", "yref": "paper", "x0": i - 0.5, "x1": i + 0.5,
             "y0": 0, "y1": 1, "fillcolor": "#ffffff", "line": {"width": 0}, "layer": "below"}
            for i, label in enumerate(x)
            if gapped and label.startswith("⋯")
        ],
    )  # fmt: skip
    return {"data": data, "layout": layout}, height


def skew_chart(skew: pd.DataFrame) -> tuple[Spec, int, Any]:
    """Training-serving skew per feature in the latest window that has it: a bar of how far
    the test went towards its threshold (1 = the threshold), red where it is skewed. Returns
    the spec, its height and the window it shows."""
    latest = skew["window_start"].map(_sort_key)
    rows = skew[latest == latest.max()]
    several = rows["version"].astype(str).nunique() > 1
    names, values, colours, hover = [], [], [], []
    p_values = rows["p_value"] if "p_value" in rows.columns else pd.Series(None, index=rows.index)
    for (_, row), p in zip(rows.iterrows(), p_values, strict=True):
        exceed = exceedance(row["test"], row["statistic"], row["threshold"], p)
        skewed = bool(row["skewed"]) if pd.notna(row["skewed"]) else False
        names.append(
            chart_text(f"{row['column']} (v{row['version']})" if several else row["column"])
        )
        values.append(float(exceed) if math.isfinite(exceed) else None)
        colours.append(RED if skewed else BLUE)
        hover.append(
            f"test: {chart_text(row['test'])}<br>statistic: {fmt(row['statistic'])}<br>threshold: "
            f"{fmt(row['threshold'])}<br><b>{'skewed' if skewed else 'no skew'}</b>"
        )
    order = np.argsort([-(v if v is not None else -1.0) for v in values], kind="stable")
    data = [
        {"type": "bar", "orientation": "h", "y": [names[i] for i in order],
         "x": [values[i] for i in order], "marker": {"color": [colours[i] for i in order]},
         "customdata": [hover[i] for i in order], "showlegend": False,
         "hovertemplate": "<b>%{y}</b><br>vs threshold: %{x:.3f}<br>%{customdata}"
                          "<extra></extra>"}
    ]  # fmt: skip
    top = max([v for v in values if v is not None] + [1.2])
    height = int(min(1200, max(180, 110 + 26 * len(names))))
    layout = base_layout(
        xaxis={"title": {"text": "statistic vs threshold (1 = threshold)"},
               "range": [0, min(top, 5.0) * 1.08], "gridcolor": "#eef1f5", "zeroline": False},
        yaxis={"type": "category", "autorange": "reversed", "automargin": True},
        shapes=[_vertical(1.0, "#444444")],
    )  # fmt: skip
    start = rows["window_start"].iloc[0] if len(rows) else None
    return {"data": data, "layout": layout}, height, start


def slice_chart(
    metric: str, rows: pd.DataFrame, overall: float, *, all_label: str = "all rows"
) -> tuple[Spec, int]:
    """One metric per slice value in one window: a dot with its interval, the whole window's
    value as a dotted line; values too small to score say so instead of a dot."""
    labels = [
        chart_text(f"{s} = {v}") for s, v in zip(rows["slice"], rows["slice_value"], strict=True)
    ]
    value = np.array([_num(v) for v in rows["value"]])
    lower = np.array([_num(v) for v in rows["lower"]])
    upper = np.array([_num(v) for v in rows["upper"]])
    y = list(range(len(labels)))
    custom = [
        [labels[i], fmt(lower[i]), fmt(upper[i]), fmt(rows["labelled"].iloc[i]),
         fmt(rows["rows"].iloc[i])]
        for i in y
    ]  # fmt: skip
    data = [
        {"type": "scatter", "mode": "markers", "x": _nulls(value), "y": y, "showlegend": False,
         "marker": {"color": BLUE, "size": 9},
         "error_x": {"type": "data", "symmetric": False, "color": BLUE, "thickness": 1.5,
                     "array": _nulls(upper - value), "arrayminus": _nulls(value - lower)},
         "customdata": custom,
         "hovertemplate": "<b>%{customdata[0]}</b><br>" + chart_text(metric) + ": %{x:.4f}"
                          "<br>interval: %{customdata[1]} to %{customdata[2]}"
                          "<br>labelled: %{customdata[3]} of %{customdata[4]} rows"
                          "<extra></extra>"}
    ]  # fmt: skip
    notes = []
    for i in np.flatnonzero(~np.isfinite(value)):
        reason = rows["reason"].iloc[i] if "reason" in rows.columns else None
        text = reason if isinstance(reason, str) and reason else "too few rows"
        notes.append(
            {"xref": "paper", "x": 0.0, "xanchor": "left", "yref": "y", "y": int(i),
             "text": chart_text(f"too few rows: {text}" if "too few" not in text else text),
             "showarrow": False, "font": {"color": "#7a8394", "size": 11}}
        )  # fmt: skip
    shapes = []
    if math.isfinite(overall):
        shapes.append(_vertical(overall, "#7a8394"))
        notes.append(
            {"xref": "x", "x": overall, "yref": "paper", "y": 1.0, "yanchor": "bottom",
             "text": chart_text(f"{all_label}: {fmt(overall)}"), "showarrow": False,
             "font": {"color": "#5b6474", "size": 11}}
        )  # fmt: skip
    layout = base_layout(
        xaxis={"title": {"text": chart_text(metric)}, "gridcolor": "#eef1f5", "zeroline": False},
        yaxis={"tickmode": "array", "tickvals": y, "ticktext": labels, "autorange": "reversed",
               "range": [len(y) - 0.5, -0.5], "automargin": True, "showgrid": False,
               "zeroline": False},
        shapes=shapes, annotations=notes, margin={"l": 20, "r": 24, "t": 30, "b": 48},
    )  # fmt: skip
    return {"data": data, "layout": layout}, int(min(1200, max(180, 110 + 30 * len(y))))


OUTSIDE = ("< ", "> ")
"""How a numeric distribution names its bins beyond the reference's range (``"< 16"``,
``"> 99"``), where the served values that the reference never had are counted."""
OUTSIDE_BAND = "rgba(198, 40, 40, 0.10)"


def outside_bins(dist: ColumnDistribution) -> list[int]:
    """The bins of ``dist`` that lie outside the reference's range (numeric features only)."""
    if dist.kind != "numeric":
        return []
    return [i for i, label in enumerate(dist.labels) if str(label).startswith(OUTSIDE)]


def outside_share(dist: ColumnDistribution) -> float:
    """The share of current rows outside the reference's range (0 when there are none)."""
    shares = [_num(dist.current[i]) for i in outside_bins(dist)]
    return float(sum(v for v in shares if math.isfinite(v)))


def distribution_chart(dist: ColumnDistribution) -> Spec:
    """Reference and current shares side by side over the feature's bins or categories. Bins
    beyond the reference's range are drawn apart: red bars on a red band, with their share
    written above them, so that values the reference never had (a unit bug, say) stand out
    instead of hiding in the reference's last bin."""
    labels = [chart_text(label) for label in dist.labels]
    outside = outside_bins(dist)
    current_colours = [RED if i in outside else BLUE for i in range(len(labels))]
    data = [
        {"type": "bar", "name": name, "x": labels, "y": _nulls(np.array(values, dtype=float)),
         "marker": {"color": colour},
         "hovertemplate": f"{name}<br>%{{x}}: %{{y:.1%}}<extra></extra>"}
        for name, values, colour in (
            ("reference", dist.reference, GREY), ("current", dist.current, current_colours)
        )
    ]  # fmt: skip
    shapes = [
        {"type": "rect", "xref": "x", "yref": "paper", "x0": i - 0.5, "x1": i + 0.5, "y0": 0,
         "y1": 1, "fillcolor": OUTSIDE_BAND, "line": {"width": 0}, "layer": "below"}
        for i in outside
    ]  # fmt: skip
    notes = [
        {"x": labels[i], "y": _num(dist.current[i]), "yanchor": "bottom", "showarrow": False,
         "text": f"<b>{fmt(_num(dist.current[i]) * 100, 3)} %</b>",
         "font": {"color": RED, "size": 11}}
        for i in outside
        if _num(dist.current[i]) > 0
    ]  # fmt: skip
    layout = base_layout(
        barmode="group",
        bargap=0.25,
        xaxis={"type": "category", "automargin": True, "tickangle": -35 if len(labels) > 8 else 0},
        yaxis={"title": {"text": "share of rows"}, "tickformat": ".0%", "gridcolor": "#eef1f5",
               "rangemode": "tozero"},
        shapes=shapes,
        annotations=notes,
    )  # fmt: skip
    return {"data": data, "layout": layout}


def _exceedances(drift: pd.DataFrame) -> list[float]:
    return [
        exceedance(t, s, h, p)
        for t, s, h, p in zip(drift["test"], drift["statistic"], drift["threshold"],
                              drift["p_value"], strict=True)
    ]  # fmt: skip


def _vertical(x: float, colour: str) -> dict[str, Any]:
    return {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
            "line": {"color": colour, "width": 1.5, "dash": "dot"}}  # fmt: skip


def _sort_key(value: Any) -> float:
    ts = pd.Timestamp(value) if value is not None else pd.NaT
    return -math.inf if pd.isna(ts) else float(ts.value)


def _num(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _nulls(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]
