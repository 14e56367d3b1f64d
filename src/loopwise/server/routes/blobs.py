"""Artifact bytes, streamed both ways with bounded memory and checked by digest.

An upload is hashed while it streams to a temporary file and stored only if its bytes match
the digest in the URL; a dropped connection leaves nothing behind. A download is verified
before it is sent, carries its length, and honours ``Range: bytes=N-`` so a client resumes
where a dropped connection stopped.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import StreamingResponse

from loopwise.errors import (
    InvalidArgumentError,
    NotFoundError,
)
from loopwise.server.auth import Caller, Permission, caller, permission
from loopwise.server.routes.common import StoreDep, blob_access
from loopwise.server.schemas import BlobOut, Text
from loopwise.store.artifacts import CHUNK_BYTES, PREFIX, check_digest

router = APIRouter(tags=["artifacts"])
CallerDep = Annotated[Caller, Depends(caller)]

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


def _upload_extra() -> dict[str, Any]:
    return permission(Permission.WRITE) | {"requestBody": {"required": True, "content": _BINARY}}


class _Incoming:
    """A temporary file that hashes what is written to it."""

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="loopwise-upload-")
        self.path = Path(name)
        self.file = os.fdopen(fd, "wb")
        self.hash = hashlib.sha256()
        self.size_bytes = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.hash.update(data)
        self.size_bytes += len(data)

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


@router.put("/blobs/{digest}", response_model=BlobOut, openapi_extra=_upload_extra())
async def upload_blob(digest: Text, request: Request, store: StoreDep, who: CallerDep) -> BlobOut:
    """Store the request body (raw bytes) as the blob ``digest`` (``sha256:<hex>``)."""
    who.check(Permission.WRITE)
    check_digest(digest)
    incoming = await anyio.to_thread.run_sync(_Incoming)
    try:
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) >= CHUNK_BYTES:
                await anyio.to_thread.run_sync(incoming.write, bytes(buffer))
                buffer.clear()
        await anyio.to_thread.run_sync(incoming.write, bytes(buffer))
        incoming.file.close()
        actual = PREFIX + incoming.hash.hexdigest()
        if actual != digest:
            raise InvalidArgumentError(
                f"The uploaded bytes hash to {actual}, not to {digest} named in the URL; nothing "
                "was stored. The file changed or was damaged on the way: upload it again.",
                digest=digest,
                actual=actual,
                size_bytes=incoming.size_bytes,
            )
        stored, size = await anyio.to_thread.run_sync(store.artifacts.put_file, incoming.path)
    finally:
        await anyio.to_thread.run_sync(incoming.discard)
    blob_access(request).note_upload(who, stored)
    return BlobOut(digest=stored, size_bytes=size)


@router.head(
    "/blobs/{digest}",
    response_class=Response,  # no body, so no media type to declare
    responses={200: {"description": "The blob is stored"}},
    openapi_extra=permission(Permission.READ),
)
def blob_exists(digest: Text, request: Request, store: StoreDep, who: CallerDep) -> Response:
    """200 if the blob is stored, 404 if not (lets a client skip an upload)."""
    who.check(Permission.READ)
    check_digest(digest)
    # For a project-scoped token, a blob its project has no claim to is absent: the client then
    # uploads it (which proves it has the bytes), and other projects' files stay invisible.
    if not store.artifacts.exists(digest) or not blob_access(request).readable(store, who, digest):
        raise NotFoundError(f"No blob {digest}.", digest=digest)
    return Response(status_code=200)


def _chunks(f: BinaryIO, remaining: int) -> Iterator[bytes]:
    try:
        while remaining > 0 and (chunk := f.read(min(CHUNK_BYTES, remaining))):
            remaining -= len(chunk)
            yield chunk
    finally:
        f.close()


@router.get(
    "/blobs/{digest}",
    response_class=StreamingResponse,
    responses={200: {"content": _BINARY}, 206: {"content": _BINARY}},
    openapi_extra=permission(Permission.READ),
)
def download_blob(
    digest: Text,
    request: Request,
    store: StoreDep,
    who: CallerDep,
    range_: Annotated[str | None, Header(alias="range")] = None,
) -> StreamingResponse:
    """The blob's bytes, verified against ``digest`` first. ``Range: bytes=N-`` resumes."""
    who.check(Permission.READ)
    check_digest(digest)
    blob_access(request).check_read(store, who, digest)
    f = store.artifacts.open_verified(digest)
    size = os.fstat(f.fileno()).st_size
    start, end = 0, size - 1
    if range_ is not None:
        match = _RANGE.match(range_.strip())
        if match is None or int(match[1]) > size or (match[2] and int(match[2]) < int(match[1])):
            f.close()
            raise InvalidArgumentError(
                f"Expected a Range header 'bytes=START-' or 'bytes=START-END' within the blob's "
                f"{size} bytes, got {range_!r}.",
                range=range_,
                size_bytes=size,
            )
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    f.seek(start)
    length = max(end - start + 1, 0)
    headers = {
        "Content-Length": str(length),
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
        "X-Loopwise-Digest": digest,
    }
    status = 200
    if range_ is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        _chunks(f, length),
        status_code=status,
        media_type="application/octet-stream",
        headers=headers,
    )
