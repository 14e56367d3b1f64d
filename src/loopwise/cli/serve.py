"""``loopwise serve``: run the inference server for registered models and deployments."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from loopwise.cli.common import open_context
from loopwise.cli.http_server import (
    HttpLimits,
    LimitConcurrencyOption,
    LogLevel,
    TimeoutBodyOption,
    TimeoutHeadersOption,
    TimeoutKeepAliveOption,
    run_app,
)
from loopwise.cli.output import console, safe
from loopwise.errors import InvalidArgumentError, require_extra
from loopwise.serving.options import Compute, LogDurability, ServeOptions

if TYPE_CHECKING:
    from loopwise.serving.app import ServingApp
    from loopwise.serving.models import ModelEvent

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
        Compute,
        typer.Option(
            "--compute",
            help="Where models compute: 'process' (one process per model, beside the event "
            "loop; best for Python models such as scikit-learn's) or 'thread' (in the server's "
            "process; less memory).",
        ),
    ] = Compute.process,
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
        LogDurability,
        typer.Option(
            "--log-durability",
            help="'fsync': a logged prediction survives power loss (one fdatasync serves all "
            "requests waiting at that moment); 'write': it survives the server being killed, "
            "not an OS crash, and costs no fsync.",
        ),
    ] = LogDurability.fsync,
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
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", help="uvicorn's log level.")
    ] = LogLevel.info,
) -> None:
    """Serve registered models and deployments over the Open Inference Protocol (/v2), MLflow's
    /invocations and a plain /predict, with adaptive batching, deadlines and Prometheus /metrics.

    Each model is loaded (its files verified by digest) and warmed up before the server
    listens; an alias that moves later, or a deployment's new plan, is followed without a
    restart."""
    require_extra("uvicorn", "server")
    # The data plane loads NumPy, pandas and the rest of the server extra: only `serve` needs it.
    from loopwise.serving.launch import run

    options = ServeOptions(
        refs=refs or [],
        deployments=deployments or [],
        compute=compute,
        slo_ms=slo_ms,
        max_batch_rows=max_batch_rows,
        max_wait_ms=max_wait_ms,
        max_queue_rows=max_queue_rows,
        max_in_flight=max_in_flight,
        poll_s=poll_s,
        memory_budget_mb=memory_budget_mb,
        cache_mb=_cache_sizes(cache or []),
        model_threads=model_threads,
        log_predictions=log_predictions,
        log_durability=log_durability,
        log_window_ms=log_window_ms,
        allow_pickle=allow_pickle,
        trusted_types=trust_types or [],
    )

    def listen(app: ServingApp) -> None:
        names = [*app.models.names, *options.deployments]
        console.print(f"Serving {', '.join(names)} on http://{host}:{port}")
        run_app(
            app,
            host=host,
            port=port,
            limits=HttpLimits(limit_concurrency, timeout_keep_alive, timeout_headers, timeout_body),
            log_level=log_level.value,
            access_log=False,
            proxy_headers=proxy_headers,
            timeout_graceful_shutdown=10,
        )

    open_context()
    run(options, listen, on_event=_print_event)


def _print_event(event: ModelEvent) -> None:
    which = f"{event.name} version {event.version}"
    if event.deployment is not None:
        which += f" (deployment {event.deployment})"
    if event.kind in ("loaded", "swapped"):
        console.print(
            f"{'Swapped to' if event.kind == 'swapped' else 'Loaded'} {which} in "
            f"{event.seconds or 0:.2f} s"
        )
    elif event.kind == "evicted":
        console.print(f"Evicted {which} (memory budget)")
    else:
        console.print(f"[red]Could not load {safe(which)}[/]: {safe(event.error)}")


def _cache_sizes(options: list[str]) -> dict[str, float]:
    """``NAME=MB`` options as MB by name."""
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
        sizes[name] = size
    return sizes
