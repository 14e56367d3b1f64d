"""``loopwise server``: run the control plane (the REST API over one store)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated

import typer

from loopwise.cli.common import State
from loopwise.cli.http_server import (
    HttpLimits,
    LimitConcurrencyOption,
    LogLevel,
    TimeoutBodyOption,
    TimeoutHeadersOption,
    TimeoutKeepAliveOption,
    run_app,
)
from loopwise.cli.output import console, err_console
from loopwise.errors import InvalidArgumentError
from loopwise.store import open_store, resolve_uri

if TYPE_CHECKING:
    from loopwise.autopilot.settings import OperatorSettings

__all__ = ["server"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _autopilot_settings(
    every_s: float, pipelines: list[str] | None, allow_pickle: bool
) -> OperatorSettings | None:
    """The operator's settings for the server's autopilot (None when it is off): the options
    given, else the environment's."""
    if not every_s:
        return None
    from loopwise.autopilot.settings import OperatorSettings, split_entries

    from_env = OperatorSettings.from_env()
    return OperatorSettings(
        pipelines=split_entries(pipelines) if pipelines else from_env.pipelines,
        allow_pickle=allow_pickle or from_env.allow_pickle,
    )


def server(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = 8080,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="Let every caller act as admin without a token. Allowed only on a loopback host.",
        ),
    ] = False,
    allowed_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="A Host name the server answers besides localhost, 127.0.0.1 and [::1] (with "
            "--no-auth, only those are answered, against DNS rebinding). Once given, the list "
            "holds with authentication on too. Repeat for several; '*' allows any.",
            show_default=False,
        ),
    ] = None,
    limit_concurrency: LimitConcurrencyOption = HttpLimits.limit_concurrency,
    timeout_keep_alive: TimeoutKeepAliveOption = HttpLimits.timeout_keep_alive_s,
    timeout_headers: TimeoutHeadersOption = HttpLimits.timeout_headers_s,
    timeout_body: TimeoutBodyOption = HttpLimits.timeout_body_s,
    log_level: Annotated[
        LogLevel,
        typer.Option("--log-level", help="uvicorn's log level: debug, info, warning, error."),
    ] = LogLevel.info,
    accept_pickle_models: Annotated[
        bool,
        typer.Option(
            "--accept-pickle-models",
            help="Let editors register model versions stored with pickle (flavour 'python'). "
            "Off (the default): refused with 400, since loading one runs the code in it; "
            "whoever loads such a version must still opt in (lw.models.load(..., "
            "allow_pickle=True), loopwise serve --allow-pickle).",
        ),
    ] = False,
    autopilot_every: Annotated[
        float,
        typer.Option(
            "--autopilot-every",
            min=0,
            help="Run the autopilot in the server: every this many seconds, tick each "
            "deployment that has an autopilot policy, in every project (as `loopwise autopilot "
            "run-once` does). 0 (the default): off.",
        ),
    ] = 0,
    autopilot_pipelines: Annotated[
        list[str] | None,
        typer.Option(
            "--autopilot-pipelines",
            help="Retraining pipelines the server's autopilot may import and run, "
            "comma-separated: 'pkg.module:*', 'pkg.module:name', '/folder/' (its .py files) or "
            "'/path/file.py[:name]'. A policy names a pipeline; only this allows it. Default: "
            "LOOPWISE_AUTOPILOT_PIPELINES, else none.",
            show_default=False,
        ),
    ] = None,
    autopilot_allow_pickle: Annotated[
        bool,
        typer.Option(
            "--autopilot-allow-pickle",
            help="Let the autopilot's gates load model versions stored as pickle (code runs on "
            "load). Also LOOPWISE_AUTOPILOT_ALLOW_PICKLE=1.",
        ),
    ] = False,
    allow_outbound_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-outbound-host",
            help="A HOST or HOST:PORT that policies' metrics_url and webhooks may reach although "
            "its addresses are not public (loopback, private, link-local …); repeat for more. "
            "Also LOOPWISE_ALLOW_OUTBOUND_HOSTS.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the store (--uri: a folder or a database URL) as a REST API under /api/v1.

    Clients set LOOPWISE_URI=http://HOST:PORT and LOOPWISE_TOKEN to a token from
    `loopwise token create`. Interactive API docs are at /docs.
    """
    if no_auth and not is_loopback(host):
        raise InvalidArgumentError(
            f"--no-auth is allowed only when the server listens on loopback (127.0.0.1, ::1 or "
            f"localhost), got --host {host}. Create tokens with `loopwise token create` instead.",
            parameter="--no-auth",
        )
    uri = resolve_uri(State.uri)
    if uri.startswith(("http://", "https://")):
        raise InvalidArgumentError(
            f"The server needs a store it owns: a folder or a database URL, got {uri}.",
            parameter="--uri",
        )
    from loopwise import outbound
    from loopwise.server import create_app

    outbound.allow_hosts(allow_outbound_hosts or ())
    store = open_store(uri)  # refuses a stale schema, naming the upgrade command
    try:
        app = create_app(
            store,
            auth=not no_auth,
            autopilot_every_s=autopilot_every,
            autopilot_settings=_autopilot_settings(
                autopilot_every, autopilot_pipelines, autopilot_allow_pickle
            ),
            allowed_hosts=allowed_hosts or (),
            accept_pickle_models=accept_pickle_models,
        )
        if no_auth:
            err_console.print(
                "[yellow]Authentication is off:[/] every caller on this machine is an admin."
            )
        elif not store.list_tokens():
            err_console.print(
                f"No tokens yet. Create one with: loopwise --uri {uri} token create --role admin",
                highlight=False,
            )
        console.print(f"Loopwise server for {uri} on http://{host}:{port} (API docs at /docs)")
        if autopilot_every:
            console.print(
                f"The autopilot ticks every deployment with a policy every {autopilot_every:g} s."
            )
        # The lifespan starts and stops the autopilot's thread; without it there is none.
        lifespan = "on" if autopilot_every else "off"
        limits = HttpLimits(limit_concurrency, timeout_keep_alive, timeout_headers, timeout_body)
        run_app(
            app, host=host, port=port, limits=limits, log_level=log_level.value, lifespan=lifespan
        )
    finally:
        store.close()
