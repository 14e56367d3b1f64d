"""Content-addressed artifact storage: blobs named by the sha256 of their bytes.

Every read is verified against the digest it was asked for, so a corrupted or swapped file
is reported by name and never handed to a loader.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from loopwise.errors import ArtifactCorruptedError, InvalidArgumentError, NotFoundError

__all__ = [
    "ArtifactStore",
    "LocalArtifactStore",
    "check_digest",
    "clean_artifact_path",
    "sha256_file",
]

CHUNK_BYTES = 1 << 20
PREFIX = "sha256:"
_DRIVE = re.compile(r"^[A-Za-z]:")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return PREFIX + digest.hexdigest()


def clean_artifact_path(path: str) -> str:
    """Normalise a user-given artifact path; refuse absolute paths, ``..`` escapes, drive
    letters and backslashes (which name other places on Windows)."""
    shown = path if len(path) <= 200 else path[:200] + "…"
    if "\\" in path or _DRIVE.match(path):
        raise InvalidArgumentError(
            f"Expected a relative artifact path with '/' between its parts, got {shown!r}: "
            "drive letters (C:) and backslashes are not allowed, since on Windows they lead "
            "outside the run's artifact tree. Write it as e.g. 'models/model.pkl'.",
            artifact_path=shown,
        )
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise InvalidArgumentError(
            f"Expected a relative artifact path inside the run's artifact tree, got {shown!r}. "
            "Remove leading '/' and any '..' parts.",
            artifact_path=shown,
        )
    parts = [p for p in pure.parts if p not in ("", ".")]
    return "/".join(parts)


def check_digest(digest: str) -> str:
    """The hex part of a ``sha256:<hex>`` digest; InvalidArgumentError if malformed."""
    hex_part = digest.removeprefix(PREFIX)
    if (
        not digest.startswith(PREFIX)
        or len(hex_part) != 64
        or not all(c in "0123456789abcdef" for c in hex_part)
    ):
        raise InvalidArgumentError(
            f"Expected a digest of the form 'sha256:<64 hex digits>', got {digest!r}.",
            digest=digest,
        )
    return hex_part


class ArtifactStore(ABC):
    """Blobs by digest, plus manifests that group files into a tree."""

    @abstractmethod
    def put_file(self, path: Path) -> tuple[str, int]:
        """Store a file; returns ``(digest, size_bytes)``. Storing the same bytes twice is free."""

    @abstractmethod
    def exists(self, digest: str) -> bool: ...

    @abstractmethod
    def open_verified(self, digest: str, name: str = "") -> BinaryIO:
        """A readable file whose bytes were checked against ``digest`` (raises if corrupted)."""

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            tmp.write(data)
        try:
            return self.put_file(Path(tmp.name))
        finally:
            os.unlink(tmp.name)

    def read_bytes(self, digest: str, name: str = "") -> bytes:
        with self.open_verified(digest, name) as f:
            return f.read()

    def get_file(self, digest: str, dest: Path, name: str = "") -> Path:
        """Copy a blob to ``dest`` after verifying it."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.open_verified(digest, name) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK_BYTES)
        return dest

    # -- trees (a model's files, a folder artifact) ----------------------------------------------
    def put_tree(self, root: Path) -> str:
        """Store every file under ``root`` and a manifest of them; returns the manifest digest."""
        files: dict[str, dict[str, object]] = {}
        for path in sorted(_walk_files(root)):
            digest, size = self.put_file(path)
            files[path.relative_to(root).as_posix()] = {"digest": digest, "size_bytes": size}
        manifest = json.dumps({"files": files}, sort_keys=True).encode()
        return self.put_bytes(manifest)[0]

    def read_manifest(self, digest: str, name: str = "") -> dict[str, tuple[str, int]]:
        raw = json.loads(self.read_bytes(digest, name or "manifest"))
        return {path: (str(f["digest"]), int(f["size_bytes"])) for path, f in raw["files"].items()}

    def get_tree(self, digest: str, dest: Path, name: str = "") -> Path:
        """Materialise a manifest's files under ``dest``, each verified by digest."""
        for rel, (file_digest, _) in self.read_manifest(digest, name).items():
            target = dest / clean_artifact_path(rel)
            self.get_file(file_digest, target, name=f"{name}/{rel}" if name else rel)
        return dest


def _walk_files(root: Path) -> Iterator[Path]:
    for dirpath, _, filenames in os.walk(root):
        for filename in filenames:
            yield Path(dirpath) / filename


class LocalArtifactStore(ArtifactStore):
    """Blobs under ``<root>/sha256/ab/cdef…`` on the local file system."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _blob_path(self, digest: str) -> Path:
        hex_part = check_digest(digest)
        return self.root / "sha256" / hex_part[:2] / hex_part[2:]

    def put_file(self, path: Path) -> tuple[str, int]:
        digest = sha256_file(path)
        target = self._blob_path(digest)
        # A blob is reused only while it still holds these bytes, so that logging an artifact
        # again repairs a corrupted copy (as the ArtifactCorruptedError message advises).
        if not target.is_file() or sha256_file(target) != digest:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Copy to a temporary name and rename, so a reader never sees a half-written blob.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                shutil.copyfileobj(src, out, CHUNK_BYTES)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        return digest, target.stat().st_size

    def exists(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def open_verified(self, digest: str, name: str = "") -> BinaryIO:
        target = self._blob_path(digest)
        label = f"{name!r} ({digest})" if name else digest
        # Where inside the artifact folder, never the folder itself: these messages reach API
        # callers, who have no business knowing the server's file system.
        inside = target.relative_to(self.root).as_posix()
        if not target.is_file():
            raise NotFoundError(
                f"Artifact {label} is missing from the store's artifact folder ({inside}). The "
                "folder may have been moved or pruned; restore it from a backup.",
                digest=digest,
            )
        # Hash through the same open file that is handed back: a swap of the file after the
        # check cannot slip unverified bytes to the reader.
        f = target.open("rb")
        digest_now = hashlib.sha256()
        while chunk := f.read(CHUNK_BYTES):
            digest_now.update(chunk)
        actual = PREFIX + digest_now.hexdigest()
        if actual != digest:
            f.close()
            raise ArtifactCorruptedError(
                f"Artifact {label} is corrupted: its bytes hash to {actual}, expected {digest}. "
                f"It was not loaded. Restore {inside} in the store's artifact folder from a "
                "backup, or log the artifact again.",
                digest=digest,
                actual=actual,
                path=inside,
            )
        f.seek(0)
        return f
