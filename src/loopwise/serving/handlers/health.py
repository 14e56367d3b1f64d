"""What operators poll: liveness (``/health``, ``/v2/health/live``, MLflow's ``/ping``),
readiness (``/v2/health/ready``) and Prometheus metrics (``/metrics``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopwise.serving.http import Exchange, Response, dumps
from loopwise.serving.inference import Inference
from loopwise.serving.routing import no_route

if TYPE_CHECKING:  # an app made without metrics never loads prometheus_client
    from loopwise.serving.metrics import ServingMetrics

__all__ = ["Health"]


class Health:
    """The health routes; ``/metrics`` is a 404 when the app has no ``ServingMetrics``."""

    def __init__(self, inference: Inference, metrics: ServingMetrics | None) -> None:
        self.inference = inference
        self.metrics = metrics

    async def live(self, record: Exchange, _: None) -> Response:
        return Response(200, b'{"live":true}')

    async def ping(self, record: Exchange, _: None) -> Response:
        return Response(200, b"{}")

    async def ready(self, record: Exchange, _: None) -> Response:
        return Response(200, dumps({"ready": self.inference.ready()}))

    async def metrics_text(self, record: Exchange, _: None) -> Response:
        if self.metrics is None:
            raise no_route(record.scope["path"])
        payload, content_type = self.metrics.render()
        return Response(200, payload, [(b"content-type", content_type.encode())])
