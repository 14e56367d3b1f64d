"""``loopwise serve``: run the inference server for registered models and deployments."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from loopwise.cli.common import open_context
from loopwise.cli.http_server import (
    HttpLimits,
    LimitConcurrencyOption,
    TimeoutBodyOption,
    TimeoutHeadersOption,
    TimeoutKeepAliveOption,
    run_app,
)
from loopwise.cli.output import console, safe
from loopwise.errors import InvalidArgumentError, NotFoundError, require_extra

__all__ = ["serve"]


def serve(
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models to serve: NAME@ALIAS (follows the alias), NAME/VERSION (pinned) or "
            "NAME (follows the latest version).",
            show_default=False,
        ),
    ] = None,
    deployments: Annotated[
        list[str] | None,
        typer.Option(
            "--deployment",
            help="A deployment to serve under its own name, following its traffic plan: each "
            "request goes to the version its X-Request-Key (else its request id) is assigned, "
            "and shadow versions get a logged copy. Repeat for several.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = 8000,
    compute: Annotated[
        str,
        typer.Option(
            "--compute",
            help="Where models compute: 'process' (one process per model, beside the event "
            "loop; best for Python models such as scikit-learn's) or 'thread' (in the server's "
            "process; less memory).",
        ),
    ] = "process",
    slo_ms: Annotated[
        float,
        typer.Option(
            "--slo-ms",
            min=1,
            help="Default deadline per request; a request that cannot be answered in time gets "
            "503 with Retry-After at once. Clients may send their own in X-Deadline-Ms.",
        ),
    ] = 1000.0,
    max_batch_rows: Annotated[
        int, typer.Option("--max-batch-rows", min=1, help="Most rows in one model call.")
    ] = 256,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            "--max-wait-ms",
            min=0,
            help="Longest an idle model holds a batch to gather more rows (only while requests "
            "arrive faster than its fixed cost per call).",
        ),
    ] = 2.0,
    max_queue_rows: Annotated[
        int, typer.Option("--max-queue-rows", min=1, help="Rows allowed to wait per model.")
    ] = 4096,
    max_in_flight: Annotated[
        int,
        typer.Option(
            "--max-in-flight",
            min=1,
            max=16,
            help="Batches handed to a model at once: with 2 (the default) the next batch waits "
            "at the model while the last computes, so the model never idles while the server "
            "is busy; 1 computes strictly one batch at a time.",
        ),
    ] = 2,
    poll_s: Annotated[
        float,
        typer.Option(
            "--poll-s",
            min=0.1,
            help="How often aliases and deployments are checked for changes.",
        ),
    ] = 5.0,
    memory_budget_mb: Annotated[
        float | None,
        typer.Option(
            "--memory-budget-mb",
            min=1,
            help="Memory for loaded models (estimated from their files); the least recently "
            "used model is evicted beyond it and reloaded on demand.",
        ),
    ] = None,
    cache: Annotated[
        list[str] | None,
        typer.Option(
            "--cache",
            help="NAME=MB: cache that model's answers (keyed by version and input) in MB of "
            "memory; identical requests in flight share one computation. Repeat per model. "
            "Only for deterministic models.",
        ),
    ] = None,
    model_threads: Annotated[
        int,
        typer.Option(
            "--model-threads",
            min=1,
            help="Threads each model computes with (OpenMP/BLAS), in its process or, with "
            "--compute thread, in its batch thread; batches already give each call many rows.",
        ),
    ] = 1,
    log_predictions: Annotated[
        bool,
        typer.Option(
            "--log-predictions/--no-log-predictions",
            help="Append every answered row (request id, model, version, inputs, outputs, "
            "latency, time) to the store's prediction log before responding.",
        ),
    ] = True,
    log_durability: Annotated[
        str,
        typer.Option(
            "--log-durability",
            help="'fsync': a logged prediction survives power loss (one fdatasync serves all "
            "requests waiting at that moment); 'write': it survives the server being killed, "
            "not an OS crash, and costs no fsync.",
        ),
    ] = "fsync",
    log_window_ms: Annotated[
        float,
        typer.Option(
            "--log-window-ms",
            min=0,
            help="With fsync: at most one fsync per window, so more requests share each (a "
            "response then waits up to the window plus one fsync).",
        ),
    ] = 0.0,
    proxy_headers: Annotated[
        bool,
        typer.Option(
            "--proxy-headers/--no-proxy-headers",
            help="Trust X-Forwarded-For/-Proto from a proxy on 127.0.0.1 (off: a small saving "
            "per request when clients connect directly).",
        ),
    ] = False,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            help="Load models stored with pickle (flavour 'python'). Loading a pickle runs the "
            "code in it, and anyone who may register models in the project writes that file: "
            "pass it only if you trust every one of them. Off: such versions are refused.",
        ),
    ] = False,
    trust_types: Annotated[
        list[str] | None,
        typer.Option(
            "--trust-type",
            help="A type or function name (as the refusal lists it) that skops may build in "
            "scikit-learn models, beyond the classes of scikit-learn, NumPy and SciPy that "
            "are trusted already. Repeat for several. A version's own metadata never adds any.",
            show_default=False,
        ),
    ] = None,
    limit_concurrency: LimitConcurrencyOption = HttpLimits.limit_concurrency,
    timeout_keep_alive: TimeoutKeepAliveOption = HttpLimits.timeout_keep_alive_s,
    timeout_headers: TimeoutHeadersOption = HttpLimits.timeout_headers_s,
    timeout_body: TimeoutBodyOption = HttpLimits.timeout_body_s,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "info",
) -> None:
    """Serve registered models and deployments over the Open Inference Protocol (/v2), MLflow's
    /invocations and a plain /predict, with adaptive batching, deadlines and Prometheus /metrics.

    Each model is loaded (its files verified by digest) and warmed up before the server
    listens; an alias that moves later, or a deployment's new plan, is followed without a
    restart."""
    require_extra("uvicorn", "server")
    from loopwise.serving import create_serving_app
    from loopwise.serving.batching import BatchPolicy
    from loopwise.serving.metrics import ServingMetrics
    from loopwise.serving.models import ModelEvent, ServedModels

    if compute not in ("process", "thread"):
        raise InvalidArgumentError(
            f"--compute is {compute!r}; expected 'process' or 'thread'.", parameter="compute"
        )
    policy = BatchPolicy(
        max_batch_rows=max_batch_rows,
        max_wait_s=max_wait_ms / 1000,
        slo_s=slo_ms / 1000,
        max_queue_rows=max_queue_rows,
        max_in_flight=max_in_flight,
    )
    refs, deployments = refs or [], deployments or []
    if not refs and not deployments:
        raise InvalidArgumentError(
            "Nothing to serve: name models (e.g. `loopwise serve employment@production`) or "
            "deployments (`--deployment employment-prod`).",
            parameter="refs",
        )
    cache_bytes = _cache_sizes(cache or [])
    metrics = ServingMetrics()

    def on_event(event: ModelEvent) -> None:
        which = f"{event.name} version {event.version}"
        if event.deployment is not None:
            which += f" (deployment {event.deployment})"
        if event.kind in ("loaded", "swapped"):
            metrics.model_loaded(
                event.name,
                str(event.version),
                event.seconds or 0.0,
                event.nbytes,
                serving=event.deployment is None,
            )
            console.print(
                f"{'Swapped to' if event.kind == 'swapped' else 'Loaded'} {which} in "
                f"{event.seconds or 0:.2f} s"
            )
        elif event.kind == "evicted":
            if event.deployment is None:
                metrics.model_evicted(event.name)
            console.print(f"Evicted {which} (memory budget)")
        else:
            console.print(f"[red]Could not load {safe(which)}[/]: {safe(event.error)}")

    ctx = open_context()
    for name in deployments:  # say what is wrong before anything loads
        try:
            ctx.store.get_deployment(ctx.project, name)
        except NotFoundError as exc:
            raise NotFoundError(
                f"Cannot serve deployment {name!r}: {exc.message} (project {ctx.project!r})",
                **exc.details,
            ) from None
    served = ServedModels(
        refs,
        deployments=deployments,
        store=ctx.store,
        project=ctx.project,
        poll_interval_s=poll_s,
        memory_budget_bytes=int(memory_budget_mb * 2**20) if memory_budget_mb else None,
        on_event=on_event,
        allow_pickle=allow_pickle,
        trusted_types=trust_types or [],
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
    if log_predictions:
        from loopwise.store.predictions import PredictionSpool

        if log_durability not in ("fsync", "write"):
            served.close()
            raise InvalidArgumentError(
                f"--log-durability is {log_durability!r}; expected 'fsync' or 'write'.",
                parameter="log_durability",
            )
        spool = PredictionSpool(
            ctx.store,
            durability=log_durability,  # type: ignore[arg-type]
            fsync_window_ms=log_window_ms,
        ).open()
    app = create_serving_app(
        served,
        policies=policy,
        metrics=metrics,
        processes=compute == "process",
        model_threads=model_threads,
        cache_bytes=cache_bytes,
        prediction_log=spool,
        project=ctx.project,
    )
    # The prediction log's fsync thread and the alias poller hand the GIL back and forth with
    # the event loop; the default 5 ms switch interval would add up to 5 ms to every hand-over.
    sys.setswitchinterval(0.0005)
    console.print(f"Serving {', '.join([*served.names, *deployments])} on http://{host}:{port}")
    run_app(
        app,
        host=host,
        port=port,
        limits=HttpLimits(limit_concurrency, timeout_keep_alive, timeout_headers, timeout_body),
        log_level=log_level,
        access_log=False,
        proxy_headers=proxy_headers,
        timeout_graceful_shutdown=10,
    )


def _cache_sizes(options: list[str]) -> dict[str, int]:
    sizes = {}
    for option in options:
        name, sep, mb = option.partition("=")
        try:
            size = float(mb)
        except ValueError:
            size = 0.0
        if not sep or not name or not size > 0:
            raise InvalidArgumentError(
                f"--cache {option!r}: expected NAME=MB with a positive size, e.g. "
                "--cache employment=64.",
                parameter="cache",
            )
        sizes[name] = int(size * 2**20)
    return sizes
