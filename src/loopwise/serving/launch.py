"""Starting the inference server: ``run(options, listen)`` loads and warms every model and
deployment, opens the prediction log, builds the app and hands it to ``listen`` (uvicorn, for
``loopwise serve``) until it returns."""

from __future__ import annotations

import sys
from collections.abc import Callable

from loopwise.context import current
from loopwise.errors import InvalidArgumentError, NotFoundError
from loopwise.serving.app import ServingApp, create_serving_app
from loopwise.serving.batching import BatchPolicy
from loopwise.serving.metrics import ServingMetrics
from loopwise.serving.models import ModelEvent, ServedModels
from loopwise.serving.options import Compute, LogDurability, ServeOptions
from loopwise.store.durable_spool import Durability
from loopwise.store.predictions import PredictionSpool

__all__ = ["ServeOptions", "run"]

_DURABILITY: dict[LogDurability, Durability] = {
    LogDurability.fsync: "fsync",
    LogDurability.write: "write",
}


def run(
    options: ServeOptions,
    listen: Callable[[ServingApp], None],
    *,
    on_event: Callable[[ModelEvent], None] | None = None,
) -> None:
    """Serve ``options`` from the current store and project (``lw.init``).

    Every model is loaded (its files verified by digest) and warmed up before ``listen`` gets
    the app; a deployment that does not exist, or a model that cannot load, is an error before
    anything listens. ``on_event`` hears each load, swap, eviction and failure, then as later.
    """
    if options.compute not in tuple(Compute):
        raise InvalidArgumentError(
            f"--compute is {options.compute!r}; expected 'process' or 'thread'.",
            parameter="compute",
        )
    if options.log_durability not in tuple(LogDurability):
        raise InvalidArgumentError(
            f"--log-durability is {options.log_durability!r}; expected 'fsync' or 'write'.",
            parameter="log_durability",
        )
    policy = BatchPolicy(
        max_batch_rows=options.max_batch_rows,
        max_wait_s=options.max_wait_ms / 1000,
        slo_s=options.slo_ms / 1000,
        max_queue_rows=options.max_queue_rows,
        max_in_flight=options.max_in_flight,
    )
    refs, deployments = list(options.refs), list(options.deployments)
    if not refs and not deployments:
        raise InvalidArgumentError(
            "Nothing to serve: name models (e.g. `loopwise serve employment@production`) or "
            "deployments (`--deployment employment-prod`).",
            parameter="refs",
        )
    cache_bytes = {name: int(mb * 2**20) for name, mb in options.cache_mb.items()}
    metrics = ServingMetrics()

    def record(event: ModelEvent) -> None:
        if event.kind in ("loaded", "swapped"):
            metrics.model_loaded(
                event.name,
                str(event.version),
                event.seconds or 0.0,
                event.nbytes,
                serving=event.deployment is None,
            )
        elif event.kind == "evicted" and event.deployment is None:
            metrics.model_evicted(event.name)
        if on_event is not None:
            on_event(event)

    ctx = current()
    for name in deployments:  # say what is wrong before anything loads
        try:
            ctx.store.get_deployment(ctx.project, name)
        except NotFoundError as exc:
            raise NotFoundError(
                f"Cannot serve deployment {name!r}: {exc.message} (project {ctx.project!r})",
                **exc.details,
            ) from None
    budget_mb = options.memory_budget_mb
    served = ServedModels(
        refs,
        deployments=deployments,
        store=ctx.store,
        project=ctx.project,
        poll_interval_s=options.poll_s,
        memory_budget_bytes=int(budget_mb * 2**20) if budget_mb else None,
        on_event=record,
        allow_pickle=options.allow_pickle,
        trusted_types=list(options.trusted_types),
    )
    served.start()
    failed = [s for s in (served.state(n) for n in served.names) if not s.ready]
    if failed:
        served.close()
        raise InvalidArgumentError(
            "Could not serve "
            + "; ".join(f"{s.ref}: {s.error}" for s in failed)
            + ". Check the names with `loopwise models list`.",
            refs=[s.ref for s in failed],
        )
    spool = None
    if options.log_predictions:
        spool = PredictionSpool(
            ctx.store,
            durability=_DURABILITY[LogDurability(options.log_durability)],
            fsync_window_ms=options.log_window_ms,
        ).open()
    app = create_serving_app(
        served,
        policies=policy,
        metrics=metrics,
        processes=options.compute == Compute.process,
        model_threads=options.model_threads,
        cache_bytes=cache_bytes,
        prediction_log=spool,
        project=ctx.project,
    )
    # The prediction log's fsync thread and the alias poller hand the GIL back and forth with
    # the event loop; the default 5 ms switch interval would add up to 5 ms to every hand-over.
    sys.setswitchinterval(0.0005)
    listen(app)
