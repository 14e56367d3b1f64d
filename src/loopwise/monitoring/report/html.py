"""HTML building blocks for the monitoring report: escaping, tables, number and time formats,
the page's stylesheet, and the one place where chart specs become inline JSON.

Everything a user or the data can name (columns, slice values, messages) passes through
``esc`` before it reaches the page, and through ``script_json`` before it reaches a script.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CSS",
    "DASH",
    "Charts",
    "chart_text",
    "esc",
    "fmt",
    "plain",
    "script_json",
    "severity_class",
    "table",
    "utc_text",
]

DASH = "\u2013"  # an en dash: how a missing value reads in tables and hover text
SEVERITY_ORDER = {"critical": 0, "error": 1, "fail": 1, "warning": 2, "warn": 2, "info": 3}
"""Alert and finding severities, most urgent first; anything else sorts last, in grey."""


def esc(value: Any) -> str:
    """``value`` as text that HTML (and Plotly's pseudo-HTML labels) shows literally."""
    return html.escape(str(value), quote=True)


def chart_text(value: Any) -> str:
    """``value`` as text that a Plotly label shows literally. Plotly renders a few HTML tags in
    labels and decodes ``&lt;``, ``&gt;``, ``&amp;`` and numeric entities, but not ``&quot;``,
    so quotes stay as they are (they are harmless once ``<`` is escaped)."""
    return html.escape(str(value), quote=False)


def plain(value: Any) -> Any:
    """A JSON-ready scalar: NumPy scalars unwrapped, NaN, infinity and NaT as None."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def script_json(value: Any) -> str:
    """JSON that is safe inside ``<script>``: no ``</script>``, ``<!--`` or line separators
    can end the script early, whatever the strings hold."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"), default=plain)
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, code)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def fmt(value: Any, digits: int = 4) -> str:
    """A cell's text: numbers to ``digits`` significant digits, counts with separators,
    missing values as an en dash."""
    value = plain(value)
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return (
            f"{value:,.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:.{digits}g}"
        )
    return str(value)


def utc_text(value: Any) -> str:
    """A time (milliseconds since the epoch, or a Timestamp) as ``YYYY-MM-DD HH:MM UTC``."""
    if value is None:
        return DASH
    if isinstance(value, int | float | np.integer | np.floating):
        if not math.isfinite(float(value)):
            return DASH
        stamp = pd.Timestamp(int(value), unit="ms", tz="UTC")
    else:
        stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        return DASH
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return str(stamp.tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC"))


def severity_class(severity: Any) -> str:
    """The CSS class that colours a severity (red, amber, blue, grey)."""
    rank = SEVERITY_ORDER.get(str(severity).lower(), 9)
    return {0: "sev-critical", 1: "sev-critical", 2: "sev-warning", 3: "sev-info"}.get(
        rank, "sev-other"
    )


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    row_classes: Iterable[str] | None = None,
    numeric: Iterable[int] = (),
    nowrap: Iterable[int] = (),
) -> str:
    """An HTML table; every cell is formatted with ``fmt`` and escaped. ``numeric`` columns
    are right-aligned; ``nowrap`` columns (short words: a kind, a count, a date) never break
    inside a word, so that the free-text columns take the squeeze."""
    kept = set(nowrap)
    classes_of = {
        i: " ".join(c for c, on in (("num", i in set(numeric)), ("nowrap", i in kept)) if on)
        for i in range(len(headers))
    }

    def cell(tag: str, i: int, text: str) -> str:
        cls = classes_of.get(i, "")
        return f'<{tag} class="{cls}">{esc(text)}</{tag}>' if cls else f"<{tag}>{esc(text)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    classes = iter(row_classes) if row_classes is not None else None
    body = []
    for row in rows:
        cls = next(classes, "") if classes is not None else ""
        cells = "".join(cell("td", i, fmt(v)) for i, v in enumerate(row))
        body.append(f'<tr class="{esc(cls)}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


@dataclass
class Charts:
    """The page's charts: each gets a ``<div>`` where it is placed, and its spec (Plotly's
    ``data`` and ``layout``) goes into one JSON block that a single script draws."""

    specs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, spec: dict[str, Any], *, height_px: int, title: str = "") -> str:
        chart_id = f"chart-{len(self.specs) + 1}"
        layout = dict(spec.get("layout", {}))
        layout.setdefault("height", height_px)
        self.specs[chart_id] = {"data": spec.get("data", []), "layout": layout}
        caption = f'<div class="chart-title">{title}</div>' if title else ""
        return (
            f'<figure class="chart-box">{caption}'
            f'<div class="chart" id="{chart_id}" style="height:{height_px}px"></div></figure>'
        )

    def script(self) -> str:
        """The JSON block and the script that draws every chart once plotly.js is loaded."""
        return (
            '<script type="application/json" id="lw-figures">'
            + script_json(self.specs)
            + "</script>\n<script>\n"
            + DRAW_JS
            + "</script>"
        )


DRAW_JS = """(function () {
  var specs = JSON.parse(document.getElementById("lw-figures").textContent);
  var config = {displaylogo: false, responsive: true,
                modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage"]};
  Object.keys(specs).forEach(function (id) {
    var node = document.getElementById(id);
    try {
      Plotly.newPlot(node, specs[id].data, specs[id].layout, config);
    } catch (err) {
      node.textContent = "This chart could not be drawn: " + err;
      node.setAttribute("data-failed", "yes");
      console.error("loopwise-report: chart " + id + " failed: " + err);
    }
  });
})();
"""

CSS = """
:root { --ink: #1d2433; --muted: #5b6474; --line: #dde2ea; --bg: #f6f8fb; --card: #ffffff;
        --red: #c62828; --amber: #b26a00; --blue: #1f5fa8; --green: #2e7d32; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
       Arial, sans-serif; color: var(--ink); background: var(--bg); }
header { background: #16213a; color: #fff; padding: 20px 32px 16px; }
header h1 { margin: 0 0 6px; font-size: 22px; font-weight: 600; }
header dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 10px 0 0;
            font-size: 13px; }
header dt { color: #aab4c8; } header dd { margin: 0; }
nav { position: sticky; top: 0; z-index: 5; background: #fff; border-bottom: 1px solid var(--line);
      padding: 8px 32px; font-size: 13px; }
nav a { color: var(--blue); text-decoration: none; margin-right: 14px; white-space: nowrap; }
main { padding: 8px 32px 40px; max-width: 1500px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
          padding: 14px 20px 18px; margin: 18px 0; }
section h2 { font-size: 17px; margin: 0 0 4px; }
p.how { color: var(--muted); margin: 0 0 12px; max-width: 1000px; }
p.empty { color: var(--muted); font-style: italic; margin: 6px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 6px 0 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
        padding: 10px 16px; min-width: 150px; }
.card .value { font-size: 22px; font-weight: 600; }
.card .label { color: var(--muted); font-size: 12px; }
.card.bad .value { color: var(--red); } .card.good .value { color: var(--green); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 14px; }
figure.chart-box { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px; }
.chart-title { font-weight: 600; padding: 2px 6px; overflow-wrap: anywhere; }
.chart-title .tag { color: #fff; background: var(--red); border-radius: 4px; font-size: 11px;
                    padding: 1px 6px; margin-left: 6px; font-weight: 500; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #f0f3f8; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.nowrap, th.nowrap { white-space: nowrap; overflow-wrap: normal; }
tr.sev-critical td:first-child { border-left: 4px solid var(--red); color: var(--red);
                                 font-weight: 600; }
tr.sev-warning td:first-child { border-left: 4px solid var(--amber); color: var(--amber);
                                font-weight: 600; }
tr.sev-info td:first-child { border-left: 4px solid var(--blue); color: var(--blue); }
tr.sev-other td:first-child { border-left: 4px solid #9aa3b2; }
.more { color: var(--muted); font-size: 12px; margin-top: 6px; }
footer { color: var(--muted); font-size: 12px; padding: 0 32px 24px; }
"""
