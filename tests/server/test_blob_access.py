"""A project-scoped token reaches its own project's bytes and never another project's."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import loopwise as lw
from loopwise.errors import PermissionDeniedError
from loopwise.server import create_app
from loopwise.store import ArtifactFile, Store, open_store
from loopwise.store.remote import RemoteStore

from .harness import AppTransport

SECRET_BYTES = b"project B's training labels"
SECRET_DIGEST = "sha256:" + hashlib.sha256(SECRET_BYTES).hexdigest()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("A")
    store.get_or_create_project("B")
    run = store.create_run("B", "b-run")
    digest, size = store.artifacts.put_bytes(SECRET_BYTES)
    store.record_artifacts(run.id, [ArtifactFile("labels.csv", digest, size)])
    yield store
    store.close()


def remote_for(store: Store, tmp_path: Path, role: str, project: str | None) -> RemoteStore:
    _, secret = store.create_token(role, project=project)
    transport = AppTransport(create_app(store))
    return RemoteStore("http://t", secret, transport=transport, spool_dir=tmp_path / "sp").open()


def test_knowing_a_digest_does_not_reach_another_projects_bytes(
    backend: Store, tmp_path: Path
) -> None:
    remote = remote_for(backend, tmp_path, "editor", "A")
    try:
        run = remote.create_run("A", "a-run")
        assert not remote.artifacts.exists(SECRET_DIGEST)  # B's blob looks absent to A
        with pytest.raises(PermissionDeniedError):
            remote.artifacts.read_bytes(SECRET_DIGEST)
        with pytest.raises(PermissionDeniedError, match="uploaded"):
            remote.record_artifacts(run.id, [ArtifactFile("stolen.csv", SECRET_DIGEST, 27)])
        with pytest.raises(PermissionDeniedError):
            remote.create_dataset_version(
                "A", "stolen", content_hash="x", artifact_digest=SECRET_DIGEST, num_rows=1,
                schema={},
            )  # fmt: skip
        assert remote.list_artifacts(run.id) == []
        # Having the bytes is what counts: upload them, then they may be referred to.
        path = tmp_path / "labels.csv"
        path.write_bytes(SECRET_BYTES)
        remote.log_artifact(run.id, path)
        assert remote.artifacts.read_bytes(SECRET_DIGEST) == SECRET_BYTES
    finally:
        remote.close()


def test_a_manifest_cannot_smuggle_another_projects_file(backend: Store, tmp_path: Path) -> None:
    remote = remote_for(backend, tmp_path, "editor", "A")
    try:
        files = {"model.bin": {"digest": SECRET_DIGEST, "size_bytes": 27}}
        manifest = json.dumps({"files": files}).encode()
        manifest_digest, _ = remote.artifacts.put_bytes(manifest)
        with pytest.raises(PermissionDeniedError):
            remote.create_model_version("A", "m", flavour="python", artifact_digest=manifest_digest)
    finally:
        remote.close()


def test_a_scoped_editor_trains_and_loads_a_model_through_the_server(
    backend: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    _, secret = backend.create_token("editor", project="A")
    transport = AppTransport(create_app(backend))
    remote = RemoteStore("http://t", secret, transport=transport, spool_dir=tmp_path / "sp")
    monkeypatch.setattr("loopwise.context.open_store", lambda uri: remote.open())
    lw.init(project="A", uri="http://t")
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    data = lw.log_dataset(frame, name="toy")
    with lw.start_run(name="lr", capture_env=False) as run:
        run.use(data)
        model = LogisticRegression().fit(frame[["x"]], frame["y"])
        version = run.log_model(model, name="toy", input_example=frame[["x"]].head(2))
    assert lw.load_dataset("toy").equals(frame)
    loaded = lw.models.load(f"toy/{version.version}")
    assert list(loaded.predict(pd.DataFrame({"x": [0.0, 3.0]}))) == [0, 1]
    lw.shutdown()


def test_a_manifest_read_too_early_is_not_remembered_by_any_replica(
    backend: Store, tmp_path: Path
) -> None:
    """Two servers on one store: naming a manifest before it exists must not make the first one
    forget what the manifest lists, nor let the second one serve what it lists."""
    files = {"model.bin": {"digest": SECRET_DIGEST, "size_bytes": len(SECRET_BYTES)}}
    manifest = json.dumps({"files": files}).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    _, secret = backend.create_token("editor", project="A")
    replica = open_store(tmp_path / "store")  # a second server process's view of the store
    first = RemoteStore(
        "http://t", secret, transport=AppTransport(create_app(backend)), spool_dir=tmp_path / "1"
    ).open()
    second = RemoteStore(
        "http://t", secret, transport=AppTransport(create_app(replica)), spool_dir=tmp_path / "2"
    ).open()
    try:
        with pytest.raises(PermissionDeniedError):  # the manifest is not there yet
            first.create_model_version("A", "m", flavour="onnx", artifact_digest=manifest_digest)
        assert first.artifacts.put_bytes(manifest)[0] == manifest_digest
        with pytest.raises(PermissionDeniedError):  # it lists B's file, which A may not name
            first.create_model_version("A", "m", flavour="onnx", artifact_digest=manifest_digest)
        assert first.list_models("A") == []
        for remote in (first, second):
            with pytest.raises(PermissionDeniedError):
                remote.artifacts.read_bytes(SECRET_DIGEST)
    finally:
        first.close()
        second.close()
        replica.close()
