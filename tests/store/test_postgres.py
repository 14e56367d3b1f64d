"""The SQL store on a real PostgreSQL server: the same conformance suite as SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loopwise.errors import SchemaTooOldError
from loopwise.store import Store, open_store
from loopwise.store.audit import GENESIS_HASH
from loopwise.store.migrate import HEAD, KNOWN_REVISIONS, current_revision
from loopwise.store.sql import SqlStore
from loopwise.store.sql.core import make_engines
from loopwise.store.sql.schema import AUDIT_HEAD, Base

from ..services import PostgresServer
from .access_conformance import AccessConformance
from .autopilot_conformance import AutopilotConformance, SqlAutopilotChecks
from .conformance import StoreConformance
from .dataset_quality_conformance import DatasetBlobConformance
from .deployment_conformance import DeploymentConformance, reopener
from .monitoring_conformance import MonitoringConformance
from .prediction_conformance import PredictionLogConformance


def _open(url: str, artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("LOOPWISE_ARTIFACTS", str(artifacts))
    return open_store(url)


@pytest.fixture(scope="module")
def shared_url(postgres: PostgresServer) -> str:
    return postgres.create_database()


class TestPostgresStore(
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
    def store(
        self, shared_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[Store]:
        # One database for the module, emptied before each test (much faster than a new one).
        write, _ = make_engines(shared_url)
        with write.begin() as conn:
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
            conn.execute(AUDIT_HEAD.insert().values(id=1, seq=0, hash=GENESIS_HASH))
        write.dispose()
        store = _open(shared_url, tmp_path / "artifacts", monkeypatch)
        yield store
        store.close()

    @pytest.fixture
    def reopen(
        self, shared_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[Callable[[], Store]]:
        with reopener(lambda: _open(shared_url, tmp_path / "artifacts", monkeypatch)) as again:
            yield again


def test_new_database_is_migrated_to_head(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.create_database(migrated=False)
    store = _open(url, tmp_path / "artifacts", monkeypatch)
    assert isinstance(store, SqlStore)
    assert current_revision(store.read_engine) == HEAD
    store.close()


def test_stale_schema_is_refused_with_the_upgrade_command(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.create_database()
    _open(url, tmp_path / "artifacts", monkeypatch).close()
    newer = f"{int(HEAD) + 1:04d}"
    monkeypatch.setattr("loopwise.store.migrate.KNOWN_REVISIONS", [*KNOWN_REVISIONS, newer])
    monkeypatch.setattr("loopwise.store.migrate.HEAD", newer)
    with pytest.raises(SchemaTooOldError, match=r"loopwise --uri .* db upgrade"):
        _open(url, tmp_path / "artifacts", monkeypatch)
    write, read = make_engines(url)
    assert current_revision(read) == HEAD  # refused, not half-upgraded
    write.dispose()
