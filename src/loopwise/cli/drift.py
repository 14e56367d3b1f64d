"""``loopwise data drift``: a thin adapter over ``loopwise.data.drift.drift``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from loopwise.cli.common import JsonOption, State, open_context
from loopwise.cli.output import console, print_json, safe, styled, table
from loopwise.errors import InvalidArgumentError, NotFoundError

__all__ = ["drift"]

DataArgument = Annotated[
    str, typer.Argument(help="A dataset (NAME or NAME/VERSION) or a Parquet/CSV/Feather file.")
]


# A dataset ref: a name (letters, digits, '_', '-', '.') and an optional '/VERSION'.
DATASET_REF = re.compile(r"^[A-Za-z0-9_.\-]{1,200}(/[0-9]+)?$")
FILES = "a Parquet (.parquet, .pq), CSV (.csv) or Feather (.feather, .arrow) file"


def _looks_like_path(data: str) -> bool:
    """A data file's suffix, a leading '.', '/' or '~', or anything no dataset ref can be."""
    from loopwise.data.tables import READERS  # pyarrow and pandas: loaded on first use

    return (
        Path(data).suffix.lower() in READERS
        or data.startswith((".", "/", "~"))
        or not DATASET_REF.match(data)
    )


def _load(data: str, parameter: str) -> Any:
    """A file is read as is; a path that does not exist is an error; anything else is a dataset
    ref, read from the store, which must exist already (a lookup creates none)."""
    if Path(data).expanduser().exists():
        return str(Path(data).expanduser())
    if _looks_like_path(data):
        raise InvalidArgumentError(
            f"No such file: {data!r} (for {parameter.upper()}). Expected {FILES}, or a dataset "
            "NAME or NAME/VERSION; check the path, relative to the current folder "
            f"({Path.cwd()}).",
            parameter=parameter,
        )
    return _dataset(data, parameter)


def _dataset(ref: str, parameter: str) -> Any:
    from loopwise.store import DB_FILE, resolve_uri  # SQLAlchemy: loaded on first use

    uri = resolve_uri(State.uri)
    if "://" not in uri and not (Path(uri).expanduser() / DB_FILE).is_file():
        raise NotFoundError(
            f"{ref!r} (for {parameter.upper()}) is not a file here, and there is no Loopwise "
            f"store at {uri} to hold a dataset of that name. Expected {FILES}, or a dataset "
            "NAME[/VERSION] of a store: check the file name, or name the store with --uri "
            "(or LOOPWISE_URI).",
            kind="dataset",
            wanted=ref,
        )
    open_context()
    from loopwise.data import load_dataset

    try:
        return load_dataset(ref, format="arrow")
    except NotFoundError as exc:
        if exc.details.get("kind") not in ("dataset", "dataset_version"):
            raise
        raise NotFoundError(
            f"{ref!r} (for {parameter.upper()}) is not a file here, nor a dataset: {exc.message}",
            **exc.details,
        ) from exc


def drift(
    reference: DataArgument,
    current: DataArgument,
    columns: Annotated[
        str | None,
        typer.Option("--columns", help="Comma-separated columns to compare (default: all shared)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare CURRENT with REFERENCE column by column and give the dataset verdict.

    Tests and thresholds are Evidently 0.7's defaults (see docs/drift.md). The exit code is 0
    whether or not the data drifted; scripts read the verdict from --json.
    """
    from loopwise.data.drift import drift as compute

    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    report = compute(_load(reference, "reference"), _load(current, "current"), columns=chosen)
    if as_json:
        print_json(report.to_dict())
        return
    rows = [
        [
            c.column,
            c.kind,
            c.test,
            c.statistic,
            c.p_value,
            c.threshold,
            styled("[bold red]yes[/]") if c.drifted else "no",
            c.note or "",
        ]
        for c in report.columns.values()
    ]
    table(
        f"{current} against {reference}",
        ["column", "kind", "test", "statistic", "p-value", "threshold", "drifted", "note"],
        rows,
    )
    if report.skipped:
        console.print(f"not compared: {safe(report.skipped)}")
    verdict = "[bold red]drifted[/]" if report.drifted else "[green]no drift[/]"
    console.print(
        f"dataset: {verdict} — {len(report.drifted_columns)} of {len(report.columns)} columns "
        f"drifted ({report.share_drifted:.0%}; the dataset drifts at {report.drift_share:.0%})"
    )
