"""The autopilot's report: a metric over time for one or more lines (e.g. the static model, the
autopilot and a model retrained every window) with the autopilot's decisions marked on the time axis, and the
decisions themselves in a table. One standalone HTML file (plotly.js inlined)."""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from loopwise.errors import InvalidArgumentError, require_extra
from loopwise.monitoring.report.html import CSS, Charts, esc, table, utc_text
from loopwise.store import AutopilotDecision

__all__ = ["render_report", "write_report"]

MARKS = {
    "retrain": ("#1f5fa8", "retrain"),
    "reject": ("#b26a00", "candidate rejected"),
    "rollout": ("#6a1b9a", "canary step"),
    "promote": ("#2e7d32", "promoted"),
    "rollback": ("#c62828", "rolled back"),
    "escalate": ("#c62828", "escalated"),
}
"""Decision kinds drawn on the chart: colour and legend name."""


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


def _window_label(at_ms: int, starts_ms: Sequence[int], labels: Sequence[str]) -> str:
    """The label of the window a decision was taken in (a tick at a window's very end
    belongs to that window)."""
    index = max(0, bisect.bisect_left(list(starts_ms), at_ms) - 1)
    return labels[index]


def _chart(
    starts_ms: Sequence[int],
    series: Mapping[str, Sequence[float]],
    labels: Sequence[str],
    decisions: Sequence[AutopilotDecision],
    metric: str,
) -> dict[str, Any]:
    x = list(labels)
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": name,
            "x": x,
            "y": [None if not math.isfinite(v) else v for v in values],
            "text": list(labels),
            "hovertemplate": "%{text}<br>%{y:.4f}<extra>" + esc(name) + "</extra>",
        }
        for name, values in series.items()
    ]
    finite = [v for values in series.values() for v in values if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    step = 0.06 * ((high - low) or 0.1)
    shown = [kind for kind in MARKS if any(d.kind == kind for d in decisions)]
    for row, kind in enumerate(shown):  # a row of marks per kind: none hides another
        colour, legend = MARKS[kind]
        chosen = [d for d in decisions if d.kind == kind]
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": legend,
                "x": [_window_label(d.at_ms, starts_ms, labels) for d in chosen],
                "y": [low - step * (row + 1)] * len(chosen),
                "marker": {"symbol": "triangle-up", "size": 11, "color": colour},
                "text": [esc(d.summary) for d in chosen],
                "hovertemplate": "%{text}<extra>" + legend + "</extra>",
            }
        )
    shapes = [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": _window_label(d.at_ms, starts_ms, labels),
            "x1": _window_label(d.at_ms, starts_ms, labels),
            "y0": 0,
            "y1": 1,
            "line": {"color": MARKS[d.kind][0], "width": 1, "dash": "dot"},
        }
        for d in decisions
        if d.kind in ("promote", "rollback", "escalate")
    ]
    # The legend sits above the plot and the x axis takes the room its rotated labels need
    # (automargin): a legend below the axis hid the labels.
    layout = {
        "margin": {"l": 56, "r": 16, "t": 8, "b": 16},
        "yaxis": {"title": {"text": metric}, "automargin": True},
        "xaxis": {"type": "category", "tickangle": -45, "automargin": True},
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "shapes": shapes,
        "hovermode": "closest",
    }
    return {"data": data, "layout": layout}


def render_report(
    *,
    deployment: str,
    starts_ms: Sequence[int],
    series: Mapping[str, Sequence[float]],
    decisions: Sequence[AutopilotDecision],
    labels: Sequence[str] | None = None,
    metric: str = "accuracy",
) -> str:
    """The report as one HTML page (see the module docstring). ``series`` maps a line's name
    to its value per window; ``starts_ms`` are the windows' starts; ``labels`` name them."""
    labels = list(labels) if labels is not None else [_iso(t)[:10] for t in starts_ms]
    for name, values in series.items():
        if len(values) != len(starts_ms):
            raise InvalidArgumentError(
                f"series[{name!r}]: expected one value per window ({len(starts_ms)}), got "
                f"{len(values)}.",
                parameter="series",
            )
    if len(labels) != len(starts_ms):
        raise InvalidArgumentError(
            f"labels: expected one per window ({len(starts_ms)}), got {len(labels)}.",
            parameter="labels",
        )
    charts = Charts()
    chart = charts.add(
        _chart(starts_ms, series, labels, decisions, metric),
        height_px=460,
        title=f"{metric} per window, with the autopilot's decisions",
    )
    means = table(
        ["line", f"mean {metric}", "lowest window"],
        [
            [name, sum(v) / len(v) if v else math.nan, min(v) if v else math.nan]
            for name, v in series.items()
        ],
        numeric=[1, 2],
    )
    shown = [d for d in decisions if d.kind != "observe"]
    rows = table(
        ["#", "window", "decision", "why", "controller clock"],
        [
            [d.seq, _window_label(d.at_ms, starts_ms, labels), d.kind, d.summary, utc_text(d.at_ms)]
            for d in shown
        ],
        numeric=[0],
        nowrap=[0, 1, 2, 4],
    )
    plotly = require_extra("plotly.offline", "monitoring")
    bundle = plotly.get_plotlyjs().replace("</script", "<\\/script")
    checks = sum(1 for d in decisions if d.kind == "observe")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Autopilot report: {esc(deployment)}</title>"
        f"<style>{CSS}</style><script>{bundle}</script></head><body>"
        f"<header><h1>Autopilot: {esc(deployment)}</h1></header><main>"
        f'<section id="metric"><h2>{esc(metric)} over time</h2>{chart}{means}</section>'
        f'<section id="decisions"><h2>Decisions</h2><p>{len(shown)} decisions that did '
        f"something, and {checks} checks that found nothing to do (in "
        f"<code>loopwise autopilot history {esc(deployment)} --all</code>). Each is shown in the "
        "window it is about; the controller clock is when it was taken by the controller's own "
        f"clock (in a replay, the replay's compressed time).</p>{rows}</section>"
        f"</main><footer>Generated by Loopwise on {esc(utc_text(int(time.time() * 1000)))}. "
        f"A standalone file: it needs no network.</footer>{charts.script()}</body></html>\n"
    )


def write_report(path: str | Path, **kwargs: Any) -> Path:
    """Write ``render_report(**kwargs)`` to ``path`` (folders created); the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(**kwargs), encoding="utf-8")
    return target
