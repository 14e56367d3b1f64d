"""Chart specs for the monitoring report, as plain Plotly JSON (``data`` + ``layout``).

Specs are built as dicts rather than ``plotly.graph_objects`` so that the report needs the
``plotly`` package only for its JavaScript bundle, and so that each chart is easy to read here.
Every user-provided string goes through ``chart_text``: Plotly renders labels as pseudo-HTML.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopwise.data.drift.stattests import STAT_TESTS
from loopwise.monitoring.report.html import DASH, chart_text, fmt

__all__ = [
    "BLUE",
    "ORANGE",
    "Spec",
    "WindowAxis",
    "base_layout",
    "exceedance",
    "flags",
    "performance_chart",
    "stamp",
    "traffic_chart",
]

Spec = dict[str, Any]
BLUE, BLUE_BAND = "#1f5fa8", "rgba(31, 95, 168, 0.18)"
ORANGE, ORANGE_BAND = "#d9730d", "rgba(217, 115, 13, 0.16)"
GREEN, GREY = "#2e7d32", "#9aa3b2"
MAX_TICKS = 14  # beyond this many windows, label every k-th one so that labels never overlap
MIN_MARKS = 60  # a window is drawn at least 1/60 of the time axis wide (see WindowAxis.widths)


def stamp(value: Any) -> pd.Timestamp | None:
    """A window bound as a naive UTC Timestamp, or None when it has no time."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if pd.isna(ts):
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


@dataclass(frozen=True)
class WindowAxis:
    """The report's windows in time order, shared by every chart so that they line up.

    A window is known by its start; windows without a time (a single window over a frame with
    no time column) share one slot, ``"all rows"``. Windows with times are drawn on a time axis
    at their middles (``centres_ms``), so that a gap between windows shows as a gap; without
    times, one unit per window.
    """

    keys: list[pd.Timestamp | None]
    labels: list[str]
    ends: list[pd.Timestamp | None] = field(default_factory=list)
    """Each window's end (None where no frame said), in the order of ``keys``."""

    @classmethod
    def of(cls, frames: Iterable[pd.DataFrame]) -> WindowAxis:
        found: dict[pd.Timestamp | None, pd.Timestamp | None] = {}
        for frame in frames:
            if "window_start" not in frame.columns:
                continue
            ends = frame["window_end"] if "window_end" in frame.columns else [None] * len(frame)
            for start, end in zip(frame["window_start"], ends, strict=True):
                key = stamp(start)
                if found.get(key) is None:
                    found[key] = stamp(end)
        times = sorted(k for k in found if k is not None)
        daily = all(t == t.normalize() for t in times)
        labels = [t.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M") for t in times]
        keys: list[pd.Timestamp | None] = list(times)
        if None in found:
            keys.append(None)
            labels.append("all rows")
        return cls(keys, labels, [found[k] for k in keys])

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def timed(self) -> bool:
        """Whether every window has a time, so that the charts can use a time axis."""
        return bool(self.keys) and all(k is not None for k in self.keys)

    def positions(self, starts: pd.Series) -> np.ndarray:
        """Each row's window index (its slot in per-window arrays)."""
        index = {k: i for i, k in enumerate(self.keys)}
        return np.array([index[stamp(v)] for v in starts], dtype=np.int64)

    def label(self, start: Any) -> str:
        return self.labels[self.keys.index(stamp(start))]

    def bounds(self) -> list[tuple[float, float]]:
        """Each window's start and end on the x axis: epoch milliseconds on a time axis (a
        window without a known end lasts as long as its neighbour), else ``i ± 0.5``."""
        if not self.timed:
            return [(i - 0.5, i + 0.5) for i in range(len(self))]
        starts = [_ms(k) for k in self.keys]
        ends = [_ms(e) if e is not None and _ms(e) > s else math.nan
                for s, e in zip(starts, self.ends or [None] * len(starts), strict=True)]  # fmt: skip
        known = [e - s for s, e in zip(starts, ends, strict=True) if math.isfinite(e)]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        typical = float(np.median(known or gaps or [86_400_000.0]))
        return [(s, e if math.isfinite(e) else s + typical)
                for s, e in zip(starts, ends, strict=True)]  # fmt: skip

    def centres(self) -> list[float]:
        """Where each window is drawn on the x axis: its middle (see ``bounds``)."""
        return [(a + b) / 2 for a, b in self.bounds()]

    def gaps_after(self) -> dict[int, float]:
        """Time between a window's end and the next window's start, in milliseconds, after
        each window that is followed by such a gap (no windows there: nothing was served)."""
        if not self.timed:
            return {}
        bounds = self.bounds()
        return {
            i: b[0] - a[1] for i, (a, b) in enumerate(itertools.pairwise(bounds)) if b[0] > a[1]
        }

    def widths(self) -> list[float]:
        """Each window's width as drawn (milliseconds on a time axis, else 1): its length, but
        at least ``1 / MIN_MARKS`` of the whole axis where its neighbours leave room, so that
        a day among years stays visible as a bar or a shaded band (centred on its window) and
        never covers the next window."""
        bounds = self.bounds()
        span = bounds[-1][1] - bounds[0][0] if bounds else 1.0
        centres = self.centres()
        widths = []
        for i, (a, b) in enumerate(bounds):
            room = [abs(centres[k] - centres[i]) for k in (i - 1, i + 1) if 0 <= k < len(bounds)]
            widths.append(max(b - a, min([span / MIN_MARKS, *room])))
        return widths

    def marks(self) -> list[tuple[float, float]]:
        """Each window's extent as drawn: ``widths`` around its centre."""
        return [(c - w / 2, c + w / 2) for c, w in zip(self.centres(), self.widths(), strict=True)]

    def xaxis(self) -> dict[str, Any]:
        """The x axis every time chart shares: a time axis when the windows have times (ticks
        at the windows' middles, named by their starts), else one unit per window."""
        bounds = self.bounds()
        centres = self.centres()
        span = bounds[-1][1] - bounds[0][0] if bounds else 1.0
        ticks = _spread(centres, span / MAX_TICKS)
        # Room for half a label beyond the first and last windows' middles (Plotly hides a
        # tick label that would stick out of the chart).
        pad = max(0.1 * min(self.widths()), span / 16) if self.timed else 0.1
        marks = self.marks()
        return {
            **({"type": "date"} if self.timed else {}),
            "tickmode": "array",
            "tickvals": [centres[i] for i in ticks],
            "ticktext": [self.labels[i] for i in ticks],
            "range": [min(marks[0][0], bounds[0][0]) - pad, max(marks[-1][1], bounds[-1][1]) + pad]
            if bounds
            else [-0.6, 0.6],
            "zeroline": False,
            "showgrid": False,
            "automargin": True,
        }


def _spread(centres: list[float], gap: float) -> list[int]:
    """The windows to label: the first, then each one at least ``gap`` past the last labelled
    one, so that labels never overlap however the windows crowd together."""
    chosen: list[int] = []
    for i, x in enumerate(centres):
        if not chosen or x - centres[chosen[-1]] >= gap * 0.999:
            chosen.append(i)
    return chosen


def _ms(value: pd.Timestamp | None) -> float:
    """A naive UTC timestamp as epoch milliseconds (what a Plotly time axis takes)."""
    return math.nan if value is None else float(value.value) / 1e6


def flags(values: pd.Series) -> pd.Series:
    """A verdict column (``drifted``, ``skewed``) as booleans; missing verdicts are False."""
    return values.map(lambda v: False if v is None or pd.isna(v) else bool(v)).astype(bool)


def base_layout(**extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif",
                 "size": 12, "color": "#1d2433"},
        "margin": {"l": 64, "r": 24, "t": 36, "b": 48},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "hoverlabel": {"align": "left"},
        "modebar": {"bgcolor": "rgba(0,0,0,0)", "color": "#c3c9d4", "activecolor": BLUE},
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
    }  # fmt: skip
    layout.update(extra)
    return layout


def exceedance(test: Any, statistic: Any, threshold: Any, p_value: Any = None) -> float:
    """How far a test went towards its threshold on one scale for every test: 1 at the
    threshold, above 1 past it. Distances: statistic / threshold; p-value tests:
    log(p) / log(threshold), so that p = threshold gives 1 and p = 1 gives 0. NaN when the
    numbers to say it are missing."""
    thr = _number(threshold)
    p = _number(p_value)
    if math.isfinite(p) and 0 < thr < 1:
        return math.log(max(p, 1e-300)) / math.log(thr)
    known = STAT_TESTS.get(str(test))
    if known is not None and known.measure == "p_value":
        return math.nan  # the statistic alone does not say how close the p-value came
    stat = _number(statistic)
    if math.isfinite(stat) and math.isfinite(thr) and thr > 0:
        return stat / thr
    return math.nan


def traffic_chart(traffic: pd.DataFrame, windows: WindowAxis) -> Spec:
    """Rows served per window, with the labelled ones drawn inside them."""
    slots = windows.positions(traffic["window_start"]).tolist()
    centres, widths = windows.centres(), windows.widths()
    x = [centres[i] for i in slots]
    rows = [_number(v) for v in traffic["rows"]]
    labelled = [_number(v) for v in traffic["labelled"]]
    share = [
        fmt(lab / r * 100, 3) + " %" if r > 0 else DASH
        for r, lab in zip(rows, labelled, strict=True)
    ]
    custom = [[windows.labels[i], s] for i, s in zip(slots, share, strict=True)]
    data = [
        {"type": "bar", "name": "rows", "x": x, "y": _nulls(rows),
         "width": [0.8 * widths[i] for i in slots],
         "marker": {"color": "#b7cbe6"}, "customdata": custom,
         "hovertemplate": "%{customdata[0]}<br>rows: %{y:,}<extra></extra>"},
        {"type": "bar", "name": "labelled", "x": x, "y": _nulls(labelled),
         "width": [0.45 * widths[i] for i in slots],
         "marker": {"color": GREEN}, "customdata": custom,
         "hovertemplate": "%{customdata[0]}<br>labelled: %{y:,} (%{customdata[1]})"
                          "<extra></extra>"},
    ]  # fmt: skip
    layout = base_layout(
        barmode="overlay",
        xaxis=windows.xaxis(),
        yaxis={"title": {"text": "predictions"}, "rangemode": "tozero", "gridcolor": "#eef1f5"},
    )
    return {"data": data, "layout": layout}


def performance_chart(
    metric: str, realised: pd.DataFrame, estimated: pd.DataFrame, windows: WindowAxis
) -> Spec:
    """One metric over time: realised (solid, with its confidence band) and estimated
    (dashed, with its band); windows with rows but no realised value are shaded grey, so the
    reader sees where labels are missing and the estimate carries on."""
    data: list[dict[str, Any]] = []
    shapes: list[dict[str, Any]] = []
    for frame, name, colour, band, dash in (
        (realised, "realised", BLUE, BLUE_BAND, "solid"),
        (estimated, "estimated", ORANGE, ORANGE_BAND, "dash"),
    ):
        if frame.empty:
            continue
        value, lower, upper, counts = _aligned(frame, windows)
        present = np.zeros(len(windows), dtype=bool)
        present[windows.positions(frame["window_start"])] = True
        xs, ys = band_polygons(lower, upper, windows.centres(), windows.widths())
        if xs:
            data.append(
                {"type": "scatter", "name": f"{name} interval", "x": xs, "y": ys,
                 "fill": "toself", "fillcolor": band, "line": {"width": 0},
                 "mode": "lines", "hoverinfo": "skip", "legendgroup": name}
            )  # fmt: skip
        custom = [
            [windows.labels[i], fmt(lower[i]), fmt(upper[i]), fmt(counts[i])]
            for i in range(len(windows))
        ]
        counted = "labelled" if name == "realised" else "rows"
        data.append(
            {"type": "scatter", "name": name, "x": windows.centres(),
             "y": _nulls(value), "mode": "lines+markers", "connectgaps": False,
             "line": {"color": colour, "width": 2, "dash": dash},
             "marker": {"color": colour, "size": 6}, "legendgroup": name, "customdata": custom,
             "hovertemplate": f"%{{customdata[0]}}<br>{name} {chart_text(metric)}: %{{y:.4f}}"
                              f"<br>interval: %{{customdata[1]}} to %{{customdata[2]}}"
                              f"<br>{counted}: %{{customdata[3]}}<extra></extra>"}
        )  # fmt: skip
        if name == "realised":
            for i in np.flatnonzero(~np.isfinite(value) & present):
                shapes.append(_shade(*windows.marks()[int(i)]))
    layout = base_layout(
        xaxis=windows.xaxis(),
        yaxis={"title": {"text": chart_text(metric)}, "gridcolor": "#eef1f5", "zeroline": False},
        shapes=shapes,
    )
    return {"data": data, "layout": layout}


def band_polygons(
    lower: np.ndarray,
    upper: np.ndarray,
    centres: list[float],
    widths: list[float],
    half_width: float = 0.18,
) -> tuple[list[float | None], list[float | None]]:
    """Closed shapes (``fill: "toself"``) between lower and upper at the windows' ``centres``,
    one per run of windows that have both; a lone window gets a short box (``half_width`` of
    its width either side), so that its interval stays visible."""
    ok = np.isfinite(lower) & np.isfinite(upper)
    xs: list[float | None] = []
    ys: list[float | None] = []
    i = 0
    while i < len(ok):
        if not ok[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(ok) and ok[j + 1]:
            j += 1
        run = list(range(i, j + 1))
        half = half_width * widths[i]
        px = [centres[k] for k in run] if j > i else [centres[i] - half, centres[i] + half]
        up = [float(upper[k]) for k in run] if j > i else [float(upper[i])] * 2
        lo = [float(lower[k]) for k in run] if j > i else [float(lower[i])] * 2
        xs += [*px, *px[::-1], px[0], None]
        ys += [*up, *lo[::-1], up[0], None]
        i = j + 1
    return xs, ys


def _aligned(
    frame: pd.DataFrame, windows: WindowAxis
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """value, lower, upper and a row count per window (NaN/0 where the frame has none)."""
    n = len(windows)
    out = [np.full(n, np.nan) for _ in range(3)]
    counts = np.zeros(n)
    count_column = "labelled" if "labelled" in frame.columns else "rows"
    for i, (_, row) in zip(windows.positions(frame["window_start"]), frame.iterrows(), strict=True):
        for k, column in enumerate(("value", "lower", "upper")):
            out[k][i] = _number(row[column])
        counts[i] = _number(row[count_column])
    value, lower, upper = out
    return value, lower, upper, np.nan_to_num(counts)


def _shade(start: float, end: float) -> dict[str, Any]:
    return {
        "type": "rect", "xref": "x", "yref": "paper", "x0": start, "x1": end,
        "y0": 0, "y1": 1, "fillcolor": "#eceff3", "line": {"width": 0}, "layer": "below",
    }  # fmt: skip


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _nulls(values: Iterable[float]) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]
