"""The remote backend: the ``Store`` interface spoken over the control plane's REST API.

``LOOPWISE_URI=http://host:port`` (and ``LOOPWISE_TOKEN``) select it. Each method is one HTTP
call (``client.py``); errors come back as the same exception classes the embedded store raises.
The parts mirror ``store/sql/``: one module per area, each receiving arguments that ``Store``'s
front door has already checked. Artifact bytes stream both ways (``artifacts.py``).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from loopwise.store.base import Store
from loopwise.store.codec import json_float
from loopwise.store.predictions import recover_predictions
from loopwise.store.remote.access import RemoteAccess
from loopwise.store.remote.alerts import RemoteAlerts
from loopwise.store.remote.artifacts import RemoteArtifactStore
from loopwise.store.remote.autopilot import RemoteAutopilot
from loopwise.store.remote.client import _Client, tls_context
from loopwise.store.remote.dataset_quality import RemoteDatasetQuality
from loopwise.store.remote.deployments import RemoteDeployments
from loopwise.store.remote.outcomes import RemoteOutcomes
from loopwise.store.remote.predictions import RemotePredictions
from loopwise.store.remote.runs import RemoteRuns
from loopwise.store.spool import MetricSpool, default_spool_dir, recover_spools

__all__ = ["RemoteArtifactStore", "RemoteStore", "default_spool_dir", "json_float"]


class RemoteStore(
    RemoteDatasetQuality,
    RemoteRuns,
    RemoteAutopilot,
    RemoteDeployments,
    RemoteAccess,
    RemotePredictions,
    RemoteOutcomes,
    RemoteAlerts,
    Store,
):
    """A ``Store`` whose every call goes to a Loopwise server over HTTP."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        spool_dir: Path | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        super().__init__()
        self.uri = url.rstrip("/")
        self.token = token
        self.transport = transport
        self.spool_dir = spool_dir
        self.timeout_s = timeout_s

    def open(self) -> RemoteStore:
        """Connect, check the token, and replay the spools that crashed processes left."""
        headers = {"User-Agent": "loopwise"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        transport = self.transport or httpx.HTTPTransport(retries=3, verify=tls_context())
        http = httpx.Client(
            base_url=self.uri,
            transport=transport,
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s, connect=10.0),
        )
        self._client = _Client(http, self.uri)
        self.artifacts = RemoteArtifactStore(self._client)
        try:
            self._client.request("GET", "/whoami")
            spool_dir = self.spool_dir or default_spool_dir(self.uri)
            self._spool = MetricSpool(spool_dir, self.write_spooled_metrics, self.forget_spool)
            recover_spools(
                spool_dir, self.write_spooled_metrics, self.spool_progress, self.forget_spool
            )
            if (spool_dir / "predictions").is_dir():  # a prediction spool was used here
                recover_predictions(self)
        except BaseException:
            http.close()
            raise
        return self

    def close(self) -> None:
        self._spool.close()
        self._client.http.close()
