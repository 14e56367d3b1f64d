"""``loopwise monitor``: a deployment's status and HTML report, delayed outcomes, alerts.

Thin over ``loopwise.monitoring`` (``monitor``, ``write_report``, ``log_outcomes``,
``list_alerts``, ``resolve_alert``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loopwise.cli.common import JsonOption, open_context
from loopwise.cli.output import console, fmt_ms, print_json, safe, table
from loopwise.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd

    from loopwise.monitoring import AlertRules, MonitorReport
    from loopwise.store import Alert

__all__ = ["app"]

app = typer.Typer(
    help="Monitoring: a deployment's drift, skew, validation and performance (status, HTML "
    "report), delayed outcomes (ground truth), and alerts.",
    no_args_is_help=True,
)


class StatusChoice(StrEnum):
    open = "open"
    resolved = "resolved"
    all = "all"


def _read(path: Path, id_column: str) -> pd.DataFrame:
    import pandas as pd  # loads pandas: only in the commands that need it

    suffix = path.suffix.lower()
    if not path.is_file() or suffix not in (".csv", ".parquet", ".pq"):
        problem = "does not exist" if not path.is_file() else f"has suffix {suffix!r}"
        raise InvalidArgumentError(
            f"Expected a .csv or .parquet file of outcomes, got {str(path)!r}, which {problem}.",
            parameter="file",
        )
    if suffix == ".csv":
        return pd.read_csv(path, dtype={id_column: str})  # ids are text, even "0012"
    return pd.read_parquet(path)


def _column(frame: pd.DataFrame, name: str, option: str) -> pd.Series:
    if name not in frame.columns:
        raise InvalidArgumentError(
            f"The file has no column {name!r} (columns: {list(frame.columns)[:20]}). Name the "
            f"right one with {option}.",
            parameter=option,
        )
    return frame[name]


@app.command("outcomes")
def outcomes(
    file: Annotated[Path, typer.Argument(help="A CSV or Parquet file: one row per outcome.")],
    deployment: Annotated[
        str, typer.Option("--deployment", "-d", help="The deployment that made the predictions.")
    ],
    id_column: Annotated[
        str, typer.Option("--id-column", help="Column of prediction row ids.")
    ] = "request_id",
    label_column: Annotated[
        str, typer.Option("--label-column", help="Column of outcomes (labels or targets).")
    ] = "outcome",
    time_column: Annotated[
        str | None,
        typer.Option(
            "--time-column",
            help="Column of when each outcome happened (ms since the epoch). Default: now.",
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace outcomes recorded before with other values."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Record ground truth for logged predictions; running it again with the same file is safe."""
    frame = _read(file, id_column)
    ids = _column(frame, id_column, "--id-column")
    labels = _column(frame, label_column, "--label-column")
    times = None if time_column is None else _column(frame, time_column, "--time-column")
    open_context()
    from loopwise.monitoring import log_outcomes  # loads pandas: only in the commands that need it

    receipt = log_outcomes(deployment, ids, labels, timestamp_ms=times, overwrite=overwrite)
    if as_json:
        print_json(receipt)
        return
    console.print(
        f"{receipt.new:,} new, {receipt.duplicates:,} already recorded, "
        f"{receipt.updated:,} overwritten, {len(receipt.conflicts):,} conflicting"
    )
    if receipt.conflicts:
        shown = ", ".join(receipt.conflicts[:10]) + (" …" if len(receipt.conflicts) > 10 else "")
        console.print(
            f"[yellow]Kept the recorded outcome of {len(receipt.conflicts):,} ids whose new "
            f"value differs[/] ({safe(shown)}); pass --overwrite to replace them."
        )


def _rows(alerts: list[Alert]) -> list[list[object]]:
    return [
        [
            a.id,
            a.status,
            a.severity,
            a.deployment or "-",
            a.rule,
            a.occurrences,
            fmt_ms(a.last_seen_ms),
            a.message,
        ]
        for a in alerts
    ]


@app.command("alerts")
def alerts(
    deployment: Annotated[
        str | None, typer.Option("--deployment", "-d", help="Only this deployment's alerts.")
    ] = None,
    status: Annotated[
        StatusChoice, typer.Option("--status", help="Which alerts to list.")
    ] = StatusChoice.open,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List alerts, most recently seen first."""
    open_context()
    from loopwise.monitoring import list_alerts  # loads pandas: only in the commands that need it

    chosen = None if status is StatusChoice.all else status.value
    found = list_alerts(deployment, status=chosen, limit=limit)  # type: ignore[arg-type]
    if as_json:
        print_json(found)
        return
    columns = ["id", "status", "severity", "deployment", "rule", "times", "last seen", "message"]
    table(f"{len(found)} {status.value} alert(s)", columns, _rows(found))


@app.command("resolve")
def resolve(
    alert_id: Annotated[
        int, typer.Argument(help="The alert's id (see `loopwise monitor alerts`).")
    ],
    as_json: JsonOption = False,
) -> None:
    """Close an alert; if its rule fires again, a new alert opens."""
    open_context()
    from loopwise.monitoring import resolve_alert  # loads pandas: only in the commands that need it

    alert = resolve_alert(alert_id)
    if as_json:
        print_json(alert)
        return
    console.print(f"Alert {alert.id} ({safe(alert.rule)}) resolved at {fmt_ms(alert.resolved_ms)}.")


def _time_ms(value: str | None, option: str) -> int | None:
    import pandas as pd  # loads pandas: only in the commands that need it

    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"{option}: expected a date or time such as 2026-11-01 or 2026-11-01T12:00Z, got "
            f"{value!r}.",
            parameter=option,
        ) from exc
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return int(stamp.value // 1_000_000)


def _rules(path: Path | None) -> AlertRules | None:
    from loopwise.monitoring import AlertRules  # loads pandas: only in the commands that need it

    if path is None:
        return None
    import yaml  # 30 ms at start-up otherwise: only with --rules

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidArgumentError(
            f"--rules: could not read {str(path)!r} as YAML ({exc}).", parameter="rules"
        ) from exc
    return AlertRules.from_dict(doc or {})


DeploymentArgument = Annotated[
    str, typer.Argument(help="The deployment (for now: the served model's name).")
]
StartOption = Annotated[
    str | None,
    typer.Option("--start", help="From this time (UTC unless it says), e.g. 2026-11-01."),
]
EndOption = Annotated[str | None, typer.Option("--end", help="Up to this time (excluded).")]
WindowOption = Annotated[
    str, typer.Option("--window", help="Window length: a pandas offset such as 1h, 1D or 7D.")
]
ReferenceOption = Annotated[
    str | None,
    typer.Option(
        "--reference",
        help="Dataset (NAME/VERSION) to compare inputs with; default: the served model's "
        "training data.",
    ),
]
LabelOption = Annotated[
    str | None,
    typer.Option(
        "--label", help="The reference's label column: also estimate performance without labels."
    ),
]
SliceOption = Annotated[
    list[str] | None, typer.Option("--slice", help="Cut performance by this input (repeatable).")
]
RulesOption = Annotated[
    Path | None,
    typer.Option("--rules", help="YAML file of alert rules (see docs/monitoring.md).", exists=True),
]
AlertsOption = Annotated[
    bool, typer.Option("--alerts/--no-alerts", help="Store the alerts the rules raise.")
]
AllowPickleOption = Annotated[
    bool,
    typer.Option(
        "--allow-pickle",
        help="Estimating performance loads the model: allow a pickled version (runs its code; "
        "only for models you trust).",
    ),
]
WebhookOption = Annotated[
    str | None, typer.Option("--webhook", help="POST each new alert to this URL.")
]


def _monitor(
    deployment: str,
    start: str | None,
    end: str | None,
    window: str,
    reference: str | None,
    label: str | None,
    slices: list[str] | None,
    rules: Path | None,
    raise_alerts: bool,
    webhook: str | None,
    allow_pickle: bool,
) -> MonitorReport:
    open_context()
    from loopwise.monitoring import monitor  # loads pandas: only in the commands that need it

    with console.status(f"Monitoring {safe(deployment)}…"):
        return monitor(
            deployment,
            start_ms=_time_ms(start, "--start"),
            end_ms=_time_ms(end, "--end"),
            window=window,
            reference=reference,
            label=label,
            slices=slices or (),
            rules=_rules(rules),
            raise_alerts=raise_alerts,
            webhook=webhook,
            allow_pickle=allow_pickle,
        )


@app.command("status")
def status(
    deployment: DeploymentArgument,
    start: StartOption = None,
    end: EndOption = None,
    window: WindowOption = "1D",
    reference: ReferenceOption = None,
    label: LabelOption = None,
    slices: SliceOption = None,
    rules: RulesOption = None,
    raise_alerts: AlertsOption = True,
    webhook: WebhookOption = None,
    allow_pickle: AllowPickleOption = False,
    as_json: JsonOption = False,
) -> None:
    """Monitor a deployment now: per window its traffic, drifted and skewed inputs, validation
    findings, realised and estimated accuracy, and the alerts raised."""
    report = _monitor(
        deployment,
        start,
        end,
        window,
        reference,
        label,
        slices,
        rules,
        raise_alerts,
        webhook,
        allow_pickle,
    )
    if as_json:
        print_json(report.to_dict())
        return
    _print_status(report)


def _print_status(report: MonitorReport) -> None:
    title = f"{report.deployment} against {report.reference}"
    table(title, report.summary_columns, report.summary_rows())
    for alert in report.alerts:
        console.print(
            f"[bold]{safe(alert['severity'])}[/] {safe(alert['rule'])}: {safe(alert['message'])}"
        )
    if not report.alerts:
        console.print("No alerts.")


@app.command("report")
def report(
    deployment: DeploymentArgument,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path(
        "monitor-report.html"
    ),
    start: StartOption = None,
    end: EndOption = None,
    window: WindowOption = "1D",
    reference: ReferenceOption = None,
    label: LabelOption = None,
    slices: SliceOption = None,
    rules: RulesOption = None,
    raise_alerts: AlertsOption = False,
    allow_pickle: AllowPickleOption = False,
) -> None:
    """Write a standalone HTML report (opens offline): distributions, drift, skew, performance
    and estimated performance over time, slices, validation findings and alerts."""
    from loopwise.monitoring import write_report  # loads pandas: only in the commands that need it

    found = _monitor(
        deployment, start, end, window, reference, label, slices, rules, raise_alerts, None,
        allow_pickle,
    )  # fmt: skip
    path = write_report(found, output)
    console.print(f"Wrote {safe(path)} ({path.stat().st_size / 1e6:.1f} MB).")
