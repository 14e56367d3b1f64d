"""The response cache: bounded in bytes, least recently used out first, digests by value."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from loopwise.errors import InvalidArgumentError
from loopwise.serving.cache import ResponseCache, input_digest


def _answer(n: int) -> tuple[int, dict[str, np.ndarray]]:
    return 1, {"predict": np.zeros(n)}


def test_digest_depends_on_values_not_on_how_they_came() -> None:
    a = input_digest({"x": [1.0, 2.0], "y": ["a", "b"]})
    assert a == input_digest({"y": ["a", "b"], "x": [1.0, 2.0]})
    assert a == input_digest({"x": np.array([1.0, 2.0]), "y": ["a", "b"]})
    assert a != input_digest({"x": [1.0, 2.5], "y": ["a", "b"]})
    assert input_digest(np.ones((2, 3))) != input_digest(np.ones((3, 2)))


def test_least_recently_used_goes_first_and_bytes_stay_bounded() -> None:
    cache = ResponseCache(max_bytes=3000)
    for key in "abc":
        cache.put(key, _answer(100))  # ~1,100 bytes each with overhead
    assert cache.nbytes <= 3000 and len(cache) == 2 and cache.get("a") is None
    assert cache.get("b") is not None  # b is now the most recently used
    cache.put("d", _answer(100))
    assert cache.get("c") is None and cache.get("b") is not None
    cache.put("huge", _answer(10_000))  # bigger than the cache: not kept, nothing evicted
    assert cache.get("huge") is None and cache.get("b") is not None


def test_errors_reach_waiters_and_are_not_cached() -> None:
    cache = ResponseCache(max_bytes=10_000)

    async def main() -> None:
        future = cache.start("k")
        waiter = asyncio.ensure_future(asyncio.shield(future))
        cache.finish("k", future, None, ValueError("boom"))
        with pytest.raises(ValueError):
            await waiter
        assert cache.get("k") is None and cache.inflight("k") is None

    asyncio.run(main())


def test_size_must_be_positive() -> None:
    with pytest.raises(InvalidArgumentError):
        ResponseCache(0)
