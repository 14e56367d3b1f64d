"""The inference server (data plane): registered models behind standard protocols.

``create_serving_app(models)`` builds the ASGI app; ``loopwise serve REF …`` runs it. This is the
first slice of issue 6 (protocols and signature checks); batching, caching, hot swap, metrics and
the durable prediction log come next (see docs/roadmap.md).
"""

from __future__ import annotations

from loopwise.errors import require_extra

require_extra("fastapi", "server")

from loopwise.serving.app import create_serving_app  # noqa: E402

__all__ = ["create_serving_app"]
