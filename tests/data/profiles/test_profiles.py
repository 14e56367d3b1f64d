"""Profiles: exact where merging can be exact, within sketch error elsewhere, and bad input refused."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.data.profiles import (
    QUANTILE_RANK_ERROR,
    ColumnProfile,
    Profile,
    dataset_profile,
    profile,
)
from loopwise.errors import ArtifactCorruptedError, InvalidArgumentError, NotFoundError
from loopwise.examples import acs_file

ACS = acs_file()


@pytest.fixture(scope="module")
def acs() -> pd.DataFrame:
    frame = pd.read_parquet(ACS)
    return frame.sample(30_000, random_state=7).reset_index(drop=True)


def _assert_exact_same(a: ColumnProfile, b: ColumnProfile) -> None:
    assert (a.kind, a.dtype, a.count, a.nulls, a.infinite) == (
        b.kind,
        b.dtype,
        b.count,
        b.nulls,
        b.infinite,
    )
    assert (a.min, a.max) == (b.min, b.max)
    for x, y in ((a.mean, b.mean), (a.variance, b.variance)):
        assert (x is None) == (y is None)
        if x is not None and y is not None:
            assert x == pytest.approx(y, rel=1e-12, abs=1e-12)


def _true_rank(values: np.ndarray, x: float) -> tuple[float, float]:
    """The share of values below ``x``, and at or below it."""
    return float(np.mean(values < x)), float(np.mean(values <= x))


def _assert_quantiles_close(column: ColumnProfile, values: np.ndarray) -> None:
    for q in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
        x = column.quantile(q)
        assert x is not None
        below, at_or_below = _true_rank(values, x)
        # The rank of the answer brackets q, within the sketch's documented rank error.
        assert below - 2 * QUANTILE_RANK_ERROR <= q <= at_or_below + 2 * QUANTILE_RANK_ERROR


def test_statistics_match_pandas(acs: pd.DataFrame) -> None:
    result = profile(acs)
    assert result.num_rows == len(acs)
    assert list(result.columns) == list(acs.columns)
    age = result.columns["AGEP"]
    assert (age.kind, age.dtype, age.count, age.nulls) == ("numeric", "double", len(acs), 0)
    assert age.min == acs.AGEP.min() and age.max == acs.AGEP.max()
    assert age.mean == pytest.approx(acs.AGEP.mean(), rel=1e-12)
    assert age.variance == pytest.approx(acs.AGEP.var(), rel=1e-12)
    assert age.distinct() == pytest.approx(acs.AGEP.nunique(), rel=0.05)
    _assert_quantiles_close(age, acs.AGEP.to_numpy())
    schooling = result.columns["SCHL"]
    assert schooling.kind == "categorical" and schooling.dtype.startswith("dictionary<")
    expected = acs.SCHL.astype(str).value_counts()
    # Fewer categories than the sketch's capacity: the counts are exact.
    assert [n for _, n in schooling.top(5)] == list(expected.to_numpy()[:5])
    assert dict(schooling.top(100)) == {str(k): int(v) for k, v in expected.items()}
    assert round(schooling.distinct()) == acs.SCHL.nunique()
    assert result.columns["employed"].top() == []  # numbers have no categories


def test_merge_equals_the_whole_and_is_associative(acs: pd.DataFrame) -> None:
    parts = [acs.iloc[:7_000], acs.iloc[7_000:19_000], acs.iloc[19_000:]]
    a, b, c = (profile(p) for p in parts)
    whole = profile(acs)
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    for merged in (left, right):
        assert merged.num_rows == whole.num_rows
        assert list(merged.columns) == list(whole.columns)
        for name, column in whole.columns.items():
            _assert_exact_same(merged.columns[name], column)
            assert merged.columns[name].distinct() == pytest.approx(column.distinct(), rel=0.02)
            assert merged.columns[name].top(3) == column.top(3)
        _assert_quantiles_close(merged.columns["AGEP"], acs.AGEP.to_numpy())
        _assert_quantiles_close(merged.columns["id"], acs.id.to_numpy())
    assert a.num_rows == 7_000  # merging changed neither input
    assert a.columns["AGEP"].count == 7_000


def test_chunked_profile_equals_in_memory(acs: pd.DataFrame) -> None:
    in_memory = profile(acs)
    chunked = profile(acs, chunk_rows=997)
    for name, column in in_memory.columns.items():
        _assert_exact_same(chunked.columns[name], column)


def test_parquet_file_is_read_in_batches(
    acs: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "acs.parquet"
    pq.write_table(pa.Table.from_pandas(acs, preserve_index=False), path, row_group_size=4_000)
    assert pq.ParquetFile(path).num_row_groups > 5
    expected = profile(acs)

    def no_whole_reads(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was read whole")

    monkeypatch.setattr(pq, "read_table", no_whole_reads)
    monkeypatch.setattr(pd, "read_parquet", no_whole_reads)
    sizes: list[int] = []
    original = pq.ParquetFile.iter_batches

    def spy(self: pq.ParquetFile, *args: object, **kwargs: object) -> object:
        for batch in original(self, *args, **kwargs):
            sizes.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    from_file = profile(path, chunk_rows=1_500)
    assert max(sizes) <= 1_500 and sum(sizes) == len(acs)
    for name, column in expected.columns.items():
        _assert_exact_same(from_file.columns[name], column)
    assert profile(path, columns=["AGEP"]).columns.keys() == {"AGEP"}


def test_serialisation_round_trips(acs: pd.DataFrame) -> None:
    original = profile(acs)
    data = original.to_bytes()
    assert data.startswith(b"{") and b"loopwise.profile" in data
    back = Profile.from_bytes(data)
    pd.testing.assert_frame_equal(back.to_frame(), original.to_frame())
    for name, column in original.columns.items():
        _assert_exact_same(back.columns[name], column)
        assert back.columns[name].quantile(0.3) == column.quantile(0.3)
        assert back.columns[name].distinct() == column.distinct()
        assert back.columns[name].top(50) == column.top(50)
    # A restored profile still merges.
    doubled = back.merge(original)
    assert doubled.columns["AGEP"].count == 2 * len(acs)
    assert doubled.columns["SCHL"].top(1)[0][1] == 2 * original.columns["SCHL"].top(1)[0][1]


@pytest.mark.parametrize(
    "data",
    [b"not json", b"{}", b'{"format": "loopwise.profile", "version": 99}', b"[1, 2]", "text"],
)
def test_other_bytes_are_refused(data: object) -> None:
    with pytest.raises(InvalidArgumentError, match="Loopwise profile"):
        Profile.from_bytes(data)  # type: ignore[arg-type]


def test_corrupted_sketch_is_refused(acs: pd.DataFrame) -> None:
    data = profile(acs[["AGEP"]]).to_bytes().replace(b'"quantiles":"', b'"quantiles":"AAAA', 1)
    with pytest.raises(InvalidArgumentError, match="Loopwise profile"):
        Profile.from_bytes(data)


def test_empty_frame_gives_an_empty_profile_that_merges_as_identity(acs: pd.DataFrame) -> None:
    empty = profile(acs.iloc[:0])
    assert empty.num_rows == 0 and list(empty.columns) == list(acs.columns)
    age = empty.columns["AGEP"]
    assert (age.count, age.nulls, age.mean, age.variance, age.min) == (0, 0, None, None, None)
    assert age.quantile(0.5) is None and age.histogram() == ([], [])
    assert empty.columns["SCHL"].top() == [] and age.distinct() == 0
    full = profile(acs)
    for merged in (empty.merge(full), full.merge(empty)):
        for name, column in full.columns.items():
            _assert_exact_same(merged.columns[name], column)


def test_non_finite_values_are_counted_apart() -> None:
    frame = pd.DataFrame({"x": [1.0, np.nan, np.inf, -np.inf, 3.0, None]})
    x = profile(frame).columns["x"]
    assert (x.count, x.nulls, x.infinite, x.values) == (6, 2, 2, 2)
    assert (x.min, x.max, x.mean, x.variance) == (1.0, 3.0, 2.0, 2.0)
    assert x.quantile(1.0) == 3.0 and x.quantile(0.0) == 1.0
    assert math.isfinite(sum(x.histogram(4)[0]))


def test_all_null_columns() -> None:
    frame = pd.DataFrame({"none": [None, None, None], "nan": [np.nan] * 3, "n": [1, 2, 3]})
    result = profile(frame)
    none, nan = result.columns["none"], result.columns["nan"]
    assert (none.dtype, none.count, none.nulls, none.top()) == ("null", 3, 3, [])
    assert (nan.kind, nan.count, nan.nulls, nan.mean, nan.quantile(0.5)) == (
        "numeric",
        3,
        3,
        None,
        None,
    )
    # A column that is all-null in one chunk takes the type it has in the next.
    later = profile([frame.iloc[:2], pd.DataFrame({"none": ["a", "b"], "nan": [1.0, 2.0]})])
    assert later.columns["none"].kind == "categorical" and later.columns["none"].dtype == "string"
    assert (later.columns["none"].count, later.columns["none"].nulls) == (4, 2)
    assert later.columns["nan"].mean == 1.5
    # A column missing from a chunk counts as nulls there, as pd.concat would give.
    assert (later.columns["n"].count, later.columns["n"].nulls) == (4, 2)


def test_mixed_types_in_a_column_are_refused() -> None:
    frame = pd.DataFrame({"ok": [1, 2], "mixed": [1, "a"]})
    with pytest.raises(InvalidArgumentError, match="'mixed' mixes int, str"):
        profile(frame)


def test_a_column_that_changes_type_is_refused() -> None:
    chunks = [pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": ["a", "b"]})]
    with pytest.raises(InvalidArgumentError, match="'x' to keep one type"):
        profile(chunks)
    with pytest.raises(InvalidArgumentError, match="'x' to keep one type"):
        profile(chunks[0]).merge(profile(chunks[1]))
    # Integers and floats are both numbers: they merge, and the type says both were seen.
    both = profile([pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [0.5, np.nan]})])
    assert both.columns["x"].dtype == "double|int64" and both.columns["x"].mean == pytest.approx(
        3.5 / 3
    )


def test_unsupported_columns_are_recorded_not_dropped() -> None:
    frame = pd.DataFrame({"n": [1, 2], "tags": [[1], [2, 3]]})
    result = profile(frame)
    assert list(result.columns) == ["n"] and result.skipped == {"tags": "list<item: int64>"}
    assert Profile.from_bytes(result.to_bytes()).skipped == result.skipped
    with pytest.raises(InvalidArgumentError, match="'tags' of type list"):
        profile(frame, columns=["tags"])
    with pytest.raises(InvalidArgumentError, match="at least one column"):
        profile(frame[["tags"]])


def test_other_column_types() -> None:
    frame = pd.DataFrame(
        {
            "flag": [True, False, True, None],
            "when": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-03"]),  # type: ignore[arg-type]
            "text": ["a", "b", "a", None],
            "small": pd.array([1, None, 3, 4], dtype="Int8"),
        }
    )
    result = profile(pa.Table.from_pandas(frame, preserve_index=False))
    assert result.columns["flag"].top() == [("true", 2), ("false", 1)]
    assert result.columns["flag"].nulls == 1
    when = result.columns["when"]
    ticks = pa.array(frame["when"]).cast(pa.int64())
    assert when.kind == "numeric" and when.dtype == str(pa.array(frame["when"]).type)
    assert (when.nulls, when.min) == (1, pa.compute.min(ticks).as_py())
    assert result.columns["text"].top() == [("a", 2), ("b", 1)]
    assert result.columns["small"].mean == pytest.approx(8 / 3)
    # Integers beyond 2**53 (nanosecond times among them) are summarised as the nearest float.
    big = pa.table(
        {
            "big": pa.array([2**60 + 1, 3], pa.int64()),
            "ns": pa.array(pd.to_datetime(["2024-01-01", "2024-01-02"]).as_unit("ns")),
        }
    )
    summary = profile(big)
    assert summary.columns["big"].max == float(2**60)
    assert summary.columns["ns"].min == float(pd.Timestamp("2024-01-01").as_unit("ns").value)


def test_histogram_agrees_with_numpy(acs: pd.DataFrame) -> None:
    age = profile(acs).columns["AGEP"]
    edges, counts = age.histogram(10)
    assert len(edges) == 11 and len(counts) == 10 and sum(counts) == len(acs)
    expected, expected_edges = np.histogram(acs.AGEP, bins=10)
    assert np.allclose(edges, expected_edges)
    tolerance = 2 * QUANTILE_RANK_ERROR * len(acs)
    # Ages are whole numbers sitting on some edges; the sketch puts ties on the edge's right.
    assert all(abs(a - b) <= tolerance + 2_000 for a, b in zip(counts, expected, strict=True))
    constant = profile(pd.DataFrame({"c": [2.0] * 5})).columns["c"]
    assert constant.histogram() == ([2.0, 2.0], [5])


def test_bad_arguments_are_explained(acs: pd.DataFrame) -> None:
    result = profile(acs.iloc[:100])
    age, schooling = result.columns["AGEP"], result.columns["SCHL"]
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: age.quantile(1.5), "q between 0 and 1"),
        (lambda: age.histogram(0), "bins between 1"),
        (lambda: schooling.histogram(), "numeric column for a histogram"),
        (lambda: schooling.top(0), "k >= 1"),
        (lambda: result.merge("p"), "Profile to merge"),  # type: ignore[arg-type]
        (lambda: profile(acs, chunk_rows=0), "chunk_rows to be a positive integer"),
        (lambda: profile(acs, columns="AGEP"), "list of column names"),
        (lambda: profile(acs, columns=["nope"]), "columns \\['nope'\\]"),
        (lambda: profile(acs, columns=[]), "no names"),
        (lambda: profile(42), "got int"),
        (lambda: profile(iter([])), "at least one chunk"),
        (lambda: profile([1, 2]), "each chunk"),
        (lambda: profile(pd.DataFrame()), "at least one column"),
        (lambda: profile("missing.parquet"), "does not exist"),
        (lambda: profile(pd.DataFrame({0: [1]})), "string column names"),
        (lambda: profile(pa.table([[1], ["a"]], names=["a", "a"])), "distinct column names"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidArgumentError, match=message):
            call()


def test_to_frame_has_one_row_per_column(acs: pd.DataFrame) -> None:
    frame = profile(acs).to_frame()
    assert list(frame["column"]) == list(acs.columns)
    row = frame.set_index("column").loc["AGEP"]
    assert row["count"] == len(acs) and row["null_share"] == 0.0
    assert row["std"] == pytest.approx(acs.AGEP.std(), rel=1e-9)
    assert cast(str, frame.set_index("column").loc["SEX", "top"]).count("(") == 2


# -- profiles of dataset versions -------------------------------------------------------------
def test_log_dataset_keeps_a_profile(ctx: Context, acs: pd.DataFrame) -> None:
    sample = acs.iloc[:2_000]
    version = lw.log_dataset(sample, name="acs")
    assert version.profile_digest is not None
    stored = dataset_profile("acs/1")
    assert stored.num_rows == 2_000
    _assert_exact_same(stored.columns["AGEP"], profile(sample).columns["AGEP"])
    assert dataset_profile(version).to_bytes() == stored.to_bytes()
    assert lw.log_dataset(sample.copy(), name="acs") == version  # same data: nothing new


def test_old_versions_are_profiled_and_backfilled(ctx: Context, acs: pd.DataFrame) -> None:
    sample = acs.iloc[:500]
    # A version as a Loopwise without profiles logged it: the data, no profile digest.
    table = pa.Table.from_pandas(sample)
    with ctx.store.artifacts.open_verified(lw.log_dataset(table, "tmp").artifact_digest) as f:
        digest = ctx.store.artifacts.put_bytes(f.read())[0]
    old, _ = ctx.store.create_dataset_version(
        ctx.project, "old", content_hash="h", artifact_digest=digest, num_rows=500, schema={}
    )
    assert old.profile_digest is None
    computed = dataset_profile(old)
    recorded = ctx.store.get_dataset_version(ctx.project, "old", 1).profile_digest
    assert recorded is not None
    assert ctx.store.artifacts.read_bytes(recorded) == computed.to_bytes()
    _assert_exact_same(computed.columns["AGEP"], profile(sample).columns["AGEP"])
    # Read back, not computed again: the stored bytes, not a fresh sketch's.
    stored = Profile.from_bytes(ctx.store.artifacts.read_bytes(recorded))
    assert dataset_profile("old").to_bytes() == stored.to_bytes()
    assert ctx.store.get_dataset_version(ctx.project, "old", 1).profile_digest == recorded


def test_a_corrupted_profile_blob_is_refused(ctx: Context, acs: pd.DataFrame) -> None:
    version = lw.log_dataset(acs.iloc[:100], name="acs")
    assert version.profile_digest is not None
    blob = next(
        p
        for p in Path(ctx.uri, "artifacts").rglob("*")
        if p.is_file() and p.name in version.profile_digest
    )
    blob.chmod(0o644)
    blob.write_bytes(b"{}")
    with pytest.raises(ArtifactCorruptedError):
        dataset_profile("acs")


def test_data_without_a_profile_still_logs(ctx: Context) -> None:
    repeated = lw.log_dataset(pa.table([[1], ["a"]], names=["a", "a"]), name="repeated")
    only_lists = lw.log_dataset(pd.DataFrame({"tags": [[1], [2]]}), name="lists")
    assert repeated.profile_digest is None and only_lists.profile_digest is None
    with pytest.raises(InvalidArgumentError, match="to profile"):
        dataset_profile("lists")


def test_dataset_profile_of_unknown_or_bad_ref(ctx: Context) -> None:
    with pytest.raises(NotFoundError):
        dataset_profile("nothing")
    with pytest.raises(InvalidArgumentError, match="dataset reference"):
        dataset_profile("")
