"""This Loopwise's version, from the installed package metadata, read once on first use.

A leaf module: the store, the control plane and the inference server name their version without
importing the SDK that ``loopwise/__init__.py`` re-exports (``loopwise.__version__`` is this).
"""

from __future__ import annotations

from functools import cache

__all__ = ["loopwise_version"]


@cache
def loopwise_version() -> str:
    """The installed version, e.g. ``"0.1.0"`` (``"0+unknown"`` when run from a bare source tree)."""
    # importlib.metadata and its scan of the installed distributions cost ~50 ms, which
    # `loopwise --help` need not pay: imported here, on first use.
    import importlib.metadata

    try:
        return importlib.metadata.version("loopwise")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
