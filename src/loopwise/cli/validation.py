"""``loopwise data validate`` and ``loopwise data suite``: thin over ``loopwise.data``'s suites."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopwise.cli.common import JsonOption, command_hint, open_context
from loopwise.cli.output import console, print_json, safe, table
from loopwise.errors import InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    from loopwise.data import Suite, ValidationReport

__all__ = ["suite_app", "validate"]

suite_app = typer.Typer(
    help="Validation suites: infer one from data, attach it to a dataset, show or detach it.",
    no_args_is_help=True,
)

DataArgument = Annotated[
    str, typer.Argument(help="A dataset (NAME or NAME/VERSION) or a Parquet/CSV/Feather file.")
]


class OnFailure(StrEnum):
    warn = "warn"
    fail = "fail"


def _is_file(data: str) -> bool:
    from loopwise.data.datasets import READERS

    return Path(data).suffix.lower() in READERS or Path(data).exists()


def _load(data: str) -> Any:
    """A file is read as is; anything else is a dataset ref, read from the store."""
    if _is_file(data):
        return data
    open_context()
    from loopwise.data import load_dataset

    return load_dataset(data)


def validate(
    data: DataArgument,
    suite: Annotated[
        Path | None,
        typer.Option(
            "--suite", help="Suite YAML file. Default: the suite attached to the dataset."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check data against a suite and list every violation; exit 1 on any error finding."""
    from loopwise.data import Suite, parse_dataset_ref

    if suite is not None:
        chosen = Suite.read(suite)
    elif _is_file(data):
        raise InvalidArgumentError(
            f"Expected --suite FILE to validate the file {data!r}: a file has no attached "
            "suite. Write one with: loopwise data suite infer DATA --output suite.yaml",
            parameter="suite",
        )
    else:
        chosen = _attached(parse_dataset_ref(data)[0])[0]
    report = chosen.validate(_load(data))
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: ValidationReport) -> None:
    if report.findings:
        rows = [
            [f.column or "(table)", f.rule, f.severity, f.expected, f.observed, f.failing_rows,
             ", ".join(str(e.get(f.column, "")) for e in f.examples) if f.column else ""]
            for f in report.findings
        ]  # fmt: skip
        columns = ["column", "rule", "severity", "expected", "observed", "rows", "examples"]
        table(f"{len(report.findings)} finding(s)", columns, rows)
    errors = len(report.errors)
    where = f"{report.num_rows:,} rows, {report.num_expectations} expectations"
    if errors:
        console.print(f"[red]✗ {errors} error finding(s)[/] ({where})")
    else:
        console.print(f"[green]✓ passed[/] ({where})")


@suite_app.command("infer")
def infer(
    data: DataArgument,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the YAML here, not to stdout.")
    ] = None,
    range_slack: Annotated[
        float,
        typer.Option(help="Widen each inferred range by this share of its width on each side."),
    ] = 0.1,
    max_categories: Annotated[
        int, typer.Option(help="Record allowed values for text columns with at most this many.")
    ] = 50,
) -> None:
    """Infer a suite (types, nulls, ranges, categories) from data, as editable YAML."""
    from loopwise.data import infer_suite

    suite = infer_suite(_load(data), range_slack=range_slack, max_categories=max_categories)
    text = suite.to_yaml()
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text)
    console.print(f"Wrote {len(suite.expectations)} expectations to {safe(output)}")


@suite_app.command("attach")
def attach(
    name: Annotated[str, typer.Argument(help="Dataset name (it need not have versions yet).")],
    file: Annotated[Path, typer.Argument(help="Suite YAML file.")],
    on_failure: Annotated[
        OnFailure,
        typer.Option(help="On violations when a version is logged: warn, or refuse it (fail)."),
    ] = OnFailure.warn,
) -> None:
    """Attach a suite to a dataset: every new version is validated with it."""
    from loopwise.data import Suite, attach_suite

    suite = Suite.read(file)
    open_context()
    attach_suite(name, suite, on_failure=on_failure.value)
    console.print(
        f"Attached {len(suite.expectations)} expectations to dataset [bold]{safe(name)}[/] "
        f"(on failure: {on_failure.value})."
    )


@suite_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    as_json: JsonOption = False,
) -> None:
    """Print the suite attached to a dataset (YAML) and its on-failure setting."""
    suite, on_failure = _attached(name)
    if as_json:
        print_json({"dataset": name, "on_failure": on_failure, "suite": suite.to_yaml()})
        return
    typer.echo(
        f"# attached to dataset {name!r}, on failure: {on_failure}\n{suite.to_yaml()}", nl=False
    )


@suite_app.command("detach")
def detach(name: Annotated[str, typer.Argument(help="Dataset name.")]) -> None:
    """Stop validating new versions of a dataset."""
    from loopwise.data import detach_suite

    open_context()
    detach_suite(name)
    console.print(f"Detached the suite of dataset [bold]{safe(name)}[/].")


def _attached(name: str) -> tuple[Suite, str]:
    from loopwise.data import attached_suite

    open_context()
    found = attached_suite(name)
    if found is None:
        raise NotFoundError(
            f"Dataset {name!r} has no validation suite attached. Attach one with: "
            f"{command_hint('data', 'suite', 'attach', name, 'FILE')} (or pass --suite FILE to "
            "validate)",
            kind="dataset_suite",
            wanted=name,
        )
    return found
