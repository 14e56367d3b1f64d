"""The inference server (data plane): registered models behind standard protocols.

``create_serving_app(models)`` builds the ASGI app; ``run(ServeOptions(...), listen)`` loads and
warms what the options name and hands the app to a server, as ``loopwise serve REF …`` does
(docs/serving.md). The names load on first use (PEP 562): ``loopwise.serving.options``, which the
CLI reads for its option choices, needs neither the ``server`` extra nor NumPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loopwise.errors import require_extra

if TYPE_CHECKING:
    from loopwise.serving.app import create_serving_app
    from loopwise.serving.launch import run
    from loopwise.serving.options import ServeOptions

_LAZY = {
    "create_serving_app": "loopwise.serving.app",
    "run": "loopwise.serving.launch",
    "ServeOptions": "loopwise.serving.options",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopwise.serving' has no attribute {name!r}")
    if module != "loopwise.serving.options":
        require_extra("fastapi", "server")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["ServeOptions", "create_serving_app", "run"]
