"""The remote backend passes the store conformance suite through the real REST API.

Twice: in-process (the app driven through an httpx transport) and over a real uvicorn server
on a loopback port. Both authenticate with an admin token. One app (and one server) serves a
whole test class; each test swaps in a fresh store behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from loopwise.server import create_app
from loopwise.store import Store, open_store
from loopwise.store.remote import RemoteStore

from ..server.harness import AppTransport, serve_in_thread
from .access_conformance import AccessConformance
from .conformance import StoreConformance
from .dataset_quality_conformance import DatasetQualityConformance
from .deployment_conformance import DeploymentConformance
from .monitoring_conformance import MonitoringConformance
from .prediction_conformance import PredictionLogConformance


@pytest.fixture(scope="class")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    placeholder = open_store(tmp_path_factory.mktemp("placeholder") / "store")
    yield create_app(placeholder)
    placeholder.close()


@pytest.fixture
def backend(app: FastAPI, tmp_path: Path) -> Iterator[tuple[Store, str]]:
    """A fresh store behind the app, and an admin token for it."""
    store = open_store(tmp_path / "server-store")
    _, secret = store.create_token("admin", name="tests")
    previous, app.state.store = app.state.store, store
    yield store, secret
    app.state.store = previous
    store.close()


def _reopen(
    app: FastAPI, tmp_path: Path, connect: Callable[[Path], RemoteStore]
) -> Iterator[Callable[[], Store]]:
    """Open the server's store again behind the app, and a new client to it: what the API
    acknowledged must be on the server's disk, not in some instance's memory."""
    opened: list[Store] = []

    def again() -> Store:
        app.state.store = open_store(tmp_path / "server-store")
        opened.append(app.state.store)
        opened.append(connect(tmp_path / f"spool-{len(opened)}").open())
        return opened[-1]

    yield again
    for store in reversed(opened):
        store.close()


class TestRemoteInProcess(
    StoreConformance,
    PredictionLogConformance,
    DatasetQualityConformance,
    MonitoringConformance,
    DeploymentConformance,
):
    @pytest.fixture
    def store(self, app: FastAPI, backend: tuple[Store, str], tmp_path: Path) -> Iterator[Store]:
        transport = AppTransport(app)
        remote = RemoteStore(
            "http://loopwise.test", backend[1], transport=transport, spool_dir=tmp_path / "spool"
        ).open()
        yield remote
        remote.close()

    @pytest.fixture
    def reopen(
        self, app: FastAPI, backend: tuple[Store, str], tmp_path: Path
    ) -> Iterator[Callable[[], Store]]:
        yield from _reopen(
            app,
            tmp_path,
            lambda spool: RemoteStore(
                "http://loopwise.test", backend[1], transport=AppTransport(app), spool_dir=spool
            ),
        )


@pytest.fixture(scope="class")
def url(app: FastAPI) -> Iterator[str]:
    """The app on a real uvicorn server, listening on a loopback port."""
    with serve_in_thread(app) as url:
        yield url


class TestRemoteOverLoopback(
    StoreConformance,
    PredictionLogConformance,
    DatasetQualityConformance,
    MonitoringConformance,
    DeploymentConformance,
):
    @pytest.fixture
    def store(self, url: str, backend: tuple[Store, str], tmp_path: Path) -> Iterator[Store]:
        remote = RemoteStore(url, backend[1], spool_dir=tmp_path / "spool").open()
        yield remote
        remote.close()

    @pytest.fixture
    def reopen(
        self, app: FastAPI, url: str, backend: tuple[Store, str], tmp_path: Path
    ) -> Iterator[Callable[[], Store]]:
        yield from _reopen(
            app, tmp_path, lambda spool: RemoteStore(url, backend[1], spool_dir=spool)
        )


class TestRemoteAccess(AccessConformance):
    """Tokens and the audit log through the API, on a server started without a token of its
    own (``auth=False``), so the store starts as empty as the suite expects. Tokens sent are
    still checked, which ``authenticate`` relies on."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        backend = open_store(tmp_path / "server-store")
        transport = AppTransport(create_app(backend, auth=False))
        remote = RemoteStore(
            "http://loopwise.test", None, transport=transport, spool_dir=tmp_path / "spool"
        ).open()
        yield remote
        remote.close()
        backend.close()
