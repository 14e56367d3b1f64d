"""The folder store (SQLite in WAL mode plus local artifacts): conformance and its own rules."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loopwise.errors import NotAStoreError, StoreError
from loopwise.store import MetricEntry, RunStatus, Store, open_store

from .access_conformance import AccessConformance
from .autopilot_conformance import AutopilotConformance, SqlAutopilotChecks
from .conformance import T0_MS, StoreConformance
from .dataset_quality_conformance import DatasetBlobConformance
from .deployment_conformance import DeploymentConformance, reopener
from .monitoring_conformance import MonitoringConformance
from .prediction_conformance import PredictionLogConformance


class TestSqliteStore(
    StoreConformance,
    AccessConformance,
    PredictionLogConformance,
    DatasetBlobConformance,
    MonitoringConformance,
    DeploymentConformance,
    AutopilotConformance,
    SqlAutopilotChecks,
):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = open_store(tmp_path / "store")
        yield store
        store.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Iterator[Callable[[], Store]]:
        with reopener(lambda: open_store(tmp_path / "store")) as again:
            yield again


def test_folder_with_other_files_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NotAStoreError, match="loopwise.db"):
        open_store(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_file_path_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "store"
    path.write_text("not a folder")
    with pytest.raises(NotAStoreError, match="found a file"):
        open_store(path)
    assert path.read_text() == "not a folder"


def test_new_store_creates_missing_parent_folders(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a" / "b" / "store")
    store.close()
    assert (tmp_path / "a" / "b" / "store" / "loopwise.db").is_file()


def test_journal_mode_is_wal(tmp_path: Path) -> None:
    open_store(tmp_path / "store").close()
    conn = sqlite3.connect(tmp_path / "store" / "loopwise.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_reopening_sees_the_same_data(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("proj")
    run = store.create_run("proj", "r", tags={"t": "1"})
    store.log_params(run.id, {"lr": "0.1"})
    store.log_metrics([MetricEntry(run.id, "sync", 1.5, 0, T0_MS)])
    store.log_metric_async(MetricEntry(run.id, "async", 2.5, 0, T0_MS))  # close() must flush it
    artifact = tmp_path / "a.txt"
    artifact.write_bytes(b"artifact")
    store.log_artifact(run.id, artifact)
    store.close()

    again = open_store(tmp_path / "store")
    try:
        got = again.get_run(run.id)
        assert got.params == {"lr": "0.1"}
        assert got.tags == {"t": "1"}
        assert got.metrics == {"sync": 1.5, "async": 2.5}
        assert got.status is RunStatus.RUNNING
        out = again.download_artifacts(run.id, "a.txt", tmp_path / "dl")
        assert out.read_bytes() == b"artifact"
        assert [p.name for p in again.list_projects()] == ["proj"]
    finally:
        again.close()


def test_closing_removes_the_spool_file(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("proj")
    run = store.create_run("proj", "r")
    store.log_metric_async(MetricEntry(run.id, "m", 1.0, 0, T0_MS))
    assert len(list((tmp_path / "store" / "spool").glob("*.spool"))) == 1
    store.close()
    assert list((tmp_path / "store" / "spool").glob("*.spool")) == []


def test_spool_progress_rows_are_pruned(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("proj")
    run = store.create_run("proj", "r")
    for step in range(10):
        store.log_metric_async(MetricEntry(run.id, "m", 1.0, step, T0_MS))
    store.flush()
    conn = sqlite3.connect(tmp_path / "store" / "loopwise.db")
    try:
        assert conn.execute("SELECT count(*) FROM metric_spools").fetchone() == (1,)
        store.close()
        assert conn.execute("SELECT count(*) FROM metric_spools").fetchone() == (0,)
    finally:
        conn.close()


@pytest.mark.parametrize("damage", ["zeroed", "truncated"])
def test_a_damaged_database_file_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "store"
    store = open_store(folder)
    store.get_or_create_project("proj")
    store.close()
    db = folder / "loopwise.db"
    data = db.read_bytes()
    db.write_bytes(bytes(len(data)) if damage == "zeroed" else data[: len(data) // 2])
    with pytest.raises(StoreError, match=r"loopwise\.db is damaged .* Restore it from a backup"):
        open_store(folder)
