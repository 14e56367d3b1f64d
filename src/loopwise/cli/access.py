"""``loopwise token`` and ``loopwise audit``: API tokens, and the audit log of every change.

Both act on the whole store, not on one project, so they open the store without a project.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from loopwise import audit
from loopwise.audit import tokens
from loopwise.audit.stores import open_existing_store
from loopwise.cli.common import JsonOption, State
from loopwise.cli.output import console, err_console, fmt_ms, print_json, safe, table
from loopwise.store.audit import is_unreadable
from loopwise.store.entities import Role

__all__ = ["audit_app", "token_app"]

token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
audit_app = typer.Typer(
    help="Read the audit log of every change, and check that nobody tampered with it.",
    no_args_is_help=True,
)


# -- tokens ---------------------------------------------------------------------------------------
@token_app.command("create")
def create_token(
    role: Annotated[Role, typer.Option("--role", help="What the token may do.")],
    project: Annotated[
        str | None,
        typer.Option("--project", help="The only project it may touch (default: all projects)."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A name for people (default: its id).")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create an API token and print its secret, once: it is stored only as a salted hash."""
    with open_existing_store(State.uri) as store:
        token, secret = tokens.create_token(role, project=project, name=name, store=store)
    if as_json:
        print_json({"token": token, "secret": secret})
        return
    scope = f"project {safe(token.project)}" if token.project else "all projects"
    console.print(
        f"Created token [bold]{safe(token.name)}[/] ({safe(token.id)}): {token.role.value}, {scope}."
    )
    print(secret)
    err_console.print(
        "[yellow]Copy the secret now: it will not be shown again.[/] Clients send it as "
        "'Authorization: Bearer <secret>'.",
        highlight=False,
    )


@token_app.command("list")
def list_tokens(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List API tokens (never their secrets)."""
    with open_existing_store(State.uri) as store:
        found = tokens.list_tokens(include_revoked=include_revoked, store=store)
    if as_json:
        print_json(found)
        return
    rows = [
        [
            t.id,
            t.name,
            t.role.value,
            t.project or "(all)",
            fmt_ms(t.created_ms),
            t.created_by,
            fmt_ms(t.revoked_ms) if t.revoked_ms is not None else "",
        ]
        for t in found
    ]
    columns = ["id", "name", "role", "project", "created", "by", "revoked"]
    table(
        f"{len(found)} token(s)",
        columns if include_revoked else columns[:-1],
        [row if include_revoked else row[:-1] for row in rows],
    )


@token_app.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(help="The token's id, e.g. tok_3f9a1c2b7d4e.")],
    as_json: JsonOption = False,
) -> None:
    """Revoke an API token: its secret stops working at once."""
    with open_existing_store(State.uri) as store:
        token = tokens.revoke_token(token_id, store=store)
    if as_json:
        print_json(token)
        return
    console.print(
        f"Revoked token {safe(token.name)} ({safe(token.id)}) at {fmt_ms(token.revoked_ms)}."
    )


# -- audit log ------------------------------------------------------------------------------------
def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _whole(side: dict[str, Any] | None) -> str:
    if side is None:
        return "(none)"
    if is_unreadable(side):
        return f"UNREADABLE ({side['reason']}): {side['stored_text']}"
    return ", ".join(f"{k}: {_short(v)}" for k, v in sorted(side.items()))


def describe_change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """``version: 1 → 2`` for each key that a record's ``before`` and ``after`` name; a side
    whose stored text was not readable JSON is shown whole, flagged, as the text it holds."""
    if before is None and after is None:
        return ""
    if is_unreadable(before) or is_unreadable(after):
        return f"{_whole(before)} → {_whole(after)}"
    if before is None or after is None:
        side = after if before is None else before
        text = ", ".join(f"{k}: {_short(v)}" for k, v in sorted((side or {}).items()))
        return text if before is None else f"{text} → (removed)"
    keys = sorted(set(before) | set(after))
    return ", ".join(
        f"{k}: {_short(before.get(k)) if k in before else '-'} → "
        f"{_short(after.get(k)) if k in after else '-'}"
        for k in keys
    )


@audit_app.command("log")
def log(
    since: Annotated[
        str | None,
        typer.Option("--since", help="A date (2026-01-01), date and time, or duration (1h, 7d)."),
    ] = None,
    after: Annotated[
        int, typer.Option("--after", min=0, help="Only records after this seq (to page on).")
    ] = 0,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="At most this many records.")
    ] = 100,
    as_json: JsonOption = False,
) -> None:
    """List recorded changes, oldest first: who did what to which object, before → after."""
    with open_existing_store(State.uri) as store:
        records = audit.audit_log(since, after_seq=after, limit=limit, store=store)
    if as_json:
        print_json(records)
        return
    rows = [
        [
            r.seq,
            fmt_ms(r.time_ms),
            r.actor,
            r.action,
            r.target,
            describe_change(r.before, r.after),
        ]
        for r in records
    ]
    table(
        f"{len(records)} audit record(s)",
        ["seq", "time", "actor", "action", "target", "before → after"],
        rows,
    )
    if len(records) == limit:
        console.print(f"More records follow: --after {records[-1].seq}")


@audit_app.command("verify")
def verify(
    anchor: Annotated[
        str | None,
        typer.Option("--anchor", help="A head hash printed earlier: the log must still hold it."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the audit log's hash chain; exit 1 naming the first broken record and why."""
    with open_existing_store(State.uri) as store:
        result = audit.verify(anchor, store=store)
    if as_json:
        print_json(result)
    elif result.ok:
        console.print(f"{safe(result.reason)}, head {result.head_hash or '-'}", highlight=False)
    else:
        err_console.print(
            f"[red]The audit log was tampered with:[/] {safe(result.reason)}. "
            f"The first {result.records} record(s) are intact.",
            highlight=False,
        )
    if not result.ok:
        raise typer.Exit(1)
