"""The control plane: a REST API over one store (``loopwise server``).

``create_app(store)`` builds the FastAPI application; ``serve(...)`` runs it with uvicorn. Needs
the ``server`` extra: ``pip install 'loopwise[server]'``.
"""

from __future__ import annotations

from loopwise.errors import require_extra

require_extra("fastapi", "server")

from loopwise.server.app import API_PREFIX, create_app  # noqa: E402

__all__ = ["API_PREFIX", "create_app"]
