"""The local artifact folder: the artifact conformance suite plus its on-disk layout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopwise.store import ArtifactStore, Store, open_store
from loopwise.store.artifacts import LocalArtifactStore

from .artifact_conformance import ArtifactStoreConformance, digest_of


def _root(artifacts: ArtifactStore) -> Path:
    assert isinstance(artifacts, LocalArtifactStore)
    return artifacts.root


def _blob(root: Path, digest: str) -> Path:
    hex_part = digest.removeprefix("sha256:")
    return root / "sha256" / hex_part[:2] / hex_part[2:]


def _blobs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "sha256").rglob("*") if p.is_file())


class TestLocalArtifacts(ArtifactStoreConformance):
    @pytest.fixture
    def artifacts(self, tmp_path: Path) -> LocalArtifactStore:
        return LocalArtifactStore(tmp_path / "artifacts")

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = open_store(tmp_path / "store")
        yield store
        store.close()

    def overwrite_blob(self, artifacts: ArtifactStore, digest: str, data: bytes) -> None:
        _blob(_root(artifacts), digest).write_bytes(data)

    def delete_blob(self, artifacts: ArtifactStore, digest: str) -> None:
        _blob(_root(artifacts), digest).unlink()

    def blob_count(self, artifacts: ArtifactStore) -> int:
        return len(_blobs(_root(artifacts)))


def test_constructor_does_no_io(tmp_path: Path) -> None:
    LocalArtifactStore(tmp_path / "artifacts")
    assert not (tmp_path / "artifacts").exists()


def test_blobs_are_laid_out_by_digest(tmp_path: Path) -> None:
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    digest, _ = artifacts.put_bytes(b"x")
    assert _blobs(artifacts.root) == [_blob(artifacts.root, digest)]
    assert _blob(artifacts.root, digest_of(b"x")).read_bytes() == b"x"


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    artifacts.put_bytes(b"x")
    names = [p.name for p in (artifacts.root / "sha256").rglob("*") if p.is_file()]
    assert not any(name.startswith(".incoming") for name in names)


def test_store_blobs_live_in_the_store_folder(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    try:
        store.get_or_create_project("proj")
        path = tmp_path / "data.csv"
        path.write_bytes(b"a,b\n1,2\n")
        store.log_artifact(store.create_run("proj", "r").id, path)
        assert _blobs(tmp_path / "store" / "artifacts") == [
            _blob(tmp_path / "store" / "artifacts", digest_of(b"a,b\n1,2\n"))
        ]
    finally:
        store.close()
