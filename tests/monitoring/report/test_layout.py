"""How the monitoring report lays out time and out-of-range values: windows sit on a time axis,
so a gap between windows shows as one; served values beyond the reference's range have bins of
their own, drawn apart and named in the chart's title, in the page and in headless Chromium."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pandas as pd
import pytest

from loopwise.monitoring import render_report, write_report
from loopwise.monitoring.report.charts import WindowAxis
from loopwise.monitoring.report.feature_charts import distribution_chart, outside_bins
from loopwise.monitoring.results import ColumnDistribution, MonitorReport

from ...chromium_harness import load_page
from .fixtures import realistic_report

DAY_MS = 86_400_000
STARTS = ["2018-07-01", "2018-07-02", "2018-07-03", "2018-07-04", "2018-12-03", "2018-12-04"]
GAP_DAYS = 152  # from 2018-07-04 to 2018-12-03
AGE_BINS = ["[16, 25)", "[25, 35)", "[35, 45)", "[45, 55)", "[55, 65)", "[65, 99]"]
MONTHS = ColumnDistribution(  # an upstream job sent a quarter of the ages in months
    "AGEP", "numeric", [*AGE_BINS, "> 99"], [0.16, 0.19, 0.18, 0.2, 0.17, 0.1, 0.0],
    [0.12, 0.14, 0.13, 0.15, 0.13, 0.08, 0.25],
)  # fmt: skip
MEASURE = """<script>
(function () {
  var bars = document.querySelectorAll("#traffic .trace.bars")[0].querySelectorAll("path");
  var found = {
    bars: Array.prototype.map.call(bars, function (p) {
      var r = p.getBoundingClientRect(); return (r.left + r.right) / 2; }),
    notes: Array.prototype.map.call(document.querySelectorAll("#distributions .annotation-text"),
                                    function (t) { return t.textContent; })
  };
  var out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
})();
</script>"""


def _gapped() -> MonitorReport:
    """The realistic report with its six daily windows moved to July and December 2018, and
    AGEP's distribution showing the served ages in months."""
    report = realistic_report()
    old = sorted(report.traffic["window_start"].unique())
    moved = dict(zip(old, [pd.Timestamp(s, tz="UTC") for s in STARTS], strict=True))
    tables = {}
    for name in ("traffic", "drift", "skew", "validation", "performance", "estimated"):
        frame = report.table(name).copy()
        frame["window_start"] = frame["window_start"].map(moved)
        frame["window_end"] = frame["window_start"] + pd.Timedelta(days=1)
        tables[name] = frame
    alerts = [{**a, "window_start": moved[a["window_start"]]} for a in report.alerts]
    distributions = {**report.distributions, "AGEP": MONTHS}
    return MonitorReport(
        **{**report.__dict__, **tables, "alerts": alerts, "distributions": distributions}
    )


def _figures(page: str) -> list[dict[str, Any]]:
    match = re.search(r'<script type="application/json" id="lw-figures">(.*?)</script>', page, re.S)
    assert match is not None, "the page has no chart specs"
    return list(json.loads(match.group(1)).values())


@pytest.fixture(scope="module")
def page() -> str:
    return render_report(_gapped())


def test_windows_sit_on_a_time_axis_so_that_gaps_show(page: str) -> None:
    traffic = next(f for f in _figures(page) if f["data"][0].get("type") == "bar")
    assert traffic["layout"]["xaxis"]["type"] == "date"
    x = traffic["data"][0]["x"]
    steps = [b - a for a, b in itertools.pairwise(x)]
    assert steps == [DAY_MS, DAY_MS, DAY_MS, GAP_DAYS * DAY_MS, DAY_MS]
    assert x[0] == pd.Timestamp("2018-07-01 12:00").value // 1_000_000  # a window's middle
    performance = [f for f in _figures(page) if any(t.get("name") == "realised" for t in f["data"])]
    for figure in performance:
        realised = next(t for t in figure["data"] if t["name"] == "realised")
        assert realised["x"] == x and figure["layout"]["xaxis"]["type"] == "date"
        shaded = [(s["x0"], s["x1"]) for s in figure["layout"]["shapes"]]
        assert [(a + b) / 2 for a, b in shaded] == x[4:]  # the two windows without labels


def test_the_drift_heatmap_has_an_empty_column_where_time_passed_without_windows(
    page: str,
) -> None:
    heatmap = next(f for f in _figures(page) if f["data"][0]["type"] == "heatmap")
    trace = heatmap["data"][0]
    names = heatmap["layout"]["xaxis"]["ticktext"]
    assert names == [*STARTS[:4], "⋯ 151 days ⋯", *STARTS[4:]]  # 2018-07-05 to 12-03
    assert trace["x"] == list(range(7))  # numbered: two gaps of one length stay two columns
    assert all(row[4] is None for row in trace["z"]) and all(row[4] == "" for row in trace["text"])
    assert trace["customdata"][0][4] == "⋯ 151 days ⋯<br>no windows: 151 days"
    assert [(s["x0"], s["x1"]) for s in heatmap["layout"]["shapes"]] == [(3.5, 4.5)]  # blank
    assert "time between windows in which nothing was served" in page
    assert trace["text"][0] == ["", "", "", "✕", "", "✕", "✕"]  # AGEP's drifted windows


def test_a_short_window_among_long_gaps_is_drawn_wide_enough_to_see() -> None:
    """Daily windows a year apart are drawn 1/60 of the axis wide, around their middles; days
    side by side stay a day wide, so that no bar covers its neighbour."""
    apart = WindowAxis.of([_frame(["2016-07-01", "2017-07-01", "2018-07-01", "2018-12-03"])])
    span_ms = (pd.Timestamp("2018-12-04") - pd.Timestamp("2016-07-01")).value / 1e6
    assert apart.widths() == [pytest.approx(span_ms / 60)] * 4
    assert [(a + b) / 2 for a, b in apart.marks()] == apart.centres()
    crowded = WindowAxis.of([_frame(STARTS)])
    assert crowded.widths() == [DAY_MS] * 6


def _frame(starts: list[str]) -> pd.DataFrame:
    begin = pd.to_datetime(pd.Series(starts), utc=True)
    return pd.DataFrame({"window_start": begin, "window_end": begin + pd.Timedelta(days=1)})


def test_values_outside_the_reference_are_drawn_apart_and_named() -> None:
    assert outside_bins(MONTHS) == [6]
    spec = distribution_chart(MONTHS)
    current = spec["data"][1]
    colours = current["marker"]["color"]
    assert colours[6] != colours[5]  # the out-of-range bar is red, the others blue
    band = spec["layout"]["shapes"]
    assert [(s["x0"], s["x1"]) for s in band] == [(5.5, 6.5)]
    assert [a["text"] for a in spec["layout"]["annotations"]] == ["<b>25 %</b>"]
    kept = ColumnDistribution("AGEP", "numeric", AGE_BINS, MONTHS.reference[:6], [1 / 6] * 6)
    assert outside_bins(kept) == [] and distribution_chart(kept)["layout"]["shapes"] == []
    other = ColumnDistribution("MAR", "categorical", ["> 99", "1"], [0.5, 0.5], [0.5, 0.5])
    assert outside_bins(other) == []  # a category's name is only a name


def test_the_page_tags_a_column_with_values_outside_the_reference(page: str) -> None:
    section = page[page.index('<section id="distributions">') :]
    assert section.count("% outside the reference</span>") == 1
    assert "counted in bins of their own" in section
    plain = render_report(realistic_report())  # nothing outside: nothing said about it
    assert "outside the reference" not in plain and "bins of their own" not in plain
    assert (
        '<div class="chart-title">AGEP<span class="tag">drifted</span><span class="tag">25 %'
        in (section)
    )


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("layout")
    path = write_report(_gapped(), folder / "report.html")
    path.write_text(path.read_text().replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = load_page(path, screenshot_to=folder / "report.png", window_px=(1400, 3000)).dom
    match = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert match is not None, "the measuring script did not run"
    found: dict[str, Any] = json.loads(match.group(1).replace("&amp;", "&"))
    return found


def test_in_chromium_the_gap_between_windows_is_as_wide_as_the_time_it_spans(
    measured: dict[str, Any],
) -> None:
    bars = measured["bars"]
    assert len(bars) == 6
    day = bars[1] - bars[0]
    assert day > 0
    assert (bars[4] - bars[3]) / day == pytest.approx(GAP_DAYS, rel=0.05)


def test_in_chromium_the_out_of_range_share_is_written_on_the_chart(
    measured: dict[str, Any],
) -> None:
    assert "25 %" in measured["notes"]
