"""Artifacts on S3: the artifact and store conformance suites against a real S3 emulator.

moto's standalone server runs in a subprocess on a loopback port and boto3 reaches it over HTTP
through ``AWS_ENDPOINT_URL_S3``, exactly as it would reach MinIO or AWS. Credentials are fake
and AWS config files are hidden, so no real AWS account is ever contacted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from loopwise.errors import (
    ArtifactCorruptedError,
    InvalidArgumentError,
    LoopwiseError,
    MissingDependencyError,
    NotFoundError,
    StoreError,
)
from loopwise.store import ArtifactStore, Store, open_store
from loopwise.store.s3 import S3ArtifactStore
from loopwise.store.sql import SqlStore

from .artifact_conformance import ArtifactStoreConformance, digest_of
from .conformance import StoreConformance
from .prediction_conformance import PredictionLogConformance

MIB = 1024 * 1024
PREFIX = "team/artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """moto's S3 emulator as a separate process on a loopback port."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.endpoint = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        for _ in range(3):  # another process may take the free port before the server binds it
            port = _free_port()
            with self.log.open("ab") as log:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self._proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    time.sleep(0.05)
                    continue
                self.endpoint = f"http://127.0.0.1:{port}"
                return self
            self.stop()
        raise RuntimeError(f"moto's server did not start; see {self.log}:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        self._proc = None

    def enforce_auth(self, enforce: bool) -> None:
        """Check signatures and keys from now on (moto accepts anything by default)."""
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=b"0" if enforce else b"inf",
            headers={"Content-Type": "text/plain"},  # not a form: moto reads the raw body
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "server.log").start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, the emulator as the endpoint, and no AWS config from $HOME."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.endpoint)
    monkeypatch.setenv("LOOPWISE_SPOOL", str(tmp_path / "spool"))


@pytest.fixture(scope="session")
def raw_s3(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A plain boto3 client, to set up buckets and reach objects behind the store's back."""
    hidden = tmp_path_factory.mktemp("no-aws-config")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_CONFIG_FILE", str(hidden / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(hidden / "credentials"))
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        return session.client("s3", endpoint_url=moto.endpoint)


@pytest.fixture
def bucket(aws_env: None, raw_s3: Any) -> Iterator[str]:
    """A fresh, empty bucket; emptied and removed afterwards."""
    name = f"lw-{uuid.uuid4().hex[:20]}"
    raw_s3.create_bucket(Bucket=name)
    yield name
    for page in raw_s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            raw_s3.delete_objects(Bucket=name, Delete={"Objects": keys})
    raw_s3.delete_bucket(Bucket=name)


def _s3_of(artifacts: ArtifactStore) -> S3ArtifactStore:
    assert isinstance(artifacts, S3ArtifactStore)
    return artifacts


def _key(artifacts: ArtifactStore, digest: str) -> str:
    hex_part = digest.removeprefix("sha256:")
    prefix = _s3_of(artifacts).prefix
    key = f"sha256/{hex_part[:2]}/{hex_part[2:]}"
    return f"{prefix}/{key}" if prefix else key


def _keys(artifacts: S3ArtifactStore) -> list[str]:
    # The store's own client, used behind its back: the same endpoint and credentials.
    response = artifacts._client().list_objects_v2(Bucket=artifacts.bucket)
    return sorted(obj["Key"] for obj in response.get("Contents", []))


def _open_sqlite_with_s3(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("LOOPWISE_ARTIFACTS", f"s3://{bucket}/{PREFIX}")
    return open_store(f"sqlite:///{tmp_path / 'loopwise.db'}")


class TestS3Artifacts(ArtifactStoreConformance):
    @pytest.fixture
    def artifacts(self, bucket: str) -> S3ArtifactStore:
        return S3ArtifactStore(bucket, PREFIX)

    @pytest.fixture
    def store(
        self, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[Store]:
        store = _open_sqlite_with_s3(bucket, tmp_path, monkeypatch)
        yield store
        store.close()

    def overwrite_blob(self, artifacts: ArtifactStore, digest: str, data: bytes) -> None:
        # As another tool would: a plain PUT, without the store's checksum or metadata.
        s3 = _s3_of(artifacts)
        s3._client().put_object(Bucket=s3.bucket, Key=_key(s3, digest), Body=data)

    def delete_blob(self, artifacts: ArtifactStore, digest: str) -> None:
        s3 = _s3_of(artifacts)
        s3._client().delete_object(Bucket=s3.bucket, Key=_key(s3, digest))

    def blob_count(self, artifacts: ArtifactStore) -> int:
        return len(_keys(_s3_of(artifacts)))


class TestSqliteWithS3Artifacts(StoreConformance, PredictionLogConformance):
    """The whole store suite with metadata in SQLite and artifacts in the emulator."""

    @pytest.fixture
    def store(
        self, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[Store]:
        store = _open_sqlite_with_s3(bucket, tmp_path, monkeypatch)
        assert isinstance(store.artifacts, S3ArtifactStore)
        yield store
        store.close()


# -- configuration ---------------------------------------------------------------------------------
def test_constructor_does_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # not even an import
    artifacts = S3ArtifactStore("bkt", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(MissingDependencyError, match=r"loopwise\[s3\]"):
        artifacts.exists(digest_of(b"x"))


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://bkt", "bkt", ""), ("s3://bkt/", "bkt", ""), ("s3://bkt/a/b/", "bkt", "a/b")],
)
def test_from_url(url: str, bucket: str, prefix: str) -> None:
    artifacts = S3ArtifactStore.from_url(url)
    assert (artifacts.bucket, artifacts.prefix) == (bucket, prefix)


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "bkt/prefix"])
def test_bad_url_is_refused(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgumentError, match="s3://bucket/optional/prefix"):
        S3ArtifactStore.from_url(url)
    if url.startswith("s3://"):
        monkeypatch.setenv("LOOPWISE_ARTIFACTS", url)
        with pytest.raises(InvalidArgumentError, match="LOOPWISE_ARTIFACTS|s3://bucket"):
            open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_blobs_are_keyed_by_digest_under_the_prefix(bucket: str) -> None:
    artifacts = S3ArtifactStore(bucket, PREFIX)
    digest, _ = artifacts.put_bytes(b"x")
    hex_part = digest.removeprefix("sha256:")
    assert _keys(artifacts) == [f"{PREFIX}/sha256/{hex_part[:2]}/{hex_part[2:]}"]
    S3ArtifactStore(bucket).put_bytes(b"y")
    assert f"sha256/{digest_of(b'y')[7:9]}/{digest_of(b'y')[9:]}" in _keys(artifacts)


def test_endpoint_comes_from_aws_endpoint_url_s3(moto: MotoServer, bucket: str) -> None:
    artifacts = S3ArtifactStore(bucket)  # boto3 reads the variable itself
    digest, _ = artifacts.put_bytes(b"via env")
    assert artifacts.read_bytes(digest) == b"via env"
    assert artifacts._client().meta.endpoint_url == moto.endpoint


def test_endpoint_comes_from_aws_endpoint_url(
    moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    artifacts = S3ArtifactStore(bucket)
    assert artifacts.read_bytes(artifacts.put_bytes(b"generic")[0]) == b"generic"


def test_endpoint_argument_wins_over_the_environment(
    moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{_free_port()}")
    artifacts = S3ArtifactStore(bucket, endpoint_url=moto.endpoint)
    assert artifacts.read_bytes(artifacts.put_bytes(b"explicit")[0]) == b"explicit"


def test_spool_is_local_when_artifacts_are_on_s3(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPWISE_ARTIFACTS", f"s3://{bucket}")
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(store, SqlStore)
    assert store.spool_dir == tmp_path / "spool"  # LOOPWISE_SPOOL
    store.close()

    monkeypatch.delenv("LOOPWISE_SPOOL")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dirs = []
    for db in ("a.db", "b.db", "a.db"):
        store = open_store(f"sqlite:///{tmp_path / db}")
        assert isinstance(store, SqlStore)
        dirs.append(store.spool_dir)
        store.close()
    assert dirs[0].parent == tmp_path / "cache" / "loopwise" / "spool"
    assert dirs[0] == dirs[2] != dirs[1]  # one spool per database, shared by its processes


def test_a_local_artifact_folder_keeps_its_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPWISE_ARTIFACTS", str(tmp_path / "artifacts"))
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert isinstance(store, SqlStore)
    assert store.spool_dir == tmp_path / "artifacts" / "spool"
    store.close()


# -- what is verified when -------------------------------------------------------------------------
def test_upload_carries_the_sha256(bucket: str, raw_s3: Any) -> None:
    artifacts = S3ArtifactStore(bucket, PREFIX)
    digest, _ = artifacts.put_bytes(b"checked on arrival")
    head = raw_s3.head_object(Bucket=bucket, Key=_key(artifacts, digest), ChecksumMode="ENABLED")
    raw = hashlib.sha256(b"checked on arrival").digest()
    assert head["ChecksumSHA256"] == base64.b64encode(raw).decode()
    assert head["Metadata"] == {"sha256": digest.removeprefix("sha256:")}


def test_big_files_go_up_in_parts_and_once(bucket: str, raw_s3: Any, tmp_path: Path) -> None:
    artifacts = S3ArtifactStore(bucket, PREFIX, part_size_bytes=5 * MIB)
    data = os.urandom(11 * MIB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    digest, size = artifacts.put_file(path)
    assert (digest, size) == (digest_of(data), len(data))
    head = raw_s3.head_object(Bucket=bucket, Key=_key(artifacts, digest))
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    calls: list[str] = []
    artifacts._client().meta.events.register(
        "before-call.s3", lambda model, **_: calls.append(model.name)
    )
    assert artifacts.put_file(path) == (digest, size)
    assert calls == ["HeadObject"]  # already there: not uploaded again
    with artifacts.open_verified(digest) as f:
        assert f.read() == data


def test_a_file_changed_during_upload_is_not_kept(bucket: str, tmp_path: Path) -> None:
    artifacts = S3ArtifactStore(bucket, PREFIX)
    path = tmp_path / "growing.log"
    path.write_bytes(b"first line\n")

    def append(**_: Any) -> None:
        with path.open("ab") as f:
            f.write(b"second line\n")

    artifacts._client().meta.events.register_first("before-call.s3.PutObject", append)
    with pytest.raises(StoreError, match="changed while it was being uploaded"):
        artifacts.put_file(path)
    assert _keys(artifacts) == []


def test_open_verified_spools_to_an_unnamed_temporary_file(bucket: str) -> None:
    artifacts = S3ArtifactStore(bucket)
    digest, _ = artifacts.put_bytes(b"spooled")
    f = artifacts.open_verified(digest)
    try:
        assert f.read() == b"spooled"
        name = getattr(f, "name", None)
        assert isinstance(name, int) or not Path(str(name)).exists()  # gone once closed
    finally:
        f.close()


def _place(digest: str) -> str:
    """Where a blob is inside the artifact store, whatever its bucket and prefix."""
    hex_part = digest.removeprefix("sha256:")
    return f"sha256/{hex_part[:2]}/{hex_part[2:]}"


def _assert_hidden(error: LoopwiseError, bucket: str, moto: MotoServer) -> None:
    """The error envelope an API caller gets names no endpoint, bucket or prefix."""
    shown = json.dumps(error.to_dict())
    for where in (moto.endpoint, moto.endpoint.split("//")[1], bucket, PREFIX, "s3://"):
        assert where not in shown, f"{where!r} reaches API callers: {shown}"


def test_a_deleted_object_is_not_found_through_the_store(
    bucket: str,
    raw_s3: Any,
    moto: MotoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The message (which reaches API callers) names the blob's place inside the store; the
    server's log names the object and endpoint for its operator."""
    store = _open_sqlite_with_s3(bucket, tmp_path, monkeypatch)
    try:
        store.get_or_create_project("proj")
        run = store.create_run("proj", "r").id
        (tmp_path / "model.bin").write_bytes(b"weights")
        [logged] = store.log_artifact(run, tmp_path / "model.bin")
        key = _key(store.artifacts, logged.digest)
        raw_s3.delete_object(Bucket=bucket, Key=key)
        with (
            caplog.at_level(logging.WARNING, logger="loopwise.store.s3"),
            pytest.raises(NotFoundError) as info,
        ):
            store.download_artifacts(run, "model.bin", tmp_path / "dl")
        assert "model.bin" in info.value.message and _place(logged.digest) in info.value.message
        _assert_hidden(info.value, bucket, moto)
        assert f"s3://{bucket}/{key}" in caplog.text and moto.endpoint in caplog.text
    finally:
        store.close()


def test_corruption_names_the_blobs_place_not_the_bucket(
    bucket: str, raw_s3: Any, moto: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    artifacts = S3ArtifactStore(bucket, PREFIX)
    digest, _ = artifacts.put_bytes(b"good")
    raw_s3.put_object(Bucket=bucket, Key=_key(artifacts, digest), Body=b"evil")
    with (
        caplog.at_level(logging.WARNING, logger="loopwise.store.s3"),
        pytest.raises(ArtifactCorruptedError, match=_place(digest)) as info,
    ):
        artifacts.read_bytes(digest)
    assert info.value.details["path"] == _place(digest)
    _assert_hidden(info.value, bucket, moto)
    assert f"s3://{bucket}/{_key(artifacts, digest)}" in caplog.text
    assert moto.endpoint in caplog.text


# -- clear errors ----------------------------------------------------------------------------------
def test_missing_bucket_says_how_to_create_it(bucket: str) -> None:
    artifacts = S3ArtifactStore(f"{bucket}-missing")
    for attempt in (
        lambda: artifacts.put_bytes(b"x"),
        lambda: artifacts.exists(digest_of(b"x")),
        lambda: artifacts.read_bytes(digest_of(b"x")),
    ):
        with pytest.raises(StoreError, match="does not exist") as info:
            attempt()
        assert not isinstance(info.value, NotFoundError)
        assert f"aws s3 mb s3://{bucket}-missing" in str(info.value)


def test_create_bucket_is_idempotent(bucket: str, raw_s3: Any) -> None:
    artifacts = S3ArtifactStore(f"{bucket}-new")
    artifacts.create_bucket()
    artifacts.create_bucket()
    try:
        assert artifacts.read_bytes(artifacts.put_bytes(b"x")[0]) == b"x"
    finally:
        raw_s3.delete_object(Bucket=f"{bucket}-new", Key=_key(artifacts, digest_of(b"x")))
        raw_s3.delete_bucket(Bucket=f"{bucket}-new")


@pytest.fixture
def auth_enforced(bucket: str, moto: MotoServer) -> Iterator[str]:
    moto.enforce_auth(True)
    try:
        yield bucket
    finally:
        moto.enforce_auth(False)


def test_wrong_credentials_name_the_variables(auth_enforced: str) -> None:
    artifacts = S3ArtifactStore(auth_enforced)
    with pytest.raises(StoreError, match="Access was refused") as info:
        artifacts.put_bytes(b"x")  # a HEAD: its 403 has no body to say more
    assert "403" in str(info.value)
    with pytest.raises(StoreError, match="Access was refused") as info:
        artifacts.read_bytes(digest_of(b"x"))
    message = str(info.value)
    assert "InvalidAccessKeyId" in message
    assert "AWS_ACCESS_KEY_ID" in message and auth_enforced in message


def test_no_credentials_name_the_variables(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        S3ArtifactStore(bucket).put_bytes(b"x")


def test_unreachable_endpoint_fails_fast(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", closed)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = _open_sqlite_with_s3(bucket, tmp_path, monkeypatch)
    try:
        store.get_or_create_project("proj")
        run = store.create_run("proj", "r").id
        (tmp_path / "a.txt").write_bytes(b"a")
        started = time.monotonic()
        with pytest.raises(StoreError) as info:
            store.log_artifact(run, tmp_path / "a.txt")
        assert time.monotonic() - started < 30  # seconds, not minutes of retries
    finally:
        store.close()
    message = str(info.value)
    assert closed in message and "AWS_ENDPOINT_URL_S3" in message and bucket in message

    # The same through the constructor's own retry setting.
    artifacts = S3ArtifactStore(bucket, endpoint_url=closed, max_attempts=2)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    with pytest.raises(StoreError, match="Could not reach the S3 endpoint"):
        artifacts.read_bytes(digest_of(b"a"))
