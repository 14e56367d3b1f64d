"""``loopwise models``: registered models, versions and aliases."""

from __future__ import annotations

from typing import Annotated

import typer

import loopwise as lw
from loopwise.cli.common import JsonOption, open_context
from loopwise.cli.output import console, fmt_ms, print_json, safe, table

app = typer.Typer(help="List registered models and move their aliases.", no_args_is_help=True)


@app.command("list")
def list_models(as_json: JsonOption = False) -> None:
    """List registered models with their latest version and aliases."""
    open_context()
    models = lw.models.list_models()
    if as_json:
        print_json(models)
        return
    rows = [
        [
            m.name,
            m.latest_version,
            ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items())),
            fmt_ms(m.created_ms),
        ]
        for m in models
    ]
    table(f"{len(models)} model(s)", ["model", "latest", "aliases", "created"], rows)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME (all versions), NAME/VERSION or NAME@ALIAS.")],
    as_json: JsonOption = False,
) -> None:
    """Show a model's versions, or one version's card: run, datasets, metrics, signature."""
    open_context()
    # Imported here: commands such as `server` then never load pandas.
    from loopwise.registry import parse_ref

    name, number, alias = parse_ref(ref)
    if number is None and alias is None:
        versions = lw.models.versions(name)
        if as_json:
            print_json(versions)
            return
        rows = [
            [
                v.version,
                v.flavour,
                ", ".join(v.aliases),
                (v.run_id or "-")[:12],
                fmt_ms(v.created_ms),
            ]
            for v in versions
        ]
        table(f"model {name}", ["version", "flavour", "aliases", "run", "created"], rows)
        return
    version = lw.models.get(ref)
    if as_json:
        print_json(version)
        return
    console.print(
        f"[bold]{safe(version.ref)}[/] flavour {safe(version.flavour)}, aliases "
        f"{safe(version.aliases or '-')}, created {fmt_ms(version.created_ms)}\n"
        f"run {safe(version.run_id or '-')}\ndatasets {safe(', '.join(version.datasets) or '-')}\n"
        f"artifact {safe(version.artifact_digest)}"
    )
    if version.description:
        console.print(safe(version.description))
    from loopwise.registry.flavours import FLAVOURS

    flavour = FLAVOURS.get(version.flavour)
    if flavour is not None and flavour.uses_pickle:  # by its flavour: metadata is editor-written
        console.print(
            "[yellow]Stored with pickle: loading it runs code. It loads only with "
            "lw.models.load(..., allow_pickle=True) or loopwise serve --allow-pickle.[/]"
        )
    table("metrics at registration", ["metric", "value"], sorted(version.metrics.items()))
    inputs = (version.signature or {}).get("inputs", {})
    if inputs.get("type") == "dataframe":
        table(
            "input signature",
            ["column", "dtype"],
            [[c["name"], c["dtype"]] for c in inputs["columns"]],
        )


@app.command("alias")
def alias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production or candidate.")],
    version: Annotated[int | None, typer.Argument(help="Version to point the alias at.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias instead.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Point ALIAS of model NAME at VERSION (atomically), or remove it with --delete."""
    open_context()
    old: int | None
    if delete:
        old = lw.models.delete_alias(name, alias)
        result = {"model": name, "alias": alias, "before": old, "after": None}
    elif version is None:
        raise typer.BadParameter(
            "give the VERSION to point the alias at, or --delete", param_hint="VERSION"
        )
    else:
        old = lw.models.set_alias(name, version, alias)
        result = {"model": name, "alias": alias, "before": old, "after": version}
    if as_json:
        print_json(result)
    elif delete:
        console.print(f"Removed {safe(name)}@{safe(alias)} (it pointed at version {old}).")
    else:
        was = f" (was {old})" if old is not None else ""
        console.print(f"{safe(name)}@{safe(alias)} → version {version}{was}")
