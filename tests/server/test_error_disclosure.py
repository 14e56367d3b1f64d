"""Error answers name what is missing inside the store, never where the store lives on disk."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loopwise.server import create_app
from loopwise.store import Store, open_store

from .harness import AppTransport


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "secret-location" / "store")
    yield store
    store.close()


def _client(store: Store) -> httpx.Client:
    secret = store.create_token("admin")[1]
    return httpx.Client(
        transport=AppTransport(create_app(store)),
        base_url="http://test",
        headers={"Authorization": f"Bearer {secret}"},
    )


def test_a_missing_blob_does_not_reveal_the_stores_path(store: Store, tmp_path: Path) -> None:
    digest = "sha256:" + hashlib.sha256(b"never stored").hexdigest()
    with _client(store) as client:
        response = client.get(f"/api/v1/blobs/{digest}")
    assert response.status_code == 404
    assert digest in response.json()["error"]["message"]
    assert "secret-location" not in response.text and str(tmp_path) not in response.text


def test_a_corrupted_blob_does_not_reveal_the_stores_path(store: Store, tmp_path: Path) -> None:
    digest, _ = store.artifacts.put_bytes(b"some bytes")
    hex_part = digest.removeprefix("sha256:")
    (tmp_path / "secret-location" / "store").joinpath(
        "artifacts", "sha256", hex_part[:2], hex_part[2:]
    ).write_bytes(b"other bytes")
    with _client(store) as client:
        response = client.get(f"/api/v1/blobs/{digest}")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "artifact_corrupted"
    assert f"sha256/{hex_part[:2]}/{hex_part[2:]}" in error["message"]  # where, inside the store
    assert "secret-location" not in response.text and str(tmp_path) not in response.text
