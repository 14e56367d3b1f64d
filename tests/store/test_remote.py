"""The remote backend passes the store conformance suite through the real REST API.

Twice: in-process (the app driven through an httpx transport) and over a real uvicorn server
on a loopback port. Both authenticate with an admin token. One app (and one server) serves a
whole test class; each test swaps in a fresh store behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from loopwise.server import create_app
from loopwise.store import Store, TrafficPlan, open_store
from loopwise.store.remote import RemoteStore
from loopwise.store.remote import autopilot as remote_autopilot

from ..server.harness import AppTransport, serve_in_thread
from .access_conformance import AccessConformance
from .autopilot_conformance import AutopilotConformance
from .conformance import StoreConformance
from .dataset_quality_conformance import DatasetQualityConformance
from .deployment_conformance import DeploymentConformance
from .monitoring_conformance import MonitoringConformance
from .prediction_conformance import PredictionLogConformance

DIGEST = "sha256:" + "ab" * 32


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
    AutopilotConformance,
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

    def test_autopilot_decisions_are_read_page_by_page(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The server answers at most a page of decisions; the client asks again for the rest."""
        store.get_or_create_project("proj")
        store.create_model_version("proj", "m", flavour="sklearn", artifact_digest=DIGEST)
        store.create_deployment("proj", "prod", "m", TrafficPlan({1: 100}))
        made = [
            store.record_autopilot_decision("proj", "prod", seq, "hold", "s", {}, {}, seq)
            for seq in range(1, 8)
        ]
        monkeypatch.setattr(remote_autopilot, "MAX_DECISIONS_PER_CALL", 2)
        asked: list[int] = []
        call = store._call  # type: ignore[attr-defined]

        def counted(method: str, path: str, json: Any = None, params: Any = None) -> Any:
            asked.append(params["limit"])
            return call(method, path, json, params)

        monkeypatch.setattr(store, "_call", counted)
        assert store.autopilot_decisions("proj", "prod") == made
        assert asked == [2, 2, 2, 2]  # 2 + 2 + 2 + 1: the last page is short
        asked.clear()
        assert store.autopilot_decisions("proj", "prod", limit=3) == made[:3]
        assert asked == [2, 1]  # no more than the limit is asked for
        for after in (0, 1, 5, 6, 7):
            for limit in (None, 1, 2, 3, 4, 6, 100):
                got = store.autopilot_decisions("proj", "prod", after_seq=after, limit=limit)
                assert got == made[after:][:limit], (after, limit)


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
    AutopilotConformance,
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
        remote = RemoteStore(  # without auth the server answers loopback names only
            "http://localhost", None, transport=transport, spool_dir=tmp_path / "spool"
        ).open()
        yield remote
        remote.close()
        backend.close()
