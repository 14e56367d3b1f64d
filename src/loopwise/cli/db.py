"""``loopwise db``: the metadata database's schema."""

from __future__ import annotations

import typer

from loopwise.cli.common import State
from loopwise.cli.output import console, safe
from loopwise.store import resolve_uri, upgrade_store

app = typer.Typer(help="Manage the store's database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Migrate the store's schema to the one this Loopwise uses (back up first)."""
    from loopwise.store.migrate import HEAD  # SQLAlchemy: not loaded for the CLI's start-up

    uri = resolve_uri(State.uri)
    before, after = upgrade_store(uri)
    if before == after:
        console.print(f"The store at {safe(uri)} is already at schema {HEAD}.")
    else:
        console.print(
            f"Upgraded the store at {safe(uri)} from schema {safe(before or '(empty)')} to "
            f"{safe(after)}."
        )
