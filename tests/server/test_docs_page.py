"""The API server's own pages: Swagger UI at ``/docs`` renders from files the server serves
itself (it is blank offline when it loads them from a CDN), with authentication on and no
token, and ``/health`` names the schema revision."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loopwise.server import create_app
from loopwise.store import Store, open_store
from loopwise.store.migrate import HEAD

from ..chromium_harness import load_page, read_png
from .harness import AppTransport, serve_in_thread


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("demo")
    store.create_token("viewer", name="viewer")  # tokens exist: authentication is on
    yield store
    store.close()


def test_docs_load_only_what_the_server_serves_without_a_token(store: Store) -> None:
    with httpx.Client(transport=AppTransport(create_app(store)), base_url="http://t") as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
        assets += re.findall(r"""url: ?['"]([^'"]+)['"]""", page.text)
        assert assets and all(a.startswith("/") for a in assets), assets
        for asset in assets:
            answer = client.get(asset)
            assert answer.status_code == 200, asset
            assert answer.content, asset
        redoc = client.get("/redoc").text
        assert "cdn" not in redoc and "googleapis" not in redoc
        assert client.get("/docs/static/redoc.standalone.js").status_code == 200


def test_health_names_the_schema_revision(store: Store) -> None:
    with httpx.Client(transport=AppTransport(create_app(store)), base_url="http://t") as client:
        assert client.get("/health").json()["schema_revision"] == HEAD


def test_swagger_ui_renders_every_route_offline_in_chromium(store: Store, tmp_path: Path) -> None:
    shot = tmp_path / "docs.png"
    with serve_in_thread(create_app(store)) as url:
        loaded = load_page(f"{url}/docs", screenshot_to=shot, window_px=(1280, 1600))
    assert loaded.requests == []  # nothing fetched from anywhere but the server
    assert loaded.dom.count('class="opblock opblock-') >= 20  # one block per operation
    assert "Loopwise control plane" in loaded.dom
    pixels = read_png(shot)[..., :3].astype(int)
    assert pixels.std() > 20  # drawn, not a blank page
