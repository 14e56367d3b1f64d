"""Declarative input rules (bounds, choices, patterns, lengths) and the one shape of a refusal.

In the spirit of scikit-learn's ``sklearn.utils._param_validation`` (``Interval``, ``Options``):
a rule is data, ``is_satisfied_by`` decides, ``refusal`` words every failure as
``Expected <what a valid value is>, got <what came>. <how to fix it>`` and ``invalid_values``
gives values a test can feed the check that declares the rule.
"""

from __future__ import annotations

import numbers
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from loopwise.errors import InvalidArgumentError

__all__ = [
    "INT64_MAX",
    "Constraint",
    "Interval",
    "Length",
    "Options",
    "Pattern",
    "refusal",
    "shown_characters",
    "shown_length",
    "shown_type_and_value",
]

INT64_MAX = 2**63 - 1
"""The largest integer every backend stores (a signed 64-bit column)."""


def refusal(
    expected: str, got: str, hint: str = "", *, parameter: str, **details: Any
) -> InvalidArgumentError:
    """The one message shape: ``Expected <expected>, got <got>.`` and the hint after it."""
    message = f"Expected {expected}, got {got}."
    return InvalidArgumentError(
        f"{message} {hint}" if hint else message, parameter=parameter, **details
    )


def shown_length(value: object) -> str:
    """A text shown by its length (the text itself may be megabytes)."""
    return str(len(value)) if isinstance(value, str) else type(value).__name__


def shown_characters(value: object) -> str:
    """A text shown by its length in characters, anything else by its type."""
    return f"{len(value)} characters" if isinstance(value, str) else type(value).__name__


def shown_type_and_value(value: object) -> str:
    """A value of the wrong type shown with its type: ``str '5'``."""
    return f"{type(value).__name__} {value!r}"


@dataclass(frozen=True, kw_only=True)
class Constraint(ABC):
    """What a valid value is, declared once; the check that uses it names the parameter.

    ``expected`` and ``hint`` are ``str.format`` templates: ``{parameter}``, the constraint's
    own bounds (``{low}``, ``{high}``) and the words the check passes fill them. The words
    named in ``details`` also go into the error's details, and ``received`` adds the value
    received (its ``repr``, cut to 200 characters).
    """

    expected: str
    hint: str = ""
    show: Callable[[Any], str] = repr
    """How the refusal shows the value received."""
    details: tuple[str, ...] = ()
    received: bool = False

    @abstractmethod
    def is_satisfied_by(self, value: object) -> bool:
        """Whether ``value`` keeps the rule."""

    @abstractmethod
    def invalid_values(self) -> list[object]:
        """Values that break the rule, for tests (scikit-learn's ``generate_invalid_param_val``)."""

    def words(self) -> dict[str, object]:
        """The constraint's own words for its templates."""
        return {}

    def refusal(self, value: object, parameter: str, **words: object) -> InvalidArgumentError:
        """The error refusing ``value`` given as ``parameter``."""
        filled = {**self.words(), "parameter": parameter, **words}
        details = {name: words[name] for name in self.details}
        if self.received:
            details["received"] = repr(value)[:200]
        return refusal(
            self.expected.format(**filled),
            self.show(value),
            self.hint.format(**filled),
            parameter=parameter,
            **details,
        )


@dataclass(frozen=True, kw_only=True)
class Interval(Constraint):
    """An integer (never a bool) from ``low`` to ``high``, both included; None: unbounded."""

    low: int | None = None
    high: int | None = None

    def is_satisfied_by(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return False
        number = int(value)
        return (self.low is None or self.low <= number) and (
            self.high is None or number <= self.high
        )

    def invalid_values(self) -> list[object]:
        values: list[object] = [True, 1.5, "1", None]
        if self.low is not None:
            values.append(self.low - 1)
        if self.high is not None:
            values.append(self.high + 1)
        return values

    def words(self) -> dict[str, object]:
        return {"low": self.low, "high": self.high}

    def check(self, value: object, parameter: str, **words: object) -> int:
        """``value`` as an int if it keeps the rule; otherwise the refusal is raised."""
        if not self.is_satisfied_by(value):
            raise self.refusal(value, parameter, **words)
        return int(cast(numbers.Integral, value))


@dataclass(frozen=True, kw_only=True)
class Options(Constraint):
    """One of ``options``, of type ``kind`` (scikit-learn's ``Options``; ``kind=str`` is its
    ``StrOptions``)."""

    options: tuple[object, ...] = ()
    kind: type = object

    def is_satisfied_by(self, value: object) -> bool:
        return isinstance(value, self.kind) and value in self.options

    def invalid_values(self) -> list[object]:
        return ["not-one-of-them", 1, None]

    def check(self, value: object, parameter: str, **words: object) -> object:
        """``value`` unchanged if it is one of the options; otherwise the refusal is raised."""
        if not self.is_satisfied_by(value):
            raise self.refusal(value, parameter, **words)
        return value


@dataclass(frozen=True, kw_only=True)
class Pattern(Constraint):
    """A string that ``regex`` matches from its start."""

    regex: re.Pattern[str]

    def is_satisfied_by(self, value: object) -> bool:
        return isinstance(value, str) and self.regex.match(value) is not None

    def invalid_values(self) -> list[object]:
        return ["", "x" * 1000, "no\tway!", 5, None]

    def check(self, value: object, parameter: str, **words: object) -> str:
        """``value`` unchanged if the pattern matches it; otherwise the refusal is raised."""
        if not self.is_satisfied_by(value):
            raise self.refusal(value, parameter, **words)
        return cast(str, value)


@dataclass(frozen=True, kw_only=True)
class Length(Constraint):
    """A string of ``low`` to ``high`` characters."""

    low: int = 0
    high: int

    def is_satisfied_by(self, value: object) -> bool:
        return isinstance(value, str) and self.low <= len(value) <= self.high

    def invalid_values(self) -> list[object]:
        values: list[object] = ["x" * (self.high + 1), 5, None]
        if self.low > 0:
            values.append("x" * (self.low - 1))
        return values

    def check(self, value: object, parameter: str, **words: object) -> str:
        """``value`` unchanged if it is a string of the right length; otherwise the refusal."""
        if not self.is_satisfied_by(value):
            raise self.refusal(value, parameter, **words)
        return cast(str, value)

    def words(self) -> dict[str, object]:
        return {"low": self.low, "high": self.high}
