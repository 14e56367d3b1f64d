"""The response cache of one served model (opt-in): answers keyed by version and input digest.

A key is the model version, the outputs asked for and a digest (BLAKE2b) of the request's
checked input. Entries are bounded in bytes (an estimate: the size of their arrays plus a fixed
overhead) and evicted least recently used first. Identical requests that arrive while the first
is still computing wait for that one computation rather than starting their own.

Only deterministic models should be cached: the cache returns what the version answered before.
A new version (a hot swap) has new keys, so nothing stale is served after a swap.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np
import orjson

from loopwise.errors import InvalidArgumentError

__all__ = ["ResponseCache", "input_digest"]

_ENTRY_OVERHEAD = 200  # bytes per entry beyond its arrays: key, dict, OrderedDict links


def input_digest(inputs: Any) -> bytes:
    """A digest of a request's model input (columns or an array), equal for equal inputs."""
    hasher = hashlib.blake2b(digest_size=16)
    if isinstance(inputs, np.ndarray):
        hasher.update(str((inputs.dtype.str, inputs.shape)).encode())
        hasher.update(np.ascontiguousarray(inputs).tobytes() if inputs.dtype.kind != "O" else
                      orjson.dumps(inputs.tolist()))  # fmt: skip
        return hasher.digest()
    for name in sorted(inputs):
        values = inputs[name]
        hasher.update(name.encode() + b"\0")
        if isinstance(values, np.ndarray):
            values = values.tolist()
        hasher.update(orjson.dumps(values) + b"\0")
    return hasher.digest()


def _size(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    if isinstance(value, np.ndarray):
        return int(value.nbytes) + 100
    if isinstance(value, tuple):
        return sum(_size(v) for v in value)
    return 50


class ResponseCache:
    """A byte-bounded LRU of answers, sharing computations in flight."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise InvalidArgumentError(
                f"A response cache needs a positive size in bytes, got {max_bytes!r}.",
                parameter="max_bytes",
            )
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value: Any) -> None:
        size = _size(value) + _ENTRY_OVERHEAD
        if size > self.max_bytes:
            return  # bigger than the whole cache: not worth evicting everything for
        old = self._entries.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]
        self._entries[key] = (value, size)
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.nbytes -= evicted

    def inflight(self, key: Hashable) -> asyncio.Future[Any] | None:
        """The computation already running for ``key``, if any."""
        return self._inflight.get(key)

    def start(self, key: Hashable) -> asyncio.Future[Any]:
        """Register the computation for ``key``; identical requests await its future."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        return future

    def finish(
        self,
        key: Hashable,
        future: asyncio.Future[Any],
        value: Any,
        error: BaseException | None,
        store_as: Hashable | None = None,
    ) -> None:
        """End the computation for ``key``: cache its answer (under ``store_as`` if given);
        errors reach the waiters and are not cached."""
        self._inflight.pop(key, None)
        if error is not None:
            if not future.done():
                future.set_exception(error)
            future.exception()  # retrieved: waiters, if any, get it; none is also fine
            return
        self.put(key if store_as is None else store_as, value)
        if not future.done():
            future.set_result(value)
