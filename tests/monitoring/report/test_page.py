"""The standalone HTML monitoring report: structure, values, escaping, no network, and how it
renders in headless Chromium (DOM after scripts ran, console errors, a screenshot)."""

from __future__ import annotations

import json
import math
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopwise.errors import InvalidArgumentError, MissingDependencyError
from loopwise.monitoring import render_report, write_report
from loopwise.monitoring.report.charts import exceedance
from loopwise.monitoring.results import ColumnDistribution, MonitorReport

from ...chromium_harness import PageLoad, load_page, read_png
from .fixtures import HOSTILE, HOSTILE_IMG, empty_report, hostile_report, realistic_report

SECTIONS = ["alerts", "traffic", "performance", "slices", "drift", "skew", "validation",
            "distributions"]  # fmt: skip
CHARTS = 1 + 2 + 2 + 1 + 1 + 5  # traffic, performance x2 metrics, slices x2, drift, skew, 5 dists


class _Tags(HTMLParser):
    """Start tags with their attributes; script and style bodies are not parsed as tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
            self._in_style = False


def _tags(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    return parser


def _figures(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="lw-figures">(.*?)</script>', page, re.S)
    assert match is not None, "the page has no chart specs"
    figures: dict[str, Any] = json.loads(match.group(1))
    return figures


@pytest.fixture(scope="module")
def page() -> str:
    return render_report(realistic_report())


def test_every_section_is_present_in_order_with_the_header_facts(page: str) -> None:
    ids = [attrs.get("id") for tag, attrs in _tags(page).tags if tag == "section"]
    assert ids == SECTIONS
    for fact in ("employment", "census", "2016-01-01 00:00 UTC to 2016-01-07 00:00 UTC",
                 "acs-ma-2015/1, the training data of employment/2", "1D (6 windows)",
                 "2016-01-08 09:30 UTC"):  # fmt: skip
        assert fact in page
    assert re.search(r"<dt>Model versions</dt><dd>2</dd>", page)
    assert '<div class="value">7,512</div>' in page  # rows over the six windows
    assert "4,198 (56%)" in page  # labelled


def test_alerts_and_findings_are_tables_ordered_and_coloured_by_severity(page: str) -> None:
    alerts = page[page.index('<section id="alerts">') : page.index('<section id="traffic">')]
    order = re.findall(r'<tr class="(sev-\w+)"><td>(\w+)</td>', alerts)
    assert order == [("sev-critical", "critical"), ("sev-warning", "warning"), ("sev-info", "info")]
    assert "estimated accuracy 0.74 is below the minimum 0.76" in alerts
    findings = page[page.index('<section id="validation">') :]
    assert re.search(
        r'<tr class="sev-critical"><td>error</td><td>2016-01-04</td><td>AGEP</td>', findings
    )
    assert "unseen value 9" in findings and '<td class="num">12</td>' in findings


def test_one_chart_per_figure_and_plotly_inlined_once(page: str) -> None:
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    figures = _figures(page)
    assert len(figures) == CHARTS
    assert page.count('class="chart"') == CHARTS
    assert page.count(get_plotlyjs()[:400]) == 1
    assert len(page) < 6_000_000


def test_the_page_fetches_nothing(page: str) -> None:
    parsed = _tags(page)
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            value = attrs.get(name) or ""
            assert not re.match(r"\s*(https?:)?//", value), f"<{tag} {name}={value!r}> fetches"
        assert not (tag == "link" and attrs.get("rel") == "stylesheet")
    assert not any(re.search(r"url\(|@import", css) for css in parsed.styles)


def test_performance_chart_carries_the_estimate_where_labels_are_missing(page: str) -> None:
    accuracy = next(f for f in _figures(page).values() if _trace(f, "realised") and
                    f["layout"]["yaxis"]["title"]["text"] == "accuracy")  # fmt: skip
    realised, estimated = _trace(accuracy, "realised"), _trace(accuracy, "estimated")
    assert realised is not None and estimated is not None
    # Windows 5 (35 labelled, under the minimum) and 6 (none) have no realised value.
    assert [v is None for v in realised["y"]] == [False] * 4 + [True] * 2
    assert estimated["y"] == pytest.approx([0.81, 0.80, 0.80, 0.77, 0.75, 0.74])
    assert estimated["line"]["dash"] == "dash"
    starts = [t.value // 1_000_000 for t in realistic_report().traffic["window_start"]]
    shaded = sorted((s["x0"], s["x1"]) for s in accuracy["layout"]["shapes"])
    assert shaded == [(starts[4], starts[5]), (starts[5], starts[5] + 86_400_000)]  # in ms
    band = _trace(accuracy, "realised interval")
    assert band is not None and band["fill"] == "toself"
    ys = [y for y in band["y"] if y is not None]
    assert min(ys) < 0.82 - 0.03 < max(ys)


def _trace(figure: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((t for t in figure["data"] if t.get("name") == name), None)


def test_slices_show_the_latest_labelled_window_and_too_few_rows(page: str) -> None:
    section = page[page.index('<section id="slices">') : page.index('<section id="drift">')]
    assert "Window 2016-01-04, the latest with labels" in section
    figures = [f for f in _figures(page).values() if f["data"][0].get("error_x")]
    assert len(figures) == 2
    accuracy = figures[0]
    labels = accuracy["layout"]["yaxis"]["ticktext"]
    assert labels == ["SEX = 1", "SEX = 2", "AGEP = [16, 30)", "AGEP = [30, 99]", "AGEP = [0, 16)"]
    assert accuracy["data"][0]["x"][-1] is None
    notes = [a["text"] for a in accuracy["layout"]["annotations"]]
    assert any("too few rows" in n and "fewer than min_slice_rows=50" in n for n in notes)
    assert "all rows: 0.74" in notes  # window 4's whole-window accuracy
    assert accuracy["layout"]["shapes"][0]["x0"] == pytest.approx(0.74)


def test_drift_heatmap_marks_drifted_cells_and_lists_drifted_columns_first(page: str) -> None:
    heatmap = next(f for f in _figures(page).values() if f["data"][0]["type"] == "heatmap")
    trace = heatmap["data"][0]
    assert trace["y"][:2] == ["AGEP", "MAR"]  # 3 drifted windows, then 1
    report = realistic_report()
    assert sum(m == "✕" for row in trace["text"] for m in row) == int(report.drift["drifted"].sum())
    assert trace["text"][0] == ["", "", "", "✕", "✕", "✕"]
    agep = trace["z"][0]
    assert agep[0] == pytest.approx(0.4) and agep[-1] == pytest.approx(2.0)  # 0.27/0.1, capped
    mar_last = trace["z"][1][-1]
    assert mar_last == pytest.approx(math.log(0.004) / math.log(0.05))
    dists = page[page.index('<section id="distributions">') :]
    titles = re.findall(r'<div class="chart-title">(\w+)', dists)
    assert titles[:2] == ["AGEP", "MAR"] and sorted(titles) == sorted(report.distributions)
    assert dists.count('<span class="tag">drifted</span>') == 2


def test_skew_bars_are_relative_to_the_threshold(page: str) -> None:
    skew = next(f for f in _figures(page).values() if f["data"][0].get("orientation") == "h")
    bars = skew["data"][0]
    assert bars["y"][0] == "AGEP" and bars["x"][0] == pytest.approx(3.1)
    assert bars["marker"]["color"][0] != bars["marker"]["color"][1]  # skewed is red


def test_an_empty_report_says_so_in_every_section_and_loads_no_library() -> None:
    page = render_report(empty_report())
    for section in SECTIONS:
        body = page[page.index(f'<section id="{section}">') :]
        assert body.split("</section>", 1)[0].count("No data for this section") == 1
    assert 'class="chart"' not in page and "Plotly" not in page
    assert len(page) < 20_000


def test_user_strings_are_escaped_everywhere() -> None:
    page = render_report(hostile_report())
    assert HOSTILE not in page and HOSTILE_IMG not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    tags = _tags(page).tags
    assert [t for t, _ in tags].count("script") == 3  # plotly.js, the specs, the drawing
    assert "img" not in [t for t, _ in tags]
    heatmap = next(f for f in _figures(page).values() if f["data"][0]["type"] == "heatmap")
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in heatmap["data"][0]["y"]


def test_nan_and_infinity_render_as_missing_values() -> None:
    report = realistic_report()
    drift = report.drift.copy()
    drift.loc[0, ["statistic", "p_value"]] = [math.inf, math.nan]
    drift.loc[1, ["statistic", "threshold"]] = [math.nan, math.nan]
    performance = report.performance.copy()
    performance.loc[0, ["value", "upper"]] = [math.inf, -math.inf]
    drift["drifted"] = drift["drifted"].astype(object)
    drift.loc[2, "drifted"] = None  # a verdict that is missing reads as "no drift"
    skew = report.skew.copy()
    skew["skewed"] = skew["skewed"].astype(float)
    skew.loc[1, ["skewed", "statistic"]] = [math.nan, math.nan]
    traffic = report.traffic.copy()
    traffic.loc[0, "labelled"] = math.nan
    broken = MonitorReport(**{**report.__dict__, "drift": drift, "performance": performance,
                              "traffic": traffic, "skew": skew})  # fmt: skip
    page = render_report(broken)
    assert "NaN" not in page.split('id="lw-figures">', 1)[1].split("</script>", 1)[0]
    heatmap = next(f for f in _figures(page).values() if f["data"][0]["type"] == "heatmap")
    assert heatmap["data"][0]["z"][0][0] is None or heatmap["data"][0]["z"][0][0] <= 2.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drift": pd.DataFrame({"column": ["a"]})}, r"report\.drift: missing columns"),
        ({"traffic": [1, 2]}, r"report\.traffic: expected a pandas DataFrame"),
        ({"distributions": {"a": ColumnDistribution("a", "numeric", ["x"], [0.5, 0.5], [1.0])}},
         r"distributions\['a'\]: expected a ColumnDistribution with as many"),
        ({"alerts": ["drift!"]}, r"report\.alerts: expected a list of dicts"),
    ],
)  # fmt: skip
def test_malformed_reports_are_refused_with_what_to_fix(
    change: dict[str, Any], message: str
) -> None:
    report = MonitorReport(**{**realistic_report().__dict__, **change})
    with pytest.raises(InvalidArgumentError, match=message):
        render_report(report)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="expected a MonitorReport"):
        render_report({"deployment": "x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="is a folder"):
        write_report(empty_report(), tmp_path)
    with pytest.raises(InvalidArgumentError, match="expected a file path"):
        write_report(empty_report(), None)  # type: ignore[arg-type]


def test_write_report_creates_folders_and_writes_what_render_gives(tmp_path: Path) -> None:
    report = realistic_report()
    path = write_report(report, tmp_path / "out" / "report.html")
    assert path == tmp_path / "out" / "report.html"
    assert path.read_text(encoding="utf-8") == render_report(report)


def test_missing_plotly_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly.offline", None)
    with pytest.raises(MissingDependencyError, match=r"loopwise\[monitoring\]"):
        render_report(realistic_report())
    assert "No data for this section" in render_report(empty_report())  # no charts: no plotly


def test_exceedance_puts_every_test_on_one_scale() -> None:
    assert exceedance("wasserstein", 0.2, 0.1) == pytest.approx(2.0)
    assert exceedance("chisquare", 5.0, 0.05, 0.05) == pytest.approx(1.0)
    assert exceedance("ks", 0.1, 0.05, 1.0) == pytest.approx(0.0)
    assert exceedance("ks", 0.1, 0.05, 0.0) > 100  # p = 0 is far past any threshold
    assert math.isnan(exceedance("ks", 0.1, 0.05, None))  # a statistic is not a p-value
    assert math.isnan(exceedance("psi", None, 0.1))


# -- in a real browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("report")
    return {
        "realistic": write_report(realistic_report(), folder / "report.html"),
        "hostile": write_report(hostile_report(), folder / "hostile.html"),
    }


@pytest.fixture(scope="module")
def loaded(written: dict[str, Path]) -> PageLoad:
    """The realistic report after Chromium ran its scripts, with a 1400 x 3000 screenshot."""
    shot = written["realistic"].with_suffix(".png")
    return load_page(written["realistic"], screenshot_to=shot, window_px=(1400, 3000))


def test_every_chart_renders_in_chromium_without_errors_or_requests(loaded: PageLoad) -> None:
    assert len(re.findall(r'<div class="[^"]*js-plotly-plot', loaded.dom)) == CHARTS
    assert loaded.dom.count('class="main-svg"') >= CHARTS
    assert len(re.findall(r'class="heatmaplayer', loaded.dom)) == 1
    errors = [line for line in loaded.console if re.search(r"Uncaught|Error|loopwise-report", line)]
    assert errors == []
    assert loaded.requests == []
    assert 'data-failed="yes"' not in loaded.dom


def test_hostile_names_stay_text_in_chromium(written: dict[str, Path]) -> None:
    load = load_page(written["hostile"], window_px=(1400, 1000))
    assert "<title>pwned</title>" not in load.dom
    assert re.search(r"<title>Monitoring report: &lt;script&gt;", load.dom)
    assert len(re.findall(r"<script[\s>]", load.dom)) == 3
    assert "<img" not in load.dom
    # Plotly drew the names as literal text in the SVG (tick labels of the heatmap and slices).
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;</text>" in load.dom


def test_screenshot_shows_the_report(loaded: PageLoad, written: dict[str, Path]) -> None:
    pixels = read_png(written["realistic"].with_suffix(".png"))
    assert pixels.shape[:2] == (3000, 1400)
    rgb = pixels[..., :3].astype(np.int64)
    assert tuple(rgb[10, 10]) == (0x16, 0x21, 0x3A)  # the header's navy
    assert rgb.std() > 20  # not a blank page
    blue = np.abs(rgb - np.array([0x1F, 0x5F, 0xA8])).sum(axis=-1) < 12
    green = np.abs(rgb - np.array([0x2E, 0x7D, 0x32])).sum(axis=-1) < 12
    assert blue.sum() > 2_000 and green.sum() > 10_000  # lines, dots and labelled-rows bars drawn


def test_windows_without_time_share_one_slot() -> None:
    """A single window over a frame with no time column (window_start NaT) still draws."""
    report = realistic_report()
    last = report.traffic["window_start"].iloc[-1]
    tables = {}
    for name in ("traffic", "drift", "performance", "estimated", "skew", "validation"):
        frame = report.table(name)
        frame = frame[frame["window_start"] == last].copy()
        frame["window_start"] = frame["window_end"] = pd.NaT
        tables[name] = frame
    page = render_report(MonitorReport(**{**report.__dict__, **tables}))
    heatmap = next(f for f in _figures(page).values() if f["data"][0]["type"] == "heatmap")
    assert heatmap["data"][0]["x"] == ["all rows"]
    assert "1D (1 window)" in page
