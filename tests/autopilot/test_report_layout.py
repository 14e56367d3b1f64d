"""The autopilot's HTML report as a reader sees it in headless Chromium: short cells of the
decision table never break inside a word, the chart's rotated window labels are neither under
the legend nor cut off, and each decision names the window it is about beside the clock."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from loopwise.autopilot.report import render_report
from loopwise.store import AutopilotDecision

from ..chromium_harness import load_page

DAY_MS = 86_400_000
START_MS = 1_451_606_400_000  # 2016-01-01: the replay's clock
LABELS = [f"{2016 + i // 12}-{i % 12 + 1:02d}" + (", shock" if i >= 15 else "") for i in range(36)]
LABELS[31] += ", AGEP in months"  # the longest label, as the demo names its bug window
KINDS = ["start", "hold", "retrain", "rollout", "rollout", "promote", "escalate"]
WINDOWS = [14, 15, 17, 18, 20, 25, 31]  # the window each decision is about
WHY = (
    "realised accuracy 0.7685 against a baseline of 0.8190 (worse by 0.0505, beyond the allowed "
    "0.0164; p = 0.00527): retraining on 2,477 labelled rows since the change began."
)
# Measured once the charts are drawn: line boxes of each short cell, and where the x tick
# labels, the legend and the chart's own box are.
MEASURE = """<script>
(function () {
  function box(r) { return [r.left, r.top, r.right, r.bottom]; }
  var heads = Array.prototype.map.call(document.querySelectorAll("#decisions th"),
                                       function (th) { return th.textContent; });
  var cells = [];
  document.querySelectorAll("#decisions tbody tr").forEach(function (tr) {
    Array.prototype.forEach.call(tr.children, function (td, i) {
      if (heads[i] === "why") { return; }  // free text: it wraps between words
      var range = document.createRange();
      range.selectNodeContents(td);
      cells.push({head: heads[i], text: td.textContent, lines: range.getClientRects().length});
    });
  });
  var chart = document.querySelector("#metric .chart");
  var found = {
    cells: cells,
    heads: heads,
    ticks: Array.prototype.map.call(chart.querySelectorAll(".xtick text"),
      function (t) { return {text: t.textContent, box: box(t.getBoundingClientRect())}; }),
    legend: box(chart.querySelector("g.legend").getBoundingClientRect()),
    chart: box(chart.querySelector("svg.main-svg").getBoundingClientRect())
  };
  var out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
})();
</script>"""


def _decision(seq: int, kind: str, window: int) -> AutopilotDecision:
    """A decision taken at the end of ``window``: by the replay's clock, a day per window."""
    return AutopilotDecision(
        project="demo",
        deployment="employment-prod",
        seq=seq,
        kind=kind,
        summary=WHY,
        state={},
        evidence={},
        at_ms=START_MS + (window + 1) * DAY_MS,
        actor="autopilot",
        created_ms=START_MS,
    )


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    decisions = [
        _decision(10 + i, kind, w) for i, (kind, w) in enumerate(zip(KINDS, WINDOWS, strict=True))
    ]
    series = {
        "static 2015 model": [0.78 + 0.001 * (i % 5) for i in range(36)],
        "autopilot": [0.81 + 0.001 * (i % 3) for i in range(36)],
    }
    page = render_report(
        deployment="employment-prod",
        starts_ms=[START_MS + i * DAY_MS for i in range(36)],
        series=series,
        labels=LABELS,
        decisions=decisions,
    )
    path = tmp_path_factory.mktemp("autopilot-report") / "report.html"
    path.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = load_page(path, window_px=(1100, 1600)).dom
    match = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert match is not None, "the measuring script did not run"
    found: dict[str, Any] = json.loads(match.group(1).replace("&amp;", "&"))
    return found


def test_short_cells_of_the_decision_table_stay_on_one_line(measured: dict[str, Any]) -> None:
    cells = measured["cells"]
    assert {c["text"] for c in cells} >= {"retrain", "promote", "escalate", "16", LABELS[31]}
    assert [c for c in cells if c["lines"] != 1] == []


def test_rotated_window_labels_are_clear_of_the_legend_and_inside_the_chart(
    measured: dict[str, Any],
) -> None:
    ticks, legend, chart = measured["ticks"], measured["legend"], measured["chart"]
    assert LABELS[31] in [t["text"] for t in ticks]
    for tick in ticks:
        left, top, right, bottom = tick["box"]
        assert chart[0] <= left and right <= chart[2] + 1, tick
        assert chart[1] <= top and bottom <= chart[3] + 1, f"cut off: {tick}"
        overlaps = left < legend[2] and legend[0] < right and top < legend[3] and legend[1] < bottom
        assert not overlaps, f"{tick} is under the legend at {legend}"


def test_each_decision_names_its_window_and_the_clock_is_labelled_as_such(
    measured: dict[str, Any],
) -> None:
    assert measured["heads"] == ["#", "window", "decision", "why", "controller clock"]
    texts = [c["text"] for c in measured["cells"]]
    # The retrain was taken at the end of window 17 (the replay's 2016-01-19, survey 2017-06).
    assert texts[texts.index("retrain") - 1] == "2017-06, shock"
    assert "2016-01-19 00:00 UTC" in texts


def test_marks_of_different_kinds_in_one_window_do_not_hide_each_other() -> None:
    """A retrain and a canary step in the same window: each kind has its own row of marks."""
    page = render_report(
        deployment="employment-prod",
        starts_ms=[START_MS + i * DAY_MS for i in range(3)],
        series={"autopilot": [0.8, 0.7, 0.8]},
        decisions=[_decision(1, "retrain", 1), _decision(2, "rollout", 1)],
    )
    match = re.search(r'<script type="application/json" id="lw-figures">(.*?)</script>', page, re.S)
    assert match is not None
    traces = next(iter(json.loads(match.group(1)).values()))["data"]
    marks = {t["name"]: (t["x"], t["y"]) for t in traces if t["mode"] == "markers"}
    (retrain_x, retrain_y), (canary_x, canary_y) = marks["retrain"], marks["canary step"]
    assert retrain_x == canary_x and retrain_y != canary_y
    assert max(retrain_y + canary_y) < 0.7  # below the lines
