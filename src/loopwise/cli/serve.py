"""``loopwise serve``: run the inference server for registered models."""

from __future__ import annotations

from typing import Annotated

import typer

from loopwise.cli.common import open_context
from loopwise.cli.output import console
from loopwise.errors import InvalidArgumentError, require_extra

__all__ = ["serve"]


def serve(
    refs: Annotated[
        list[str],
        typer.Argument(help="Models to serve: NAME@ALIAS, NAME/VERSION or NAME (latest)."),
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = 8000,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "info",
) -> None:
    """Serve registered models over the Open Inference Protocol (/v2), MLflow's /invocations
    and a plain /predict. Each model is loaded (its files verified by digest) before the
    server starts; inputs are checked against its signature."""
    uvicorn = require_extra("uvicorn", "server")
    from loopwise.registry import models, parse_ref
    from loopwise.serving import create_serving_app

    ctx = open_context()
    loaded = {}
    for ref in refs:
        name = parse_ref(ref)[0]
        if name in loaded:
            raise InvalidArgumentError(
                f"Model {name!r} is named twice ({ref!r}); serve one version of each model.",
                parameter="refs",
            )
        loaded[name] = models.load(ref, store=ctx.store, project=ctx.project)
        console.print(f"Loaded {loaded[name].version.ref} ({loaded[name].version.flavour})")
    app = create_serving_app(loaded)
    console.print(f"Serving {', '.join(sorted(loaded))} on http://{host}:{port}")
    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="off")
