"""Dataset versions: content hashing, deduplication, exact round trip, lineage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.data import content_hash
from loopwise.errors import InvalidArgumentError, NotFoundError


def _blobs(ctx: Context) -> int:
    return sum(1 for p in Path(ctx.uri, "artifacts").rglob("*") if p.is_file())


@pytest.fixture
def mixed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": np.arange(5, dtype="int32"),
            "f": [0.5, np.nan, 2.5, 3.0, -1.0],
            "nullable": pd.array([1, None, 3, 4, 5], dtype="Int64"),
            "b": [True, False, True, True, False],
            "cat": pd.Categorical(["a", "b", "a", "c", "b"], categories=["c", "b", "a"]),
            "s": ["x", "y", None, "w", "v"],
            "when": pd.date_range("2024-01-01", periods=5, freq="h", tz="Europe/Paris"),
        },
        index=pd.Index([10, 20, 30, 40, 50], name="row"),
    )


def test_load_gives_back_exactly_what_was_logged(ctx: Context, mixed: pd.DataFrame) -> None:
    version = lw.log_dataset(mixed, name="mixed")
    back = lw.load_dataset("mixed")
    pd.testing.assert_frame_equal(back, mixed)
    assert back.dtypes.to_dict() == mixed.dtypes.to_dict()
    assert version.num_rows == 5
    assert list(version.schema) == ["i", "f", "nullable", "b", "cat", "s", "when", "row"]


def test_identical_data_gives_the_same_version_and_no_new_blob(
    ctx: Context, mixed: pd.DataFrame
) -> None:
    first = lw.log_dataset(mixed, name="mixed")
    blobs = _blobs(ctx)
    again = lw.log_dataset(mixed.copy(), name="mixed")
    assert again == first
    assert _blobs(ctx) == blobs
    changed = mixed.copy()
    changed.loc[10, "f"] = 99.0
    second = lw.log_dataset(changed, name="mixed")
    assert second.version == 2 and second.content_hash != first.content_hash
    pd.testing.assert_frame_equal(lw.load_dataset("mixed/1"), mixed)
    pd.testing.assert_frame_equal(lw.load_dataset(second), changed)


def test_logging_the_data_again_restores_a_deleted_data_file(
    ctx: Context, mixed: pd.DataFrame
) -> None:
    first = lw.log_dataset(mixed, name="mixed")
    hex_digest = first.artifact_digest.split(":")[-1]
    Path(ctx.uri, "artifacts", "sha256", hex_digest[:2], hex_digest[2:]).unlink()
    assert not ctx.store.artifacts.exists(first.artifact_digest)
    again = lw.log_dataset(mixed.copy(), name="mixed")
    assert again == first  # the same version, its file written back
    assert ctx.store.artifacts.exists(first.artifact_digest)
    pd.testing.assert_frame_equal(lw.load_dataset(again), mixed)


def test_hash_ignores_chunking_but_not_types() -> None:
    table = pa.table({"x": [1, 2, 3, 4]})
    rechunked = pa.concat_tables([table.slice(0, 2), table.slice(2)])
    assert rechunked.column("x").num_chunks == 2
    assert content_hash(table) == content_hash(rechunked)
    assert content_hash(table) != content_hash(table.cast(pa.schema([("x", pa.int32())])))


def test_paths_are_accepted(ctx: Context, tmp_path: Path, mixed: pd.DataFrame) -> None:
    parquet = tmp_path / "d.parquet"
    mixed.to_parquet(parquet)
    from_parquet = lw.log_dataset(parquet, name="from-file")
    assert from_parquet == lw.log_dataset(mixed, name="from-file")
    csv = tmp_path / "d.csv"
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_csv(csv, index=False)
    assert lw.log_dataset(csv, name="csv").num_rows == 2


def test_bad_input_is_explained(ctx: Context, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        lw.log_dataset(tmp_path / "missing.parquet", name="x")
    with pytest.raises(InvalidArgumentError, match="got list"):
        lw.log_dataset([1, 2, 3], name="x")
    with pytest.raises(InvalidArgumentError, match="dataset name"):
        lw.log_dataset(pd.DataFrame({"a": [1]}), name="bad name!")
    with pytest.raises(InvalidArgumentError, match="string column names"):
        lw.log_dataset(pd.DataFrame({0: [1]}), name="x")
    with pytest.raises(NotFoundError, match="Existing datasets: 'real'"):
        lw.log_dataset(pd.DataFrame({"a": [1]}), name="real")
        lw.load_dataset("unreal")
    with pytest.raises(NotFoundError, match=r"has versions \[1\]"):
        lw.load_dataset("real/7")


def test_lineage_links_runs_and_versions(ctx: Context, mixed: pd.DataFrame) -> None:
    version = lw.log_dataset(mixed, name="mixed")
    with lw.start_run() as run:
        run.use(version, role="train")
    assert [d.ref for d in ctx.store.run_datasets(run.id)] == ["mixed/1"]
    assert ctx.store.dataset_runs(version.id) == [run.id]
    with pytest.raises(InvalidArgumentError, match="DatasetVersion"):
        run.use("mixed")  # type: ignore[arg-type]


def test_split_and_description_are_checked(ctx: Context, mixed: pd.DataFrame) -> None:
    with pytest.raises(InvalidArgumentError, match="split name"):
        lw.log_dataset(mixed, name="mixed", split="train set!")
    with pytest.raises(InvalidArgumentError, match="description"):
        lw.log_dataset(mixed, name="mixed", description=["x"])  # type: ignore[arg-type]
    assert lw.list_datasets() == []
