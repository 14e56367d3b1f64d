"""How the CLI shows results: rich tables for people, ``--json`` for scripts.

Stored text (run names, tags, params, messages) is written by whoever can write the store, so
nothing of it reaches the terminal raw: control characters (escape sequences that move the
cursor, retitle the window or fake output) are shown as ``\\x1b``-style escapes, and Rich
markup in it (``[red]``) prints literally. Table cells are made safe here; a message built
with an f-string passes stored values through :func:`safe`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

__all__ = [
    "clean",
    "console",
    "err_console",
    "fmt_ms",
    "fmt_value",
    "print_json",
    "safe",
    "styled",
    "table",
]

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides that make
# text read differently from what it is.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``), not obeyed."""
    return _CONTROL.sub(_shown, text)


def safe(value: Any) -> str:
    """A stored value for a message with Rich markup: control characters shown as escapes,
    and markup in it (``[red]``) printed literally."""
    return escape(clean(str(value)))


def styled(markup: str) -> Text:
    """A table cell with intended markup (``"[red]yes[/]"``), which :func:`table` keeps."""
    return Text.from_markup(markup)


class _Console(Console):
    """A console that never sends a control character it was given to the terminal: they are
    never part of a message Loopwise means to print, only of stored text inside one."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(clean(o) if isinstance(o, str) else o for o in objects), **kwargs)


console = _Console()
err_console = _Console(stderr=True)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity: "nan", "inf", "-inf"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    """Machine-readable output on stdout (no colour, no wrapping)."""
    print(json.dumps(_plain(value), indent=2, sort_keys=False))


def fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Rows of values as a table; a value is shown as text (see :func:`safe`), except a
    ``rich.text.Text`` (e.g. from :func:`styled`), which keeps its style."""
    out = Table(title=safe(title), title_justify="left")
    for i, column in enumerate(columns):
        out.add_column(safe(column), overflow="fold", no_wrap=i == 0)
    for row in rows:
        out.add_row(*(v if isinstance(v, Text) else safe(fmt_value(v)) for v in row))
    console.print(out)
