"""The remote backend's artifact store: blobs on the control plane, streamed both ways.

Uploads stream from disk; a download that breaks off resumes where it stopped, and its bytes are
handed over only if they hash to the digest.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx

from loopwise.errors import ArtifactCorruptedError, StoreError
from loopwise.store.artifacts import CHUNK_BYTES, PREFIX, ArtifactStore, check_digest, sha256_file
from loopwise.store.remote.client import API_PREFIX, _Client, segment

__all__ = ["RemoteArtifactStore"]

DOWNLOAD_ATTEMPTS = 5
UPLOAD_ATTEMPTS = 3


class RemoteArtifactStore(ArtifactStore):
    """Blobs on the control plane: uploads stream from disk, downloads stream to disk.

    A download that breaks off resumes with a ``Range`` request where it stopped; the bytes are
    hashed on arrival and handed over only if they match the digest.
    """

    def __init__(self, client: _Client) -> None:
        self.client = client

    def exists(self, digest: str) -> bool:
        check_digest(digest)
        response = self.client.http.head(f"{API_PREFIX}/blobs/{segment(digest)}")
        if response.status_code == 404:
            return False
        self.client.result(response)
        return True

    def put_file(self, path: Path) -> tuple[str, int]:
        digest = sha256_file(path)
        size = path.stat().st_size
        if self.exists(digest):
            return digest, size
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                with path.open("rb") as f:
                    response = self.client.http.put(
                        f"{API_PREFIX}/blobs/{segment(digest)}",
                        content=_read_chunks(f),
                        headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Length": str(size),
                        },
                    )
                body = self.client.result(response)
                return str(body["digest"]), int(body["size_bytes"])
            except httpx.TransportError as exc:
                if attempt == UPLOAD_ATTEMPTS:
                    raise StoreError(
                        f"Uploading {path} ({size} bytes) to {self.client.url} failed "
                        f"{UPLOAD_ATTEMPTS} times ({exc}); nothing was stored. Try again.",
                        path=str(path),
                    ) from exc
        raise AssertionError("unreachable")

    def open_verified(self, digest: str, name: str = "") -> BinaryIO:
        check_digest(digest)
        label = f"{name!r} ({digest})" if name else digest
        out = tempfile.TemporaryFile()  # noqa: SIM115 (handed to the caller, who closes it)
        try:
            actual = self._download(digest, out)
        except BaseException:
            out.close()
            raise
        if actual != digest:
            out.close()
            raise ArtifactCorruptedError(
                f"Artifact {label} arrived corrupted: its bytes hash to {actual}, expected "
                f"{digest}. It was not loaded; try again.",
                digest=digest,
                actual=actual,
            )
        out.seek(0)
        return out

    def _download(self, digest: str, out: BinaryIO) -> str:
        """Stream the blob into ``out``, resuming after dropped connections; its digest."""
        hasher = hashlib.sha256()
        received = 0
        url = f"{API_PREFIX}/blobs/{segment(digest)}"
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            headers = {"Range": f"bytes={received}-"} if received else {}
            try:
                with self.client.http.stream("GET", url, headers=headers) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise self.client.error(response)
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        hasher.update(chunk)
                        received += len(chunk)
                return PREFIX + hasher.hexdigest()
            except httpx.TransportError as exc:
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise StoreError(
                        f"Downloading {digest} from {self.client.url} broke off {attempt} times "
                        f"(last: {exc}) after {received} bytes. Try again.",
                        digest=digest,
                    ) from exc
        raise AssertionError("unreachable")


def _read_chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(CHUNK_BYTES):
        yield chunk
