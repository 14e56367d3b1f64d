"""Artifacts in an S3-compatible bucket (AWS S3, MinIO, Ceph, moto), keyed by their sha256.

Uploads carry their SHA-256 so that the server can check the bytes on arrival, and every read
is hashed again on its way to a temporary file, so corrupt bytes never reach a loader. A missing
or corrupted blob's message names its place inside the store (``sha256/ab/…``), as the local
store's does: it reaches API callers. The object's bucket, key and endpoint go to the log.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from loopwise.errors import (
    ArtifactCorruptedError,
    InvalidArgumentError,
    LoopwiseError,
    NotFoundError,
    StoreError,
    require_extra,
)
from loopwise.store.artifacts import CHUNK_BYTES, PREFIX, ArtifactStore, check_digest, sha256_file

__all__ = ["S3ArtifactStore"]

log = logging.getLogger(__name__)

MIB = 1024 * 1024
CREDENTIALS_HINT = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
ENDPOINT_HINT = "AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL; unset for AWS itself)"
# Metadata written with every blob: an object that lacks it (or disagrees) was not written by
# put_file and is uploaded again rather than trusted by its size alone.
SHA256_METADATA = "sha256"
MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
DENIED_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "403"}
)


class S3ArtifactStore(ArtifactStore):
    """Blobs under ``s3://<bucket>/<prefix>/sha256/ab/cdef…``.

    Endpoint, region and credentials come from boto3's usual settings (``AWS_ENDPOINT_URL_S3``,
    ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, …) unless ``endpoint_url`` is given. Files larger
    than ``part_size_bytes`` are uploaded in parts of that size, streamed from disk.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
        max_attempts: int | None = None,
        part_size_bytes: int = 16 * MIB,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_attempts = max_attempts
        self.part_size_bytes = part_size_bytes
        self._client_lock = threading.Lock()
        self._s3: Any = None  # the boto3 client, made on first use
        self._bucket_seen = False  # set once the bucket is known to exist

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3ArtifactStore:
        """A store for ``s3://bucket/optional/prefix``; ``options`` go to the constructor."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not url.startswith("s3://") or not bucket:
            raise InvalidArgumentError(
                f"Expected an S3 URL of the form s3://bucket/optional/prefix, got {url!r}.",
                parameter="LOOPWISE_ARTIFACTS",
            )
        return cls(bucket, prefix.strip("/"), **options)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, digest: str) -> str:
        key = _place(digest)
        return f"{self.prefix.strip('/')}/{key}" if self.prefix.strip("/") else key

    def _client(self) -> Any:
        # Made once, under a lock: boto3 sessions are not thread-safe, the client they make is.
        if self._s3 is None:
            with self._client_lock:
                if self._s3 is None:
                    boto3 = require_extra("boto3", "s3")
                    config = require_extra("botocore.config", "s3")
                    retries = {"total_max_attempts": self.max_attempts} if self.max_attempts else {}
                    with self._errors("connecting to"):
                        self._s3 = boto3.session.Session().client(
                            "s3",
                            endpoint_url=self.endpoint_url,
                            config=config.Config(
                                connect_timeout=self.connect_timeout_s,
                                read_timeout=self.read_timeout_s,
                                # Reads are hashed with SHA-256 here anyway; a second check by
                                # botocore would cost time and raise a vaguer error.
                                response_checksum_validation="when_required",
                                **({"retries": retries} if retries else {}),
                            ),
                        )
        return self._s3

    def _endpoint(self) -> str:
        s3 = self._s3
        return str(s3.meta.endpoint_url) if s3 is not None else str(self.endpoint_url or "AWS")

    # -- the ArtifactStore interface -------------------------------------------------------------
    def put_file(self, path: Path) -> tuple[str, int]:
        before = path.stat()
        digest = sha256_file(path)
        size = before.st_size
        key = self._key(digest)
        if self._holds(key, digest, size):
            return digest, size
        checksum = _b64_sha256(digest)
        metadata = {SHA256_METADATA: digest.removeprefix(PREFIX)}
        s3 = self._client()
        with self._errors("uploading to", key):
            if size <= self.part_size_bytes:
                # One request, and the server refuses it unless the bytes hash to ``digest``.
                with path.open("rb") as body:
                    s3.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=body,
                        ChecksumAlgorithm="SHA256",
                        ChecksumSHA256=checksum,
                        Metadata=metadata,
                    )
            else:
                # Parts read from disk as they go; the server checks each part's SHA-256.
                transfer = require_extra("boto3.s3.transfer", "s3")
                config = transfer.TransferConfig(
                    multipart_threshold=self.part_size_bytes,
                    multipart_chunksize=self.part_size_bytes,
                )
                with transfer.create_transfer_manager(s3, config) as manager:
                    extra = {"ChecksumAlgorithm": "SHA256", "Metadata": metadata}
                    manager.upload(str(path), self.bucket, key, extra_args=extra).result()
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            self._check_after_change(path, digest, key)
        return digest, size

    def exists(self, digest: str) -> bool:
        return self._head(self._key(digest)) is not None

    def open_verified(self, digest: str, name: str = "") -> BinaryIO:
        key = self._key(digest)
        label = f"{name!r} ({digest})" if name else digest
        s3 = self._client()
        with self._errors("downloading", key, missing=(label, digest)):
            response = s3.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"]
            # On disk, not in memory: artifacts can be larger than RAM. Deleted when closed.
            f = tempfile.TemporaryFile()  # noqa: SIM115 (handed to the caller, who closes it)
            try:
                digest_now = hashlib.sha256()
                while chunk := body.read(CHUNK_BYTES):
                    digest_now.update(chunk)
                    f.write(chunk)
            except BaseException:
                f.close()
                raise
            finally:
                body.close()
        actual = PREFIX + digest_now.hexdigest()
        if actual != digest:
            f.close()
            log.error(
                "Artifact %s is corrupted: s3://%s/%s at %s hashes to %s.",
                label, self.bucket, key, self._endpoint(), actual,
            )  # fmt: skip
            place = _place(digest)
            raise ArtifactCorruptedError(
                f"Artifact {label} is corrupted: its bytes hash to {actual}, expected {digest}. "
                f"It was not loaded. Restore {place} in the store's artifact bucket from a backup "
                "or an older object version (the server's log names the object), or delete that "
                "object and log the artifact again.",
                digest=digest,
                actual=actual,
                path=place,
            )
        f.seek(0)
        return f

    # -- setup -------------------------------------------------------------------------------------
    def create_bucket(self) -> None:
        """Create the bucket (for tests and first-time setup); an existing own bucket is fine."""
        s3 = self._client()
        region = s3.meta.region_name
        options: dict[str, Any] = {}
        if region and region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        client_error = require_extra("botocore.exceptions", "s3").ClientError
        with self._errors("creating the bucket"):
            try:
                s3.create_bucket(Bucket=self.bucket, **options)
            except client_error as exc:
                if _code(exc) != "BucketAlreadyOwnedByYou":
                    raise

    # -- helpers -----------------------------------------------------------------------------------
    def _head(self, key: str) -> dict[str, Any] | None:
        s3 = self._client()
        client_error = require_extra("botocore.exceptions", "s3").ClientError
        with self._errors("looking up", key):
            try:
                head: dict[str, Any] = s3.head_object(
                    Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"
                )
            except client_error as exc:
                if _code(exc) not in MISSING_CODES:
                    raise
                # A HEAD's 404 has no body to tell a missing key from a missing bucket.
                if not self._bucket_seen:
                    try:
                        s3.head_bucket(Bucket=self.bucket)
                    except client_error as bucket_exc:
                        if _code(bucket_exc) in MISSING_CODES | {"NoSuchBucket"}:
                            raise self._missing_bucket() from bucket_exc
                        raise
                    self._bucket_seen = True
                return None
        return head

    def _holds(self, key: str, digest: str, size: int) -> bool:
        """Whether the object at ``key`` already has these bytes, as far as a HEAD can tell."""
        head = self._head(key)
        if head is None or head.get("ContentLength") != size:
            return False
        checksum = head.get("ChecksumSHA256")
        checksum_type = head.get("ChecksumType")
        whole_object = checksum_type == "FULL_OBJECT" or (
            checksum_type is None and size <= self.part_size_bytes
        )
        if checksum and whole_object and "-" not in checksum:
            return bool(checksum == _b64_sha256(digest))
        metadata = head.get("Metadata") or {}
        return bool(metadata.get(SHA256_METADATA) == digest.removeprefix(PREFIX))

    def _check_after_change(self, path: Path, digest: str, key: str) -> None:
        # The file changed while it was read: what was uploaded may not hash to ``digest``.
        try:
            self.open_verified(digest).close()
        except ArtifactCorruptedError:
            with self._errors("deleting", key):
                self._client().delete_object(Bucket=self.bucket, Key=key)
            raise StoreError(
                f"{path} changed while it was being uploaded to s3://{self.bucket}/{key}, so the "
                "upload was discarded. Log it again once nothing is writing to it.",
                path=str(path),
            ) from None

    def _missing_bucket(self) -> StoreError:
        endpoint = self._endpoint()
        return StoreError(
            f"The bucket {self.bucket!r} does not exist at {endpoint}. Loopwise does not create "
            f"buckets: create it (e.g. `aws s3 mb s3://{self.bucket}`, adding --endpoint-url for "
            "MinIO and other S3-compatible servers), or fix the bucket name in "
            f"LOOPWISE_ARTIFACTS or the endpoint in {ENDPOINT_HINT}.",
            bucket=self.bucket,
            endpoint=endpoint,
        )

    @contextmanager
    def _errors(
        self, action: str, key: str = "", missing: tuple[str, str] | None = None
    ) -> Iterator[None]:
        """Turn boto errors into Loopwise errors that name the bucket and the settings to check.

        ``missing``: the artifact's label and digest, when a missing object is a missing
        artifact (a ``NotFoundError`` that names its place inside the store, not the bucket).
        """
        try:
            yield
        except LoopwiseError:
            raise
        except Exception as exc:
            translated = self._translate(exc, action, key, missing)
            if translated is None:
                raise
            raise translated from exc

    def _translate(
        self, exc: Exception, action: str, key: str, missing: tuple[str, str] | None
    ) -> LoopwiseError | None:
        errors = require_extra("botocore.exceptions", "s3")
        where = f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"
        endpoint = self._endpoint()
        details = {"bucket": self.bucket, "key": key, "endpoint": endpoint}
        if isinstance(exc, (errors.NoCredentialsError, errors.PartialCredentialsError)):
            return StoreError(
                f"No usable AWS credentials for {where}: {exc}. Set {CREDENTIALS_HINT}.", **details
            )
        if isinstance(exc, (errors.ConnectionError, errors.HTTPClientError)):
            return StoreError(
                f"Could not reach the S3 endpoint {endpoint} while {action} {where}: {exc}. "
                f"Check that the server is running and that {ENDPOINT_HINT} names it.",
                **details,
            )
        if isinstance(exc, errors.ClientError):
            code = _code(exc)
            message = exc.response.get("Error", {}).get("Message") or code
            if code == "NoSuchBucket":
                return self._missing_bucket()
            if code in MISSING_CODES and missing is not None:
                label, digest = missing
                log.warning("Artifact %s is missing: no object %s at %s.", label, where, endpoint)
                place = _place(digest)
                return NotFoundError(
                    f"Artifact {label} is missing from the store's artifact bucket ({place}). It "
                    "may have been deleted or expired by a lifecycle rule; restore it from a "
                    "backup or an older object version (the server's log names the object), or "
                    "log the artifact again.",
                    digest=digest,
                    path=place,
                )
            if code in DENIED_CODES:
                return StoreError(
                    f"Access was refused while {action} {where} at {endpoint} ({code}: {message}). "
                    f"Check {CREDENTIALS_HINT} and that they allow s3:GetObject, s3:PutObject "
                    "and s3:ListBucket on the bucket.",
                    code_from_s3=code,
                    **details,
                )
            if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
                return StoreError(
                    f"The server refused the upload to {where}: the bytes it received do not "
                    f"hash to what was sent ({code}). The file may have changed while it was "
                    "read; log it again once nothing is writing to it.",
                    code_from_s3=code,
                    **details,
                )
            return StoreError(
                f"S3 refused {action} {where} at {endpoint} ({code}: {message}).",
                code_from_s3=code,
                **details,
            )
        if isinstance(exc, errors.BotoCoreError):
            return StoreError(f"S3 failed while {action} {where} at {endpoint}: {exc}", **details)
        return None


def _place(digest: str) -> str:
    """Where a blob is inside the artifact store (``sha256/ab/cdef…``), bucket and prefix aside."""
    hex_part = check_digest(digest)
    return f"sha256/{hex_part[:2]}/{hex_part[2:]}"


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _b64_sha256(digest: str) -> str:
    """S3's spelling of a SHA-256 checksum: base64 of the raw 32 bytes."""
    return base64.b64encode(bytes.fromhex(digest.removeprefix(PREFIX))).decode()
