"""Which blobs a project-scoped token may read, and which it may refer to.

Blobs are stored once per content, shared by every project. A token limited to project P reads
a blob only if P's runs, datasets or model versions refer to it (a model's files through its
manifest). It may refer to a blob (log an artifact, register a dataset or model) only if P can
already read it or the token uploaded those bytes itself: knowing a digest is not enough to
reach another project's file.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from loopwise.errors import LoopwiseError, PermissionDeniedError
from loopwise.server.auth import Caller
from loopwise.store import Store

__all__ = ["BlobAccess"]

UPLOADS_REMEMBERED = 100_000
MANIFESTS_REMEMBERED = 100_000


class BlobAccess:
    """Per server: manifests' contents (they never change) and recent uploads per token."""

    def __init__(self) -> None:
        self._manifests: dict[str, frozenset[str]] = {}
        self._uploads: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def _manifest_files(self, store: Store, digest: str) -> frozenset[str]:
        """The digests a manifest lists; none if it cannot be read now.

        Only what the verified bytes say is remembered: a manifest's content never changes, so
        every server process reads the same list from it. A failure to read it (not uploaded
        yet, corrupted, the artifact store unreachable) is not remembered: the blob may arrive
        later, and a server that went on believing it empty would judge differently from a
        fresh one (and refuse too little when the manifest is named again).
        """
        with self._lock:
            known = self._manifests.get(digest)
        if known is not None:
            return known
        try:
            known = frozenset(d for d, _ in store.artifacts.read_manifest(digest).values())
        except LoopwiseError:
            return frozenset()
        except (ValueError, KeyError, TypeError, AttributeError):
            known = frozenset()  # not a manifest, e.g. a version registered with a bare file
        with self._lock:
            if len(self._manifests) >= MANIFESTS_REMEMBERED:
                self._manifests.clear()
            self._manifests[digest] = known
        return known

    def readable(self, store: Store, who: Caller, digest: str) -> bool:
        if who.project is None:
            return True
        if digest in store.blob_digests(who.project):
            return True
        manifests = [
            version.artifact_digest
            for model in store.list_models(who.project)
            for version in store.list_model_versions(who.project, model.name)
        ]
        return any(digest in self._manifest_files(store, m) for m in manifests)

    def check_read(self, store: Store, who: Caller, digest: str) -> None:
        if not self.readable(store, who, digest):
            raise PermissionDeniedError(
                f"Blob {digest} belongs to no run, dataset or model of project "
                f"{who.project!r}, the only project this token may read.",
                digest=digest,
                token_project=who.project,
            )

    def note_upload(self, who: Caller, digest: str) -> None:
        if who.project is None or who.token is None:
            return
        with self._lock:
            self._uploads[(who.token.id, digest)] = None
            self._uploads.move_to_end((who.token.id, digest))
            while len(self._uploads) > UPLOADS_REMEMBERED:
                self._uploads.popitem(last=False)

    def _uploaded(self, who: Caller, digest: str) -> bool:
        with self._lock:
            return who.token is not None and (who.token.id, digest) in self._uploads

    def check_reference(
        self, store: Store, who: Caller, digests: Iterable[str], manifest: str | None = None
    ) -> None:
        """Refuse a scoped caller's reference to bytes it neither uploaded nor may read.

        ``manifest`` is a model's manifest: each file it lists is checked too.
        """
        if who.project is None:
            return
        wanted = list(digests)
        if manifest is not None:
            wanted += [manifest, *self._manifest_files(store, manifest)]
        for digest in wanted:
            if not self._uploaded(who, digest) and not self.readable(store, who, digest):
                raise PermissionDeniedError(
                    f"This token may refer only to bytes it uploaded or that project "
                    f"{who.project!r} already has; {digest} is neither. Upload the file "
                    "(PUT /api/v1/blobs/{digest}) with this token first.",
                    digest=digest,
                    token_project=who.project,
                )
