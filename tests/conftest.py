"""Fixtures shared by the whole suite: every test gets its own store folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import loopwise as lw
from loopwise.context import Context

from .services import PostgresServer


@pytest.fixture(autouse=True)
def _isolated_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """No test ever writes to ./.loopwise: LOOPWISE_URI points at a fresh folder."""
    monkeypatch.setenv("LOOPWISE_URI", str(tmp_path_factory.mktemp("default-store") / "store"))
    monkeypatch.delenv("LOOPWISE_PROJECT", raising=False)
    yield
    lw.shutdown()


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    """An initialised SDK context on a fresh store, project 'test'."""
    context = lw.init(project="test", uri=tmp_path / "store")
    yield context
    lw.shutdown()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (Debian's package; `.ci/run` installs it)."""
    server = PostgresServer().start()
    yield server
    server.stop()
