"""The content-addressed artifact store: round trips, deduplication and refusing corrupt bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopwise.errors import ArtifactCorruptedError, InvalidArgumentError, NotFoundError
from loopwise.store import Store, open_store
from loopwise.store.artifacts import LocalArtifactStore


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(root: Path, digest: str) -> Path:
    hex_part = digest.removeprefix("sha256:")
    return root / "sha256" / hex_part[:2] / hex_part[2:]


def _blobs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "sha256").rglob("*") if p.is_file())


@pytest.fixture
def artifacts(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def test_constructor_does_no_io(tmp_path: Path) -> None:
    LocalArtifactStore(tmp_path / "artifacts")
    assert not (tmp_path / "artifacts").exists()


def test_put_and_get_round_trip(artifacts: LocalArtifactStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # over one read chunk
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    digest, size = artifacts.put_file(source)
    assert (digest, size) == (_digest(data), len(data))
    assert artifacts.exists(digest)
    assert artifacts.read_bytes(digest) == data
    out = artifacts.get_file(digest, tmp_path / "out" / "deep" / "copy.bin")
    assert out.read_bytes() == data


def test_put_bytes_and_empty_blob(artifacts: LocalArtifactStore) -> None:
    assert artifacts.put_bytes(b"") == (_digest(b""), 0)
    assert artifacts.read_bytes(_digest(b"")) == b""
    digest, _ = artifacts.put_bytes(b"hello")
    assert artifacts.read_bytes(digest) == b"hello"


def test_same_bytes_are_stored_once(artifacts: LocalArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"same")
    (tmp_path / "b.txt").write_bytes(b"same")
    first = artifacts.put_file(tmp_path / "a.txt")
    second = artifacts.put_file(tmp_path / "b.txt")
    third = artifacts.put_bytes(b"same")
    assert first == second == third
    assert _blobs(artifacts.root) == [_blob(artifacts.root, first[0])]
    artifacts.put_bytes(b"different")
    assert len(_blobs(artifacts.root)) == 2


def test_no_temporary_files_are_left(artifacts: LocalArtifactStore) -> None:
    artifacts.put_bytes(b"x")
    names = [p.name for p in (artifacts.root / "sha256").rglob("*") if p.is_file()]
    assert not any(name.startswith(".incoming") for name in names)


def test_corrupted_blob_is_refused_by_name(artifacts: LocalArtifactStore, tmp_path: Path) -> None:
    digest, _ = artifacts.put_bytes(b"the real weights")
    _blob(artifacts.root, digest).write_bytes(b"the evil weights")
    with pytest.raises(ArtifactCorruptedError) as info:
        artifacts.read_bytes(digest, name="model/weights.bin")
    message = str(info.value)
    assert "'model/weights.bin'" in message
    assert digest in message
    assert _digest(b"the evil weights") in message
    dest = tmp_path / "out" / "weights.bin"
    with pytest.raises(ArtifactCorruptedError):
        artifacts.get_file(digest, dest, name="model/weights.bin")
    assert not dest.exists()  # corrupt bytes are never handed out


def test_truncated_blob_is_refused(artifacts: LocalArtifactStore) -> None:
    digest, _ = artifacts.put_bytes(b"0123456789")
    _blob(artifacts.root, digest).write_bytes(b"01234")
    with pytest.raises(ArtifactCorruptedError):
        artifacts.open_verified(digest)


def test_logging_again_repairs_a_corrupted_blob(artifacts: LocalArtifactStore) -> None:
    digest, _ = artifacts.put_bytes(b"the real weights")
    _blob(artifacts.root, digest).write_bytes(b"the evil weights")
    assert artifacts.put_bytes(b"the real weights") == (digest, 16)
    assert artifacts.read_bytes(digest) == b"the real weights"


def test_missing_blob_is_not_found(artifacts: LocalArtifactStore) -> None:
    digest = _digest(b"never stored")
    assert not artifacts.exists(digest)
    with pytest.raises(NotFoundError, match=digest):
        artifacts.read_bytes(digest, name="model.bin")
    stored, _ = artifacts.put_bytes(b"stored")
    _blob(artifacts.root, stored).unlink()
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
def test_bad_digest_strings(artifacts: LocalArtifactStore, digest: str) -> None:
    with pytest.raises(InvalidArgumentError, match="sha256:<64 hex digits>"):
        artifacts.exists(digest)
    with pytest.raises(InvalidArgumentError):
        artifacts.read_bytes(digest)


def test_tree_round_trip(artifacts: LocalArtifactStore, tmp_path: Path) -> None:
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
        rel: (_digest(data), len(data)) for rel, data in files.items()
    }
    assert artifacts.put_tree(root) == manifest  # the same tree has the same manifest
    out = artifacts.get_tree(manifest, tmp_path / "out")
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == files


def test_tree_with_a_corrupted_file(artifacts: LocalArtifactStore, tmp_path: Path) -> None:
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.bin").write_bytes(b"weights")
    manifest = artifacts.put_tree(root)
    _blob(artifacts.root, _digest(b"weights")).write_bytes(b"tampered")
    with pytest.raises(ArtifactCorruptedError, match="clf/1/weights.bin"):
        artifacts.get_tree(manifest, tmp_path / "out", name="clf/1")


# -- through the store ---------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "store")
    yield store
    store.close()


def test_store_download_refuses_a_corrupted_blob(store: Store, tmp_path: Path) -> None:
    store.get_or_create_project("proj")
    run = store.create_run("proj", "r").id
    folder = tmp_path / "outputs"
    folder.mkdir()
    (folder / "good.txt").write_bytes(b"fine")
    (folder / "model.bin").write_bytes(b"the real weights")
    [_, logged] = store.log_artifact(run, folder, "outputs")
    assert logged.path == "outputs/model.bin"
    _blob(tmp_path / "store" / "artifacts", logged.digest).write_bytes(b"the evil weights")

    with pytest.raises(ArtifactCorruptedError) as info:
        store.download_artifacts(run, "outputs/model.bin", tmp_path / "dl")
    assert "outputs/model.bin" in str(info.value)
    assert not (tmp_path / "dl" / "model.bin").exists()
    with pytest.raises(ArtifactCorruptedError, match="outputs/model.bin"):
        store.download_artifacts(run, "outputs", tmp_path / "dl2")
    # Untouched artifacts still download.
    out = store.download_artifacts(run, "outputs/good.txt", tmp_path / "dl3")
    assert out.read_bytes() == b"fine"


def test_store_reuses_blobs_across_runs(store: Store, tmp_path: Path) -> None:
    store.get_or_create_project("proj")
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n")
    for name in ("r1", "r2"):
        run = store.create_run("proj", name).id
        store.log_artifact(run, path)
    assert len(_blobs(tmp_path / "store" / "artifacts")) == 1
