"""Step caching, one cause of a re-run at a time: params, input data, upstream outputs, code,
package versions, ``cache=False``, and outputs that went missing from the store.

Most tests use the inline executor for speed (test_runner.py checks that what worker
processes ran is a cache hit here); code and package changes run in fresh interpreters, since
this one keeps the modules it has imported.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandas.testing as pdt

import loopwise as lw
from loopwise.context import Context, current
from loopwise.pipelines.execute import read_record

from . import flows
from .support import install_fakepkg, run_script, step_runs


def blob_path(ctx: Context, digest: str) -> Path:
    """Where a folder store keeps a blob (``<root>/sha256/ab/cdef…``)."""
    hex_part = digest.removeprefix("sha256:")
    root: Path = ctx.store.artifacts.root  # type: ignore[attr-defined]
    return root / "sha256" / hex_part[:2] / hex_part[2:]


# -- nothing changed ----------------------------------------------------------------------------


def test_an_unchanged_pipeline_executes_nothing_and_gives_the_same_outputs(ctx: Context) -> None:
    first = flows.chain.run({"n": 5}, executor="inline")
    assert set(first.executed) == {"numbers", "scale", "total", "describe"}
    again = flows.chain.run({"n": 5}, executor="inline")
    assert again.executed == []
    assert set(again.cached) == {"numbers", "scale", "total", "describe"}
    # A cached step is the earlier run itself, not a copy.
    assert {n: s.run_id for n, s in again.steps.items()} == {
        n: s.run_id for n, s in first.steps.items()
    }
    assert again.output("total") == first.output("total") == 20.0
    pdt.assert_frame_equal(again.output("scale"), first.output("scale"))
    assert again.output("describe") == first.output("describe")
    assert len(step_runs()) == 4
    assert again.run_id != first.run_id  # each run of the pipeline is a run of its own


def test_cache_off_for_the_whole_run_executes_every_step(ctx: Context) -> None:
    flows.chain.run(executor="inline")
    again = flows.chain.run(executor="inline", cache=False)
    assert set(again.executed) == {"numbers", "scale", "total", "describe"}
    assert len(step_runs()) == 8


# -- params -------------------------------------------------------------------------------------


def test_a_changed_param_reruns_exactly_its_readers_and_their_downstream(ctx: Context) -> None:
    flows.chain.run({"factor": 2.0, "label": "a"}, executor="inline")

    factor = flows.chain.run({"factor": 3.0, "label": "a"}, executor="inline")
    assert set(factor.executed) == {"scale", "total"}
    assert set(factor.cached) == {"numbers", "describe"}
    assert factor.output("total") == 18.0

    label = flows.chain.run({"factor": 3.0, "label": "bb"}, executor="inline")
    assert label.executed == ["describe"]
    assert label.output("describe") == {"rows": 4.0, "label_length": 2.0}

    size = flows.chain.run({"n": 3, "factor": 3.0, "label": "bb"}, executor="inline")
    assert set(size.executed) == {"numbers", "scale", "total", "describe"}

    back = flows.chain.run({"factor": 2.0, "label": "a"}, executor="inline")
    assert back.executed == []  # every earlier combination is still cached
    assert back.output("total") == 12.0


def test_a_seed_is_part_of_the_key(ctx: Context) -> None:
    flows.chain.run(executor="inline", seed=1)
    other = flows.chain.run(executor="inline", seed=2)
    assert set(other.executed) == {"numbers", "scale", "total", "describe"}


# -- input data ---------------------------------------------------------------------------------


def test_a_changed_file_behind_a_path_input_reruns_the_step_that_reads_it(
    ctx: Context, tmp_path: Path
) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text("x\n1\n2\n")
    first = flows.from_csv.run({"path": str(csv)}, executor="inline")
    assert set(first.executed) == {"load_csv", "total", "double"}
    assert first.output("double") == 6.0

    csv.write_text("x\n1\n2\n")  # rewritten with the same content
    assert flows.from_csv.run({"path": str(csv)}, executor="inline").executed == []

    csv.write_text("x\n1\n2\n3\n")
    changed = flows.from_csv.run({"path": str(csv)}, executor="inline")
    assert set(changed.executed) == {"load_csv", "total", "double"}
    assert changed.output("double") == 12.0
    record = changed["load_csv"].record
    assert record is not None
    assert record["inputs"]["path"]["path"] == str(csv)


def test_a_new_dataset_version_reruns_its_readers_and_the_same_data_does_not(
    ctx: Context,
) -> None:
    lw.log_dataset(pd.DataFrame({"x": [1, 2, 3]}), name="source")
    first = flows.newest.run({"name": "source"}, executor="inline")
    assert set(first.executed) == {"latest", "rows", "version_rows"}
    assert first.output("rows") == 3

    unchanged = flows.newest.run({"name": "source"}, executor="inline")
    assert unchanged.executed == ["latest"]  # cache=False: it looks every time
    assert set(unchanged.cached) == {"rows", "version_rows"}

    lw.log_dataset(pd.DataFrame({"x": [1, 2, 3, 4]}), name="source")
    newer = flows.newest.run({"name": "source"}, executor="inline")
    assert set(newer.executed) == {"latest", "rows", "version_rows"}
    assert newer.output("rows") == newer.output("version_rows") == 4


# -- upstream outputs ---------------------------------------------------------------------------


def test_a_changed_upstream_output_reruns_downstream_but_an_identical_one_stops_the_wave(
    ctx: Context,
) -> None:
    """Early cut-off: readers of an output are keyed by its content, not by who made it."""
    flows.cutoff.run({"n": 4, "upper": 100}, executor="inline")

    same = flows.cutoff.run({"n": 4, "upper": 50}, executor="inline")  # 0..3 are all below 50
    assert same.executed == ["clipped"]
    assert same.cached == ["numbers", "total"]
    assert same.output("total") == 6.0

    different = flows.cutoff.run({"n": 4, "upper": 1}, executor="inline")
    assert different.executed == ["clipped", "total"]
    assert different.output("total") == 3.0


def test_a_cache_false_step_runs_every_time_and_its_readers_when_its_output_changes(
    ctx: Context, tmp_path: Path
) -> None:
    counter = tmp_path / "counter.txt"
    counter.write_text("3")
    assert set(flows.live.run({"path": str(counter)}, executor="inline").executed) == {
        "read_counter",
        "double",
    }
    same = flows.live.run({"path": str(counter)}, executor="inline")
    assert same.executed == ["read_counter"]
    assert same.cached == ["double"]

    counter.write_text("4")
    changed = flows.live.run({"path": str(counter)}, executor="inline")
    assert changed.executed == ["read_counter", "double"]
    assert changed.output("double") == 8.0
    assert len(step_runs("read_counter")) == 3


# -- outputs missing from the store -------------------------------------------------------------


def test_a_step_whose_output_file_was_deleted_is_run_again(ctx: Context) -> None:
    first = flows.reported.run(executor="inline")
    record = first["report"].record
    assert record is not None
    manifest = ctx.store.artifacts.read_manifest(record["outputs"]["output"]["hash"])
    (digest, _), *_ = manifest.values()
    blob_path(ctx, digest).unlink()

    again = flows.reported.run(executor="inline")
    assert again.executed == ["report"]
    assert set(again.cached) == {"numbers", "rows"}
    assert again.output("report").read_text() == "4 rows\n"


def test_a_step_whose_dataset_file_was_deleted_is_run_again(ctx: Context) -> None:
    first = flows.reported.run(executor="inline")
    (version,) = lw.list_datasets("reported.numbers.output")
    blob_path(ctx, version.artifact_digest).unlink()

    again = flows.reported.run(executor="inline")
    assert again.executed == ["numbers"]
    # Its output has the same content as before, so its readers stay cached.
    assert set(again.cached) == {"report", "rows"}
    assert again.output("rows") == first.output("rows") == 4


# -- code and packages, in fresh interpreters ---------------------------------------------------

STEPS = """\
import loopwise as lw
from helpers import clean


@lw.step
def first(n: int) -> int:
    return n + 1


@lw.step
def middle(x: int) -> int:
    return clean(x) * 2


@lw.step
def last(x: int) -> int:
    import fakepkg

    return fakepkg.double(x)


@lw.step
def side(n: int) -> int:
    return n - 1


@lw.pipeline
def flow(n: int = 1) -> None:
    last(middle(first(n)))
    side(n)
"""

HELPERS = """\
def clean(x):
    return x + 10
"""

SCRIPT = """\
import json

import loopwise as lw
import steps

lw.init(project="p", uri="store")
result = steps.flow.run(executor="inline")
print(json.dumps({"executed": sorted(result.executed), "last": result.output("last")}))
"""


def project(tmp_path: Path) -> tuple[Path, Path]:
    code, site = tmp_path / "project", tmp_path / "site"
    code.mkdir()
    install_fakepkg(site, "1.0")
    (code / "steps.py").write_text(STEPS)
    (code / "helpers.py").write_text(HELPERS)
    return code, site


def test_editing_a_helper_or_a_step_body_reruns_that_step_and_its_downstream(
    tmp_path: Path,
) -> None:
    code, site = project(tmp_path)
    first = run_script(code, SCRIPT, site)
    assert first == {"executed": ["first", "last", "middle", "side"], "last": 48}
    (code / "helpers.py").write_text(HELPERS.replace("x + 10", "x + 20"))
    assert run_script(code, SCRIPT, site) == {"executed": ["last", "middle"], "last": 88}
    (code / "steps.py").write_text(STEPS.replace("return n + 1", "return n + 2"))
    assert run_script(code, SCRIPT, site) == {"executed": ["first", "last", "middle"], "last": 92}


def test_upgrading_a_package_reruns_the_step_that_imports_it(tmp_path: Path) -> None:
    code, site = project(tmp_path)
    run_script(code, SCRIPT, site)
    install_fakepkg(site, "1.1")
    assert run_script(code, SCRIPT, site) == {"executed": ["last"], "last": 48}
    # The step's record says why it ran again.
    lw.init(project="p", uri=code / "store")
    runs = step_runs("last")
    assert len(runs) == 2
    store = current().store
    records = [read_record(store, r.tags["loopwise.record"]) for r in runs]
    packages = [record["key"]["code"]["packages"] for record in records]
    assert packages == [{"fakepkg": "1.0"}, {"fakepkg": "1.1"}]
