"""The checks of a policy's values, and how their refusals are gathered: each check names the
dotted path of what it checks, and a policy with several problems is refused once, listing
every one (its path, what came, what was expected), so that one edit can fix them all.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from loopwise.errors import InvalidArgumentError, LoopwiseError
from loopwise.outbound import parse_url
from loopwise.store.checks import check_name

__all__ = [
    "MAX_DURATION_MS",
    "MAX_KEY_CHARS",
    "MAX_QUOTED_CHARS",
    "Problem",
    "duration_ms",
    "problems_of",
    "refusal_of",
    "refused",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|D|w|W)\s*$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "min": 60_000, "h": 3_600_000}
_UNIT_MS |= {"d": 86_400_000, "D": 86_400_000, "w": 604_800_000, "W": 604_800_000}

MAX_QUOTED_CHARS = 200
"""The most of a value an error message quotes (a policy's values are anyone's input)."""
MAX_KEY_CHARS = 100
MAX_DURATION_MS = 3650 * 86_400_000
"""The longest duration a policy may give (ten years): longer is a typo, not a setting."""

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60


def quoted(value: object) -> str:
    """``repr(value)``, cut to ``MAX_QUOTED_CHARS`` (the cut is marked)."""
    if isinstance(value, str | int | float | bool | None):
        shown = repr(value[: MAX_QUOTED_CHARS + 1] if isinstance(value, str) else value)
    elif isinstance(value, list | tuple | dict | set):
        shown = _SHORT.repr(value)
    else:
        shown = f"a {type(value).__name__}"
    return shown if len(shown) <= MAX_QUOTED_CHARS else shown[:MAX_QUOTED_CHARS] + "…"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy: where, what came, what was expected, and the sentence
    that says so (with how to fix it, where that is not plain from the rest)."""

    path: str
    got: str
    expected: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def refused(path: str, expected: str, got: str, hint: str = "") -> InvalidArgumentError:
    """The refusal of the value at ``path``: ``path: expected …, got ….`` and a hint."""
    message = f"{path}: expected {expected}, got {got}." + (f" {hint}" if hint else "")
    return refusal_of([Problem(path, got, expected, message)])


def refusal_of(problems: list[Problem]) -> InvalidArgumentError:
    """One error for all of ``problems``: a single problem's sentence as it is, several
    listed one a line; ``parameter`` names the first, ``problems`` lists each (as JSON)."""
    assert problems
    if len(problems) == 1:
        message = problems[0].message
    else:
        lines = "\n".join(f"- {p.message}" for p in problems)
        message = (
            f"The policy has {len(problems)} problems; fix them all and set it again:\n{lines}"
        )
    return InvalidArgumentError(
        message, parameter=problems[0].path, problems=[p.to_json() for p in problems]
    )


def problems_of(error: LoopwiseError, path: str) -> list[Problem]:
    """The problems an error carries (one made of its message when it lists none)."""
    listed = error.details.get("problems")
    if isinstance(listed, list) and listed:
        return [Problem(p["path"], p["got"], p["expected"], p["message"]) for p in listed]
    where = str(error.details.get("parameter") or path)
    return [Problem(where, "", "", error.message)]


def gathered(checks: Iterable[Callable[[], Any]], problems: list[Problem], path: str) -> list[Any]:
    """Run each check, adding what it refuses to ``problems``; the results of those that
    passed (a refused one gives None)."""
    results: list[Any] = []
    for check in checks:
        try:
            results.append(check())
        except InvalidArgumentError as exc:
            problems.extend(problems_of(exc, path))
            results.append(None)
    return results


# -- field checks: each names the dotted path of what it checks -------------------------------


def duration_ms(value: object, path: str) -> int:
    """``"30D"``, ``"12h"``, ``"90m"`` or a number of seconds, in milliseconds (at least 1 ms,
    at most ``MAX_DURATION_MS``)."""
    found: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        found = float(value) * 1000
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is not None:
        found = float(match.group(1)) * _UNIT_MS[match.group(2)]
    if found is None or not math.isfinite(found) or not 1 <= found <= MAX_DURATION_MS:
        raise refused(
            path,
            "a positive duration from 1ms to 3650D, such as '30D', '12h', '90m' or a number of "
            "seconds",
            quoted(value),
        )
    return int(found)


def duration(value: object, path: str) -> str:
    """A duration as written (checked by ``duration_ms``)."""
    duration_ms(value, path)
    return value  # type: ignore[return-value]


def number(
    value: object, path: str, low: float, high: float, *, open_low: bool = False,
    open_high: bool = False,
) -> float:  # fmt: skip
    """A finite number between ``low`` and ``high`` (each bound excluded when open)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        x = float(value)  # type: ignore[arg-type]
        if (x > low if open_low else x >= low) and (x < high if open_high else x <= high):
            return x
    bound = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    raise refused(path, f"a number in {bound}", quoted(value))


def share(value: object, path: str) -> float:
    """A share of a metric's value, from 0 up to (not including) 1 (0.02: 2%)."""
    return number(value, path, 0.0, 1.0, open_high=True)


def count(value: object, path: str, low: int = 1, high: int = 10**9) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    raise refused(path, f"a whole number from {low} to {high}", quoted(value))


def text(value: object, path: str) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise refused(path, "a non-empty string", quoted(value))


def flag(value: object, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise refused(path, "true or false", quoted(value))


def optional(check: Callable[..., Any]) -> Callable[..., Any]:
    def checked(value: object, path: str, *args: Any, **kwargs: Any) -> Any:
        return None if value is None else check(value, path, *args, **kwargs)

    return checked


def metric_map(value: object, path: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise refused(
            path,
            "a mapping of slice column to the lowest acceptable value, e.g. {SEX: 0.7}",
            quoted(value),
        )
    return {
        text(k, path): number(v, f"{path}.{str(k)[:MAX_KEY_CHARS]}", -1e12, 1e12)
        for k, v in value.items()
    }


def steps(value: object, path: str) -> tuple[int, ...]:
    expected = (
        "a list of candidate shares in percent, increasing and ending at 100, e.g. [5, 25, 100]"
    )
    if not isinstance(value, list) or not value:
        raise refused(path, expected, quoted(value))
    found = tuple(count(v, f"{path}[{i}]", 1, 100) for i, v in enumerate(value))
    if list(found) != sorted(set(found)) or found[-1] != 100:
        raise refused(path, expected, quoted(list(found)))
    return found


def choice(options: tuple[str, ...]) -> Callable[[object, str], str]:
    def check(value: object, path: str) -> str:
        if value in options:
            return str(value)
        raise refused(path, f"one of {list(options)}", quoted(value))

    return check


def triggers(options: tuple[str, ...]) -> Callable[[object, str], tuple[str, ...]]:
    def check(value: object, path: str) -> tuple[str, ...]:
        if isinstance(value, list) and all(v in options for v in value):
            return tuple(value)
        raise refused(path, f"a list drawn from {list(options)}", quoted(value))

    return check


def params(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise refused(path, "a mapping of pipeline parameter names to values", quoted(value))
    return dict(value)


def alias(value: object, path: str) -> str:
    name = text(value, path)
    try:
        check_name(name, path)
    except LoopwiseError as exc:
        raise refusal_of([Problem(path, quoted(value), "a registry alias", exc.message)]) from None
    return name


MAX_PIPELINE_CHARS = 1000


def pipeline(value: object, path: str) -> str:
    ref = text(value, path)
    if len(ref) > MAX_PIPELINE_CHARS:
        raise refused(
            path,
            f"a pipeline as 'file.py:name' or 'package.module:name' of at most "
            f"{MAX_PIPELINE_CHARS} characters",
            quoted(ref),
        )
    return ref


def url(value: object, path: str) -> str:
    found = text(value, path)
    if not found.startswith(("http://", "https://")):
        raise refused(path, "an http(s) URL", quoted(value))
    try:
        parse_url(found, path)
    except InvalidArgumentError as exc:
        message = f"{path}: {exc.message}"
        raise refusal_of([Problem(path, quoted(value), "an http(s) URL", message)]) from None
    return found
