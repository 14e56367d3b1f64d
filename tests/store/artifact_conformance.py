"""The behaviour every ``ArtifactStore`` backend must have, written against the interface only.

A backend's test module subclasses ``ArtifactStoreConformance``, overrides the ``artifacts`` and
``store`` fixtures with fresh, empty stores of its kind, and implements the three hooks that reach
the stored bytes behind the interface (to corrupt, delete and count blobs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopwise.errors import ArtifactCorruptedError, InvalidArgumentError, NotFoundError
from loopwise.store import ArtifactStore, Store


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ArtifactStoreConformance:
    """Generic checks of ``ArtifactStore``; subclasses provide fixtures and hooks."""

    @pytest.fixture
    def artifacts(self) -> ArtifactStore:
        raise NotImplementedError("A backend's test class must override the `artifacts` fixture.")

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("A backend's test class must override the `store` fixture.")

    # -- hooks: reach the bytes behind the interface --------------------------------------------
    def overwrite_blob(self, artifacts: ArtifactStore, digest: str, data: bytes) -> None:
        raise NotImplementedError

    def delete_blob(self, artifacts: ArtifactStore, digest: str) -> None:
        raise NotImplementedError

    def blob_count(self, artifacts: ArtifactStore) -> int:
        raise NotImplementedError

    # -- blobs ------------------------------------------------------------------------------------
    def test_put_and_get_round_trip(self, artifacts: ArtifactStore, tmp_path: Path) -> None:
        data = bytes(range(256)) * 5000  # over one read chunk
        source = tmp_path / "in.bin"
        source.write_bytes(data)
        digest, size = artifacts.put_file(source)
        assert (digest, size) == (digest_of(data), len(data))
        assert artifacts.exists(digest)
        assert artifacts.read_bytes(digest) == data
        out = artifacts.get_file(digest, tmp_path / "out" / "deep" / "copy.bin")
        assert out.read_bytes() == data

    def test_open_verified_is_positioned_at_the_start(self, artifacts: ArtifactStore) -> None:
        digest, _ = artifacts.put_bytes(b"0123456789")
        with artifacts.open_verified(digest) as f:
            assert f.read(4) == b"0123"
            assert f.read() == b"456789"

    def test_put_bytes_and_empty_blob(self, artifacts: ArtifactStore) -> None:
        assert artifacts.put_bytes(b"") == (digest_of(b""), 0)
        assert artifacts.read_bytes(digest_of(b"")) == b""
        digest, _ = artifacts.put_bytes(b"hello")
        assert artifacts.read_bytes(digest) == b"hello"

    def test_same_bytes_are_stored_once(self, artifacts: ArtifactStore, tmp_path: Path) -> None:
        (tmp_path / "a.txt").write_bytes(b"same")
        (tmp_path / "b.txt").write_bytes(b"same")
        first = artifacts.put_file(tmp_path / "a.txt")
        second = artifacts.put_file(tmp_path / "b.txt")
        third = artifacts.put_bytes(b"same")
        assert first == second == third
        assert self.blob_count(artifacts) == 1
        artifacts.put_bytes(b"different")
        assert self.blob_count(artifacts) == 2

    def test_corrupted_blob_is_refused_by_name(
        self, artifacts: ArtifactStore, tmp_path: Path
    ) -> None:
        digest, _ = artifacts.put_bytes(b"the real weights")
        self.overwrite_blob(artifacts, digest, b"the evil weights")
        with pytest.raises(ArtifactCorruptedError) as info:
            artifacts.read_bytes(digest, name="model/weights.bin")
        message = str(info.value)
        assert "'model/weights.bin'" in message
        assert digest in message
        assert digest_of(b"the evil weights") in message
        assert "not loaded" in message
        dest = tmp_path / "out" / "weights.bin"
        with pytest.raises(ArtifactCorruptedError):
            artifacts.get_file(digest, dest, name="model/weights.bin")
        assert not dest.exists()  # corrupt bytes are never handed out

    def test_truncated_blob_is_refused(self, artifacts: ArtifactStore) -> None:
        digest, _ = artifacts.put_bytes(b"0123456789")
        self.overwrite_blob(artifacts, digest, b"01234")
        with pytest.raises(ArtifactCorruptedError):
            artifacts.open_verified(digest)

    def test_logging_again_repairs_a_corrupted_blob(self, artifacts: ArtifactStore) -> None:
        digest, _ = artifacts.put_bytes(b"the real weights")
        self.overwrite_blob(artifacts, digest, b"the evil weights")  # the same size
        assert artifacts.put_bytes(b"the real weights") == (digest, 16)
        assert artifacts.read_bytes(digest) == b"the real weights"
        self.overwrite_blob(artifacts, digest, b"short")
        assert artifacts.put_bytes(b"the real weights") == (digest, 16)
        assert artifacts.read_bytes(digest) == b"the real weights"

    def test_missing_blob_is_not_found(self, artifacts: ArtifactStore) -> None:
        digest = digest_of(b"never stored")
        assert not artifacts.exists(digest)
        with pytest.raises(NotFoundError, match=digest):
            artifacts.read_bytes(digest, name="model.bin")
        stored, _ = artifacts.put_bytes(b"stored")
        self.delete_blob(artifacts, stored)
        assert not artifacts.exists(stored)
        with pytest.raises(NotFoundError, match="'model.bin'"):
            artifacts.read_bytes(stored, name="model.bin")

    @pytest.mark.parametrize(
        "digest",
        [
            "",
            "abc",
            "sha256:",
            "sha256:" + "a" * 63,
            "sha256:" + "a" * 65,
            "sha256:" + "A" * 64,
            "sha256:" + "g" * 64,
            "md5:" + "a" * 64,
            "a" * 64,
            "sha256:../../" + "a" * 58,
        ],
    )
    def test_bad_digest_strings(self, artifacts: ArtifactStore, digest: str) -> None:
        with pytest.raises(InvalidArgumentError, match="sha256:<64 hex digits>"):
            artifacts.exists(digest)
        with pytest.raises(InvalidArgumentError):
            artifacts.read_bytes(digest)

    # -- trees ------------------------------------------------------------------------------------
    def test_tree_round_trip(self, artifacts: ArtifactStore, tmp_path: Path) -> None:
        root = tmp_path / "model"
        (root / "sub" / "deeper").mkdir(parents=True)
        files = {
            "model.json": b'{"a": 1}',
            "sub/weights.bin": bytes(range(200)),
            "sub/deeper/empty": b"",
            "sub/copy.json": b'{"a": 1}',
        }
        for rel, data in files.items():
            (root / rel).write_bytes(data)
        manifest = artifacts.put_tree(root)
        assert artifacts.read_manifest(manifest) == {
            rel: (digest_of(data), len(data)) for rel, data in files.items()
        }
        assert artifacts.put_tree(root) == manifest  # the same tree has the same manifest
        out = artifacts.get_tree(manifest, tmp_path / "out")
        got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert got == files

    def test_tree_with_a_corrupted_file(self, artifacts: ArtifactStore, tmp_path: Path) -> None:
        root = tmp_path / "model"
        root.mkdir()
        (root / "weights.bin").write_bytes(b"weights")
        manifest = artifacts.put_tree(root)
        self.overwrite_blob(artifacts, digest_of(b"weights"), b"tampered")
        with pytest.raises(ArtifactCorruptedError, match="clf/1/weights.bin"):
            artifacts.get_tree(manifest, tmp_path / "out", name="clf/1")

    # -- through the store --------------------------------------------------------------------------
    def test_store_download_refuses_a_corrupted_blob(self, store: Store, tmp_path: Path) -> None:
        store.get_or_create_project("proj")
        run = store.create_run("proj", "r").id
        folder = tmp_path / "outputs"
        folder.mkdir()
        (folder / "good.txt").write_bytes(b"fine")
        (folder / "model.bin").write_bytes(b"the real weights")
        [_, logged] = store.log_artifact(run, folder, "outputs")
        assert logged.path == "outputs/model.bin"
        self.overwrite_blob(store.artifacts, logged.digest, b"the evil weights")

        with pytest.raises(ArtifactCorruptedError) as info:
            store.download_artifacts(run, "outputs/model.bin", tmp_path / "dl")
        assert "outputs/model.bin" in str(info.value)
        assert not (tmp_path / "dl" / "model.bin").exists()
        with pytest.raises(ArtifactCorruptedError, match="outputs/model.bin"):
            store.download_artifacts(run, "outputs", tmp_path / "dl2")
        # Untouched artifacts still download.
        out = store.download_artifacts(run, "outputs/good.txt", tmp_path / "dl3")
        assert out.read_bytes() == b"fine"

    def test_store_reuses_blobs_across_runs(self, store: Store, tmp_path: Path) -> None:
        store.get_or_create_project("proj")
        path = tmp_path / "data.csv"
        path.write_bytes(b"a,b\n1,2\n")
        for name in ("r1", "r2"):
            run = store.create_run("proj", name).id
            store.log_artifact(run, path)
        assert self.blob_count(store.artifacts) == 1
